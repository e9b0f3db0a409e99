//! `ringress-routes`: the route file of ringress, free of I/O.
//!
//! * [`RouteTable::parse`] reads the YAML route file, validates all of it and
//!   reports every problem as `file:line:column: route "name": message`.
//! * [`RouteTable::find`] picks the most specific route for a request through
//!   a path-segment trie, without allocating.
//! * [`Route::hash_key`] resolves the consistent-hash key of a request.
//! * [`RouteSource`] publishes new tables atomically for hot reload.
//!
//! ```
//! use ringress_routes::{RequestParts, RouteTable};
//! # struct Get(&'static str);
//! # impl RequestParts for Get {
//! #     fn method(&self) -> &str { "GET" }
//! #     fn host(&self) -> Option<&str> { None }
//! #     fn path(&self) -> &str { self.0 }
//! #     fn query(&self) -> Option<&str> { None }
//! #     fn header(&self, _: &str) -> Option<&str> { None }
//! #     fn peer_ip(&self) -> Option<std::net::IpAddr> { None }
//! # }
//! let table = RouteTable::parse(
//!     "routes.yaml",
//!     r#"
//! routes:
//!   - name: products
//!     match: {path: "/products/{id}"}
//!     filters: [{consistentHashKey: "sku-${id}"}]
//!     backend: {endpoints: [http://10.0.0.1:8080, http://10.0.0.2:8080]}
//! "#,
//! )?;
//! let request = Get("/products/42");
//! let m = table.find(&request).expect("matches");
//! let mut key = String::new();
//! m.route.hash_key(&m, &request, &mut key);
//! assert_eq!(key, "sku-42");
//! # Ok::<(), ringress_routes::RouteErrors>(())
//! ```
#![forbid(unsafe_code)]

mod candidates;
mod duration;
mod error;
mod marks;
mod matcher;
mod parse;
mod reader;
mod request;
mod source;
mod spec;
mod table;
mod template;
mod validate;

pub use duration::{format_duration, parse_duration};
pub use error::{RouteError, RouteErrors};
pub use request::{cookie, host_without_port, query_param, write_client_address, RequestParts};
pub use source::RouteSource;
pub use spec::{
    Backend, BackendTarget, FadeInSpec, FileRef, Filter, LifoGroupSpec, LifoSpec, MatchSpec,
    PassiveHealthCheck, PortRef, Protocol, Route, ServiceRef, Timeouts, UpstreamTls,
    DEFAULT_RETRIES, MAX_PARAMS,
};
pub use table::{Match, RouteTable};
pub use template::Template;
pub use validate::is_tchar;
