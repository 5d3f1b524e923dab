//! Which language each decode uses with `language=auto`, and how sure the detection that
//! chose it was: once per stream (the first kept final settles it), or per utterance, where
//! an utterance too short or too unsure to trust keeps the stream's language.

/// When `language=auto` detects the language.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LanguageDetection {
    /// On the stream's first utterance; the rest of the stream keeps what it found.
    #[default]
    Stream,
    /// On each utterance's own audio (an encoder pass more per decode).
    Utterance,
}

/// An utterance decoded from less audio than this keeps the stream's language whatever its
/// detection says, and so does one whose detection is less sure than `TRUSTED_PROBABILITY`.
/// Measured on Whisper base with 208 pieces of 0.75 to 3 s of speech cut from the
/// multilingual corpus (decoded with the detector's padding, about a second more): of the 92
/// decoded from 2.5 s or more, the 77 detected at 0.7 or more were all right and 10 of the 15
/// others wrong; under 2.5 s, 12 of the 68 detected at 0.7 or more were wrong.
pub const TRUSTED_SECONDS: f32 = 2.5;
pub const TRUSTED_PROBABILITY: f32 = 0.7;
/// ... unless that detection all but rules the stream's language out: then its top language
/// is taken however short or unsure. Live, a French speaker's first 2.6 s after a German one
/// was detected French under 0.7 and German at 0.00, and was decoded in German. (Not yet
/// measured on short pieces in the stream's own language.)
pub const RULED_OUT_PROBABILITY: f32 = 0.02;

/// A Whisper language code and the probability detection gave it (1 for a language that
/// was set rather than detected, as faster-whisper reports it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Language {
    pub code: &'static str,
    pub probability: f32,
}

impl Language {
    pub fn set(code: &'static str) -> Language {
        Language {
            code,
            probability: 1.0,
        }
    }
}

/// What a decode is asked to do about the language.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LanguagePlan {
    /// The language to decode in; `None`: whisper.cpp detects one.
    pub language: Option<&'static str>,
    /// Detect the language on the decoded audio as well (and report its probability).
    pub detect: bool,
}

/// Each language's probability from one detection, by the code it is for.
pub trait LanguageProbabilities {
    /// The most probable language.
    fn top(&self) -> Language;
    /// The probability of `code` (0 for a code the detection does not know).
    fn of(&self, code: &'static str) -> f32;
}

/// One stream's languages: the one it settled on, and the current utterance's.
#[derive(Debug, Clone)]
pub struct LanguageTracker {
    /// The language set by the user (or `en` on an English-only model); `None`: auto.
    set: Option<&'static str>,
    mode: LanguageDetection,
    stream: Option<Language>,
    utterance: Option<Language>,
    /// Per utterance: the language that kept finals in a row detected over the stream's
    /// without being trusted (each too short or unsure), at the least probability they gave
    /// it, and the seconds of audio they add up to. A speaker who pauses often in a new
    /// language is heard as one: live, one French sentence came as three finals of under
    /// 2.5 s, each kept in the German before it.
    pending: Option<(Language, f32)>,
}

impl LanguageTracker {
    pub fn new(set: Option<&'static str>, mode: LanguageDetection) -> Self {
        LanguageTracker {
            set,
            mode,
            stream: None,
            utterance: None,
            pending: None,
        }
    }

    /// The same tracker with new options: what the stream found stays while the language
    /// stays `auto`.
    pub fn reconfigured(&self, set: Option<&'static str>, mode: LanguageDetection) -> Self {
        let keep = set.is_none() && self.set.is_none();
        LanguageTracker {
            set,
            mode,
            stream: self.stream.filter(|_| keep),
            utterance: self.utterance.filter(|_| keep),
            pending: self.pending.filter(|_| keep),
        }
    }

    /// The next decode's language, and whether it detects one.
    pub fn plan(&self) -> LanguagePlan {
        if let Some(code) = self.set {
            return LanguagePlan {
                language: Some(code),
                detect: false,
            };
        }
        LanguagePlan {
            language: self.utterance.or(self.stream).map(|l| l.code),
            detect: self.mode == LanguageDetection::Utterance || self.stream.is_none(),
        }
    }

    /// The language a decode that did not detect one used: the one it was planned with.
    pub fn undetected(&self, used: &'static str) -> Language {
        let known = self.utterance.or(self.stream).filter(|l| l.code == used);
        known.unwrap_or(Language::set(used))
    }

    /// The language a decode of `seconds` of audio should be in, given its detection: the
    /// detected one, unless per-utterance detection is not to be trusted on this little or
    /// this unsure a result (with the finals before it that detected the same) and the
    /// stream has a language to fall back on.
    pub fn choose(&self, detected: &dyn LanguageProbabilities, seconds: f32) -> Language {
        let top = detected.top();
        match self.stream {
            Some(stream)
                if self.mode == LanguageDetection::Utterance
                    && !self.trusted_with_pending(top, seconds)
                    && detected.of(stream.code) >= RULED_OUT_PROBABILITY =>
            {
                Language {
                    code: stream.code,
                    probability: detected.of(stream.code),
                }
            }
            _ => top,
        }
    }

    /// A partial of the current utterance was decoded in `language`: the utterance's next
    /// decodes start from it.
    pub fn heard(&mut self, language: Language) {
        if self.set.is_none() {
            self.utterance = Some(language);
        }
    }

    /// A kept final of `seconds` was in `language` (`choose`), its detection's top language
    /// `detected`: the first settles the stream's language; per utterance, a switch or a
    /// trusted detection moves it, and one not trusted counts towards the next. The next
    /// utterance starts afresh.
    pub fn settle(&mut self, language: Language, detected: Option<Language>, seconds: f32) {
        self.utterance = None;
        if self.set.is_some() {
            return;
        }
        let per_utterance = self.mode == LanguageDetection::Utterance;
        let switched = self.stream.is_some_and(|s| s.code != language.code);
        if self.stream.is_none() || (per_utterance && (switched || trusted(language, seconds))) {
            self.stream = Some(language);
        }
        let stream = self.stream.map(|s| s.code);
        self.pending = match detected {
            Some(top) if per_utterance && Some(top.code) != stream => Some((
                self.with_pending(top),
                seconds_with(self.pending, top, seconds),
            )),
            _ => None,
        };
    }

    /// Whether `top`, detected on `seconds` of audio, is trusted together with the pending
    /// finals that detected it too.
    fn trusted_with_pending(&self, top: Language, seconds: f32) -> bool {
        trusted(
            self.with_pending(top),
            seconds_with(self.pending, top, seconds),
        )
    }

    /// `top` at the least probability the pending finals gave it, if they detected it too.
    fn with_pending(&self, top: Language) -> Language {
        match self.pending {
            Some((p, _)) if p.code == top.code => Language {
                code: top.code,
                probability: p.probability.min(top.probability),
            },
            _ => top,
        }
    }

    /// The utterance in progress was dropped.
    pub fn forget_utterance(&mut self) {
        self.utterance = None;
    }

    /// A new stream: detected again.
    pub fn forget_stream(&mut self) {
        self.stream = None;
        self.utterance = None;
        self.pending = None;
    }
}

/// `seconds`, with the pending finals' if they detected `top` too.
fn seconds_with(pending: Option<(Language, f32)>, top: Language, seconds: f32) -> f32 {
    match pending {
        Some((p, pending_seconds)) if p.code == top.code => pending_seconds + seconds,
        _ => seconds,
    }
}

fn trusted(language: Language, seconds: f32) -> bool {
    seconds >= TRUSTED_SECONDS && language.probability >= TRUSTED_PROBABILITY
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A detection that gives `top` its probability and shares the rest evenly with `other`.
    struct Detection {
        top: Language,
        other: &'static str,
    }

    impl LanguageProbabilities for Detection {
        fn top(&self) -> Language {
            self.top
        }
        fn of(&self, code: &'static str) -> f32 {
            match code {
                c if c == self.top.code => self.top.probability,
                c if c == self.other => 1.0 - self.top.probability,
                _ => 0.0,
            }
        }
    }

    fn detected(code: &'static str, probability: f32) -> Detection {
        detected_over(code, probability, "de")
    }

    /// `code` first, `other` with the rest.
    fn detected_over(code: &'static str, probability: f32, other: &'static str) -> Detection {
        Detection {
            top: Language { code, probability },
            other,
        }
    }

    #[test]
    fn a_set_language_is_never_detected_and_reports_certainty() {
        let mut t = LanguageTracker::new(Some("fr"), LanguageDetection::Utterance);
        assert_eq!(
            t.plan(),
            LanguagePlan {
                language: Some("fr"),
                detect: false
            }
        );
        t.settle(Language::set("fr"), None, 5.0);
        assert_eq!(t.undetected("fr"), Language::set("fr"));
    }

    #[test]
    fn per_stream_the_first_kept_final_settles_the_language_for_good() {
        let mut t = LanguageTracker::new(None, LanguageDetection::Stream);
        assert_eq!(t.plan().language, None);
        assert!(t.plan().detect);
        let de = t.choose(&detected("de", 0.9), 3.0);
        t.heard(de);
        assert_eq!(
            t.plan().language,
            Some("de"),
            "the partial's language carries on"
        );
        t.settle(de, Some(de), 3.0);
        let fr = detected("fr", 0.99);
        t.settle(t.choose(&fr, 5.0), Some(fr.top), 5.0);
        let plan = t.plan();
        assert_eq!((plan.language, plan.detect), (Some("de"), false));
        assert_eq!(t.undetected("de").probability, 0.9);
    }

    #[test]
    fn per_utterance_a_sure_long_detection_switches_and_a_short_or_unsure_one_does_not() {
        let mut t = LanguageTracker::new(None, LanguageDetection::Utterance);
        let de = detected("de", 0.8);
        t.settle(t.choose(&de, 4.0), Some(de.top), 4.0);
        let fr = t.choose(&detected("fr", 0.9), 3.0);
        assert_eq!(fr.code, "fr");
        t.settle(fr, Some(fr), 3.0);
        assert_eq!(t.plan().language, Some("fr"));
        assert!(t.plan().detect);
        // Too short, then too unsure: French stays, with the probability it was given.
        let short = t.choose(&detected_over("es", 0.95, "fr"), 1.5);
        assert_eq!(short.code, "fr");
        let es = detected_over("es", 0.4, "fr");
        let unsure = t.choose(&es, 6.0);
        assert_eq!(unsure.code, "fr");
        t.settle(unsure, Some(es.top), 6.0);
        assert_eq!(t.plan().language, Some("fr"));
    }

    #[test]
    fn per_utterance_short_finals_in_a_row_in_one_new_language_switch_together() {
        let mut t = LanguageTracker::new(None, LanguageDetection::Utterance);
        let de = detected("de", 0.9);
        t.settle(t.choose(&de, 5.0), Some(de.top), 5.0);
        // Two short French finals: the first keeps German, the second adds up to 3 s.
        let fr = detected("fr", 0.8);
        let first = t.choose(&fr, 1.5);
        assert_eq!(first.code, "de");
        t.settle(first, Some(fr.top), 1.5);
        assert_eq!(t.choose(&fr, 1.5).code, "fr");
        t.settle(t.choose(&fr, 1.5), Some(fr.top), 1.5);
        assert_eq!(t.plan().language, Some("fr"));
        // One short Spanish final between German ones does not add up with a later one.
        let es = detected_over("es", 0.8, "fr");
        t.settle(t.choose(&es, 1.5), Some(es.top), 1.5);
        t.settle(t.choose(&fr, 3.0), Some(fr.top), 3.0);
        assert_eq!(t.choose(&es, 1.5).code, "fr");
    }

    #[test]
    fn per_utterance_a_detection_that_rules_the_stream_s_language_out_switches() {
        let mut t = LanguageTracker::new(None, LanguageDetection::Utterance);
        let de = detected("de", 0.9);
        t.settle(t.choose(&de, 5.0), Some(de.top), 5.0);
        // Short and unsure, but German at 0: French.
        assert_eq!(t.choose(&detected_over("fr", 0.5, "es"), 1.5).code, "fr");
    }

    #[test]
    fn per_utterance_the_first_detection_is_taken_whatever_it_is() {
        let t = LanguageTracker::new(None, LanguageDetection::Utterance);
        assert_eq!(t.choose(&detected("es", 0.3), 0.5).code, "es");
    }

    #[test]
    fn a_new_stream_or_language_detects_again() {
        let mut t = LanguageTracker::new(None, LanguageDetection::Stream);
        t.settle(Language::set("de"), None, 3.0);
        let kept = t.reconfigured(None, LanguageDetection::Utterance);
        assert_eq!(kept.plan().language, Some("de"));
        let set = t.reconfigured(Some("es"), LanguageDetection::Stream);
        let auto_again = set.reconfigured(None, LanguageDetection::Stream);
        assert_eq!(auto_again.plan().language, None);
        t.forget_stream();
        assert_eq!(t.plan().language, None);
    }
}
