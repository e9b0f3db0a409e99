//! The data plane: every request, whatever transport carries it, is decided
//! by the request-policy core ([`policy`]); transports ([`transport`]) move
//! bytes and ask it.
pub mod access_log;
pub mod lifo;
pub mod metrics;
pub mod plane;
pub mod policy;
pub mod table;
pub mod transport;
