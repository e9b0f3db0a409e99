//! HTTP/1.1 body framing for the fast transport: where a chunked body ends
//! (which framing a response has is the policy core's `response::framing`).
//! Bodies pass through byte for byte; only their framing is tracked.

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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
}
