//! The ringress proxy: pingora data plane, admin endpoint, metrics, route-file
//! watching, Kubernetes discovery and LIFO admission.
