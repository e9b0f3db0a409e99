//! The ringress proxy. Four layers, each importing only the ones below it
//! (checked by `proxy/tests/layering.rs`; ARCHITECTURE.md walks through them):
//!
//! 1. [`cli`]: command line and the assembly of the pingora server.
//! 2. [`admin`]: the admin listener (`/metrics`, `/readyz`, `/routes`, `/ring`).
//! 3. [`control`]: the control plane, from a route file or an EndpointSlice
//!    change to the routing table in force.
//! 4. [`data`]: the data plane: one request-policy core ([`data::policy`])
//!    behind every transport ([`data::transport`]).
//!
//! Below them, the pure crates `ringress-ring` and `ringress-routes`.
pub mod admin;
pub mod cli;
pub mod control;
pub mod data;
