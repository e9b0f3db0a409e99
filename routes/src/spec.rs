//! The compiled form of a route file, as the proxy reads it. Every type
//! serialises to JSON for the admin `/routes` page: durations as Go-style
//! strings, algorithms by name.

use std::time::Duration;

use ringress_ring::Algorithm;
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use crate::duration::format_duration;
use crate::matcher::Compiled;
use crate::template::Template;

/// Most `{param}` segments one `path` may capture; captures live in a
/// fixed-size array so matching never allocates.
pub const MAX_PARAMS: usize = 8;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Route {
    pub name: String,
    #[serde(rename = "match")]
    pub matcher: MatchSpec,
    /// In file order.
    pub filters: Vec<Filter>,
    pub backend: Backend,
    /// The effective bounded-load factor: the last
    /// `consistentHashBalanceFactor`, else [`ringress_ring::DEFAULT_BALANCE_FACTOR`].
    pub balance_factor: f64,
    /// The last `lifo` filter, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lifo: Option<LifoSpec>,
    /// The last `lifoGroup` filter, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lifo_group: Option<LifoGroupSpec>,
    /// The last `fadeIn` filter, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fade_in: Option<FadeInSpec>,
    /// `setRequestHeader` filters in order, one per name (the last wins); names lowercase.
    #[serde(skip)]
    pub request_headers: Vec<(String, String)>,
    /// `setResponseHeader` filters in order, one per name (the last wins); names lowercase.
    #[serde(skip)]
    pub response_headers: Vec<(String, String)>,
    #[serde(skip)]
    pub(crate) compiled: Compiled,
}

/// The `match:` section. Absent conditions hold for every request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MatchSpec {
    /// As written, e.g. `/products/{id}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// As written, e.g. `/static/`; matching ignores a trailing slash.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_regex: Option<String>,
    /// Lowercase; may start with `*.`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Uppercase; any of them matches. Empty: every method.
    #[serde(rename = "method", skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    /// Lowercase names, exact values.
    #[serde(skip_serializing_if = "Vec::is_empty", serialize_with = "pairs_as_map")]
    pub headers: Vec<(String, String)>,
    /// Exact values of raw (not percent-decoded) query parameters.
    #[serde(skip_serializing_if = "Vec::is_empty", serialize_with = "pairs_as_map")]
    pub query: Vec<(String, String)>,
}

/// Filters in Skipper's names; JSON shows them as in the file.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Filter {
    ConsistentHashKey(Template),
    ConsistentHashBalanceFactor(f64),
    Lifo(LifoSpec),
    LifoGroup(LifoGroupSpec),
    SetRequestHeader { name: String, value: String },
    SetResponseHeader { name: String, value: String },
    FadeIn(FadeInSpec),
}

impl Filter {
    pub fn name(&self) -> &'static str {
        match self {
            Filter::ConsistentHashKey(_) => "consistentHashKey",
            Filter::ConsistentHashBalanceFactor(_) => "consistentHashBalanceFactor",
            Filter::Lifo(_) => "lifo",
            Filter::LifoGroup(_) => "lifoGroup",
            Filter::SetRequestHeader { .. } => "setRequestHeader",
            Filter::SetResponseHeader { .. } => "setResponseHeader",
            Filter::FadeIn(_) => "fadeIn",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LifoSpec {
    pub max_concurrency: usize,
    pub max_queue_size: usize,
    #[serde(serialize_with = "duration_str")]
    pub timeout: Duration,
}

impl Default for LifoSpec {
    /// Skipper's defaults for the `lifo` filter.
    fn default() -> Self {
        LifoSpec {
            max_concurrency: 100,
            max_queue_size: 100,
            timeout: Duration::from_secs(10),
        }
    }
}

/// Skipper's `fadeIn`: endpoints that became ready less than `duration` ago
/// take a share of their traffic rising as `(age / duration) ^ exponent`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FadeInSpec {
    #[serde(serialize_with = "duration_str")]
    pub duration: Duration,
    pub exponent: f64,
}

impl FadeInSpec {
    pub fn policy(&self) -> ringress_ring::FadeIn {
        ringress_ring::FadeIn {
            duration_ms: (self.duration.as_millis() as u64).max(1),
            exponent: self.exponent,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LifoGroupSpec {
    pub name: String,
    #[serde(flatten)]
    pub spec: LifoSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Backend {
    #[serde(flatten)]
    pub target: BackendTarget,
    #[serde(serialize_with = "algorithm_name")]
    pub algorithm: Algorithm,
    pub timeouts: Timeouts,
    pub retries: u32,
    /// `None` when turned off with `passiveHealthCheck: false`.
    #[serde(
        rename = "passiveHealthCheck",
        serialize_with = "health_check_or_false"
    )]
    pub passive_health_check: Option<PassiveHealthCheck>,
    /// What the proxy speaks to the endpoints.
    pub protocol: Protocol,
    /// TLS settings for `https://` endpoints; `None`: the defaults (system
    /// roots, the endpoint's host as server name, no client certificate).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<UpstreamTls>,
}

/// `backend.protocol`: how the proxy talks to the endpoints.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// HTTP/1.1, in plain text or over TLS as the endpoint URL says.
    #[default]
    Http1,
    /// HTTP/2 with prior knowledge, in plain text (`http://`, `service`).
    H2c,
    /// HTTP/2 over TLS, agreed by ALPN (`https://` endpoints only).
    H2,
}

impl Protocol {
    pub const NAMES: &'static [&'static str] = &["http1", "h2c", "h2"];

    pub fn name(self) -> &'static str {
        match self {
            Protocol::Http1 => "http1",
            Protocol::H2c => "h2c",
            Protocol::H2 => "h2",
        }
    }

    pub fn from_name(name: &str) -> Option<Protocol> {
        match name {
            "http1" => Some(Protocol::Http1),
            "h2c" => Some(Protocol::H2c),
            "h2" => Some(Protocol::H2),
            _ => None,
        }
    }

    pub fn is_h2(self) -> bool {
        self != Protocol::Http1
    }
}

/// `backend.tls`: how the proxy checks and presents itself to `https://`
/// endpoints. The routes crate reads no files: the proxy loads them when it
/// builds the table and reports a bad one at the [`FileRef`]'s position.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpstreamTls {
    /// The name sent as SNI and checked against the certificate; default:
    /// the endpoint's host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// PEM CA certificates to trust instead of the system roots.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca: Option<FileRef>,
    /// PEM certificate chain (leaf first) and key for mutual TLS; both or neither.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<FileRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_key: Option<FileRef>,
    /// Accept any certificate (tests, self-signed endpoints).
    pub insecure_skip_verify: bool,
}

/// A file named in the route file, with where it is named (1-based), so a
/// file that fails to load is reported like any other route-file error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRef {
    pub path: String,
    pub line: usize,
    pub column: usize,
}

impl Serialize for FileRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.path)
    }
}

/// Ejection of endpoints that fail to connect repeatedly (see
/// [`ringress_ring::Health`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PassiveHealthCheck {
    pub consecutive_failures: u32,
    #[serde(serialize_with = "duration_str")]
    pub eject_for: Duration,
    #[serde(serialize_with = "duration_str")]
    pub max_eject_for: Duration,
}

impl Default for PassiveHealthCheck {
    fn default() -> Self {
        PassiveHealthCheck {
            consecutive_failures: 3,
            eject_for: Duration::from_secs(10),
            max_eject_for: Duration::from_secs(60),
        }
    }
}

impl PassiveHealthCheck {
    /// The policy in the ring crate's terms (milliseconds).
    pub fn policy(&self) -> ringress_ring::HealthPolicy {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1);
        ringress_ring::HealthPolicy {
            consecutive_failures: self.consecutive_failures,
            eject_for_ms: ms(self.eject_for),
            max_eject_for_ms: ms(self.max_eject_for),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Timeouts {
    #[serde(serialize_with = "duration_str")]
    pub connect: Duration,
    #[serde(serialize_with = "duration_str")]
    pub response: Duration,
    /// An upgraded connection (WebSocket) with no byte either way for this
    /// long is closed, as HAProxy's `timeout tunnel`.
    #[serde(rename = "tunnelIdle", serialize_with = "duration_str")]
    pub tunnel_idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(1),
            response: Duration::from_secs(30),
            tunnel_idle: Duration::from_secs(3600),
        }
    }
}

/// Retries after connection failures, to the next ring candidate.
pub const DEFAULT_RETRIES: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum BackendTarget {
    /// `http(s)://host:port`, in file order, without duplicates.
    Endpoints(Vec<String>),
    /// Endpoints filled in from Kubernetes.
    Service(ServiceRef),
    /// Answered by the proxy itself with this status.
    Status(u16),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct ServiceRef {
    pub namespace: String,
    pub name: String,
    pub port: PortRef,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(untagged)]
pub enum PortRef {
    Name(String),
    Number(u16),
}

fn duration_str<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_duration(*d))
}

fn health_check_or_false<S: Serializer>(
    check: &Option<PassiveHealthCheck>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match check {
        Some(check) => check.serialize(s),
        None => s.serialize_bool(false),
    }
}

fn algorithm_name<S: Serializer>(a: &Algorithm, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(a.name())
}

fn pairs_as_map<S: Serializer>(pairs: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
    let mut map = s.serialize_map(Some(pairs.len()))?;
    for (k, v) in pairs {
        map.serialize_entry(k, v)?;
    }
    map.end()
}
