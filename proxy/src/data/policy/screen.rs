//! Requests the proxy refuses before routing, and the path routes match.
//!
//! pingora's parser lets through what an ingress must not pass on: requests
//! without Host, `Transfer-Encoding` with `Content-Length` (request
//! smuggling), bodies declared over the limit, and paths climbing above the
//! root. Dot-segments and `//` are resolved so routes match what the backend
//! receives.
use crate::data::metrics::Reject;
use crate::data::policy::error::{ErrorKind, ProxyError};

/// What a transport knows of a request head, for screening.
pub struct Head<'a> {
    /// The request line as received passed [`request_line_ok`].
    pub request_line_ok: bool,
    /// The `Connection` fields passed [`connection_ok`].
    pub connection_ok: bool,
    /// HTTP/1.1 (Host is required) rather than 1.0.
    pub http11: bool,
    /// The Host field's value (one field: pingora refuses two).
    pub host: Option<&'a [u8]>,
    /// `Transfer-Encoding` together with `Content-Length`, as received.
    pub te_and_cl: bool,
    /// `Content-Length` came in more than one field or as a list.
    pub length_repeated: bool,
    /// Non-empty elements of the `Transfer-Encoding` list, over every field.
    pub transfer_codings: usize,
    pub declared_length: Option<u64>,
    pub path: &'a str,
}

/// Refuses a request head, or says which normalised path replaces its own
/// (`None`: the path is already normal).
pub fn screen(head: &Head<'_>, rules: &Rules) -> Result<Option<String>, ProxyError> {
    let refuse = |reason| Err(ProxyError::new(ErrorKind::Rejected(reason)));
    if !head.request_line_ok {
        return refuse(Reject::BadTarget);
    }
    if !head.connection_ok {
        return refuse(Reject::BadRequest);
    }
    match head.host {
        None if head.http11 => return refuse(Reject::MissingHost),
        Some(host) if !host_ok(host) => return refuse(Reject::BadHost),
        _ => {}
    }
    // One framing, stated once: anything else is how requests are smuggled
    // (RFC 9112 §6.1: chunked is applied once; §6.3: CL with TE).
    if head.te_and_cl || head.length_repeated || head.transfer_codings > 1 {
        return refuse(Reject::Smuggling);
    }
    if rules.strict_paths && ambiguous_path(head.path) {
        return refuse(Reject::AmbiguousPath);
    }
    if let (Some(max), Some(len)) = (rules.max_body, head.declared_length) {
        if len > max {
            return refuse(Reject::BodyTooLarge);
        }
    }
    match normalize_path(head.path) {
        Ok(path) => Ok(path),
        Err(AboveRoot) => refuse(Reject::BadPath),
    }
}

/// Listener-wide screening settings.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rules {
    /// Largest request body declared with `Content-Length` (`--max-request-body`).
    pub max_body: Option<u64>,
    /// `--strict-paths`: refuse paths that backends read in more than one way.
    pub strict_paths: bool,
}

/// Whether `line` (without its line end) is `method SP request-target SP
/// HTTP-version` (RFC 9112 §3) with one space each, a token for a method, a
/// target of visible ASCII without `#`, in origin form (`/...`), absolute
/// form (`http://` or `https://` and an authority), `*` for OPTIONS, or any
/// authority for CONNECT (refused later with 405). A lenient parser reads
/// `GET  /admin` as the target ` /admin`, escaped to `%20/admin`: the routes
/// would match a path the backend never sees.
pub fn request_line_ok(line: &[u8]) -> bool {
    // Runs on every request: byte classes by table; a request line is
    // short, so a plain scan finds its spaces sooner than memchr's set-up.
    let Some(sp1) = line.iter().position(|&b| b == b' ') else {
        return false;
    };
    let (method, rest) = (&line[..sp1], &line[sp1 + 1..]);
    let Some(sp2) = rest.iter().position(|&b| b == b' ') else {
        return false;
    };
    let (target, version) = (&rest[..sp2], &rest[sp2 + 1..]);
    let version_ok = matches!(version, [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
        if major.is_ascii_digit() && minor.is_ascii_digit());
    if !version_ok
        || method.is_empty()
        || !method.iter().all(|&b| TCHAR[b as usize])
        || target.is_empty()
        || !target.iter().all(|&b| TARGET[b as usize])
    {
        return false;
    }
    if target[0] == b'/' {
        return true;
    }
    if target == b"*" {
        return method == b"OPTIONS";
    }
    if method == b"CONNECT" {
        return true;
    }
    let scheme_end = |scheme: &[u8]| {
        target.len() > scheme.len() && target[..scheme.len()].eq_ignore_ascii_case(scheme)
    };
    let authority = if scheme_end(b"http://") {
        &target[7..]
    } else if scheme_end(b"https://") {
        &target[8..]
    } else {
        return false;
    };
    !matches!(authority.first(), None | Some(b'/' | b'?'))
}

/// A 256-entry table of the bytes for which `$ok` holds, built at compile time.
macro_rules! byte_table {
    (|$b:ident| $ok:expr) => {{
        let mut table = [false; 256];
        let mut i = 0;
        while i < 256 {
            let $b = i as u8;
            table[i] = $ok;
            i += 1;
        }
        table
    }};
}
pub(crate) use byte_table;

/// RFC 9110 `tchar`, as the route file's header names are checked.
const TCHAR: [bool; 256] = byte_table!(|b| ringress_routes::is_tchar(b));

/// Request-target bytes: visible ASCII without `#` (no fragment).
const TARGET: [bool; 256] = byte_table!(|b| b >= 0x21 && b < 0x7f && b != b'#');

/// reg-name bytes (RFC 3986: unreserved, pct-encoded, sub-delims).
pub(crate) const REG_NAME: [bool; 256] = byte_table!(|b| {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'%'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
        )
});

/// Whether a Host value is `uri-host [":" port]` (RFC 9112 §3.2, RFC 3986
/// §3.2.2): a reg-name (unreserved, percent-encoded, sub-delims), an IPv4
/// address or a bracketed IP literal. Empty is allowed (a target without
/// authority). Anything else is a 400: routes match on Host, and a backend
/// building URLs from it must not get `a b` or `h/x`.
pub fn host_ok(host: &[u8]) -> bool {
    let (name, port) = match host.first() {
        Some(b'[') => match host.iter().position(|&b| b == b']') {
            Some(close) => {
                let literal = &host[1..close];
                if literal.is_empty()
                    || !literal
                        .iter()
                        .all(|&b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.' | b'v' | b'V'))
                {
                    return false;
                }
                (&[][..], &host[close + 1..])
            }
            None => return false,
        },
        _ => match host.iter().position(|&b| b == b':') {
            Some(colon) => (&host[..colon], &host[colon..]),
            None => (host, &[][..]),
        },
    };
    let port_ok = match port {
        [] => true,
        [b':', digits @ ..] => digits.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    port_ok && name.iter().all(|&b| REG_NAME[b as usize])
}

/// Most options a request's `Connection` fields may list (as pingora's
/// HTTP/1 client allows): a client needs two or three.
const MAX_CONNECTION_OPTIONS: usize = 9;

/// Whether a request's `Connection` fields are acceptable: at most
/// [`MAX_CONNECTION_OPTIONS`] tokens, none naming a field that addresses or
/// frames the message for every hop (`Host`, `Content-Length`,
/// `Transfer-Encoding`, RFC 9110 §7.6.1) or one the proxy vouches for
/// (`X-Forwarded-*`). Dropping such a field as hop-by-hop would send the
/// endpoint a request without Host, or with the body reframed.
pub fn connection_ok<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> bool {
    const PROTECTED: [&[u8]; 6] = [
        b"host",
        b"content-length",
        b"transfer-encoding",
        b"x-forwarded-for",
        b"x-forwarded-host",
        b"x-forwarded-proto",
    ];
    let mut options = 0;
    for value in values {
        for token in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
            if token.is_empty() {
                continue;
            }
            options += 1;
            if options > MAX_CONNECTION_OPTIONS
                || !token.iter().all(|&b| TCHAR[b as usize])
                || PROTECTED.iter().any(|p| token.eq_ignore_ascii_case(p))
            {
                return false;
            }
        }
    }
    true
}

/// Whether backends may read `path` in more than one way: `;` path
/// parameters (`/admin;x` is `/admin` to Tomcat and Spring, not to a
/// prefix match), an encoded `/` or `\` (`%2F`, `%5C`), a backslash, or an
/// encoded NUL. Refused under `--strict-paths`.
pub fn ambiguous_path(path: &str) -> bool {
    let b = path.as_bytes();
    b.iter().any(|&c| c == b';' || c == b'\\')
        || b.windows(3).any(|w| {
            w[0] == b'%'
                && matches!(
                    (w[1], w[2].to_ascii_uppercase()),
                    (b'2', b'F') | (b'5', b'C') | (b'0', b'0')
                )
        })
}

/// Whether a segment is a dot-segment, literal or percent-encoded: `Some(false)`
/// for `.`, `Some(true)` for `..`.
fn dot_segment(seg: &str) -> Option<bool> {
    let b = seg.as_bytes();
    let (mut dots, mut i) = (0, 0);
    while i < b.len() {
        if b[i] == b'.' {
            i += 1;
        } else if b[i..].len() >= 3 && b[i] == b'%' && b[i + 1] == b'2' && b[i + 2] | 0x20 == b'e' {
            i += 3;
        } else {
            return None;
        }
        dots += 1;
        if dots > 2 {
            return None;
        }
    }
    match dots {
        1 => Some(false),
        2 => Some(true),
        _ => None,
    }
}

/// A path that climbs above the root with `..`.
#[derive(Debug, PartialEq, Eq)]
pub struct AboveRoot;

/// The path routes match and the backend receives: dot-segments (`.`, `..`,
/// also as `%2e`) resolved and empty segments (`//`) merged, so a path cannot
/// match one route while a backend that normalises reads it as another's.
/// `Ok(None)` when the path is already normal (the common case, no allocation).
pub fn normalize_path(path: &str) -> Result<Option<String>, AboveRoot> {
    // The common case in one pass: no segment starts with `/`, `.` or `%`,
    // so none is empty or a dot segment.
    let b = path.as_bytes();
    if b.first() == Some(&b'/')
        && !b
            .windows(2)
            .any(|w| w[0] == b'/' && matches!(w[1], b'/' | b'.' | b'%'))
    {
        return Ok(None);
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Ok(None); // `*` or an authority: nothing to resolve
    };
    let mut segments = rest.split('/').peekable();
    let mut normal = true;
    while let Some(seg) = segments.next() {
        let last = segments.peek().is_none();
        if (seg.is_empty() && !last) || dot_segment(seg).is_some() {
            normal = false;
            break;
        }
    }
    if normal {
        return Ok(None);
    }
    let mut kept: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    let mut segments = rest.split('/').peekable();
    while let Some(seg) = segments.next() {
        let last = segments.peek().is_none();
        match dot_segment(seg) {
            Some(true) => {
                kept.pop().ok_or(AboveRoot)?;
                trailing_slash = last;
            }
            Some(false) => trailing_slash = last,
            None if seg.is_empty() => trailing_slash = last,
            None => {
                kept.push(seg);
                trailing_slash = false;
            }
        }
    }
    let mut out = String::with_capacity(path.len());
    for seg in &kept {
        out.push('/');
        out.push_str(seg);
    }
    if out.is_empty() || trailing_slash {
        out.push('/');
    }
    Ok(Some(out))
}

/// Whether a raw request header carries a `Content-Length` field. pingora
/// drops `Content-Length` when `Transfer-Encoding` is present (RFC 9112 §6.3),
/// so the conflict is only visible in the bytes as received.
pub fn has_content_length(raw_header: &[u8]) -> bool {
    const NAME: &[u8] = b"content-length";
    raw_header.split(|&b| b == b'\n').any(|line| {
        line.len() > NAME.len()
            && line[..NAME.len()].eq_ignore_ascii_case(NAME)
            && matches!(line[NAME.len()], b':' | b' ' | b'\t')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_paths_are_left_alone() {
        for p in [
            "/", "/a", "/a/", "/a/b.c", "/a/.b", "/a/..b", "/a/b%2e", "/%2F..", "*",
        ] {
            assert_eq!(normalize_path(p), Ok(None), "{p}");
        }
    }

    #[test]
    fn dot_segments_and_empty_segments_are_resolved() {
        let cases = [
            ("//admin", "/admin"),
            ("/static/../admin", "/admin"),
            ("/static/%2e%2e/admin", "/admin"),
            ("/static/%2E./admin", "/admin"),
            ("/static/.%2e/admin", "/admin"),
            ("/a/./b", "/a/b"),
            ("/a/%2e/b", "/a/b"),
            ("/a/b/..", "/a/"),
            ("/a/.", "/a/"),
            ("/a//b//", "/a/b/"),
            ("/a/..", "/"),
            ("//", "/"),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize_path(raw), Ok(Some(want.to_string())), "{raw}");
        }
    }

    #[test]
    fn climbing_above_the_root_is_refused() {
        for p in ["/..", "/../etc/passwd", "/a/../../b", "/%2e%2e/x"] {
            assert_eq!(normalize_path(p), Err(AboveRoot), "{p}");
        }
    }

    #[test]
    fn request_lines_must_be_exact() {
        for ok in [
            "GET / HTTP/1.1",
            "GET /a?b=c HTTP/1.0",
            "POST /a;b HTTP/1.1",
            "GET http://a.example/x HTTP/1.1",
            "GET HTTPS://a.example HTTP/1.1",
            "OPTIONS * HTTP/1.1",
            "CONNECT a.example:443 HTTP/1.1",
        ] {
            assert!(request_line_ok(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "GET  /admin/x HTTP/1.1",
            "GET\t/admin/x HTTP/1.1",
            "GET /admin/x  HTTP/1.1",
            "GET /admin/x HTTP/1.1 ",
            " GET / HTTP/1.1",
            "GET /a b HTTP/1.1",
            "GET /a#frag HTTP/1.1",
            "GET /\x7f HTTP/1.1",
            "GET /\u{e9} HTTP/1.1",
            "GET admin HTTP/1.1",
            "GET * HTTP/1.1",
            "GET a.example:443 HTTP/1.1",
            "GET ftp://a/ HTTP/1.1",
            "GET http:/// HTTP/1.1",
            "GET / HTTP/1.10",
            "GET / HTTP/2",
            "GET /",
            "G@T / HTTP/1.1",
            "",
        ] {
            assert!(!request_line_ok(bad.as_bytes()), "{bad:?}");
        }
    }

    #[test]
    fn hosts_must_be_uri_hosts() {
        for ok in [
            "",
            "a",
            "shop.example.com",
            "a.b:8080",
            "10.0.0.1:80",
            "[::1]",
            "[::1]:8080",
            "x_y",
            "a:",
        ] {
            assert!(host_ok(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "a b", "h/x", "u@h", "a:b", "a:1:2", "[::1", "[zz]", "[]", "a\tb", "h?x", "h#x",
            "\u{e9}",
        ] {
            assert!(!host_ok(bad.as_bytes()), "{bad:?}");
        }
    }

    #[test]
    fn connection_may_not_name_end_to_end_fields() {
        for ok in [
            &[][..],
            &[&b"keep-alive"[..]],
            &[b"close, X-Secret", b" Upgrade"],
        ] {
            assert!(connection_ok(ok.iter().copied()), "{ok:?}");
        }
        for bad in [
            &[&b"Host"[..]][..],
            &[b"keep-alive, content-length"],
            &[b"close", b"Transfer-Encoding"],
            &[b"X-Forwarded-For"],
            &[b"\"x-a\""],
            &[b":authority"],
            &[b"a,b,c,d,e,f,g,h,i,j"],
        ] {
            assert!(!connection_ok(bad.iter().copied()), "{bad:?}");
        }
    }

    #[test]
    fn ambiguous_paths_are_told() {
        for p in ["/admin;x", "/a%2Fb", "/a%2fb", "/a%5cb", "/a\\b", "/a%00"] {
            assert!(ambiguous_path(p), "{p}");
        }
        for p in ["/admin", "/a%20b", "/a%2", "/%2e"] {
            assert!(!ambiguous_path(p), "{p}");
        }
    }

    #[test]
    fn content_length_is_found_in_raw_headers() {
        let raw = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\ncontent-LENGTH: 4\r\n\r\n";
        assert!(has_content_length(raw));
        assert!(!has_content_length(
            b"POST / HTTP/1.1\r\nX-Content-Length: 4\r\nContent-Lengthy: 1\r\n\r\n"
        ));
    }
}
