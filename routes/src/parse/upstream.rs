//! `backend.protocol` and `backend.tls`: how the proxy talks to endpoints,
//! and which combinations with the endpoint list make sense.

use crate::marks::{Node, Scalar};
use crate::reader::Reader;
use crate::spec::{BackendTarget, FileRef, Protocol, UpstreamTls};

const TLS_KEYS: &[&str] = &[
    "serverName",
    "ca",
    "clientCertificate",
    "clientKey",
    "insecureSkipVerify",
];

pub(super) fn protocol(r: &mut Reader<'_>, node: &Node) -> Option<Protocol> {
    let name = r.string(node, "backend.protocol")?;
    let protocol = Protocol::from_name(name);
    if protocol.is_none() {
        r.error(
            node.pos,
            format!(
                "backend.protocol must be one of {}, got {name:?}",
                Protocol::NAMES.join(", ")
            ),
        );
    }
    protocol
}

/// Whether `protocol` fits the endpoints: `h2c` is plain text only, `h2`
/// (ALPN) needs TLS on every endpoint. The error is at the protocol's value.
pub(super) fn check_protocol(
    r: &mut Reader<'_>,
    node: &Node,
    protocol: Protocol,
    target: &BackendTarget,
) -> bool {
    let problem = match (protocol, target) {
        (Protocol::Http1, _) | (_, BackendTarget::Status(_)) => None,
        (Protocol::H2c, BackendTarget::Service(_)) => None,
        (Protocol::H2, BackendTarget::Service(_)) => Some(
            "backend.protocol h2 is HTTP/2 over TLS, and service endpoints are plain text \
             (use h2c)"
                .to_string(),
        ),
        (Protocol::H2c, BackendTarget::Endpoints(list)) => list
            .iter()
            .find(|e| is_https(e))
            .map(|e| format!("backend.protocol h2c is HTTP/2 in plain text, but endpoint {e:?} is https (use h2)")),
        (Protocol::H2, BackendTarget::Endpoints(list)) => list
            .iter()
            .find(|e| !is_https(e))
            .map(|e| format!("backend.protocol h2 is HTTP/2 over TLS, but endpoint {e:?} is not https (use h2c)")),
    };
    match problem {
        Some(message) => {
            r.error(node.pos, message);
            false
        }
        None => true,
    }
}

/// `tls` only means something when some endpoint is `https://`. The error is
/// at the `tls` key.
pub(super) fn check_tls(r: &mut Reader<'_>, key: &Node, target: &BackendTarget) -> bool {
    let any_https = match target {
        BackendTarget::Endpoints(list) => list.iter().any(|e| is_https(e)),
        BackendTarget::Service(_) | BackendTarget::Status(_) => false,
    };
    if !any_https {
        r.error(
            key.pos,
            "backend.tls applies to https:// endpoints, and this backend has none",
        );
    }
    any_https
}

fn is_https(endpoint: &str) -> bool {
    endpoint
        .get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
}

pub(super) fn tls(r: &mut Reader<'_>, node: &Node) -> Option<UpstreamTls> {
    let what = "backend.tls";
    let f = r.fields(node, what, TLS_KEYS)?;
    let mut ok = true;
    let mut tls = UpstreamTls::default();
    if let Some(v) = f.get("serverName") {
        match r.string(v, "backend.tls.serverName") {
            Some(name) if is_server_name(name) => tls.server_name = Some(name.to_owned()),
            Some(name) => {
                r.error(
                    v.pos,
                    format!(
                        "backend.tls.serverName must be a DNS name or an IP address, got {name:?}"
                    ),
                );
                ok = false;
            }
            None => ok = false,
        }
    }
    for (key, slot) in [
        ("ca", &mut tls.ca),
        ("clientCertificate", &mut tls.client_certificate),
        ("clientKey", &mut tls.client_key),
    ] {
        if let Some(v) = f.get(key) {
            match r.string(v, &format!("{what}.{key}")) {
                Some("") => {
                    r.error(v.pos, format!("{what}.{key} must name a file"));
                    ok = false;
                }
                Some(path) => {
                    *slot = Some(FileRef {
                        path: path.to_owned(),
                        line: v.pos.line,
                        column: v.pos.column,
                    })
                }
                None => ok = false,
            }
        }
    }
    if let Some(v) = f.get("insecureSkipVerify") {
        match v.scalar() {
            Some(Scalar::Bool(b)) => tls.insecure_skip_verify = b,
            _ => {
                r.error(
                    v.pos,
                    format!(
                        "{what}.insecureSkipVerify must be true or false, got {}",
                        v.describe()
                    ),
                );
                ok = false;
            }
        }
    }
    if tls.insecure_skip_verify && tls.ca.is_some() {
        r.error(
            node.pos,
            format!("{what}: ca and insecureSkipVerify: true contradict (no CA is checked)"),
        );
        ok = false;
    }
    let cert = f.entry("clientCertificate");
    let key = f.entry("clientKey");
    if cert.is_some() != key.is_some() {
        r.error(
            node.pos,
            format!("{what}: clientCertificate and clientKey go together"),
        );
        ok = false;
    }
    ok.then_some(tls)
}

/// A host name (letters, digits, `-`, `.`, `_`) or an IP address, as a TLS
/// server name can be.
fn is_server_name(name: &str) -> bool {
    if name.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}
