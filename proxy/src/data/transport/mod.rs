//! Transports: they move bytes between clients and endpoints and ask the
//! policy core ([`crate::data::policy`]) what to do.
pub mod buffers;
pub mod conn_watch;
pub mod fast_h1;
pub mod front;
pub mod h1;
pub mod lazy_timer;
pub mod listener;
pub mod pingora;
pub mod plain;
pub mod request_end;
pub mod tls;
pub mod upgrade;
pub mod upstream_pool;

/// Bytes of response buffered before a write to the client: pingora's
/// default 1460 sends a response head and its body in separate syscalls.
pub const DOWNSTREAM_WRITE_BUFFER: usize = 16 * 1024;
