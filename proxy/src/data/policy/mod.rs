//! The request-policy core: everything decided about a request, once, for
//! every transport. A transport parses bytes into a request head, then asks,
//! in this order:
//!
//! 1. [`screen`]: is the request acceptable, and which path do routes match?
//! 2. [`routing::route`]: which route (matched once), which hash key?
//! 3. [`routing::admit`]: may it proceed now (LIFO queues)?
//! 4. [`headers`]: which fields go upstream, which are added?
//! 5. [`attempts`]: which endpoint, and after a failure, which next (retry
//!    budget, passive health, bounded-load spills)?
//! 6. [`response`]: may the endpoint's response head be forwarded, and how
//!    does its body end? Then [`headers`] again, downstream.
//! 7. [`error`]: for any failure, the one answer the client gets.
//! 8. [`record`]: metrics and the access-log line.
pub mod attempts;
pub mod error;
pub mod headers;
pub mod record;
pub mod response;
pub mod routing;
pub mod screen;
