//! The state of one client connection shared by the front door's stream
//! wrapper, its request loop and pingora's `new_ctx`: which phase the current
//! request is in, and bytes to replay into pingora's pipeline.
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Mutex;

use bytes::Bytes;
use tokio::io::ReadBuf;

use std::time::Duration;

use crate::data::metrics::Reject;
use crate::data::table::now_ms;

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
    /// Upgrade requests: how long the connection may go without a byte
    /// either way (ms; 0: not watched). See [`watch_inactivity`].
    pub inactive_limit_ms: AtomicU64,
    /// When a byte last passed either way ([`now_ms`] clock).
    pub last_active_ms: AtomicU64,
    /// The limit passed: reads from the client now fail, which ends the
    /// request through pingora's own error path.
    pub inactive_expired: AtomicBool,
    /// The endpoint answered the upgrade with 101: the limit is the tunnel's.
    pub tunnel: AtomicBool,
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

impl Watch {
    /// Notes a byte passing either way, while inactivity is watched.
    #[inline]
    pub fn active(&self) {
        if self.inactive_limit_ms.load(Relaxed) != 0 {
            self.last_active_ms.store(now_ms(), Relaxed);
        }
    }

    /// When the connection expires if nothing passes (`now_ms` clock).
    pub fn inactive_deadline_ms(&self) -> Option<u64> {
        match self.inactive_limit_ms.load(Relaxed) {
            0 => None,
            limit => Some(self.last_active_ms.load(Relaxed).saturating_add(limit)),
        }
    }

    /// Clears the inactivity watch for the connection's next request.
    pub fn reset_inactivity(&self) {
        // Every request passes here; only an upgrade request set anything.
        if self.inactive_limit_ms.load(Relaxed) == 0 {
            return;
        }
        self.inactive_limit_ms.store(0, Relaxed);
        self.inactive_expired.store(false, Relaxed);
        self.tunnel.store(false, Relaxed);
    }
}

/// From now on, the current request ends once no byte passed either way for
/// `limit` (the front door's timer enforces it). Used for upgrade requests,
/// whose endpoint reads have no per-read timeout: a tunnel may be quiet one
/// way for as long as the other way talks. `tunnel`: the upgrade succeeded.
pub fn watch_inactivity(limit: Duration, tunnel: bool) {
    let _ = WATCH.try_with(|w| {
        w.last_active_ms.store(now_ms(), Relaxed);
        w.inactive_limit_ms
            .store((limit.as_millis() as u64).max(1), Relaxed);
        w.tunnel.store(tunnel, Relaxed);
    });
}

/// Whether the current request was ended by [`watch_inactivity`]'s limit,
/// and whether it was a tunnel's.
pub fn inactivity_expired() -> Option<bool> {
    WATCH
        .try_with(|w| {
            w.inactive_expired
                .load(Relaxed)
                .then(|| w.tunnel.load(Relaxed))
        })
        .ok()
        .flatten()
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
