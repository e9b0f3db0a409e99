//! The state of one client connection shared by the front door's stream
//! wrapper, its request loop and pingora's `new_ctx`: which phase the current
//! request is in, and bytes to replay into pingora's pipeline.
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering::Relaxed};
use std::sync::Mutex;

use bytes::Bytes;
use tokio::io::ReadBuf;

use crate::data::metrics::Reject;

// Phases of the current request, as seen by the wrapper.
pub const IDLE: u8 = 0;
pub const HEADER: u8 = 1;
pub const PARSED: u8 = 2;

// Replies the wrapper writes itself.
pub const NO_REPLY: u8 = 0;
pub const TIMEOUT_REPLY: u8 = 1;
pub const TOO_LARGE_REPLY: u8 = 2;

/// Per-connection state shared by the stream wrapper, the request loop and
/// `Proxy::new_ctx`. Everything runs on the connection's task; atomics only
/// make the sharing `Sync`.
#[derive(Debug, Default)]
pub struct Watch {
    pub phase: AtomicU8,
    pub reply: AtomicU8,
    /// `Reject` index + 1 once the wrapper has ended the connection.
    pub ended: AtomicU8,
    /// pingora wrote a response before a request header was parsed: its
    /// parser refused the request (400), or the method (405 for CONNECT).
    pub answered_early: AtomicBool,
    /// The request being read is a CONNECT (what pingora refuses with 405).
    pub connect: AtomicBool,
    /// The current request's line failed `screen::request_line_ok`, as
    /// received (pingora escapes what its parser does not take).
    pub bad_request_line: AtomicBool,
    /// The connection is HTTP/2 with prior knowledge (h2c): the stream
    /// wrapper passes bytes through and reports ALPN h2 to pingora.
    pub h2: AtomicBool,
    /// Set while `replay` holds bytes the fast path read and handed to pingora.
    pub replaying: AtomicBool,
    replay: Mutex<Bytes>,
}

impl Watch {
    /// Bytes the next reads return before the socket's.
    pub fn set_replay(&self, bytes: Bytes) {
        if !bytes.is_empty() {
            *self.replay.lock().unwrap_or_else(|e| e.into_inner()) = bytes;
            self.replaying.store(true, Relaxed);
        }
    }

    pub fn read_replay(&self, buf: &mut ReadBuf<'_>) {
        let mut replay = self.replay.lock().unwrap_or_else(|e| e.into_inner());
        let n = replay.len().min(buf.remaining());
        buf.put_slice(&replay.split_to(n));
        if replay.is_empty() {
            self.replaying.store(false, Relaxed);
        }
    }

    pub fn end(&self, reason: Reject) {
        self.ended.store(reason as u8 + 1, Relaxed);
    }

    pub fn ended(&self) -> Option<Reject> {
        match self.ended.load(Relaxed) {
            0 => None,
            n => Some(Reject::ALL[n as usize - 1]),
        }
    }

    pub fn reply_reason(&self) -> Reject {
        match self.reply.load(Relaxed) {
            TOO_LARGE_REPLY => Reject::HeaderTooLarge,
            _ => Reject::HeaderTimeout,
        }
    }
}

tokio::task_local! {
    pub static WATCH: std::sync::Arc<Watch>;
}

/// Whether the current request's line, as received, passed
/// `screen::request_line_ok` (true outside a client connection's task).
pub fn request_line_ok() -> bool {
    !WATCH
        .try_with(|w| w.bad_request_line.load(Relaxed))
        .unwrap_or(false)
}

/// Called once pingora has parsed a request header (from `new_ctx`): from here
/// on the request belongs to the proxy's own timeouts and limits.
#[inline]
pub fn header_parsed() {
    let _ = WATCH.try_with(|w| w.phase.store(PARSED, Relaxed));
}
