//! `ChunkedEnd`, where a chunked body ends (extensions, trailers), against
//! itself fed in pieces and against references.
//!
//! Invariants: the end offset or error is the same whether the bytes come
//! whole, one at a time or split at any of several points; it is the one
//! the reference decoder of `ringress_fuzz` finds (RFC 9112 §7.1 with the
//! proxy's documented strictness: CRLF only, no controls in extensions or
//! trailers, at most 15 size digits); and every size line it accepts that
//! is RFC-shaped (no extension, or one starting with `;`) is read by
//! httparse's `parse_chunk_size` (pingora's chunk parser) as the same size
//! over the same bytes, so the two transports cut bodies alike.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringress::data::transport::h1::{BadChunk, ChunkedEnd};
use ringress_fuzz::{reference_chunked_end, SizeLine};

/// Feeds `pieces` in order: where the body ends, counted from the start.
fn feed(pieces: &[&[u8]]) -> Result<Option<usize>, BadChunk> {
    let mut end = ChunkedEnd::default();
    let mut offset = 0;
    for piece in pieces {
        if let Some(n) = end.feed(piece)? {
            assert!(n >= 1 && n <= piece.len(), "{n} of {}", piece.len());
            return Ok(Some(offset + n));
        }
        offset += piece.len();
    }
    Ok(None)
}

fuzz_target!(|data: &[u8]| {
    let whole = feed(&[data]);

    let mut lines: Vec<SizeLine> = Vec::new();
    let reference = reference_chunked_end(data, &mut lines);
    assert_eq!(
        whole.map_err(|_| ()),
        reference,
        "{:?}",
        String::from_utf8_lossy(data)
    );

    let bytes: Vec<&[u8]> = data.chunks(1).collect();
    assert_eq!(feed(&bytes), whole, "byte by byte");
    let n = data.len();
    for (a, b) in [(n / 2, n / 2), (n / 3, 2 * n / 3), (1.min(n), n.saturating_sub(1).max(1.min(n)))] {
        let pieces = [&data[..a], &data[a..b], &[][..], &data[b..]];
        assert_eq!(feed(&pieces), whole, "split at {a} and {b}");
    }

    // Where the proxy reads a size line, pingora's parser must read the same.
    let accepted = match whole {
        Ok(Some(end)) => end,
        _ => data.len(),
    };
    for line in lines.iter().filter(|l| l.at + l.len + 2 <= accepted) {
        let text = &data[line.at..line.at + line.len];
        let digits = text.iter().take_while(|b| b.is_ascii_hexdigit()).count();
        let ext = text[digits..].trim_ascii_start();
        // `3 x`: the proxy takes any extension after whitespace, httparse
        // wants `;` (a stricter refusal, not a different end).
        if !ext.is_empty() && ext[0] != b';' {
            continue;
        }
        match httparse::parse_chunk_size(&data[line.at..]) {
            Ok(httparse::Status::Complete((used, size))) => {
                assert_eq!(
                    (used, size),
                    (line.len + 2, line.size),
                    "{:?}",
                    String::from_utf8_lossy(text)
                );
            }
            other => panic!("{:?}: httparse {other:?}", String::from_utf8_lossy(text)),
        }
    }
});
