//! Shared parts of the fuzz targets: a plain request, YAML quoting, and
//! small reference implementations of the documented behaviour that the
//! targets compare the crate against.

use std::net::IpAddr;

use ringress_routes::RequestParts;

/// The name route files have in errors.
pub const ORIGIN: &str = "fuzz.yaml";

/// A request over plain fields. Header names are stored lowercase, as
/// [`RequestParts::header`] expects to look them up.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: String,
    pub host: Option<String>,
    pub path: String,
    pub query: Option<String>,
    pub headers: Vec<(String, String)>,
    pub peer: Option<IpAddr>,
}

impl Request {
    pub fn add_header(&mut self, name: &str, value: &str) {
        self.headers
            .push((name.to_ascii_lowercase(), value.to_owned()));
    }
}

impl RequestParts for Request {
    fn method(&self) -> &str {
        &self.method
    }
    fn host(&self) -> Option<&str> {
        self.host.as_deref()
    }
    fn path(&self) -> &str {
        &self.path
    }
    fn query(&self) -> Option<&str> {
        self.query.as_deref()
    }
    fn header(&self, lowercase_name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == lowercase_name)
            .map(|(_, v)| v.as_str())
    }
    fn peer_ip(&self) -> Option<IpAddr> {
        self.peer
    }
}

/// A YAML double-quoted scalar holding exactly `s`: everything outside
/// printable ASCII is escaped, since YAML refuses some characters raw.
pub fn yaml_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            ' '..='~' => out.push(c),
            c if (c as u32) <= 0xFFFF => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push_str(&format!("\\U{:08X}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// Path segments as the README describes them: one leading `/` is dropped,
/// `/` has none, `/a/` has `a` and an empty one.
pub fn segments(path: &str) -> Vec<&str> {
    let rest = path.strip_prefix('/').unwrap_or(path);
    if rest.is_empty() {
        Vec::new()
    } else {
        rest.split('/').collect()
    }
}

/// The first value of query parameter `name`, raw; `name` alone is empty.
pub fn first_query_value<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    for pair in query.split('&') {
        let (k, v) = match pair.find('=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, ""),
        };
        if k == name {
            return Some(v);
        }
    }
    None
}

/// Cookie `name` from a `Cookie` header, names and values trimmed.
pub fn cookie_value<'c>(header: &'c str, name: &str) -> Option<&'c str> {
    for pair in header.split(';') {
        if let Some(i) = pair.find('=') {
            if pair[..i].trim() == name {
                return Some(pair[i + 1..].trim());
            }
        }
    }
    None
}

/// The client address: the first `X-Forwarded-For` element, else the peer.
pub fn client_address(req: &Request) -> String {
    if let Some(xff) = req.header("x-forwarded-for") {
        let first = xff.split(',').next().unwrap_or("").trim();
        if !first.is_empty() {
            return first.to_owned();
        }
    }
    req.peer.map(|ip| ip.to_string()).unwrap_or_default()
}

/// `[A-Za-z_][A-Za-z0-9_]*`: path parameter names.
pub fn is_param_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

// ---------------------------------------------------------------------------
// HTTP/1 references for the proxy's parsers and framers (ringress crate).
// Written from RFC 9112 and the proxy's documented rules, not from its code.

/// Optional whitespace, plus the line breaks an obs-folded value keeps.
fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

pub fn trim_ws(v: &[u8]) -> &[u8] {
    let start = v.iter().position(|&b| !is_ws(b)).unwrap_or(v.len());
    let end = v.iter().rposition(|&b| !is_ws(b)).map_or(start, |e| e + 1);
    &v[start..end]
}

/// Bytes allowed in chunk extensions and trailer lines: anything but
/// controls (HTAB excepted), so no bare CR or LF.
pub fn field_byte(b: u8) -> bool {
    b == b'\t' || (b >= 0x20 && b != 0x7f)
}

/// A size line (without CRLF) the proxy accepts: 1 to 15 hex digits, then
/// optionally `;`, SP or HTAB starting an extension of field bytes. `Err`
/// when no continuation of `line` can become one. `Ok(None)` for a valid
/// prefix that has no digit yet.
fn size_line(line: &[u8]) -> Result<Option<u64>, ()> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits > 15 {
        return Err(());
    }
    let ext = &line[digits..];
    if !ext.is_empty() && (digits == 0 || !matches!(ext[0], b';' | b' ' | b'\t')) {
        return Err(());
    }
    if !ext.iter().all(|&b| field_byte(b)) {
        return Err(());
    }
    if digits == 0 {
        return Ok(None);
    }
    let text = std::str::from_utf8(&line[..digits]).unwrap();
    Ok(Some(u64::from_str_radix(text, 16).unwrap()))
}

enum Line<'a> {
    /// The line's bytes and the offset just past its CRLF.
    Whole(&'a [u8], usize),
    /// No CRLF yet; whether the buffer ends in the line's CR (dropped).
    Partial(&'a [u8], bool),
    /// CR followed by something other than LF.
    Bad,
}

fn crlf_line(buf: &[u8], at: usize) -> Line<'_> {
    let rest = &buf[at..];
    match rest.iter().position(|&b| b == b'\r') {
        None => Line::Partial(rest, false),
        Some(p) if p + 1 == rest.len() => Line::Partial(&rest[..p], true),
        Some(p) if rest[p + 1] == b'\n' => Line::Whole(&rest[..p], at + p + 2),
        Some(_) => Line::Bad,
    }
}

/// A size line of a chunked body: where it starts, its length without CRLF,
/// the size it states.
#[derive(Debug, Clone, Copy)]
pub struct SizeLine {
    pub at: usize,
    pub len: usize,
    pub size: u64,
}

/// Where a chunked body at the start of `buf` ends (RFC 9112 §7.1: chunks of
/// `size [ext] CRLF data CRLF`, a zero-size chunk, trailer lines, a blank
/// line; CRLF only, as the proxy documents), its size lines appended to
/// `lines`. `Ok(None)`: `buf` is a valid beginning; `Err`: it can't be.
pub fn reference_chunked_end(buf: &[u8], lines: &mut Vec<SizeLine>) -> Result<Option<usize>, ()> {
    let mut at = 0;
    loop {
        let (line, next) = match crlf_line(buf, at) {
            Line::Whole(l, n) => (l, n),
            // After its CR, the size line is complete: it needs its digits.
            Line::Partial(l, true) => return size_line(l)?.map(|_| None).ok_or(()),
            Line::Partial(l, false) => return size_line(l).map(|_| None),
            Line::Bad => return Err(()),
        };
        let size = size_line(line)?.ok_or(())?;
        lines.push(SizeLine { at, len: line.len(), size });
        at = next;
        if size == 0 {
            break;
        }
        let have = (buf.len() - at) as u64;
        if have <= size {
            return Ok(None);
        }
        let data_end = at + size as usize;
        match &buf[data_end..buf.len().min(data_end + 2)] {
            b"\r" => return Ok(None),
            b"\r\n" => at = data_end + 2,
            _ => return Err(()),
        }
    }
    loop {
        match crlf_line(buf, at) {
            Line::Whole([], n) => return Ok(Some(n)),
            Line::Whole(l, n) if l.iter().all(|&b| field_byte(b)) => at = n,
            Line::Partial(l, _) if l.iter().all(|&b| field_byte(b)) => return Ok(None),
            _ => return Err(()),
        }
    }
}

/// How a response body ends, as the reference sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Empty,
    Length(u64),
    Chunked,
    UntilClose,
}

/// RFC 9112 §6.3 for a response: `None` when its framing is ambiguous or
/// broken. Content-Length: each field one number of digits (no list, no
/// sign, within u64); repeats must agree. Broken lengths fail even where
/// the status has no body. HEAD, 1xx, 204, 304: no body. Transfer-Encoding
/// with Content-Length: ambiguous; its codings, all fields one list with
/// empty elements dropped: `chunked` last means chunked, another coding
/// last means until close, none at all is broken.
pub fn reference_response_framing(
    status: u16,
    head_request: bool,
    fields: &[(&str, &[u8])],
) -> Option<Framing> {
    let mut length = None;
    let mut te_seen = false;
    let mut codings: Vec<&[u8]> = Vec::new();
    for (name, value) in fields {
        if name.eq_ignore_ascii_case("content-length") {
            let v = trim_ws(value);
            if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let n: u64 = std::str::from_utf8(v).ok()?.parse().ok()?;
            if length.is_some_and(|l| l != n) {
                return None;
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            te_seen = true;
            codings.extend(value.split(|&b| b == b',').map(trim_ws).filter(|c| !c.is_empty()));
        }
    }
    if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
        return Some(Framing::Empty);
    }
    if te_seen {
        if length.is_some() {
            return None;
        }
        let last = codings.last()?;
        return Some(if last.eq_ignore_ascii_case(b"chunked") {
            Framing::Chunked
        } else {
            Framing::UntilClose
        });
    }
    Some(length.map_or(Framing::UntilClose, Framing::Length))
}

/// The obs-fold rule (RFC 9112 §5.2) as the proxy documents it: each run of
/// whitespace holding a line break becomes one SP, or nothing at the end.
pub fn reference_unfold(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < value.len() {
        if is_ws(value[i]) {
            let start = i;
            while i < value.len() && is_ws(value[i]) {
                i += 1;
            }
            let run = &value[start..i];
            if !run.iter().any(|&b| b == b'\r' || b == b'\n') {
                out.extend_from_slice(run);
            } else if i < value.len() {
                out.push(b' ');
            }
        } else {
            out.push(value[i]);
            i += 1;
        }
    }
    out
}

/// The non-empty elements of a comma list, trimmed.
pub fn list_elements(value: &[u8]) -> Vec<&[u8]> {
    value
        .split(|&b| b == b',')
        .map(|e| e.trim_ascii())
        .filter(|e| !e.is_empty())
        .collect()
}

/// The dot-segment rule of RFC 3986 §5.2.4 with `%2e` as `.`, and empty
/// segments merged, for an origin-form path (`/...`). `Err` when `..`
/// climbs above the root.
pub fn reference_normalize(path: &str) -> Result<String, ()> {
    let rest = &path[1..];
    let segs: Vec<&str> = rest.split('/').collect();
    let mut kept: Vec<&str> = Vec::new();
    let mut trailing = false;
    for seg in &segs {
        let decoded = seg.to_ascii_lowercase().replace("%2e", ".");
        trailing = true;
        match decoded.as_str() {
            ".." => {
                kept.pop().ok_or(())?;
            }
            "." | "" => {}
            _ => {
                kept.push(seg);
                trailing = false;
            }
        }
    }
    let mut out: String = kept.iter().map(|s| format!("/{s}")).collect();
    if out.is_empty() || trailing {
        out.push('/');
    }
    Ok(out)
}
