//! Where each request on a client connection ends, so that pipelined
//! requests (RFC 9112 §9.3) wait for their turn instead of being read as part
//! of the one before.
//!
//! The front door's stream wrapper hands the transports one request message
//! at a time (head, then body): bytes past its end are held back until the
//! next request begins. Whichever transport serves a request, it never sees
//! the next one's bytes, so responses go out in request order and nothing is
//! dropped. The framing here only splits the stream; what a request means
//! (and whether it is refused) is still the policy core's and the parser's
//! business. A head this module cannot frame with certainty (both
//! `Content-Length` and `Transfer-Encoding`, several lengths, a coding other
//! than `chunked`, an upgrade, CONNECT) is passed [`Through`](State::Through)
//! unsplit: the request is refused or tunnelled, and nothing follows it.
use crate::data::policy::screen::request_line_ok;
use crate::data::transport::h1::ChunkedEnd;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the head; `scanned` bytes of it are known to hold no blank line.
    Head,
    /// `n` body bytes left.
    Length(u64),
    Chunked(ChunkedEnd),
    /// The message is complete: further bytes belong to the next request.
    Done,
    /// Not split: every byte goes to the current request.
    Through,
}

/// Follows one request message after another through the client's bytes.
#[derive(Debug)]
pub struct RequestEnd {
    state: State,
    /// The head so far, kept only when it arrives in more than one read.
    partial: Vec<u8>,
    /// The request line passed `screen::request_line_ok` (checked on the
    /// bytes as received, whatever a parser makes of them).
    line_ok: bool,
}

impl Default for RequestEnd {
    fn default() -> Self {
        Self {
            state: State::Head,
            partial: Vec::new(),
            line_ok: true,
        }
    }
}

impl RequestEnd {
    /// A new request begins with the next byte.
    pub fn next_request(&mut self) {
        self.state = State::Head;
        self.partial.clear();
        self.line_ok = true;
    }

    /// Whether the current request's line is well formed (true until its
    /// head is complete).
    pub fn line_ok(&self) -> bool {
        self.line_ok
    }

    /// Whether the current request is complete (later bytes wait).
    pub fn done(&self) -> bool {
        self.state == State::Done
    }

    /// How many of `bytes`, the next ones on the connection, belong to the
    /// current request; the rest belong to the requests after it.
    pub fn take(&mut self, bytes: &[u8]) -> usize {
        let mut used = 0;
        loop {
            let rest = &bytes[used..];
            match &mut self.state {
                State::Head => match self.head(rest) {
                    Some(n) => used += n,
                    None => return bytes.len(),
                },
                State::Length(left) => {
                    let n = (*left).min(rest.len() as u64);
                    *left -= n;
                    if *left == 0 {
                        self.state = State::Done;
                    }
                    return used + n as usize;
                }
                State::Chunked(end) => {
                    return match end.feed(rest) {
                        Ok(Some(n)) => {
                            self.state = State::Done;
                            used + n
                        }
                        Ok(None) => bytes.len(),
                        // The parser downstream refuses it; the connection closes.
                        Err(_) => {
                            self.state = State::Through;
                            bytes.len()
                        }
                    };
                }
                State::Done => return used,
                State::Through => return bytes.len(),
            }
        }
    }

    /// Consumes head bytes: `Some(n)` when the head ends `n` bytes into
    /// `bytes` (the state is then the body's framing), `None` when all of them
    /// belong to a head that goes on.
    fn head(&mut self, bytes: &[u8]) -> Option<usize> {
        // Empty lines before a request line are ignored (RFC 9112 §2.2), as
        // the parsers do: they must not read as a head's blank line.
        if self.partial.is_empty() {
            let skipped = bytes
                .iter()
                .take_while(|&&b| b == b'\r' || b == b'\n')
                .count();
            if skipped == bytes.len() {
                return None;
            }
            // The common case: the whole head in one read, one pass over it.
            let bytes = &bytes[skipped..];
            let line = request_line(bytes);
            let Some((end, state)) = scan(line, bytes) else {
                self.partial.extend_from_slice(bytes);
                return None;
            };
            self.line_ok = request_line_ok(line);
            self.state = state;
            return Some(skipped + end);
        }
        let Some(end) = head_end(&self.partial, bytes) else {
            self.partial.extend_from_slice(bytes);
            return None;
        };
        let mut head = std::mem::take(&mut self.partial);
        head.extend_from_slice(&bytes[..end]);
        let line = request_line(&head);
        let (_, state) = scan(line, &head).unwrap_or((head.len(), State::Through));
        self.line_ok = request_line_ok(line);
        self.state = state;
        head.clear();
        self.partial = head; // keeps its allocation for the next slow head
        Some(end)
    }
}

/// Where the head ends in `bytes` (just past its blank line), `partial` being
/// the part of it read before. A blank line is LF LF or LF CR LF, as the
/// parsers accept.
fn head_end(partial: &[u8], bytes: &[u8]) -> Option<usize> {
    if !partial.is_empty() {
        // A blank line may straddle the two reads: look at the last 2 bytes
        // before with the first 3 of these.
        let carry = &partial[partial.len() - partial.len().min(2)..];
        let mut joined = [0u8; 5];
        let take = bytes.len().min(3);
        joined[..carry.len()].copy_from_slice(carry);
        joined[carry.len()..carry.len() + take].copy_from_slice(&bytes[..take]);
        if let Some(end) = blank_line_end(&joined[..carry.len() + take]) {
            return Some(end - carry.len());
        }
    }
    blank_line_end(bytes)
}

/// Just past the first blank line in `b`.
fn blank_line_end(b: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = memchr::memchr(b'\n', &b[from..]) {
        let lf = from + i;
        match b.get(lf + 1) {
            Some(b'\n') => return Some(lf + 2),
            Some(b'\r') if b.get(lf + 2) == Some(&b'\n') => return Some(lf + 3),
            _ => from = lf + 1,
        }
    }
    None
}

/// The request line at the start of `head`, without its line end (short:
/// a plain scan beats memchr's set-up).
fn request_line(head: &[u8]) -> &[u8] {
    let line = &head[..head.iter().position(|&b| b == b'\n').unwrap_or(head.len())];
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Where the head at the start of `b`, whose request line is `line`, ends (just past its blank line) and
/// the framing of the body after it (RFC 9112 §6.3), or [`State::Through`]
/// where that is not certain; `None` while the head goes on. Runs on every
/// request, so in one pass over its line feeds: a field line is looked at
/// only when its first letter could start one of the three names that
/// matter.
fn scan(line: &[u8], b: &[u8]) -> Option<(usize, State)> {
    let mut through = line.starts_with(b"CONNECT ")
        || !(line.ends_with(b"HTTP/1.1") || line.ends_with(b"HTTP/1.0"));
    let mut length: Option<u64> = None;
    let mut chunked = false;
    for lf in memchr::memchr_iter(b'\n', b) {
        let start = lf + 1;
        let first = *b.get(start)?;
        match first {
            b'\n' => return Some((start + 1, framing(through, length, chunked))),
            b'\r' => match b.get(start + 1)? {
                b'\n' => return Some((start + 2, framing(through, length, chunked))),
                _ => continue,
            },
            _ if !matches!(first | 0x20, b'c' | b't' | b'u') => continue,
            _ => {}
        }
        let field = &b[start..];
        let value = |name_len: usize| {
            let rest = &field[name_len..];
            let end = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
            rest[..end].trim_ascii()
        };
        if starts_with_name(field, b"content-length:") {
            let v = value(15);
            // Leading zeros do not count towards the 19 digits a u64 holds.
            let digits = &v[v
                .iter()
                .take_while(|&&d| d == b'0')
                .count()
                .min(v.len().saturating_sub(1))..];
            let n = (!v.is_empty() && digits.len() <= 19 && v.iter().all(u8::is_ascii_digit)).then(
                || {
                    digits
                        .iter()
                        .fold(0u64, |n, &d| n * 10 + u64::from(d - b'0'))
                },
            );
            match n {
                Some(n) if length.is_none() => length = Some(n),
                _ => through = true,
            }
        } else if starts_with_name(field, b"transfer-encoding:") {
            // A list: empty elements do not count (RFC 9110 §5.6.1), so
            // `, chunked` is chunked, as the screen and pingora read it.
            let mut codings = value(18).split(|&b| b == b',').map(<[u8]>::trim_ascii);
            let only_chunked = codings.clone().filter(|c| !c.is_empty()).count() == 1
                && codings.any(|c| c.eq_ignore_ascii_case(b"chunked"));
            through |= chunked || !only_chunked;
            chunked = true;
        } else if starts_with_name(field, b"upgrade:") {
            through = true;
        }
    }
    None
}

fn starts_with_name(field: &[u8], name: &[u8]) -> bool {
    field.len() >= name.len() && field[..name.len()].eq_ignore_ascii_case(name)
}

fn framing(through: bool, length: Option<u64>, chunked: bool) -> State {
    match (through, length, chunked) {
        (true, _, _) | (false, Some(_), true) => State::Through,
        (false, _, true) => State::Chunked(ChunkedEnd::default()),
        (false, Some(0) | None, false) => State::Done,
        (false, Some(n), false) => State::Length(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Splits `stream` into messages as the wrapper does, feeding it in
    /// pieces of `step` bytes.
    fn messages(stream: &[u8], step: usize) -> Vec<String> {
        let mut end = RequestEnd::default();
        let (mut out, mut current) = (Vec::new(), Vec::new());
        let mut pending = stream.to_vec();
        while !pending.is_empty() {
            let piece = pending.len().min(step);
            let n = end.take(&pending[..piece]);
            current.extend_from_slice(&pending[..n]);
            pending.drain(..n);
            if end.done() || n == 0 {
                out.push(String::from_utf8_lossy(&current).into_owned());
                current.clear();
                end.next_request();
            }
        }
        if !current.is_empty() {
            out.push(String::from_utf8_lossy(&current).into_owned());
        }
        out
    }

    #[test]
    fn pipelined_requests_are_split_at_any_read_size() {
        let get = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
        let post = "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello";
        let chunked = "POST /c HTTP/1.1\r\nhost: x\r\nTransfer-Encoding: , Chunked,\r\n\r\n3;e=1\r\nabc\r\n0\r\nT: 1\r\n\r\n";
        let padded = "POST /g HTTP/1.1\r\nContent-Length: 000000000000000000001\r\n\r\nx";
        let bare_lf = "GET /d HTTP/1.1\nHost: x\n\n";
        let head = "HEAD /e HTTP/1.0\r\n\r\n";
        let after_empty_lines = "\r\n\r\n\nGET /f HTTP/1.1\r\n\r\n";
        let parts = [
            get,
            post,
            chunked,
            bare_lf,
            head,
            after_empty_lines,
            padded,
            get,
        ];
        let stream = parts.concat();
        for step in 1..=stream.len() {
            assert_eq!(messages(stream.as_bytes(), step), parts, "step {step}");
        }
    }

    #[test]
    fn uncertain_framing_is_not_split() {
        for head in [
            "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: +3\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            "GET / HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
            "CONNECT a:443 HTTP/1.1\r\n\r\n",
            "GET /\r\n\r\n",
        ] {
            let mut end = RequestEnd::default();
            let stream = format!("{head}GET / HTTP/1.1\r\n\r\n");
            assert_eq!(end.take(stream.as_bytes()), stream.len(), "{head:?}");
            assert!(!end.done());
        }
    }

    #[test]
    fn a_broken_chunked_body_is_passed_through() {
        let mut end = RequestEnd::default();
        let stream =
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nGET / HTTP/1.1\r\n\r\n";
        assert_eq!(end.take(stream), stream.len());
    }

    #[test]
    fn a_blank_line_straddling_reads_ends_the_head() {
        let head = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        for split in 1..head.len() {
            let mut end = RequestEnd::default();
            assert_eq!(end.take(&head[..split]), split);
            assert_eq!(end.take(&head[split..]), head.len() - split, "{split}");
            assert!(end.done(), "{split}");
        }
    }
}
