//! The control plane: the route file and Kubernetes discovery produce the
//! routing table the data plane reads ([`crate::data::table`]), rebuilt off
//! the hot path and swapped whole.
pub mod certificates;
pub mod discovery;
pub mod ingress;
pub mod kubernetes;
pub mod resolve;
pub mod route_file;
pub mod shutdown;
pub mod table_build;
pub mod upstream_tls;
