//! Transports: they move bytes between clients and endpoints and ask the
//! policy core ([`crate::data::policy`]) what to do.
pub mod buffers;
pub mod conn_watch;
pub mod fast_h1;
pub mod front;
pub mod h1;
pub mod head_lines;
pub mod lazy_timer;
pub mod listener;
pub mod pingora;
pub mod plain;
pub mod request_end;
pub mod tls;
pub mod tls_client;
pub mod upgrade;
pub mod upstream_pool;
pub mod write_buffer;

/// Bytes of response held before a write to the client ([`write_buffer`]):
/// pingora's pipeline writes a head and its body separately.
pub const DOWNSTREAM_WRITE_BUFFER: usize = 16 * 1024;
