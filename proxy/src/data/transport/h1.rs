//! HTTP/1.1 framing for the fast path: how a response body ends, where a
//! chunked body ends, and which headers stop at the proxy. Bodies pass through
//! byte for byte; only their framing is tracked.

/// How the body of a response ends (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body: a response to HEAD, or 1xx, 204, 304.
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`, ending with the last chunk and trailers.
    Chunked,
    /// Neither: the body ends when the upstream closes the connection.
    UntilClose,
}

/// A response head the proxy refuses to forward: its body's end is ambiguous.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AmbiguousFraming;

/// The framing of a response to a request of method `head_request` (HEAD or not).
pub fn response_framing(
    status: u16,
    head_request: bool,
    headers: &[httparse::Header<'_>],
) -> Result<BodyFraming, AmbiguousFraming> {
    let mut length: Option<u64> = None;
    let mut chunked = None;
    for h in headers {
        if h.name.eq_ignore_ascii_case("content-length") {
            let value = std::str::from_utf8(h.value)
                .ok()
                .map(str::trim)
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or(AmbiguousFraming)?;
            if length.is_some_and(|l| l != value) {
                return Err(AmbiguousFraming);
            }
            length = Some(value);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // The final coding decides; several headers form one list.
            let last = h.value.rsplit(|&b| b == b',').next().unwrap_or(b"");
            chunked = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        }
    }
    if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(BodyFraming::Empty);
    }
    match (chunked, length) {
        // Both: a desync waiting to happen between us and the client.
        (Some(_), Some(_)) => Err(AmbiguousFraming),
        (Some(true), None) => Ok(BodyFraming::Chunked),
        (Some(false), None) => Ok(BodyFraming::UntilClose),
        (None, Some(n)) => Ok(BodyFraming::Length(n)),
        (None, None) => Ok(BodyFraming::UntilClose),
    }
}

/// Hop-by-hop headers (RFC 9110 §7.6.1) that a proxy must not forward, in
/// lowercase, besides `Upgrade`, which pingora's path keeps for a handshake.
/// `Transfer-Encoding` is not among them: bodies are framed by their own rules.
pub const HOP_BY_HOP: [&str; 5] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
];

/// Headers that describe one connection and are not forwarded: [`HOP_BY_HOP`]
/// and `Upgrade` (the fast path never takes an upgrade).
pub fn is_hop_by_hop(name: &str) -> bool {
    // By length first: most headers are none of these, and this runs per header.
    let candidates: &[&str] = match name.len() {
        2 => &["te"],
        7 => &["upgrade", "trailer"],
        10 => &["connection", "keep-alive"],
        16 => &["proxy-connection"],
        _ => return false,
    };
    candidates.iter().any(|h| name.eq_ignore_ascii_case(h))
}

/// A chunked body broke its framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadChunk;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    Size { size: u64, digits: u8 },
    Extension { size: u64 },
    SizeLf { size: u64 },
    Data(u64),
    DataCr,
    DataLf,
    TrailerStart,
    TrailerLine,
    TrailerLineLf,
    TrailerEndLf,
    Done,
}

/// Follows a chunked body as it streams past, to know where it ends.
#[derive(Debug, Clone, Copy)]
pub struct ChunkedEnd {
    state: Chunk,
}

impl Default for ChunkedEnd {
    fn default() -> Self {
        Self {
            state: Chunk::Size { size: 0, digits: 0 },
        }
    }
}

impl ChunkedEnd {
    /// Consumes `bytes`; returns how many of them belong to the body when the
    /// body ends inside them (the rest is not part of this response).
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Option<usize>, BadChunk> {
        let mut i = 0;
        while i < bytes.len() {
            if let Chunk::Data(left) = self.state {
                let take = left.min((bytes.len() - i) as u64);
                i += take as usize;
                self.state = if take == left {
                    Chunk::DataCr
                } else {
                    Chunk::Data(left - take)
                };
                continue;
            }
            let b = bytes[i];
            i += 1;
            self.state = match self.state {
                Chunk::Size { size, digits } => match (b as char).to_digit(16) {
                    // 15 hex digits keep the size within u64 with room to spare.
                    Some(d) if digits < 15 => Chunk::Size {
                        size: size * 16 + d as u64,
                        digits: digits + 1,
                    },
                    Some(_) => return Err(BadChunk),
                    None if digits == 0 => return Err(BadChunk),
                    None => match b {
                        b';' | b' ' | b'\t' => Chunk::Extension { size },
                        b'\r' => Chunk::SizeLf { size },
                        _ => return Err(BadChunk),
                    },
                },
                Chunk::Extension { size } if b == b'\r' => Chunk::SizeLf { size },
                Chunk::Extension { size } if !is_control(b) => Chunk::Extension { size },
                Chunk::SizeLf { size } if b == b'\n' => after_size_line(size),
                Chunk::DataCr if b == b'\r' => Chunk::DataLf,
                Chunk::DataLf if b == b'\n' => Chunk::Size { size: 0, digits: 0 },
                Chunk::TrailerStart if b == b'\r' => Chunk::TrailerEndLf,
                Chunk::TrailerStart | Chunk::TrailerLine if !is_control(b) => Chunk::TrailerLine,
                Chunk::TrailerLine if b == b'\r' => Chunk::TrailerLineLf,
                Chunk::TrailerLineLf if b == b'\n' => Chunk::TrailerStart,
                Chunk::TrailerEndLf if b == b'\n' => Chunk::Done,
                _ => return Err(BadChunk),
            };
            if self.state == Chunk::Done {
                return Ok(Some(i));
            }
        }
        Ok(None)
    }
}

/// Control characters other than HTAB: never inside a chunk extension or a
/// trailer line. Bare LF line ends are refused too: the body is forwarded byte
/// for byte, so any framing a stricter parser downstream would read otherwise
/// must not pass.
fn is_control(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f
}

fn after_size_line(size: u64) -> Chunk {
    if size == 0 {
        Chunk::TrailerStart
    } else {
        Chunk::Data(size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_are_known_in_any_case_and_nothing_else_is() {
        for name in HOP_BY_HOP.iter().chain(&["upgrade"]) {
            assert!(is_hop_by_hop(name), "{name}");
            assert!(is_hop_by_hop(&name.to_ascii_uppercase()), "{name}");
        }
        for name in [
            "host",
            "content-length",
            "transfer-encoding",
            "tf",
            "upgrades",
            "x-connection",
        ] {
            assert!(!is_hop_by_hop(name), "{name}");
        }
    }

    fn framing(
        status: u16,
        head: bool,
        headers: &[(&str, &str)],
    ) -> Result<BodyFraming, AmbiguousFraming> {
        let hs: Vec<httparse::Header<'_>> = headers
            .iter()
            .map(|(n, v)| httparse::Header {
                name: n,
                value: v.as_bytes(),
            })
            .collect();
        response_framing(status, head, &hs)
    }

    #[test]
    fn response_framing_follows_rfc_9112() {
        assert_eq!(
            framing(200, false, &[("Content-Length", "12")]),
            Ok(BodyFraming::Length(12))
        );
        assert_eq!(
            framing(
                200,
                false,
                &[("content-length", "5"), ("Content-Length", "5")]
            ),
            Ok(BodyFraming::Length(5))
        );
        assert_eq!(
            framing(200, false, &[("Transfer-Encoding", "gzip, chunked")]),
            Ok(BodyFraming::Chunked)
        );
        assert_eq!(
            framing(200, false, &[("Transfer-Encoding", "gzip")]),
            Ok(BodyFraming::UntilClose)
        );
        assert_eq!(framing(200, false, &[]), Ok(BodyFraming::UntilClose));
        assert_eq!(
            framing(200, true, &[("Content-Length", "12")]),
            Ok(BodyFraming::Empty)
        );
        assert_eq!(framing(204, false, &[]), Ok(BodyFraming::Empty));
        assert_eq!(
            framing(304, false, &[("Content-Length", "12")]),
            Ok(BodyFraming::Empty)
        );
        assert_eq!(
            framing(
                200,
                false,
                &[("Content-Length", "5"), ("Content-Length", "6")]
            ),
            Err(AmbiguousFraming)
        );
        assert_eq!(
            framing(200, false, &[("Content-Length", "-1")]),
            Err(AmbiguousFraming)
        );
        assert_eq!(
            framing(200, false, &[("Content-Length", "1,1")]),
            Err(AmbiguousFraming)
        );
        assert_eq!(
            framing(
                200,
                false,
                &[("Content-Length", "5"), ("Transfer-Encoding", "chunked")]
            ),
            Err(AmbiguousFraming)
        );
    }

    #[test]
    fn chunked_end_is_found_at_any_split() {
        let body = b"4\r\nWiki\r\n5;ext=1\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-Trailer: 1\r\n\r\n";
        let mut tail = body.to_vec();
        tail.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        for split in 0..body.len() {
            let mut end = ChunkedEnd::default();
            assert_eq!(end.feed(&tail[..split]), Ok(None), "split {split}");
            assert_eq!(
                end.feed(&tail[split..]),
                Ok(Some(body.len() - split)),
                "split {split}"
            );
        }
        let mut end = ChunkedEnd::default();
        assert_eq!(end.feed(b"0\r\n\r\n"), Ok(Some(5)));
    }

    #[test]
    fn broken_chunks_are_refused() {
        for bad in [
            &b"x\r\n"[..],
            b"\r\n",
            b"3\r\nabcX",
            b"3\r\nabc\rX",
            b"1234567890abcdef0\r\n",
            // Bare LF line ends and control characters: a stricter parser
            // downstream would frame these differently.
            b"3\nabc\r\n",
            b"3\r\nabc\n",
            b"3;a\n",
            b"3;a\x01\r\n",
            b"0\r\nX-T: 1\n\r\n",
            b"0\r\n\n",
            b"3\r\n",
        ] {
            let mut end = ChunkedEnd::default();
            let r = end.feed(bad);
            if bad == b"3\r\n" {
                assert_eq!(r, Ok(None));
            } else {
                assert_eq!(r, Err(BadChunk), "{:?}", String::from_utf8_lossy(bad));
            }
        }
    }

    #[test]
    fn hop_by_hop_names_ignore_case() {
        assert!(is_hop_by_hop("Connection"));
        assert!(is_hop_by_hop("KEEP-ALIVE"));
        assert!(!is_hop_by_hop("Content-Length"));
        assert!(!is_hop_by_hop("Transfer-Encoding"));
    }
}
