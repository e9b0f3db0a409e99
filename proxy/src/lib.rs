//! The ringress proxy: pingora data plane, admin endpoint, metrics, route-file
//! watching, Kubernetes discovery and LIFO admission.
pub mod access_log;
pub mod admin;
pub mod cli;
pub mod discovery;
pub mod fast_path;
pub mod front;
pub mod h1;
pub mod kubernetes;
pub mod lazy_timer;
pub mod lifo;
pub mod metrics;
pub mod proxy;
pub mod request;
pub mod runtime;
pub mod server;
pub mod shutdown;
pub mod state;
pub mod upstream_pool;
pub mod watch;
