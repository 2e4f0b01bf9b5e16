//! The line socket's splitter (`ingest::lines::Splitter`) against a model: whatever the
//! read boundaries, the lines are those of splitting the whole stream at `\n` (a `\r`
//! before it dropped, lines over the limit replaced by `TooLong`, the unterminated tail
//! last). Input: one byte for the limit, one for the read sizes, then the stream.
#![no_main]

use edgehook::ingest::lines::{Line, Splitter};
use libfuzzer_sys::fuzz_target;

/// The whole stream split at once: what the splitter must produce.
fn model(stream: &[u8], max: usize) -> Vec<Line> {
    let mut parts: Vec<&[u8]> = stream.split(|b| *b == b'\n').collect();
    let tail = parts.pop().unwrap_or_default();
    let line = |l: &[u8]| {
        if l.len() > max {
            Line::TooLong
        } else {
            Line::Bytes(l.strip_suffix(b"\r").unwrap_or(l).to_vec())
        }
    };
    let mut lines: Vec<Line> = parts.into_iter().map(line).collect();
    if !tail.is_empty() {
        lines.push(line(tail));
    }
    lines
}

fuzz_target!(|input: &[u8]| {
    let [max, sizes, stream @ ..] = input else {
        return;
    };
    let max = usize::from(*max % 64) + 1;
    let mut splitter = Splitter::new(max);
    let mut got = Vec::new();
    let mut rest = stream;
    let mut i = 0u32;
    while !rest.is_empty() {
        // Read sizes from 1 to 16 bytes, varying with the seed and position.
        let n = (usize::from(sizes.rotate_left(i % 8)) % 16 + 1).min(rest.len());
        let (read, more) = rest.split_at(n);
        got.extend(splitter.push(read));
        rest = more;
        i += 1;
    }
    got.extend(splitter.finish());
    assert_eq!(got, model(stream, max));
});
