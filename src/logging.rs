//! whisper.cpp and ggml write their logs to stderr unless told otherwise; route them into the
//! `whisperstt-engine` debug category instead (quiet by default, `GST_DEBUG=whisperstt*:5`).

use once_cell::sync::Lazy;
use std::ffi::{c_char, c_void, CStr};

pub static CAT: Lazy<gst::DebugCategory> = Lazy::new(|| {
    gst::DebugCategory::new(
        "whisperstt-engine",
        gst::DebugColorFlags::empty(),
        Some("whisper.cpp and ggml log messages"),
    )
});

unsafe extern "C" fn forward(
    level: whisper_rs_sys::ggml_log_level,
    text: *const c_char,
    _: *mut c_void,
) {
    if text.is_null() {
        return;
    }
    // SAFETY: whisper.cpp passes a NUL-terminated string valid for the call.
    let text = unsafe { CStr::from_ptr(text) }.to_string_lossy();
    let text = text.trim_end();
    if text.is_empty() {
        return;
    }
    let level = match level {
        whisper_rs_sys::ggml_log_level_GGML_LOG_LEVEL_ERROR => gst::DebugLevel::Error,
        whisper_rs_sys::ggml_log_level_GGML_LOG_LEVEL_WARN => gst::DebugLevel::Warning,
        whisper_rs_sys::ggml_log_level_GGML_LOG_LEVEL_INFO => gst::DebugLevel::Info,
        _ => gst::DebugLevel::Debug,
    };
    gst::log_with_level!(CAT, level, "{}", text);
}

/// Logs what this build of whisper.cpp and ggml can use (backends and CPU features, e.g.
/// `LLAMAFILE = 1`) once per process, at the first model load, so a slow machine's log says
/// which kernels whisper.cpp runs with. Once only also because whisper.cpp writes that text
/// into a static buffer.
pub fn log_engine_build() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        gst::info!(
            CAT,
            "whisper.cpp build: {}",
            whisper_rs::print_system_info().trim()
        )
    });
}

/// Installs the log callbacks once per process.
pub fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        Lazy::force(&CAT);
        // SAFETY: `forward` has the signature whisper.cpp and ggml expect and lives forever.
        unsafe {
            whisper_rs_sys::whisper_log_set(Some(forward), std::ptr::null_mut());
            whisper_rs_sys::ggml_log_set(Some(forward), std::ptr::null_mut());
        }
    });
}
