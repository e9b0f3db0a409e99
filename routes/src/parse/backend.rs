//! The `backend:` section.

use std::str::FromStr;

use ringress_ring::Algorithm;

use crate::marks::Kind;
use crate::marks::{Node, Scalar};
use crate::reader::Reader;
use crate::spec::{
    Backend, BackendTarget, PassiveHealthCheck, PortRef, Protocol, ServiceRef, Timeouts,
    DEFAULT_RETRIES,
};
use crate::validate;

const BACKEND_KEYS: &[&str] = &[
    "algorithm",
    "endpoints",
    "service",
    "status",
    "timeouts",
    "retries",
    "passiveHealthCheck",
    "protocol",
    "tls",
];
const HEALTH_KEYS: &[&str] = &["consecutiveFailures", "ejectFor", "maxEjectFor"];
const TARGETS: &[&str] = &["endpoints", "service", "status"];

pub(super) fn parse_backend(r: &mut Reader<'_>, node: &Node) -> Option<Backend> {
    let f = r.fields(node, "backend", BACKEND_KEYS)?;
    let mut ok = true;
    let targets: Vec<(&str, &Node, &Node)> = f
        .iter()
        .filter(|(k, _, _)| TARGETS.contains(k))
        .copied()
        .collect();
    let target = match targets.as_slice() {
        [] => {
            r.error(node.pos, "backend needs one of: endpoints, service, status");
            None
        }
        [(kind, _, value)] => parse_target(r, kind, value),
        [(first, _, _), (second, key, _), ..] => {
            r.error(
                key.pos,
                format!(
                    "backend takes only one of endpoints, service, status; found {first} and {second}"
                ),
            );
            None
        }
    };
    let mut algorithm = Algorithm::ConsistentHash;
    if let Some(v) = f.get("algorithm") {
        if let Some(name) = r.string(v, "backend.algorithm") {
            match Algorithm::from_str(name) {
                Ok(a) => algorithm = a,
                Err(why) => {
                    r.error(v.pos, format!("backend.algorithm: {why}"));
                    ok = false;
                }
            }
        } else {
            ok = false;
        }
    }
    let mut timeouts = Timeouts::default();
    if let Some(v) = f.get("timeouts") {
        match r.fields(
            v,
            "backend.timeouts",
            &["connect", "response", "tunnelIdle"],
        ) {
            Some(t) => {
                for (key, slot) in [
                    ("connect", &mut timeouts.connect),
                    ("response", &mut timeouts.response),
                    ("tunnelIdle", &mut timeouts.tunnel_idle),
                ] {
                    if let Some(v) = t.get(key) {
                        match r.duration(v, &format!("backend.timeouts.{key}")) {
                            Some(d) => *slot = d,
                            None => ok = false,
                        }
                    }
                }
            }
            None => ok = false,
        }
    }
    let mut retries = DEFAULT_RETRIES;
    if let Some(v) = f.get("retries") {
        match r.integer_in(v, "backend.retries", 0, i64::from(u32::MAX)) {
            Some(n) => retries = n as u32,
            None => ok = false,
        }
    }
    let passive_health_check = match f.get("passiveHealthCheck") {
        Some(v) => match parse_health_check(r, v) {
            Some(check) => check,
            None => {
                ok = false;
                None
            }
        },
        None => Some(PassiveHealthCheck::default()),
    };
    let protocol = f
        .get("protocol")
        .map(|v| (v, super::upstream::protocol(r, v)));
    let tls = f.entry("tls").map(|(k, v)| (k, super::upstream::tls(r, v)));
    let target = target?;
    let protocol = match protocol {
        Some((node, Some(p))) => {
            ok &= super::upstream::check_protocol(r, node, p, &target);
            p
        }
        Some((_, None)) => {
            ok = false;
            Protocol::default()
        }
        None => Protocol::default(),
    };
    let tls = match tls {
        Some((key, Some(tls))) => {
            ok &= super::upstream::check_tls(r, key, &target);
            Some(tls)
        }
        Some((_, None)) => {
            ok = false;
            None
        }
        None => None,
    };
    ok.then_some(Backend {
        target,
        algorithm,
        timeouts,
        retries,
        passive_health_check,
        protocol,
        tls,
    })
}

/// `passiveHealthCheck`: `false` turns it off; `true`, null or a map (missing
/// keys take the defaults) turns it on. `Some(None)` is "off".
fn parse_health_check(r: &mut Reader<'_>, node: &Node) -> Option<Option<PassiveHealthCheck>> {
    let what = "backend.passiveHealthCheck";
    match node.scalar() {
        Some(Scalar::Bool(false)) => return Some(None),
        Some(Scalar::Bool(true) | Scalar::Null) => {
            return Some(Some(PassiveHealthCheck::default()))
        }
        _ => {}
    }
    if !matches!(node.kind, Kind::Map(_)) {
        r.error(
            node.pos,
            format!(
                "{what} must be false, true or a map of {}, got {}",
                HEALTH_KEYS.join(", "),
                node.describe()
            ),
        );
        return None;
    }
    let f = r.fields(node, what, HEALTH_KEYS)?;
    let mut check = PassiveHealthCheck::default();
    let mut ok = true;
    if let Some(v) = f.get("consecutiveFailures") {
        match r.integer_in(v, &format!("{what}.consecutiveFailures"), 1, 1_000_000) {
            Some(n) => check.consecutive_failures = n as u32,
            None => ok = false,
        }
    }
    if let Some(v) = f.get("ejectFor") {
        match r.duration(v, &format!("{what}.ejectFor")) {
            Some(d) => check.eject_for = d,
            None => ok = false,
        }
    }
    match f.get("maxEjectFor") {
        Some(v) => match r.duration(v, &format!("{what}.maxEjectFor")) {
            Some(d) if d < check.eject_for && ok => {
                r.error(
                    v.pos,
                    format!(
                        "{what}.maxEjectFor ({}) must be at least ejectFor ({})",
                        crate::duration::format_duration(d),
                        crate::duration::format_duration(check.eject_for)
                    ),
                );
                ok = false;
            }
            Some(d) => check.max_eject_for = d,
            None => ok = false,
        },
        // Without a cap of its own, a long ejectFor is its own cap.
        None => check.max_eject_for = check.max_eject_for.max(check.eject_for),
    }
    ok.then_some(Some(check))
}

fn parse_target(r: &mut Reader<'_>, kind: &str, value: &Node) -> Option<BackendTarget> {
    match kind {
        "endpoints" => {
            let items = r.list(value, "backend.endpoints")?;
            if items.is_empty() {
                r.error(value.pos, "backend.endpoints: no endpoints");
                return None;
            }
            let mut endpoints: Vec<String> = Vec::with_capacity(items.len());
            let mut ok = true;
            for item in items {
                let Some(url) = r.string(item, "an endpoint") else {
                    ok = false;
                    continue;
                };
                if let Err(why) = validate::check_endpoint(url) {
                    r.error(item.pos, why);
                    ok = false;
                } else if endpoints.iter().any(|e| e.eq_ignore_ascii_case(url)) {
                    r.error(item.pos, format!("endpoint {url:?} is listed twice"));
                    ok = false;
                } else {
                    endpoints.push(url.to_owned());
                }
            }
            ok.then_some(BackendTarget::Endpoints(endpoints))
        }
        "service" => {
            let what = "backend.service";
            let f = r.fields(value, what, &["namespace", "name", "port"])?;
            let label = |r: &mut Reader<'_>, key: &str| {
                let node = r.required(&f, value, what, key)?;
                let text = r.string(node, &format!("{what}.{key}"))?;
                if !validate::is_dns_label(text) {
                    r.error(
                        node.pos,
                        format!(
                            "{what}.{key} must be a DNS label (lowercase letters, digits, '-'), \
                             got {text:?}"
                        ),
                    );
                    return None;
                }
                Some(text.to_owned())
            };
            let namespace = label(r, "namespace");
            let name = label(r, "name");
            let port = r
                .required(&f, value, what, "port")
                .and_then(|p| parse_port(r, p));
            Some(BackendTarget::Service(ServiceRef {
                namespace: namespace?,
                name: name?,
                port: port?,
            }))
        }
        _ => {
            let status = r.integer_in(value, "backend.status", 100, 599)?;
            Some(BackendTarget::Status(status as u16))
        }
    }
}

/// A port number, or a port name as the Service spells it.
fn parse_port(r: &mut Reader<'_>, node: &Node) -> Option<PortRef> {
    let what = "backend.service.port";
    if let Some(Scalar::Int(_)) = node.scalar() {
        let n = r.integer_in(node, what, 1, 65535)?;
        return Some(PortRef::Number(n as u16));
    }
    let text = r.string(node, what)?;
    if let Ok(n) = text.parse::<u16>() {
        if n > 0 {
            return Some(PortRef::Number(n));
        }
    }
    if validate::is_port_name(text) {
        Some(PortRef::Name(text.to_owned()))
    } else {
        r.error(
            node.pos,
            format!("{what} must be a number 1..=65535 or a port name like \"http\", got {text:?}"),
        );
        None
    }
}
