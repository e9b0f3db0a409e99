//! Where an endpoint's response ends, by the proxy and by a reference.
//!
//! The bytes are a response: its head parsed by httparse with pingora's
//! settings (as the fast path does), its framing decided by
//! `response::framing` and by the RFC 9112 §6.3 reference of
//! `ringress_fuzz`, for a GET and for a HEAD. Invariants: both agree on the
//! framing (or both refuse it); and then on where the message ends: the
//! head for no body, head + length, the end the reference chunked decoder
//! finds (`ChunkedEnd` fed in two pieces), or nowhere before close.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringress::data::policy::response::{framing, BodyFraming};
use ringress::data::transport::h1::ChunkedEnd;
use ringress_fuzz::{reference_chunked_end, reference_response_framing, Framing};

/// Where the message ends in `data`: `Ok(None)` when not within it (or at
/// close), `Err` when the body breaks its framing.
type End = Result<Option<usize>, ()>;

fn proxy_end(data: &[u8], head: usize, f: BodyFraming) -> End {
    let body = &data[head..];
    match f {
        BodyFraming::Empty => Ok(Some(head)),
        BodyFraming::Length(n) => Ok((n <= body.len() as u64).then(|| head + n as usize)),
        BodyFraming::UntilClose => Ok(None),
        BodyFraming::Chunked => {
            let mut end = ChunkedEnd::default();
            let split = body.len() / 2;
            match end.feed(&body[..split]).map_err(|_| ())? {
                Some(n) => Ok(Some(head + n)),
                None => Ok(end.feed(&body[split..]).map_err(|_| ())?.map(|n| head + split + n)),
            }
        }
    }
}

fn reference_end(data: &[u8], head: usize, f: Framing) -> End {
    let body = &data[head..];
    match f {
        Framing::Empty => Ok(Some(head)),
        Framing::Length(n) => Ok((n <= body.len() as u64).then(|| head + n as usize)),
        Framing::UntilClose => Ok(None),
        Framing::Chunked => Ok(reference_chunked_end(body, &mut Vec::new())?.map(|n| head + n)),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let head = match httparse::ParserConfig::default()
        .allow_spaces_after_header_name_in_responses(true)
        .allow_obsolete_multiline_headers_in_responses(true)
        .parse_response(&mut resp, data)
    {
        Ok(httparse::Status::Complete(n)) => n,
        _ => return,
    };
    let status = resp.code.unwrap();
    let fields: Vec<(&str, &[u8])> = resp.headers.iter().map(|h| (h.name, h.value)).collect();
    for head_request in [false, true] {
        let got = framing(status, head_request, fields.iter().copied()).ok();
        let want = reference_response_framing(status, head_request, &fields);
        let same = match (got, want) {
            (None, None) => true,
            (Some(BodyFraming::Empty), Some(Framing::Empty))
            | (Some(BodyFraming::Chunked), Some(Framing::Chunked))
            | (Some(BodyFraming::UntilClose), Some(Framing::UntilClose)) => true,
            (Some(BodyFraming::Length(a)), Some(Framing::Length(b))) => a == b,
            _ => false,
        };
        assert!(
            same,
            "status {status}, HEAD {head_request}, {:?}: proxy {got:?}, reference {want:?}",
            String::from_utf8_lossy(&data[..head])
        );
        let (Some(got), Some(want)) = (got, want) else {
            continue;
        };
        assert_eq!(
            proxy_end(data, head, got),
            reference_end(data, head, want),
            "{:?} ({got:?})",
            String::from_utf8_lossy(data)
        );
    }
});
