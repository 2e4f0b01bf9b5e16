//! The `[transfer] key`: 32 random bytes, base64, the same at both sites. It encrypts and
//! authenticates bundles and authenticates receipts (`format.rs`).

use base64::Engine as _;
use chacha20poly1305::Key;

/// How to make a key, for error messages and the README.
pub const HOW_TO_MAKE: &str = "head -c 32 /dev/urandom | base64";

/// The key bytes of a `[transfer] key` value. Errors never quote the value.
pub fn decode(text: &str) -> Result<Key, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|_| format!("not base64; make a key with `{HOW_TO_MAKE}`"))?;
    if bytes.len() != 32 {
        return Err(format!(
            "must be 32 bytes, this one is {} bytes; make a key with `{HOW_TO_MAKE}`",
            bytes.len()
        ));
    }
    Ok(*Key::from_slice(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_32_bytes_of_base64_only() {
        let good = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        assert_eq!(decode(&format!("{good}\n")).unwrap().as_slice(), &[7u8; 32]);
        assert!(decode("not base64!").unwrap_err().contains("not base64"));
        let short = base64::engine::general_purpose::STANDARD.encode([7u8; 16]);
        assert!(decode(&short).unwrap_err().contains("this one is 16 bytes"));
    }
}
