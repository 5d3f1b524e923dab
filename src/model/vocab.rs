//! CTranslate2 vocabularies hold GPT-2 byte-level token strings (bytes mapped to printable
//! characters, `Ġ` for a space); whisper.cpp wants the raw bytes back.

use super::ModelError;
use std::path::Path;

/// The inverse of GPT-2's `bytes_to_unicode`: printable bytes stand for themselves, the other
/// 68 bytes were shifted to U+0100.. in byte order.
fn byte_decoder() -> [Option<u8>; 512] {
    let mut table = [None; 512];
    let mut shifted = 0usize;
    for b in 0..=255u8 {
        let printable = matches!(b, 33..=126 | 161..=172 | 174..=255);
        let ch = if printable {
            b as usize
        } else {
            shifted += 1;
            255 + shifted
        };
        table[ch] = Some(b);
    }
    table
}

pub fn decode_token(token: &str) -> Option<Vec<u8>> {
    let table = byte_decoder();
    token
        .chars()
        .map(|c| table.get(c as usize).copied().flatten())
        .collect()
}

/// Reads `vocabulary.txt` (one token a line) or `vocabulary.json` (a list of strings).
pub fn read_tokens(dir: &Path) -> Result<(std::path::PathBuf, Vec<String>), ModelError> {
    let txt = dir.join("vocabulary.txt");
    let json = dir.join("vocabulary.json");
    if txt.is_file() {
        let text = std::fs::read_to_string(&txt).map_err(|e| ModelError::io(&txt, &e))?;
        Ok((txt, text.lines().map(str::to_owned).collect()))
    } else if json.is_file() {
        let text = std::fs::read_to_string(&json).map_err(|e| ModelError::io(&json, &e))?;
        let tokens: Vec<String> = serde_json::from_str(&text)
            .map_err(|e| ModelError::invalid(&json, format!("not a JSON list of strings: {e}")))?;
        Ok((json, tokens))
    } else {
        Err(ModelError::invalid(
            dir,
            "faster-whisper model directory has no vocabulary.txt or vocabulary.json",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_gpt2_byte_tokens() {
        assert_eq!(decode_token("Ġthe").unwrap(), b" the");
        assert_eq!(decode_token("Ċ").unwrap(), b"\n");
        assert_eq!(decode_token("!").unwrap(), b"!");
        // "é" in UTF-8 is 0xC3 0xA9; both bytes are printable in GPT-2's table.
        assert_eq!(decode_token("Ã©").unwrap(), "é".as_bytes());
        assert!(decode_token("\u{4e00}").is_none());
    }
}
