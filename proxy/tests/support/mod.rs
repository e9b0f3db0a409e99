//! Test harness: real backends on loopback, the real `ringress` binary, and a
//! small blocking HTTP/1.1 client.
#![allow(dead_code, unused_imports)]

pub mod backend;
pub mod client;
pub mod cluster;
pub mod faulty;
pub mod k8s_apiserver;
pub mod load;
pub mod process;
pub mod raw;
pub mod tls;
pub mod traffic;

pub use backend::Backend;
pub use client::{Client, Response};
pub use load::Load;
pub use process::Ringress;
pub use raw::{exchange, Raw, RawResponse};

use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

/// A loopback port free right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// Polls `f` until it returns `Some`, or panics after `within`.
pub fn eventually<T>(within: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One `products` route (`/products/{id}`, keyed by the id) over `backends`
/// by consistent hash; `extra_filters` are YAML lines spliced into its filters.
pub fn consistent_routes(backends: &[&Backend], extra_filters: &str) -> String {
    let endpoints: Vec<String> = backends
        .iter()
        .map(|b| format!("        - {}", b.url()))
        .collect();
    format!(
        r#"routes:
  - name: products
    match:
      path: /products/{{id}}
    filters:
      - consistentHashKey: "${{id}}"
{extra_filters}    backend:
      algorithm: consistentHash
      endpoints:
{}
"#,
        endpoints.join("\n")
    )
}
