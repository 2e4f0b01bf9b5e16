//! The sealed container both bundles and receipts are written in: a short clear header,
//! then the content in chunks encrypted and authenticated with the `[transfer] key`
//! (XChaCha20-Poly1305 in the STREAM construction, RustCrypto's `chacha20poly1305`).
//!
//! ```text
//! header  "edgehook" | version (1) | kind ('B' bundle, 'R' receipt) | nonce prefix (19 bytes)
//! chunk   length: u32 big-endian, top bit set on the final chunk | ciphertext (≤ 64 KiB + 16)
//! ```
//!
//! STREAM gives every chunk a nonce made of the file's random prefix, its position and a
//! "last" flag, and the 29 header bytes are every chunk's associated data. So a reordered,
//! dropped, altered or appended chunk fails authentication, a file cut short lacks the
//! final chunk, and bytes after the final chunk are refused: [`Opener`] reports each case
//! with the byte offset. The framing is readable without the key ([`check_complete`]), so
//! the CLI can tell a complete file from a cut-off download without holding the key.

use std::io::{self, Read, Write};

use chacha20poly1305::aead::generic_array::GenericArray;
use chacha20poly1305::aead::stream::{DecryptorBE32, EncryptorBE32};
use chacha20poly1305::aead::KeyInit;
use chacha20poly1305::{Key, XChaCha20Poly1305};

const MAGIC: &[u8; 8] = b"edgehook";
const VERSION: u8 = 1;
const NONCE_PREFIX: usize = 19;
/// Bytes before the first chunk.
pub const HEADER_LEN: usize = MAGIC.len() + 2 + NONCE_PREFIX;
/// Plaintext bytes per chunk.
const CHUNK: usize = 64 * 1024;
const TAG: usize = 16;
const LAST: u32 = 1 << 31;

/// What a sealed file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bundle,
    Receipt,
}

impl Kind {
    fn byte(self) -> u8 {
        match self {
            Kind::Bundle => b'B',
            Kind::Receipt => b'R',
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Bundle => "bundle",
            Kind::Receipt => "receipt",
        }
    }

    /// What to do with a file of this kind, for a "wrong kind" message.
    fn hint(self) -> &'static str {
        match self {
            Kind::Bundle => "import it with `edgehook import` at the connected site",
            Kind::Receipt => "apply it with `edgehook receipt apply` at the site that exported",
        }
    }
}

/// Writes a sealed file: [`Write`] takes the plaintext; [`Sealer::finish`] writes the
/// final chunk. Dropping it unfinished leaves a file every reader refuses as truncated.
pub struct Sealer<W: Write> {
    out: W,
    header: [u8; HEADER_LEN],
    stream: Option<EncryptorBE32<XChaCha20Poly1305>>,
    buf: Vec<u8>,
}

impl<W: Write> Sealer<W> {
    pub fn new(mut out: W, key: &Key, kind: Kind) -> io::Result<Self> {
        let mut header = [0u8; HEADER_LEN];
        header[..8].copy_from_slice(MAGIC);
        header[8] = VERSION;
        header[9] = kind.byte();
        rand::fill(&mut header[10..]);
        out.write_all(&header)?;
        let stream = EncryptorBE32::from_aead(
            XChaCha20Poly1305::new(key),
            GenericArray::from_slice(&header[10..]),
        );
        Ok(Sealer {
            out,
            header,
            stream: Some(stream),
            buf: Vec::with_capacity(CHUNK),
        })
    }

    fn seal(&mut self, last: bool) -> io::Result<()> {
        let aad = self.header;
        let sealed = if last {
            let stream = self.stream.take().ok_or_else(finished)?;
            stream.encrypt_last(chacha20poly1305::aead::Payload {
                msg: &self.buf,
                aad: &aad,
            })
        } else {
            let stream = self.stream.as_mut().ok_or_else(finished)?;
            stream.encrypt_next(chacha20poly1305::aead::Payload {
                msg: &self.buf,
                aad: &aad,
            })
        }
        .map_err(|_| io::Error::other("encryption failed (too many chunks)"))?;
        let flag = if last { LAST } else { 0 };
        self.out
            .write_all(&(sealed.len() as u32 | flag).to_be_bytes())?;
        self.out.write_all(&sealed)?;
        self.buf.clear();
        Ok(())
    }

    /// Seal the rest as the final chunk; returns the output.
    pub fn finish(mut self) -> io::Result<W> {
        self.seal(true)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

fn finished() -> io::Error {
    io::Error::other("the sealed file is already finished")
}

impl<W: Write> Write for Sealer<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.seal(false)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Why a sealed file is refused. The message says what is wrong and where.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("{0}")]
    Invalid(String),
    #[error("reading it failed: {0}")]
    Io(#[from] io::Error),
}

impl FormatError {
    fn invalid(message: impl Into<String>) -> Self {
        FormatError::Invalid(message.into())
    }
}

/// The clear header of a sealed file of `kind`.
fn read_header(input: &mut impl Read, kind: Kind) -> Result<[u8; HEADER_LEN], FormatError> {
    let mut header = [0u8; HEADER_LEN];
    let n = read_full(input, &mut header)?;
    if n < MAGIC.len() || header[..8] != MAGIC[..] {
        return Err(FormatError::invalid(format!(
            "not an edgehook {} (it does not start with the edgehook transfer header)",
            kind.name()
        )));
    }
    if n < HEADER_LEN {
        return Err(FormatError::invalid(format!(
            "truncated: {n} bytes, shorter than the {HEADER_LEN}-byte header; copy it again"
        )));
    }
    if header[8] != VERSION {
        return Err(FormatError::invalid(format!(
            "transfer format version {}, this edgehook reads version {VERSION}; use the same edgehook version at both sites",
            header[8]
        )));
    }
    let found = match header[9] {
        b'B' => Kind::Bundle,
        b'R' => Kind::Receipt,
        other => {
            return Err(FormatError::invalid(format!(
                "corrupted: unknown kind byte {other:#04x} at byte 9"
            )))
        }
    };
    if found != kind {
        return Err(FormatError::invalid(format!(
            "this is a {}, not a {}: {}",
            found.name(),
            kind.name(),
            found.hint()
        )));
    }
    Ok(header)
}

/// Read until `buf` is full or the input ends; returns the bytes read.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match input.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// One chunk's frame: where it starts, its ciphertext length, whether it is the last.
struct Frame {
    at: u64,
    len: usize,
    last: bool,
}

/// Walks the chunk frames of a sealed file, checking lengths and the end.
struct Frames {
    offset: u64,
    index: u64,
    done: bool,
}

impl Frames {
    fn new() -> Self {
        Frames {
            offset: HEADER_LEN as u64,
            index: 0,
            done: false,
        }
    }

    /// The next frame's head (its ciphertext is read into `body`), or `None` after the
    /// final chunk once the input is checked to end there.
    fn next(
        &mut self,
        input: &mut impl Read,
        body: &mut Vec<u8>,
    ) -> Result<Option<Frame>, FormatError> {
        let at = self.offset;
        if self.done {
            let mut extra = [0u8; 4096];
            let mut n = 0u64;
            loop {
                let k = read_full(input, &mut extra)?;
                n += k as u64;
                if k < extra.len() {
                    break;
                }
            }
            if n > 0 {
                return Err(FormatError::invalid(format!(
                    "{n} unexpected bytes after the final chunk (from byte {at}): the file was altered"
                )));
            }
            return Ok(None);
        }
        let mut head = [0u8; 4];
        match read_full(input, &mut head)? {
            0 => {
                return Err(FormatError::invalid(format!(
                    "truncated at byte {at}: it ends without its final chunk; copy it again from the other site"
                )))
            }
            4 => {}
            n => {
                return Err(FormatError::invalid(format!(
                    "truncated at byte {}: the chunk starting at byte {at} is incomplete; copy it again from the other site",
                    at + n as u64
                )))
            }
        }
        let word = u32::from_be_bytes(head);
        let last = word & LAST != 0;
        let len = (word & !LAST) as usize;
        if !(TAG..=CHUNK + TAG).contains(&len) {
            return Err(FormatError::invalid(format!(
                "corrupted at byte {at}: chunk {} claims {len} bytes, which no edgehook writes",
                self.index
            )));
        }
        body.resize(len, 0);
        let n = read_full(input, body)?;
        if n < len {
            return Err(FormatError::invalid(format!(
                "truncated at byte {}: the chunk starting at byte {at} is incomplete; copy it again from the other site",
                at + 4 + n as u64
            )));
        }
        self.offset += 4 + len as u64;
        self.index += 1;
        self.done = last;
        Ok(Some(Frame { at, len, last }))
    }
}

/// Check that a sealed file of `kind` is complete (header, whole chunks, a final chunk,
/// nothing after it) without decrypting it; returns its size.
pub fn check_complete(mut input: impl Read, kind: Kind) -> Result<u64, FormatError> {
    read_header(&mut input, kind)?;
    let mut frames = Frames::new();
    let mut body = Vec::new();
    while frames.next(&mut input, &mut body)?.is_some() {}
    Ok(frames.offset)
}

/// Reads a sealed file: [`Read`] gives the plaintext of authenticated chunks only; an
/// error (as `io::ErrorKind::InvalidData` wrapping a [`FormatError`]) ends it.
pub struct Opener<R: Read> {
    input: R,
    header: [u8; HEADER_LEN],
    stream: Option<DecryptorBE32<XChaCha20Poly1305>>,
    frames: Frames,
    body: Vec<u8>,
    plain: Vec<u8>,
    pos: usize,
}

impl<R: Read> Opener<R> {
    /// Read and check the header of a sealed file of `kind`.
    pub fn new(mut input: R, key: &Key, kind: Kind) -> Result<Self, FormatError> {
        let header = read_header(&mut input, kind)?;
        let stream = DecryptorBE32::from_aead(
            XChaCha20Poly1305::new(key),
            GenericArray::from_slice(&header[10..]),
        );
        Ok(Opener {
            input,
            header,
            stream: Some(stream),
            frames: Frames::new(),
            body: Vec::new(),
            plain: Vec::new(),
            pos: 0,
        })
    }

    /// Decrypt the next chunk into `plain`; `false` at the verified end.
    fn next_chunk(&mut self) -> Result<bool, FormatError> {
        let Some(Frame { at, len, last }) = self.frames.next(&mut self.input, &mut self.body)?
        else {
            return Ok(false);
        };
        let index = self.frames.index - 1;
        let payload = chacha20poly1305::aead::Payload {
            msg: &self.body[..len],
            aad: &self.header,
        };
        let opened = match (last, self.stream.take()) {
            (true, Some(stream)) => stream.decrypt_last(payload),
            (false, Some(mut stream)) => {
                let r = stream.decrypt_next(payload);
                self.stream = Some(stream);
                r
            }
            (_, None) => return Ok(false),
        };
        self.plain = opened.map_err(|_| {
            FormatError::invalid(if index == 0 {
                format!(
                    "cannot be authenticated with this relay's [transfer] key: the key differs from the other site's, \
                     or the file is corrupted (first chunk, byte {at})"
                )
            } else {
                format!(
                    "corrupted or tampered with: chunk {index} at byte {at} fails authentication; copy it again from the other site"
                )
            })
        })?;
        self.pos = 0;
        Ok(true)
    }
}

impl<R: Read> Read for Opener<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.plain.len() {
            if !self
                .next_chunk()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?
            {
                return Ok(0);
            }
        }
        let n = out.len().min(self.plain.len() - self.pos);
        out[..n].copy_from_slice(&self.plain[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// The [`FormatError`] inside an I/O error from an [`Opener`] (or the I/O error itself).
pub fn unwrap_error(err: io::Error) -> FormatError {
    if err.kind() == io::ErrorKind::InvalidData {
        if let Some(inner) = err.get_ref().and_then(|e| e.downcast_ref::<FormatError>()) {
            return FormatError::Invalid(inner.to_string());
        }
    }
    FormatError::Io(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> Key {
        *Key::from_slice(&[b; 32])
    }

    fn sealed(kind: Kind, plain: &[u8]) -> Vec<u8> {
        let mut s = Sealer::new(Vec::new(), &key(1), kind).unwrap();
        s.write_all(plain).unwrap();
        s.finish().unwrap()
    }

    fn open(bytes: &[u8], kind: Kind, k: u8) -> Result<Vec<u8>, String> {
        let mut o = Opener::new(bytes, &key(k), kind).map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        o.read_to_end(&mut out)
            .map_err(|e| unwrap_error(e).to_string())?;
        Ok(out)
    }

    #[test]
    fn round_trip_across_chunks() {
        let plain: Vec<u8> = (0..3 * CHUNK + 5).map(|i| (i % 251) as u8).collect();
        let file = sealed(Kind::Bundle, &plain);
        assert_eq!(open(&file, Kind::Bundle, 1).unwrap(), plain);
        assert_eq!(
            check_complete(&file[..], Kind::Bundle).unwrap(),
            file.len() as u64
        );
        // Empty content still has its final chunk.
        assert_eq!(
            open(&sealed(Kind::Receipt, b""), Kind::Receipt, 1).unwrap(),
            b""
        );
    }

    #[test]
    fn refuses_every_truncation_flip_and_append() {
        let plain: Vec<u8> = (0..2 * CHUNK + 100).map(|i| (i % 13) as u8).collect();
        let file = sealed(Kind::Bundle, &plain);
        for cut in (0..file.len()).step_by(997) {
            let err = open(&file[..cut], Kind::Bundle, 1).unwrap_err();
            assert!(
                err.contains("truncated") || err.contains("not an edgehook"),
                "{cut}: {err}"
            );
            assert!(check_complete(&file[..cut], Kind::Bundle).is_err());
        }
        for at in (0..file.len()).step_by(1009) {
            let mut bad = file.clone();
            bad[at] ^= 0x20;
            assert!(
                open(&bad, Kind::Bundle, 1).is_err(),
                "flip at {at} accepted"
            );
        }
        let mut longer = file.clone();
        longer.extend_from_slice(b"junk");
        let err = open(&longer, Kind::Bundle, 1).unwrap_err();
        assert!(
            err.contains("4 unexpected bytes after the final chunk"),
            "{err}"
        );
    }

    #[test]
    fn says_wrong_key_and_wrong_kind() {
        let file = sealed(Kind::Bundle, b"hello");
        let err = open(&file, Kind::Bundle, 2).unwrap_err();
        assert!(err.contains("[transfer] key"), "{err}");
        let err = open(&file, Kind::Receipt, 1).unwrap_err();
        assert!(err.contains("this is a bundle, not a receipt"), "{err}");
        let err = open(b"{\"type\":\"x\"}", Kind::Bundle, 1).unwrap_err();
        assert!(err.contains("not an edgehook bundle"), "{err}");
    }
}
