//! `backend.protocol` and `backend.tls`: what they compile to, and every
//! invalid value or combination as an error at its `file:line:column`.

mod common;

use common::error_lines;
use ringress_routes::{FileRef, Protocol, RouteTable};

fn route(backend: &str) -> String {
    format!("routes:\n  - name: r\n    backend:\n{backend}")
}

fn compiled(yaml: &str) -> ringress_routes::Backend {
    let table = RouteTable::parse("routes.yaml", yaml).unwrap_or_else(|e| panic!("{e}"));
    table.routes()[0].backend.clone()
}

#[test]
fn protocol_defaults_to_http1_and_takes_h2c_and_h2() {
    let b = compiled(&route("      endpoints: [http://a:1]\n"));
    assert_eq!((b.protocol, b.tls), (Protocol::Http1, None));
    let b = compiled(&route(
        "      protocol: h2c\n      endpoints: [http://a:1]\n",
    ));
    assert_eq!(b.protocol, Protocol::H2c);
    let b = compiled(&route(
        "      protocol: h2c\n      service: {namespace: n, name: s, port: grpc}\n",
    ));
    assert_eq!(b.protocol, Protocol::H2c);
    let b = compiled(&route(
        "      protocol: h2\n      endpoints: [https://a:1]\n",
    ));
    assert_eq!(b.protocol, Protocol::H2);
}

#[test]
fn tls_options_keep_where_their_files_are_named() {
    let b = compiled(&route(
        "      endpoints: [https://a:1]\n      tls:\n        serverName: api.internal\n        ca: /etc/ca.pem\n        clientCertificate: c.pem\n        clientKey: k.pem\n",
    ));
    let tls = b.tls.expect("tls");
    assert_eq!(tls.server_name.as_deref(), Some("api.internal"));
    assert_eq!(
        tls.ca,
        Some(FileRef {
            path: "/etc/ca.pem".into(),
            line: 7,
            column: 13
        })
    );
    assert_eq!(
        tls.client_key.map(|f| (f.path, f.line)),
        Some(("k.pem".into(), 9))
    );
    assert!(!tls.insecure_skip_verify);
    let b = compiled(&route(
        "      endpoints: [https://a:1]\n      tls: {insecureSkipVerify: true}\n",
    ));
    assert!(b.tls.unwrap().insecure_skip_verify);
}

#[test]
fn the_admin_page_shows_protocol_and_tls_as_written() {
    let table = RouteTable::parse(
        "routes.yaml",
        &route("      protocol: h2\n      endpoints: [https://a:1]\n      tls: {ca: /ca.pem}\n"),
    )
    .unwrap();
    let json = serde_json::to_value(&table).unwrap();
    let backend = &json["routes"][0]["backend"];
    assert_eq!(backend["protocol"], "h2");
    assert_eq!(backend["tls"]["ca"], "/ca.pem");
    assert_eq!(backend["tls"]["insecureSkipVerify"], false);
}

#[test]
fn unknown_protocols_and_bad_combinations_are_errors_at_their_position() {
    let cases: &[(&str, &str)] = &[
        (
            "      protocol: http2\n      endpoints: [http://a:1]\n",
            "routes.yaml:4:17: route \"r\": backend.protocol must be one of http1, h2c, h2, got \"http2\"",
        ),
        (
            "      protocol: h2c\n      endpoints: [http://a:1, https://b:2]\n",
            "routes.yaml:4:17: route \"r\": backend.protocol h2c is HTTP/2 in plain text, but endpoint \"https://b:2\" is https (use h2)",
        ),
        (
            "      protocol: h2\n      endpoints: [http://a:1]\n",
            "routes.yaml:4:17: route \"r\": backend.protocol h2 is HTTP/2 over TLS, but endpoint \"http://a:1\" is not https (use h2c)",
        ),
        (
            "      protocol: h2\n      service: {namespace: n, name: s, port: 80}\n",
            "routes.yaml:4:17: route \"r\": backend.protocol h2 is HTTP/2 over TLS, and service endpoints are plain text (use h2c)",
        ),
        (
            "      endpoints: [http://a:1]\n      tls: {ca: /ca.pem}\n",
            "routes.yaml:5:7: route \"r\": backend.tls applies to https:// endpoints, and this backend has none",
        ),
        (
            "      endpoints: [https://a:1]\n      tls: {clientCertificate: /c.pem}\n",
            "routes.yaml:5:12: route \"r\": backend.tls: clientCertificate and clientKey go together",
        ),
        (
            "      endpoints: [https://a:1]\n      tls: {ca: /ca.pem, insecureSkipVerify: true}\n",
            "routes.yaml:5:12: route \"r\": backend.tls: ca and insecureSkipVerify: true contradict (no CA is checked)",
        ),
        (
            "      endpoints: [https://a:1]\n      tls: {insecureSkipVerify: yes please}\n",
            "routes.yaml:5:33: route \"r\": backend.tls.insecureSkipVerify must be true or false, got the string \"yes please\"",
        ),
        (
            "      endpoints: [https://a:1]\n      tls: {serverName: \"bad name\"}\n",
            "routes.yaml:5:25: route \"r\": backend.tls.serverName must be a DNS name or an IP address, got \"bad name\"",
        ),
        (
            "      endpoints: [https://a:1]\n      tls: {sni: a}\n",
            "routes.yaml:5:13: route \"r\": unknown key \"sni\" in backend.tls (expected one of: serverName, ca, clientCertificate, clientKey, insecureSkipVerify)",
        ),
    ];
    for (backend, want) in cases {
        assert_eq!(error_lines(&route(backend)), [*want], "for:\n{backend}");
    }
}
