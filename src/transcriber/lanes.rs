//! File mode: utterances decoded side by side, each lane a thread with its own decoder.
//!
//! ggml's threads meet at a barrier after every operation, and a small model's operations are
//! short: one decode on two threads of this project's machine took 30.5 s for the 15-minute
//! benchmark recording, two halves on one thread each 20.9 s. A file's utterances do not
//! depend on each other (no carried context, a language set), so the transcriber hands them
//! to lanes and takes the results back in order.

use super::decoder::{Decoder, Pass};
use super::language::LanguagePlan;
use super::segment::Decoded;
use super::{DecodeOptions, TranscribeError};
use crate::model::WhisperModel;
use crate::scheduler::{Admission, DecodeSlot};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

/// More lanes hold more whisper states (one each while decoding) for little more speed.
const MAX_LANES: u32 = 4;

/// One utterance's decode, and where its result goes.
struct Job {
    audio: Vec<f32>,
    deadline: Instant,
    plan: LanguagePlan,
    reply: Sender<LaneResult>,
    /// Set when the stream no longer wants the result (a flush): not started, it is skipped.
    abandoned: Arc<AtomicBool>,
}

/// A lane's decode, with the inference calls it made and the audio it gave whisper.cpp.
pub(super) struct LaneResult {
    pub decoded: Result<Decoded, TranscribeError>,
    pub calls: u64,
    pub samples: u64,
}

/// A decode handed to a lane; `wait` gives its result. Dropped unanswered, the decode is
/// skipped if it has not started.
pub(super) struct Pending {
    result: Receiver<LaneResult>,
    abandoned: Arc<AtomicBool>,
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.abandoned.store(true, Ordering::Relaxed);
    }
}

impl Pending {
    /// The result, once the lane is done with it.
    pub fn wait(&self) -> LaneResult {
        self.result.recv().unwrap_or_else(|_| LaneResult::lost())
    }

    /// The result if the lane is done with it.
    pub fn ready(&self) -> Option<LaneResult> {
        match self.result.try_recv() {
            Ok(result) => Some(result),
            Err(mpsc::TryRecvError::Empty) => None,
            Err(mpsc::TryRecvError::Disconnected) => Some(LaneResult::lost()),
        }
    }
}

impl LaneResult {
    /// A lane that ended without answering (it panicked): the decode is lost.
    fn lost() -> Self {
        LaneResult {
            decoded: Err(TranscribeError::LaneLost),
            calls: 0,
            samples: 0,
        }
    }
}

/// The lanes of one stream, built for one set of decode options.
pub(super) struct Lanes {
    jobs: Option<Sender<Job>>,
    threads: Vec<JoinHandle<()>>,
    options: DecodeOptions,
    /// Jobs submitted and not yet done.
    in_flight: Arc<AtomicUsize>,
}

impl Lanes {
    /// How many lanes a stream asking for `threads` gets from a budget of `capacity`: one
    /// thread each, or none (fewer than two) when side by side gains nothing.
    pub fn count(threads: u32, capacity: u32) -> u32 {
        match threads.min(capacity).min(MAX_LANES) {
            n if n >= 2 => n,
            _ => 0,
        }
    }

    /// Starts `count` lanes decoding on `model` with `options`: one thread each while others
    /// decode, all the stream's threads when one decodes alone (a file of one utterance).
    pub fn start(
        count: u32,
        model: &Arc<WhisperModel>,
        options: &DecodeOptions,
        slot: &DecodeSlot,
    ) -> Self {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let threads = (0..count)
            .map(|i| {
                let lane = Lane {
                    queue: queue.clone(),
                    in_flight: in_flight.clone(),
                    threads: options.threads,
                };
                let (model, options, slot) = (model.clone(), options.clone(), slot.clone());
                std::thread::Builder::new()
                    .name(format!("whisperstt-lane{i}"))
                    .spawn(move || lane.run(model, &options, slot))
                    .expect("cannot start a decode lane thread")
            })
            .collect();
        Lanes {
            jobs: Some(jobs),
            threads,
            options: options.clone(),
            in_flight,
        }
    }

    /// Whether these lanes decode as `options` asks.
    pub fn built_for(&self, options: &DecodeOptions) -> bool {
        self.options == *options
    }

    /// Hands `audio` to the next free lane.
    pub fn submit(&self, audio: Vec<f32>, deadline: Instant, plan: LanguagePlan) -> Pending {
        let (reply, result) = mpsc::channel();
        let abandoned = Arc::new(AtomicBool::new(false));
        let job = Job {
            audio,
            deadline,
            plan,
            reply,
            abandoned: abandoned.clone(),
        };
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        // Lanes only end when `jobs` is dropped; a send that fails shows as a lost result.
        let _ = self.jobs.as_ref().map(|jobs| jobs.send(job));
        Pending { result, abandoned }
    }

    pub fn len(&self) -> usize {
        self.threads.len()
    }
}

impl Drop for Lanes {
    fn drop(&mut self) {
        // The lanes finish the decode they run (a stopping stream cancels it) and end.
        self.jobs.take();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// One lane's share of its stream's lanes.
struct Lane {
    queue: Arc<Mutex<Receiver<Job>>>,
    in_flight: Arc<AtomicUsize>,
    /// The stream's threads: a decode alone in the lanes takes them all, others one each.
    threads: u32,
}

impl Lane {
    /// Takes jobs until the stream drops its lanes, decoding each with its own decoder.
    fn run(self, model: Arc<WhisperModel>, options: &DecodeOptions, slot: DecodeSlot) {
        let mut decoder = Decoder::new(model, options, slot);
        loop {
            let job = match self.queue.lock().unwrap().recv() {
                Ok(job) => job,
                Err(_) => return,
            };
            let result = match (job.abandoned.load(Ordering::Relaxed), decoder.as_mut()) {
                (true, _) => None,
                (false, Ok(d)) => Some(self.decode(d, &job)),
                (false, Err(e)) => Some(LaneResult {
                    decoded: Err(TranscribeError::LaneStart(e.to_string())),
                    calls: 0,
                    samples: 0,
                }),
            };
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            if let Some(result) = result {
                let _ = job.reply.send(result);
            }
        }
    }

    fn decode(&self, decoder: &mut Decoder, job: &Job) -> LaneResult {
        let alone = self.in_flight.load(Ordering::SeqCst) == 1;
        decoder.set_threads(if alone { self.threads } else { 1 });
        let (calls, samples) = (decoder.calls, decoder.decoded_samples);
        let decoded = decoder.decode(
            &job.audio,
            Admission::Queue(job.deadline),
            Pass::Final,
            job.plan,
        );
        LaneResult {
            decoded,
            calls: decoder.calls - calls,
            samples: decoder.decoded_samples - samples,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_gets_a_lane_per_thread_it_may_use_and_none_alone() {
        assert_eq!(Lanes::count(2, 2), 2);
        assert_eq!(Lanes::count(8, 2), 2);
        assert_eq!(Lanes::count(2, 8), 2);
        assert_eq!(Lanes::count(16, 16), MAX_LANES);
        assert_eq!(Lanes::count(1, 8), 0);
        assert_eq!(Lanes::count(4, 1), 0);
    }
}
