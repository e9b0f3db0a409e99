//! A client's request head through the proxy's screening.
//!
//! The bytes go to httparse (the parser both transports use) and to the
//! screen's own checks on the bytes as received. Invariants, each against a
//! reference written from RFC 9112 / RFC 3986 and the proxy's docs:
//! `request_line_ok` accepts exactly `token SP target SP HTTP/d.d` in origin,
//! absolute, `*` (OPTIONS) or authority (CONNECT) form, and httparse reads
//! the same method and target from a line it accepts; `host_ok`,
//! `connection_ok` and `ambiguous_path` match their grammars;
//! `has_content_length` sees every Content-Length httparse sees;
//! `normalize_path` resolves dot-segments (`%2e` too) and `//` as RFC 3986
//! §5.2.4 does, its output normal (a fixed point) without `//` or dot
//! segments, and refuses climbing above the root; and `screen` refuses for
//! the first reason that applies, in its documented order, else returns the
//! normalised path.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use regex::bytes::Regex;
use ringress::data::metrics::Reject;
use ringress::data::policy::screen::{
    ambiguous_path, connection_ok, has_content_length, host_ok, normalize_path,
    request_line_ok, screen, AboveRoot, Head, Rules,
};
use ringress_fuzz::{list_elements, reference_normalize};

static LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?-u)^([!#$%&'*+.^_`|~0-9A-Za-z-]+) ([\x21\x22\x24-\x7E]+) HTTP/[0-9]\.[0-9]$")
        .unwrap()
});
static ABSOLUTE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i-u)^https?://[^/?]").unwrap());
static HOST: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?-u)^(?:\[[0-9A-Fa-f:.vV]+\]|[A-Za-z0-9._~%!$&'()*+,;=-]*)(?::[0-9]*)?$").unwrap()
});
static TOKEN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?-u)^[!#$%&'*+.^_`|~0-9A-Za-z-]+$").unwrap());

fn reference_line_ok(line: &[u8]) -> bool {
    let Some(c) = LINE.captures(line) else {
        return false;
    };
    let (method, target) = (&c[1], &c[2]);
    target.starts_with(b"/")
        || (target == b"*" && method == b"OPTIONS")
        || (target != b"*" && method == b"CONNECT")
        || ABSOLUTE.is_match(target)
}

fn reference_connection_ok(values: &[&[u8]]) -> bool {
    const PROTECTED: [&str; 6] = [
        "host",
        "content-length",
        "transfer-encoding",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
    ];
    let tokens: Vec<&[u8]> = values.iter().flat_map(|v| list_elements(v)).collect();
    tokens.len() <= 9
        && tokens.iter().all(|t| {
            TOKEN.is_match(t) && !PROTECTED.iter().any(|p| t.eq_ignore_ascii_case(p.as_bytes()))
        })
}

fn reference_ambiguous(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    path.contains([';', '\\']) || ["%2f", "%5c", "%00"].iter().any(|e| lower.contains(e))
}

/// The properties of `normalize_path` on any text.
fn check_path(path: &str) {
    let got = normalize_path(path);
    if !path.starts_with('/') {
        assert_eq!(got, Ok(None), "{path:?}");
        return;
    }
    let want = reference_normalize(path);
    match (&got, &want) {
        (Ok(None), Ok(w)) => assert_eq!(w, path, "{path:?} left as it is"),
        (Ok(Some(out)), Ok(w)) => {
            assert_eq!(out, w, "{path:?}");
            assert_ne!(out, path, "{path:?}: a normal path is not copied");
            assert!(out.starts_with('/') && !out.contains("//"), "{out:?}");
            assert!(
                out.split('/').all(|s| {
                    let s = s.to_ascii_lowercase().replace("%2e", ".");
                    s != "." && s != ".."
                }),
                "{out:?} keeps a dot segment"
            );
            assert_eq!(normalize_path(out), Ok(None), "{path:?} -> {out:?} is not normal");
        }
        (Err(AboveRoot), Err(())) => {}
        _ => panic!("{path:?}: proxy {got:?}, reference {want:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    check_path(&String::from_utf8_lossy(data));
    let first = data.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = first.strip_suffix(b"\r").unwrap_or(first);
    let line_ok = request_line_ok(line);
    assert_eq!(line_ok, reference_line_ok(line), "{:?}", String::from_utf8_lossy(line));

    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let Ok(httparse::Status::Complete(head_len)) = req.parse(data) else {
        return;
    };
    let (method, target, version) = (req.method.unwrap(), req.path.unwrap(), req.version.unwrap());
    if line_ok && !line.is_empty() {
        let c = LINE.captures(line).unwrap();
        assert_eq!((method.as_bytes(), target.as_bytes()), (&c[1], &c[2]));
    }

    let raw = &data[..head_len];
    let all = |name: &str| -> Vec<&[u8]> {
        req.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
            .collect()
    };
    let (hosts, connection) = (all("host"), all("connection"));
    let (lengths, codings) = (all("content-length"), all("transfer-encoding"));
    for h in req.headers.iter() {
        assert_eq!(host_ok(h.value), HOST.is_match(h.value), "{:?}", String::from_utf8_lossy(h.value));
    }
    let conn_ok = connection_ok(connection.iter().copied());
    assert_eq!(conn_ok, reference_connection_ok(&connection), "{connection:?}");
    if !lengths.is_empty() {
        assert!(has_content_length(raw), "{:?}", String::from_utf8_lossy(raw));
    }

    // The head as the pingora transport hands it to the screen.
    let path = target.split('?').next().unwrap();
    check_path(path);
    assert_eq!(ambiguous_path(path), reference_ambiguous(path), "{path:?}");
    let transfer_codings = codings.iter().map(|v| list_elements(v).len()).sum();
    let declared_length = lengths
        .first()
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.parse::<u64>().ok());
    let head = Head {
        request_line_ok: line_ok,
        connection_ok: conn_ok,
        http11: version == 1,
        host: hosts.first().copied(),
        te_and_cl: !codings.is_empty() && has_content_length(raw),
        length_repeated: lengths.len() > 1 || lengths.first().is_some_and(|v| v.contains(&b',')),
        transfer_codings,
        declared_length,
        path,
    };
    for rules in [
        Rules::default(),
        Rules { max_body: Some(data.len() as u64 / 2), strict_paths: true },
    ] {
        let got = screen(&head, &rules).map_err(|e| e.rejection().expect("a rejection"));
        let refuse = if !head.request_line_ok {
            Some(Reject::BadTarget)
        } else if !head.connection_ok {
            Some(Reject::BadRequest)
        } else if head.host.is_none() && head.http11 {
            Some(Reject::MissingHost)
        } else if head.host.is_some_and(|h| !HOST.is_match(h)) {
            Some(Reject::BadHost)
        } else if head.te_and_cl || head.length_repeated || head.transfer_codings > 1 {
            Some(Reject::Smuggling)
        } else if rules.strict_paths && reference_ambiguous(path) {
            Some(Reject::AmbiguousPath)
        } else if rules.max_body.zip(declared_length).is_some_and(|(m, l)| l > m) {
            Some(Reject::BodyTooLarge)
        } else if path.starts_with('/') && reference_normalize(path).is_err() {
            Some(Reject::BadPath)
        } else {
            None
        };
        match (refuse, &got) {
            (Some(why), Err(r)) => assert_eq!(why, *r, "{:?}", String::from_utf8_lossy(raw)),
            (None, Ok(p)) => assert_eq!(p, &normalize_path(path).unwrap()),
            _ => panic!("{:?}: screen {got:?}, reference {refuse:?}", String::from_utf8_lossy(raw)),
        }
    }
});
