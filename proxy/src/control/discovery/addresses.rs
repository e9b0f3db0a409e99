//! EndpointSlices → the sorted endpoint addresses a ring is built from.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::SystemTime;

use k8s_openapi::api::discovery::v1::{Endpoint, EndpointPort, EndpointSlice};

use super::target::PortSpec;

/// The `http://IP:PORT` addresses (`http://[IPv6]:PORT`) of the ready endpoints in `slices`,
/// sorted and deduplicated.
///
/// The format and the readiness rules match Skipper's, so the same pods land on the same ring
/// positions whichever proxy hashes them. An endpoint counts when `ready` is true or absent and
/// `terminating` is not true; a slice without the wanted port contributes nothing; an address
/// listed by several slices (as happens while the controller moves endpoints) counts once.
pub fn ready_addresses<'a>(
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
    port: &PortSpec,
) -> Vec<String> {
    ready_address_times(slices, port).into_keys().collect()
}

/// What the slices listing an address say about its age: the earliest
/// creation of those slices, and the latest pod change that updated one (the
/// EndpointSlice controller's `endpoints.kubernetes.io/last-change-trigger-time`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SliceTimes {
    pub created: Option<SystemTime>,
    pub changed: Option<SystemTime>,
}

/// [`ready_addresses`], each with its [`SliceTimes`].
pub fn ready_address_times<'a>(
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
    port: &PortSpec,
) -> BTreeMap<String, SliceTimes> {
    let mut addresses: BTreeMap<String, SliceTimes> = BTreeMap::new();
    for slice in slices {
        let Some(port_number) = slice_port(slice, port) else {
            continue;
        };
        let created = slice
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.into());
        let changed = slice
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(LAST_CHANGE_TRIGGER_TIME))
            .and_then(|t| parse_rfc3339(t));
        let endpoints = slice.endpoints.iter().flatten();
        for endpoint in endpoints.filter(|endpoint| is_ready(endpoint)) {
            let listed = endpoint
                .addresses
                .iter()
                .filter_map(|address| http_address(address, port_number));
            for address in listed {
                let times = addresses.entry(address).or_default();
                times.created = earliest(times.created, created);
                times.changed = times.changed.max(changed);
            }
        }
    }
    addresses
}

/// Set by the EndpointSlice controller on each slice it updates for a pod change.
const LAST_CHANGE_TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";

fn earliest(a: Option<SystemTime>, b: Option<SystemTime>) -> Option<SystemTime> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let time: k8s_openapi::jiff::Timestamp = text.parse().ok()?;
    Some(time.into())
}

/// The pod port number `port` refers to in this slice, if the slice carries it.
fn slice_port(slice: &EndpointSlice, port: &PortSpec) -> Option<u16> {
    slice
        .ports
        .iter()
        .flatten()
        .filter(|candidate| is_tcp(candidate))
        .find(|candidate| match port {
            PortSpec::Name(name) => candidate.name.as_deref().unwrap_or("") == name,
            PortSpec::Number(number) => candidate.port == Some(i32::from(*number)),
        })
        .and_then(|found| u16::try_from(found.port?).ok())
}

/// A port without a protocol is TCP (the API default); a UDP port of the same number is not ours.
fn is_tcp(port: &EndpointPort) -> bool {
    port.protocol
        .as_deref()
        .is_none_or(|protocol| protocol == "TCP")
}

fn is_ready(endpoint: &Endpoint) -> bool {
    let conditions = endpoint.conditions.as_ref();
    let ready = conditions.and_then(|c| c.ready).unwrap_or(true);
    let terminating = conditions.and_then(|c| c.terminating).unwrap_or(false);
    ready && !terminating
}

/// Parsing (rather than trusting `addressType`) skips FQDN entries and writes IPv6 in its
/// canonical form, so the same pod always hashes to the same string.
fn http_address(address: &str, port: u16) -> Option<String> {
    match address.parse::<IpAddr>().ok()? {
        IpAddr::V4(ip) => Some(format!("http://{ip}:{port}")),
        IpAddr::V6(ip) => Some(format!("http://[{ip}]:{port}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::discovery::v1::EndpointConditions;

    fn endpoint(address: &str, ready: Option<bool>, terminating: Option<bool>) -> Endpoint {
        Endpoint {
            addresses: vec![address.to_string()],
            conditions: Some(EndpointConditions {
                ready,
                terminating,
                serving: None,
            }),
            ..Endpoint::default()
        }
    }

    fn port(name: &str, number: i32, protocol: Option<&str>) -> EndpointPort {
        EndpointPort {
            name: Some(name.to_string()),
            port: Some(number),
            protocol: protocol.map(str::to_string),
            ..EndpointPort::default()
        }
    }

    fn slice(ports: Vec<EndpointPort>, endpoints: Vec<Endpoint>) -> EndpointSlice {
        EndpointSlice {
            address_type: "IPv4".into(),
            ports: Some(ports),
            endpoints: Some(endpoints),
            ..EndpointSlice::default()
        }
    }

    fn http() -> PortSpec {
        PortSpec::Name("http".into())
    }

    #[test]
    fn keeps_ready_and_unknown_readiness_drops_unready_and_terminating() {
        let s = slice(
            vec![port("http", 8080, Some("TCP"))],
            vec![
                endpoint("10.0.0.3", Some(true), None),
                endpoint("10.0.0.1", None, None),
                endpoint("10.0.0.2", Some(false), None),
                endpoint("10.0.0.4", Some(true), Some(true)),
                endpoint("10.0.0.5", Some(true), Some(false)),
                Endpoint {
                    addresses: vec!["10.0.0.6".into()],
                    conditions: None,
                    ..Endpoint::default()
                },
            ],
        );
        assert_eq!(
            ready_addresses([&s], &http()),
            [
                "http://10.0.0.1:8080",
                "http://10.0.0.3:8080",
                "http://10.0.0.5:8080",
                "http://10.0.0.6:8080"
            ]
        );
    }

    #[test]
    fn picks_port_by_name_or_number_and_skips_slices_without_it() {
        let s = slice(
            vec![port("metrics", 9090, None), port("http", 8080, None)],
            vec![endpoint("10.0.0.1", None, None)],
        );
        let other = slice(
            vec![port("grpc", 9000, None)],
            vec![endpoint("10.0.0.2", None, None)],
        );
        assert_eq!(
            ready_addresses([&s, &other], &http()),
            ["http://10.0.0.1:8080"]
        );
        assert_eq!(
            ready_addresses([&s, &other], &PortSpec::Number(9090)),
            ["http://10.0.0.1:9090"]
        );
        assert!(ready_addresses([&s, &other], &PortSpec::Number(1234)).is_empty());
        assert!(ready_addresses([&s], &PortSpec::Name("grpc".into())).is_empty());
    }

    #[test]
    fn ignores_udp_ports_of_the_same_number() {
        let s = slice(
            vec![port("dns-udp", 53, Some("UDP"))],
            vec![endpoint("10.0.0.1", None, None)],
        );
        assert!(ready_addresses([&s], &PortSpec::Number(53)).is_empty());
    }

    #[test]
    fn unnamed_port_matches_the_empty_name() {
        let mut unnamed = port("", 80, None);
        unnamed.name = None;
        let s = slice(vec![unnamed], vec![endpoint("10.0.0.1", None, None)]);
        assert_eq!(
            ready_addresses([&s], &PortSpec::Name(String::new())),
            ["http://10.0.0.1:80"]
        );
    }

    #[test]
    fn brackets_ipv6_and_skips_fqdn() {
        let s = slice(
            vec![port("http", 8080, None)],
            vec![
                endpoint("fd00:0:0::10", None, None),
                endpoint("pod.example.internal", None, None),
            ],
        );
        assert_eq!(ready_addresses([&s], &http()), ["http://[fd00::10]:8080"]);
    }

    #[test]
    fn counts_an_address_listed_by_several_slices_once() {
        let a = slice(
            vec![port("http", 8080, None)],
            vec![
                endpoint("10.0.0.2", None, None),
                endpoint("10.0.0.1", None, None),
            ],
        );
        let b = slice(
            vec![port("http", 8080, None)],
            vec![
                endpoint("10.0.0.2", None, None),
                endpoint("10.0.0.3", None, None),
            ],
        );
        assert_eq!(
            ready_addresses([&a, &b], &http()),
            [
                "http://10.0.0.1:8080",
                "http://10.0.0.2:8080",
                "http://10.0.0.3:8080"
            ]
        );
    }
}
