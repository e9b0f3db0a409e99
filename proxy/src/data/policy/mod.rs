//! The request-policy core: everything decided about a request, once, for
//! every transport.
pub mod request;
