//! `RequestEnd`, which splits a client's pipelined byte stream into one
//! request message at a time, against itself and a reference.
//!
//! The bytes are a stream of requests, fed as the front door's wrapper
//! feeds it: whole, one byte at a time, and in reads of a few sizes.
//! Invariants: the messages put back together are the stream; where they
//! split does not depend on the read sizes; a finished message's
//! `line_ok` is `request_line_ok` of its first line after any empty lines
//! (RFC 9112 §2.2: skipped, as httparse does); and as long as
//! httparse parses each head, every split falls where the reference puts
//! it: after the head httparse found, plus the Content-Length or the
//! reference chunked body, or nowhere (the rest passed through unsplit)
//! when the framing is not certain (RFC 9112 §6.3: Content-Length with
//! Transfer-Encoding, lengths repeated or malformed, a coding other than
//! `chunked`, an upgrade, CONNECT, a broken chunked body).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringress::data::policy::screen::request_line_ok;
use ringress::data::transport::request_end::RequestEnd;
use ringress_fuzz::{reference_chunked_end, trim_ws};

/// Message lengths as the wrapper splits `stream` in reads of `step` bytes.
fn split(stream: &[u8], step: usize) -> Vec<usize> {
    let mut end = RequestEnd::default();
    let mut messages = Vec::new();
    let (mut at, mut current) = (0, 0);
    while at < stream.len() {
        let piece = &stream[at..stream.len().min(at + step)];
        let n = end.take(piece);
        assert!(n <= piece.len(), "took {n} of {}", piece.len());
        at += n;
        current += n;
        if end.done() {
            let message = &stream[at - current..at];
            // Empty lines before the request line are skipped (RFC 9112 §2.2).
            let start = message.iter().take_while(|&&b| b == b'\r' || b == b'\n').count();
            let first = message[start..].split(|&b| b == b'\n').next().unwrap();
            let line = first.strip_suffix(b"\r").unwrap_or(first);
            assert_eq!(end.line_ok(), request_line_ok(line), "{:?}", String::from_utf8_lossy(line));
            messages.push(current);
            current = 0;
            end.next_request();
        } else {
            assert_eq!(n, piece.len(), "bytes held back before the message is complete");
        }
    }
    if current > 0 {
        messages.push(current);
    }
    messages
}

/// How many bytes of `stream` the request at its start takes by the
/// reference: `None` when the reference cannot tell (httparse refuses the
/// head) and the comparison stops.
fn reference_message(stream: &[u8]) -> Option<usize> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let head = match req.parse(stream) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Some(stream.len()),
        Err(_) => return None,
    };
    let rest = stream.len();
    let fields = |name: &str| -> Vec<&[u8]> {
        req.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| trim_ws(h.value))
            .collect()
    };
    let (lengths, codings) = (fields("content-length"), fields("transfer-encoding"));
    if req.method == Some("CONNECT") || !fields("upgrade").is_empty() {
        return Some(rest);
    }
    if !codings.is_empty() {
        // One field whose list (empty elements ignored) is exactly `chunked`.
        let mut elements = codings[0]
            .split(|&b| b == b',')
            .map(trim_ws)
            .filter(|c| !c.is_empty());
        let only_chunked = elements.next().is_some_and(|c| c.eq_ignore_ascii_case(b"chunked"))
            && elements.next().is_none();
        if !lengths.is_empty() || codings.len() > 1 || !only_chunked {
            return Some(rest);
        }
        return Some(match reference_chunked_end(&stream[head..], &mut Vec::new()) {
            Ok(Some(n)) => head + n,
            _ => rest,
        });
    }
    let length = match lengths[..] {
        [] => 0,
        // Leading zeros do not count; more than 19 digits after them pass
        // through unsplit (the screen refuses what overflows).
        [v] if !v.is_empty() && v.iter().all(u8::is_ascii_digit) => {
            let zeros = v.iter().take_while(|&&d| d == b'0').count().min(v.len() - 1);
            if v.len() - zeros > 19 {
                return Some(rest);
            }
            match std::str::from_utf8(&v[zeros..]).unwrap().parse::<u64>() {
                Ok(n) => n,
                Err(_) => return Some(rest),
            }
        }
        _ => return Some(rest),
    };
    Some(head + (length.min((rest - head) as u64) as usize))
}

fuzz_target!(|data: &[u8]| {
    let whole = split(data, data.len().max(1));
    assert_eq!(whole.iter().sum::<usize>(), data.len());
    for step in [1, 7, data.len() / 3 + 1] {
        assert_eq!(split(data, step), whole, "reads of {step}");
    }

    let mut at = 0;
    for &len in &whole {
        let Some(want) = reference_message(&data[at..]) else {
            return;
        };
        assert_eq!(
            len,
            want,
            "message at {at}: {:?}",
            String::from_utf8_lossy(&data[at..])
        );
        at += len;
    }
});
