//! Raw HTTP/1 over a loopback socket, for inputs no well-behaved client sends:
//! write any bytes, read back exactly what the proxy answered and whether it
//! closed the connection.
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

pub struct Raw {
    stream: TcpStream,
    /// Bytes read past the last response.
    buf: Vec<u8>,
    eof: bool,
}

#[derive(Debug, Clone)]
pub struct RawResponse {
    /// The status line without its CRLF, e.g. `HTTP/1.1 400 Bad Request`.
    pub status_line: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Raw {
    pub fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).expect("connect");
        stream.set_nodelay(true).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        Self {
            stream,
            buf: Vec::new(),
            eof: false,
        }
    }

    /// A second handle on the socket, e.g. to write from another thread.
    pub fn stream_clone(&self) -> TcpStream {
        self.stream.try_clone().expect("clone socket")
    }

    /// Writes `bytes`; a proxy that already closed may refuse them (ignored:
    /// what it answered is read next).
    pub fn send(&mut self, bytes: &[u8]) -> &mut Self {
        let _ = self.stream.write_all(bytes);
        self
    }

    /// Reads more into the buffer; false at end of stream, reset or timeout.
    fn fill(&mut self) -> bool {
        if self.eof {
            return false;
        }
        let mut chunk = [0u8; 16 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) | Err(_) => {
                self.eof = true;
                false
            }
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// Reads one response (body framed by Content-Length, else to the end of
    /// the stream); `None` if the connection ended without one.
    pub fn response(&mut self) -> Option<RawResponse> {
        self.read_response(false)
    }

    /// A response to HEAD: its head only, whatever its framing says.
    pub fn response_to_head(&mut self) -> Option<RawResponse> {
        self.read_response(true)
    }

    fn read_response(&mut self, head_only: bool) -> Option<RawResponse> {
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if !self.fill() {
                return None;
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default().to_string();
        let status = status_line.split(' ').nth(1)?.parse().ok()?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let length = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse::<usize>().ok());
        self.buf.drain(..head_end);
        let body = match length {
            _ if head_only => Vec::new(),
            Some(len) => {
                while self.buf.len() < len {
                    if !self.fill() {
                        return None;
                    }
                }
                self.buf.drain(..len).collect()
            }
            None => {
                while self.fill() {}
                std::mem::take(&mut self.buf)
            }
        };
        Some(RawResponse {
            status_line,
            status,
            headers,
            body,
        })
    }

    /// Whether the proxy closes the connection within `within` without
    /// sending anything more.
    pub fn closed_within(&mut self, within: Duration) -> bool {
        let end = Instant::now() + within;
        while !self.eof {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            self.stream.set_read_timeout(Some(left)).unwrap();
            let mut chunk = [0u8; 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => self.eof = true,
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return false;
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return false
                }
                Err(_) => self.eof = true,
            }
        }
        self.stream
            .set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        self.buf.is_empty()
    }
}

/// One exchange on a fresh connection: the response (if any) and whether the
/// connection was closed right after it.
pub fn exchange(addr: SocketAddr, bytes: &[u8]) -> (Option<RawResponse>, bool) {
    let mut raw = Raw::connect(addr);
    raw.send(bytes);
    let response = raw.response();
    let closed = raw.closed_within(Duration::from_secs(2));
    (response, closed)
}
