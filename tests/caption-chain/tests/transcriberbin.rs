//! whisperstt inside gst-plugins-rs's transcriberbin: live video and speech in, CEA-608 and
//! CEA-708 captions out, read back and compared with the speech.

use gst::prelude::*;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use whisperstt_caption_chain as chain;

use chain::Speech;

fn speech() -> Speech {
    chain::librivox_speech()
}

/// A word and when it was spoken (from whisperstt's word timings) or first shown (captions).
#[derive(Debug, Clone)]
struct TimedWord {
    text: String,
    at: gst::ClockTime,
}

/// What one run of the bin gave.
#[derive(Default)]
struct Run {
    /// Each final's words, and the element that posted it.
    finals: Vec<(String, Vec<TimedWord>)>,
    /// CEA-608 channel 1: each word at the video frame that first carried it.
    words_608: Vec<TimedWord>,
    /// CEA-608 channel 1 as cea608tott reads it: one roll-up row per cue.
    cues_608: Vec<TimedWord>,
    /// CEA-708 service 1: each word at the video frame that first carried it.
    words_708: Vec<TimedWord>,
    warnings: Vec<String>,
    /// The running time the speech starts at.
    origin: gst::ClockTime,
    /// The pipeline's latency once it ran.
    pipeline_latency: gst::ClockTime,
}

fn join(words: &[TimedWord]) -> String {
    words
        .iter()
        .map(|w| w.text.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

impl Run {
    fn text_608(&self) -> String {
        join(&self.words_608)
    }
    fn text_708(&self) -> String {
        join(&self.words_708)
    }
    fn text_cea608tott(&self) -> String {
        join(&self.cues_608)
    }
    /// What whisperstt said: every final's words, in order.
    fn text_spoken(&self) -> String {
        let words: Vec<TimedWord> = self.finals.iter().flat_map(|f| f.1.clone()).collect();
        join(&words)
    }
}

fn description(latency_ms: u32) -> String {
    format!(
        "appsrc name=audio is-live=true format=time \
           caps=audio/x-raw,format=S16LE,rate=16000,channels=1,layout=interleaved \
         ! transcriberbin name=tb mux-method=cea708 latency={latency_ms} \
           cc-caps=closedcaption/x-cea-708,format=cdp \
         videotestsrc name=video is-live=true pattern=black \
         ! video/x-raw,format=I420,width=320,height=240,framerate=30/1 ! tb.sink_video \
         tb.src_audio ! fakesink sync=true \
         tb.src_video ! ccextractor name=ccx ccx.src ! fakesink sync=true \
         ccx.caption ! tee name=cc \
         cc. ! queue ! ccconverter ! closedcaption/x-cea-608,format=raw ! tee name=cc1 \
         cc1. ! queue ! cea608tott ! text/x-raw ! appsink name=cea608tott sync=false async=false \
         cc1. ! queue ! appsink name=cea608 sync=false async=false \
         cc. ! queue ! ccconverter ! closedcaption/x-cea-708,format=cc_data \
           ! appsink name=cea708 sync=false async=false"
    )
}

/// Calls `each` with every buffer `name` (an appsink) receives, and `at_eos` at its end.
fn on_buffers(
    p: &gst::Pipeline,
    name: &str,
    mut each: impl FnMut(&gst::BufferRef) + Send + 'static,
    at_eos: impl Fn() + Send + 'static,
) {
    let sink = p
        .by_name(name)
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |s| {
                let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                each(sample.buffer().unwrap());
                Ok(gst::FlowSuccess::Ok)
            })
            .eos(move |_| at_eos())
            .build(),
    );
}

/// Builds words from decoded caption characters, each at the PTS of the frame that carried its
/// first character.
#[derive(Default)]
struct WordCollector {
    current: Option<TimedWord>,
    words: Vec<TimedWord>,
}

impl WordCollector {
    fn push(&mut self, c: char, at: gst::ClockTime) {
        if c.is_whitespace() {
            return self.end_word();
        }
        let word = self.current.get_or_insert_with(|| TimedWord {
            text: String::new(),
            at,
        });
        word.text.push(c);
    }

    fn end_word(&mut self) {
        self.words.extend(self.current.take());
    }
}

/// Reads CEA-708 service 1 from the `cc_data` buffers of appsink `cea708`.
fn collect_708(p: &gst::Pipeline, words: Arc<Mutex<WordCollector>>) {
    let mut parser = cea708_types::CCDataParser::new();
    let at_eos = Arc::clone(&words);
    on_buffers(
        p,
        "cea708",
        move |b| {
            let mut collector = words.lock().unwrap();
            let data = b.map_readable().unwrap();
            // cc_data's header (process flag, count) before its triplets, as the parser expects.
            let mut packet = vec![0xC0 | (data.len() / 3) as u8, 0xFF];
            packet.extend_from_slice(&data);
            if parser.push(&packet).is_err() {
                return;
            }
            while let Some(p) = parser.pop_packet() {
                for code in p
                    .services()
                    .iter()
                    .filter(|s| s.number() == 1)
                    .flat_map(|s| s.codes())
                {
                    match code.char() {
                        Some(c) => collector.push(c, b.pts().unwrap()),
                        None => collector.end_word(),
                    }
                }
            }
        },
        move || at_eos.lock().unwrap().end_word(),
    );
}

/// Reads CEA-608 channel 1 from the raw byte pairs of appsink `cea608`: what a viewer's decoder
/// shows, including a roll-up row still being written when the stream ends.
fn collect_608(p: &gst::Pipeline, words: Arc<Mutex<WordCollector>>) {
    let mut decoder = cea608_types::Cea608State::default();
    let at_eos = Arc::clone(&words);
    on_buffers(
        p,
        "cea608",
        move |b| {
            let mut collector = words.lock().unwrap();
            let data = b.map_readable().unwrap();
            for pair in data.chunks_exact(2) {
                match decoder.decode([pair[0], pair[1]]) {
                    Ok(Some(cea608_types::Cea608::Text(t))) => {
                        for c in [t.char1, t.char2].into_iter().flatten() {
                            collector.push(c, b.pts().unwrap());
                        }
                    }
                    Ok(Some(_)) => collector.end_word(),
                    _ => {}
                }
            }
        },
        move || at_eos.lock().unwrap().end_word(),
    );
}

/// What cea608tott makes of the same channel: one cue per roll-up row.
fn collect_608_cues(p: &gst::Pipeline, cues: Arc<Mutex<Vec<TimedWord>>>) {
    on_buffers(
        p,
        "cea608tott",
        move |b| {
            let text = String::from_utf8_lossy(&b.map_readable().unwrap())
                .trim()
                .to_string();
            if !text.is_empty() {
                cues.lock().unwrap().push(TimedWord {
                    text,
                    at: b.pts().unwrap(),
                });
            }
        },
        || (),
    );
}

/// Pushes the speech into the live appsrc in real time, 100 ms a buffer, from `started`.
fn feed(
    src: gst_app::AppSrc,
    samples: Vec<i16>,
    started: Instant,
    origin: gst::ClockTime,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for (i, chunk) in samples.chunks(1600).enumerate() {
            let due = Duration::from_millis(100 * i as u64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
            let bytes: Vec<u8> = chunk.iter().flat_map(|s| s.to_le_bytes()).collect();
            let mut buffer = gst::Buffer::from_slice(bytes);
            let b = buffer.get_mut().unwrap();
            b.set_pts(origin + gst::ClockTime::from_mseconds(100 * i as u64));
            b.set_duration(gst::ClockTime::from_mseconds(100));
            if src.push_buffer(buffer).is_err() {
                return;
            }
        }
        let _ = src.end_of_stream();
    })
}

fn final_words(s: &gst::StructureRef) -> Vec<TimedWord> {
    let words = s.get::<gst::List>("words").unwrap();
    words
        .iter()
        .map(|w| {
            let w = w.get::<gst::Structure>().unwrap();
            TimedWord {
                text: w.get("text").unwrap(),
                at: gst::ClockTime::from_nseconds(w.get("start").unwrap()),
            }
        })
        .collect()
}

/// How a run goes: the bin's latency, when (after how many finals) a new whispertranscribe
/// replaces the first, and how long the video goes on after the audio has ended.
struct Options {
    latency_ms: u32,
    swap_after: Option<usize>,
    video_after_audio: Duration,
    /// The audio starts this long after the pipeline does (a microphone opened late).
    audio_delay: Duration,
    /// The video is held back this long at the start (a camera or decoder slow to start).
    video_delay: Duration,
    /// whispertranscribe's `stable-partials`.
    stable_partials: bool,
}

impl Options {
    fn new(latency_ms: u32) -> Options {
        Options {
            latency_ms,
            swap_after: None,
            video_after_audio: Duration::from_secs(6),
            audio_delay: Duration::ZERO,
            video_delay: Duration::ZERO,
            stable_partials: false,
        }
    }
}

/// Plays `speech` live through transcriberbin with whisperstt as its transcriber, then ends
/// the video `video_after_audio` after the audio.
fn play(speech: &Speech, options: &Options) -> Run {
    chain::whisperstt_as_default_transcriber();
    let p = gst::parse::launch(&description(options.latency_ms))
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let transcriber = p
        .by_name("transcriber")
        .expect("whispertranscribe in the bin");
    configure(&transcriber, options);
    let cues = Arc::new(Mutex::new(Vec::new()));
    let (words_608, words_708): (Arc<Mutex<WordCollector>>, Arc<Mutex<WordCollector>>) =
        Default::default();
    collect_608_cues(&p, Arc::clone(&cues));
    collect_608(&p, Arc::clone(&words_608));
    collect_708(&p, Arc::clone(&words_708));
    let mut run = Run::default();
    hold_back(&p.by_name("video").unwrap(), options.video_delay);
    p.set_state(gst::State::Playing).unwrap();
    let src = p
        .by_name("audio")
        .unwrap()
        .downcast::<gst_app::AppSrc>()
        .unwrap();
    std::thread::sleep(options.audio_delay);
    let started = Instant::now();
    // A live source stamps each buffer with the running time it was captured at.
    run.origin = p.current_running_time().unwrap_or(gst::ClockTime::ZERO);
    let feeder = feed(src, speech.samples.clone(), started, run.origin);
    watch(&p, &mut run, options, &feeder, started + speech.duration());
    feeder.join().unwrap();
    let mut q = gst::query::Latency::new();
    if p.query(&mut q) {
        run.pipeline_latency = q.result().1;
    }
    p.set_state(gst::State::Null).unwrap();
    run.cues_608 = std::mem::take(&mut *cues.lock().unwrap());
    run.words_608 = std::mem::take(&mut words_608.lock().unwrap().words);
    run.words_708 = std::mem::take(&mut words_708.lock().unwrap().words);
    run
}

/// Reads the bus until EOS: finals and warnings into `run`, the transcriber swapped when due,
/// the video ended `video_after_audio` after `audio_end`.
fn watch(
    p: &gst::Pipeline,
    run: &mut Run,
    options: &Options,
    feeder: &std::thread::JoinHandle<()>,
    audio_end: Instant,
) {
    let bus = p.bus().unwrap();
    let limit = audio_end + options.video_after_audio + Duration::from_secs(30);
    let mut video_ended = false;
    loop {
        if feeder.is_finished()
            && !video_ended
            && Instant::now() >= audio_end + options.video_after_audio
        {
            p.by_name("video")
                .unwrap()
                .send_event(gst::event::Eos::new());
            video_ended = true;
        }
        assert!(Instant::now() < limit, "the pipeline did not end");
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) else {
            continue;
        };
        match msg.view() {
            gst::MessageView::Eos(_) => return,
            gst::MessageView::Error(e) => panic!("{} ({:?})", e.error(), e.debug()),
            gst::MessageView::Warning(w) => run.warnings.push(w.error().to_string()),
            gst::MessageView::Element(e) => {
                let s = e.structure().unwrap();
                if s.name() != "whisperstt-transcript" || !s.get::<bool>("is-final").unwrap() {
                    continue;
                }
                let from = msg.src().map(|s| s.name().to_string()).unwrap_or_default();
                run.finals.push((from, final_words(s)));
                if Some(run.finals.len()) == options.swap_after {
                    swap_transcriber(p, options);
                }
            }
            _ => {}
        }
    }
}

/// A word a buffer, as tttocea608 expects; stable partial words at once if asked for.
fn configure(transcriber: &gst::Element, options: &Options) {
    transcriber.set_property_from_str("output-granularity", "word");
    transcriber.set_property("stable-partials", options.stable_partials);
}

/// Blocks `source`'s output for `delay` from its first buffer on.
fn hold_back(source: &gst::Element, delay: Duration) {
    if delay.is_zero() {
        return;
    }
    let pad = source.static_pad("src").unwrap();
    let probe = Arc::new(Mutex::new(None));
    let slot = Arc::clone(&probe);
    *probe.lock().unwrap() = pad.add_probe(gst::PadProbeType::BLOCK_DOWNSTREAM, move |pad, _| {
        let (pad, slot) = (pad.clone(), Arc::clone(&slot));
        std::thread::spawn(move || {
            std::thread::sleep(delay);
            if let Some(id) = slot.lock().unwrap().take() {
                pad.remove_probe(id);
            }
        });
        gst::PadProbeReturn::Ok
    });
}

/// Replaces the bin's transcriber while it plays, as an application switching engines does.
fn swap_transcriber(p: &gst::Pipeline, options: &Options) {
    let next = gst::ElementFactory::make("whispertranscribe")
        .name("transcriber-swapped")
        .build()
        .unwrap();
    configure(&next, options);
    let pad = p.by_name("tb").unwrap().static_pad("sink_audio").unwrap();
    pad.set_property("transcriber", &next);
}

/// For each caption word matched in order to a spoken word: how long after it was spoken it was
/// first shown (the caption's frame PTS less the word's start, both on the stream's timeline).
fn caption_lags(spoken: &[TimedWord], shown: &[TimedWord]) -> Vec<Duration> {
    let mut lags = Vec::new();
    let mut next = 0;
    for word in shown {
        let key = chain::words(&word.text);
        let found = spoken[next..spoken.len().min(next + 4)]
            .iter()
            .position(|s| chain::words(&s.text) == key);
        if let Some(i) = found {
            let s = &spoken[next + i];
            lags.push(Duration::from_nanos(
                word.at.nseconds().saturating_sub(s.at.nseconds()),
            ));
            next += i + 1;
        }
    }
    lags
}

fn percentile(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// The tests here measure time (caption delays): one at a time.
static ALONE: Mutex<()> = Mutex::new(());

/// The bin's default latency, 4 s, with which whisperstt's text reaches the caption encoder
/// in time for most words.
const BIN_LATENCY_MS: u32 = 4000;

/// The running time the speech starts at.
fn speech_start(run: &Run, speech: &Speech) -> gst::ClockTime {
    run.origin + gst::ClockTime::from_nseconds(speech.clips[0].0.as_nanos() as u64)
}

/// Whether the first caption came within the pipeline's latency of the speech's start.
fn started_in_time(run: &Run, speech: &Speech) -> bool {
    let deadline = speech_start(run, speech) + run.pipeline_latency;
    run.words_708.first().is_some_and(|w| w.at <= deadline)
}

/// What the captions of one run of the whole speech came to.
struct Captions {
    wer_608: f64,
    wer_708: f64,
    /// How long after its start each word was first shown (matched words only).
    delays_608: Vec<Duration>,
    delays_708: Vec<Duration>,
}

impl Captions {
    /// Both services read as the speech within `wer`, 95 % of words on air within `delay`.
    fn check(&self, run: &Run, wer: f64, delay: Duration) {
        for (name, w, text) in [
            ("608", self.wer_608, run.text_608()),
            ("708", self.wer_708, run.text_708()),
        ] {
            assert!(w <= wer, "CEA-{name} WER {w:.3}: {text}");
        }
        for (name, delays) in [("608", &self.delays_608), ("708", &self.delays_708)] {
            let p95 = percentile(delays.clone(), 0.95);
            assert!(p95 <= delay, "CEA-{name}: p95 {p95:?} after the words");
        }
    }
}

/// Plays the whole speech with `options` and measures its captions against it; checks what
/// holds in every configuration: the last words on air, in both services, the first caption
/// within the pipeline latency, no warnings, cea608tott's rows the decoded ones.
fn captions(speech: &Speech, options: &Options) -> (Run, Captions) {
    let run = play(speech, options);
    let spoken: Vec<TimedWord> = run.finals.iter().flat_map(|f| f.1.clone()).collect();
    let c = Captions {
        wer_608: chain::wer(&speech.text(), &run.text_608()),
        wer_708: chain::wer(&speech.text(), &run.text_708()),
        delays_608: caption_lags(&spoken, &run.words_608),
        delays_708: caption_lags(&spoken, &run.words_708),
    };
    let first = run.words_708.first().map(|w| w.at).unwrap_or_default();
    eprintln!(
        "transcriberbin, latency {} ms (pipeline {}), stable-partials={}: WER 608 {:.3} 708 \
         {:.3}; first caption {} after the speech; caption delay after the word p50/p95/max \
         708 {:?}/{:?}/{:?} ({} of {} words), 608 p95 {:?}",
        options.latency_ms,
        run.pipeline_latency,
        options.stable_partials,
        c.wer_608,
        c.wer_708,
        first.saturating_sub(speech_start(&run, speech)),
        percentile(c.delays_708.clone(), 0.5),
        percentile(c.delays_708.clone(), 0.95),
        c.delays_708.iter().max().unwrap(),
        c.delays_708.len(),
        spoken.len(),
        percentile(c.delays_608.clone(), 0.95),
    );
    let last = chain::words(speech.texts.last().unwrap());
    for (name, text) in [("608", run.text_608()), ("708", run.text_708())] {
        let shown = chain::words(&text);
        assert!(
            shown.ends_with(&last[last.len() - 2..]),
            "CEA-{name} lost the last words: {text}"
        );
    }
    assert!(
        started_in_time(&run, speech),
        "first caption late: {:?}",
        run.words_708.first()
    );
    assert!(run.warnings.is_empty(), "{:?}", run.warnings);
    // cea608tott writes a roll-up row once the next begins (or at EOS, the row before the one
    // being written): all but the last row, word for word.
    let (tott, decoded) = (
        chain::words(&run.text_cea608tott()),
        chain::words(&run.text_608()),
    );
    assert!(
        tott.len() >= decoded.len() - 8 && decoded.starts_with(&tott),
        "{tott:?}"
    );
    (run, c)
}

/// Finals only (whisperstt's default): the captions read as the speech, and 95 % of words are
/// on air within 3 s of being spoken with the bin's default latency; the transcriber swapped
/// after the second utterance carries on with no word lost.
#[test]
fn captions_carry_the_speech_in_cea608_and_cea708_through_a_transcriber_swap() {
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    let options = Options {
        swap_after: Some(2),
        ..Options::new(BIN_LATENCY_MS)
    };
    let (run, c) = captions(&speech(), &options);
    c.check(&run, 0.10, Duration::from_secs(3));
    let swapped = run
        .finals
        .iter()
        .filter(|f| f.0 == "transcriber-swapped")
        .count();
    assert_eq!(
        (run.finals.len(), swapped),
        (5, 3),
        "five finals, three from the new transcriber"
    );
}

/// `stable-partials=true`: words go on air at their own frames, not an utterance later (p95
/// measured 0.02 s in 708, 0.16 s in 608, against 2.4 s and 2.7 s from finals alone), for a few
/// words the final would have corrected (WER 0.056-0.085 against 0.042).
#[test]
fn stable_partials_put_each_caption_at_its_word() {
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    let options = Options {
        stable_partials: true,
        ..Options::new(BIN_LATENCY_MS)
    };
    let (run, c) = captions(&speech(), &options);
    c.check(&run, 0.15, Duration::from_millis(500));
}

/// 20 starts, four pipelines at a time on one shared model, each start as a live source may
/// give it: audio at once, audio 3 s late, video held back 3 s. None may start late: the first
/// caption within the pipeline's latency of the speech, and the words on air (those spoken
/// once there is video to carry them).
#[test]
fn twenty_starts_none_late() {
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    let speech = speech().first(2);
    let starts = [
        Options::new(BIN_LATENCY_MS),
        Options {
            audio_delay: Duration::from_secs(3),
            ..Options::new(BIN_LATENCY_MS)
        },
        Options {
            video_delay: Duration::from_secs(3),
            ..Options::new(BIN_LATENCY_MS)
        },
        Options::new(BIN_LATENCY_MS),
    ];
    let mut late = Vec::new();
    for round in 0..5 {
        let runs: Vec<Run> = std::thread::scope(|s| {
            let handles: Vec<_> = starts
                .iter()
                .map(|o| s.spawn(|| play(&speech, o)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (i, (run, options)) in runs.iter().zip(&starts).enumerate() {
            let first = run
                .words_708
                .first()
                .map(|w| w.at.saturating_sub(speech_start(run, &speech)));
            let shown = run.text_708();
            eprintln!(
                "start {}: first caption {first:?} after the speech: {shown}",
                round * 4 + i
            );
            // Captions need video to ride on: speech before the video starts has none, so
            // with the video late only the end is checked. The captions are held to what
            // whisperstt said (its accuracy is the other tests' business: this audio's
            // "ill-disposed" comes out as "old-sposed", 4 of the 30 words' bag), and as a bag,
            // not in order: tttocea708 (closedcaption 0.15.4) sometimes writes the word after a
            // roll-up before the window it redefines, and the words before it after (its
            // 708 stream: "then", CR, DeleteWindows, " how", DefineWindow, pen (1,0),
            // "leisure to consider"), once in a word ("to c" ... "onsider", 3 of the bag's
            // words): 2-3 starts in 20.
            let wer = words_missed(&run.text_spoken(), &shown);
            let text_ok = wer <= 0.15 || !options.video_delay.is_zero();
            let last = chain::words(speech.texts.last().unwrap());
            let complete = chain::words(&shown).ends_with(&last[last.len() - 2..]);
            if !started_in_time(run, &speech) || !text_ok || !complete || !run.warnings.is_empty() {
                late.push((round * 4 + i, first, wer, run.warnings.clone()));
            }
        }
    }
    assert!(late.is_empty(), "late or wrong starts: {late:?}");
}

/// Reference words missing from `shown` and words in it not in the reference, over the
/// reference's words: an error rate that ignores order.
fn words_missed(reference: &str, shown: &str) -> f64 {
    let mut left = chain::words(shown);
    let reference = chain::words(reference);
    let mut missing = 0;
    for w in &reference {
        match left.iter().position(|s| s == w) {
            Some(i) => {
                left.swap_remove(i);
            }
            None => missing += 1,
        }
    }
    (missing + left.len()) as f64 / reference.len().max(1) as f64
}

/// transcriberbin asks its transcriber's latency with a live fakesrc before any data flows
/// (its query_latency()); whispertranscribe answers with the latency the bin set.
#[test]
fn whisperstt_answers_the_latency_query_before_data_flows() {
    chain::init();
    let transcriber = gst::ElementFactory::make("whispertranscribe")
        .property("latency", BIN_LATENCY_MS)
        .build()
        .unwrap();
    let src = gst::ElementFactory::make("fakesrc")
        .property("is-live", true)
        .build()
        .unwrap();
    let bin = gst::Pipeline::new();
    bin.add_many([&src, &transcriber]).unwrap();
    src.link(&transcriber).unwrap();
    bin.set_state(gst::State::Paused).unwrap();
    let mut q = gst::query::Latency::new();
    assert!(transcriber.static_pad("src").unwrap().query(&mut q));
    bin.set_state(gst::State::Null).unwrap();
    let (live, min, max) = q.result();
    assert!(live);
    assert_eq!(min, gst::ClockTime::from_mseconds(BIN_LATENCY_MS.into()));
    assert!(max.is_none_or(|max| max >= min), "{max:?}");
}
