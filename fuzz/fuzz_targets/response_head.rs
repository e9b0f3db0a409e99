//! An endpoint's response head as the proxy reads and rewrites it.
//!
//! The bytes go to httparse with pingora's response settings (spaces after
//! a name, obs-fold allowed). Invariants: `check_status` accepts 100-599
//! and a 101 only when an upgrade was asked for; `unfold` leaves no CR or
//! LF and matches the reference (each whitespace run with a line break is
//! one SP), borrowing when there is nothing to unfold; `tidy_list` keeps
//! the non-empty elements in order, leaves no empty one and is idempotent;
//! `is_hop_by_hop` and `ConnectionNames` agree with the RFC 9110 §7.6.1
//! lists; and the head the proxy forwards (values unfolded, the
//! Transfer-Encoding list tidied) has the framing the proxy read, for a
//! GET and for a HEAD, so the client and the proxy end the body alike.
#![no_main]

use std::borrow::Cow;

use libfuzzer_sys::fuzz_target;
use ringress::data::policy::headers::{
    is_hop_by_hop, tidy_list, unfold, ConnectionNames, HOP_BY_HOP,
};
use ringress::data::policy::response::{check_status, framing};
use ringress_fuzz::{list_elements, reference_unfold};

/// Connection options that are not field names, and fields a Connection
/// header may not remove.
const NOT_NAMES: [&str; 6] = [
    "close",
    "keep-alive",
    "upgrade",
    "host",
    "content-length",
    "transfer-encoding",
];

fuzz_target!(|data: &[u8]| {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    match httparse::ParserConfig::default()
        .allow_spaces_after_header_name_in_responses(true)
        .allow_obsolete_multiline_headers_in_responses(true)
        .parse_response(&mut resp, data)
    {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return,
    }
    let status = resp.code.unwrap();
    for upgrade in [false, true] {
        let want = (100..=599).contains(&status) && (status != 101 || upgrade);
        assert_eq!(check_status(status, upgrade).is_ok(), want, "{status} {upgrade}");
    }

    let mut forwarded: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut connection: Vec<&[u8]> = Vec::new();
    for h in resp.headers.iter() {
        let lower = h.name.to_ascii_lowercase();
        assert_eq!(is_hop_by_hop(h.name), HOP_BY_HOP.contains(&lower.as_str()), "{}", h.name);
        if lower == "connection" {
            connection.push(h.value);
        }

        let unfolded = unfold(h.value);
        assert!(!unfolded.iter().any(|&b| b == b'\r' || b == b'\n'), "{unfolded:?}");
        assert_eq!(&*unfolded, &reference_unfold(h.value)[..], "{:?}", h.value);
        if !h.value.iter().any(|&b| b == b'\r' || b == b'\n') {
            assert!(matches!(unfolded, Cow::Borrowed(_)));
        }

        let mut value = unfolded.into_owned();
        if lower == "transfer-encoding" {
            let tidy = tidy_list(&value).into_owned();
            assert_eq!(list_elements(&tidy), list_elements(&value), "{value:?} -> {tidy:?}");
            assert!(
                tidy.split(|&b| b == b',').all(|e| !e.trim_ascii().is_empty()) || tidy.is_empty(),
                "{tidy:?}"
            );
            assert_eq!(&*tidy_list(&tidy), &tidy[..], "idempotent");
            value = tidy;
        }
        forwarded.push((h.name, value));
    }

    let names = ConnectionNames::parse(connection.iter().copied());
    let tokens: Vec<String> = connection
        .iter()
        .flat_map(|v| list_elements(v))
        // `lists` takes a &str: other tokens can't be asked about.
        .filter_map(|t| std::str::from_utf8(t).ok())
        .map(str::to_ascii_lowercase)
        .collect();
    assert_eq!(names.close, tokens.iter().any(|t| t == "close"));
    assert_eq!(names.upgrade, tokens.iter().any(|t| t == "upgrade"));
    let candidates = resp
        .headers
        .iter()
        .map(|h| h.name.to_owned())
        .chain(tokens.iter().cloned())
        .chain(NOT_NAMES.iter().map(|n| n.to_string()));
    for name in candidates {
        let lower = name.to_ascii_lowercase();
        let want = !NOT_NAMES.contains(&lower.as_str()) && tokens.contains(&lower);
        assert_eq!(names.lists(&name), want, "{name:?} in {tokens:?}");
    }

    for head_request in [false, true] {
        let read = framing(status, head_request, resp.headers.iter().map(|h| (h.name, h.value)));
        let sent = framing(
            status,
            head_request,
            forwarded.iter().map(|(n, v)| (*n, v.as_slice())),
        );
        assert_eq!(read, sent, "{:?}", String::from_utf8_lossy(data));
    }
});
