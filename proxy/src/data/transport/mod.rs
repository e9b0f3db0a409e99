//! Transports: they move bytes between clients and endpoints and ask the
//! policy core ([`crate::data::policy`]) what to do.
pub mod buffers;
pub mod conn_watch;
pub mod fast_h1;
pub mod front;
pub mod h1;
pub mod lazy_timer;
pub mod pingora;
pub mod request_end;
pub mod upstream_pool;

/// Bytes of response coalesced before a write to the client (the front
/// door's pooled write buffer): a response head and a body that fit leave in
/// one syscall.
pub const DOWNSTREAM_WRITE_BUFFER: usize = 16 * 1024;
