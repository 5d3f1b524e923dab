//! Faults a test arms for one element, by name, to prove that one stream's failure stays that
//! stream's: compiled only with the `fault-injection` feature (the reliability tests turn it
//! on; the plugin users install never has it).

use once_cell::sync::Lazy;
use std::sync::Mutex;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The element's next decode asks whisper.cpp for an impossible encoder context, which
    /// whisper.cpp refuses: a real inference error from the engine.
    InferenceError,
    /// The element's worker thread panics on its next buffer.
    WorkerPanic,
    /// The element's worker stops for `STALL` before its next buffer, as a decode starved of
    /// the CPU would.
    WorkerStall,
}

/// How long `Fault::WorkerStall` holds the worker.
pub const STALL: std::time::Duration = std::time::Duration::from_secs(10);

static ARMED: Lazy<Mutex<Vec<(String, Fault)>>> = Lazy::new(Mutex::default);

/// Makes `fault` happen once, in the element named `element`.
pub fn arm(element: &str, fault: Fault) {
    ARMED.lock().unwrap().push((element.to_string(), fault));
}

/// Whether `fault` was armed for `element`; disarms it.
pub(crate) fn take(element: &str, fault: Fault) -> bool {
    let mut armed = ARMED.lock().unwrap();
    match armed.iter().position(|(e, f)| e == element && *f == fault) {
        Some(i) => {
            armed.remove(i);
            true
        }
        None => false,
    }
}
