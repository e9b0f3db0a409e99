//! Every class of error, with the exact `file:line:column` of the offending
//! key or value.

mod common;

use common::{error_lines, errors};

/// One route around the given lines (indented as route fields), so the
/// route's own lines are 2..; `name: r` is on line 2.
fn route(body: &str) -> String {
    format!("routes:\n  - name: r\n{body}")
}

fn one(yaml: &str) -> String {
    let lines = error_lines(yaml);
    assert_eq!(lines.len(), 1, "expected one error, got {lines:#?}");
    lines.into_iter().next().unwrap()
}

#[test]
fn the_documented_format() {
    let yaml = route(
        "    filters:\n      - consistentHashBalanceFactor: 0.5\n    backend: {endpoints: [http://a:1]}\n",
    );
    assert_eq!(
        one(&yaml),
        "routes.yaml:4:38: route \"r\": filter consistentHashBalanceFactor must be >= 1, got 0.5"
    );
    let e = &errors(&yaml).0[0];
    assert_eq!((e.line, e.column), (4, 38));
    assert_eq!(e.route.as_deref(), Some("r"));
    assert_eq!(e.file, "routes.yaml");
}

#[test]
fn yaml_syntax_errors_have_positions_and_no_route() {
    let line = one("routes:\n  - name: a\n   bad: [\n");
    assert!(
        line.starts_with("routes.yaml:3:7: YAML syntax error: "),
        "{line}"
    );
    let line = one("routes: [\n");
    assert!(
        line.starts_with("routes.yaml:2:1: YAML syntax error: "),
        "{line}"
    );
}

#[test]
fn top_level_problems() {
    assert_eq!(
        one(""),
        "routes.yaml:1:1: missing the top-level key \"routes\" (a list of routes)"
    );
    assert_eq!(
        error_lines("\n\nroute: []\n"),
        [
            "routes.yaml:3:1: unknown key \"route\" in the route file (expected one of: routes)",
            "routes.yaml:3:1: missing the top-level key \"routes\" (a list of routes)",
        ]
    );
    assert_eq!(
        one("routes: {a: 1}\n"),
        "routes.yaml:1:9: routes must be a list, got a map"
    );
    assert_eq!(
        one("- a\n"),
        "routes.yaml:1:1: the route file must be a map, got a list"
    );
    assert_eq!(
        one("routes:\n  - just text\n"),
        "routes.yaml:2:5: a route must be a map, got the string \"just text\""
    );
    assert!(one("a: 1\n---\nb: 2\n").starts_with("routes.yaml:3:1: only one YAML document"));
}

#[test]
fn unknown_keys_at_every_level_point_at_the_key() {
    let yaml = "routes:
  - name: r
    mtach: {}
    match: {path: /a, pathprefix: /b}
    filters:
      - lifo: {maxConcurency: 1}
      - lifoGroup: {name: g, size: 1}
      - setRequestHeader: {name: a, value: b, extra: c}
    backend:
      endpoints: [http://a:1]
      timeouts: {connect: 1s, read: 2s}
      retry: 2
";
    assert_eq!(
        error_lines(yaml),
        [
            "routes.yaml:3:5: route \"r\": unknown key \"mtach\" in a route (expected one of: name, match, filters, backend)",
            "routes.yaml:4:23: route \"r\": unknown key \"pathprefix\" in match (expected one of: path, pathPrefix, pathRegex, host, method, headers, query)",
            "routes.yaml:6:16: route \"r\": unknown key \"maxConcurency\" in filter lifo (expected one of: maxConcurrency, maxQueueSize, timeout)",
            "routes.yaml:7:30: route \"r\": unknown key \"size\" in filter lifoGroup (expected one of: name, maxConcurrency, maxQueueSize, timeout)",
            "routes.yaml:8:47: route \"r\": unknown key \"extra\" in filter setRequestHeader (expected one of: name, value)",
            "routes.yaml:11:31: route \"r\": unknown key \"read\" in backend.timeouts (expected one of: connect, response, tunnelIdle)",
            "routes.yaml:12:7: route \"r\": unknown key \"retry\" in backend (expected one of: algorithm, endpoints, service, status, timeouts, retries, passiveHealthCheck, protocol, tls)",
        ]
    );
}

#[test]
fn duplicate_keys() {
    let yaml = route("    backend: {endpoints: [http://a:1]}\n    backend: {status: 404}\n");
    assert_eq!(
        one(&yaml),
        "routes.yaml:4:5: route \"r\": duplicate key \"backend\" in a route"
    );
}

#[test]
fn filter_entries() {
    let yaml = route(
        "    filters:
      - lifo: {}
        setRequestHeader: {name: a, value: b}
      - noSuchFilter: 1
      - just-a-string
    backend: {endpoints: [http://a:1]}
",
    );
    assert_eq!(
        error_lines(&yaml),
        [
            "routes.yaml:4:9: route \"r\": each filter must be a map with a single key, the filter's name (e.g. \"- lifo: {maxConcurrency: 10}\"), got a map",
            "routes.yaml:6:9: route \"r\": unknown filter \"noSuchFilter\" (expected one of: consistentHashKey, consistentHashBalanceFactor, lifo, lifoGroup, setRequestHeader, setResponseHeader, fadeIn)",
            "routes.yaml:7:9: route \"r\": each filter must be a map with a single key, the filter's name (e.g. \"- lifo: {maxConcurrency: 10}\"), got the string \"just-a-string\"",
        ]
    );
}

#[test]
fn fade_in() {
    let yaml = route(
        "    filters:
      - fadeIn: 30
      - fadeIn: {duration: 0s}
      - fadeIn: {exponent: 2}
      - fadeIn: {duration: 1m, exponent: 0}
      - fadeIn: {duration: 1m, exponent: -1, ramp: 3}
      - fadeIn: ~
    backend: {endpoints: [http://a:1]}
",
    );
    assert_eq!(
        error_lines(&yaml),
        [
            "routes.yaml:4:17: route \"r\": filter fadeIn: invalid duration \"30\": a unit is required (ms, s, m, h), e.g. \"10s\"",
            "routes.yaml:5:28: route \"r\": filter fadeIn duration must be greater than 0, got \"0s\"",
            "routes.yaml:6:17: route \"r\": filter fadeIn is missing \"duration\"",
            "routes.yaml:7:42: route \"r\": filter fadeIn exponent must be > 0, got 0",
            "routes.yaml:8:42: route \"r\": filter fadeIn exponent must be > 0, got -1",
            "routes.yaml:8:46: route \"r\": unknown key \"ramp\" in filter fadeIn (expected one of: duration, exponent)",
            "routes.yaml:9:17: route \"r\": filter fadeIn must be a duration like \"10s\", got nothing (null)",
        ]
    );
    let ok = route(
        "    filters:
      - fadeIn: 30s
      - fadeIn: {duration: 1m30s, exponent: 1.5}
    backend: {endpoints: [http://a:1]}
",
    );
    let table = ringress_routes::RouteTable::parse("routes.yaml", &ok).unwrap();
    let spec = table.routes()[0].fade_in.unwrap();
    assert_eq!(
        (spec.duration.as_secs(), spec.exponent),
        (90, 1.5),
        "the last one wins"
    );
}

#[test]
fn names() {
    let yaml = "routes:
  - name: a
    backend: {status: 404}
  - name: b
    backend: {status: 404}
  - name: a
    backend: {status: 404}
  - name: bad name
    backend: {status: 404}
  - backend: {status: 404}
  - name: 12
    backend: {status: 404}
";
    assert_eq!(
        error_lines(yaml),
        [
            "routes.yaml:6:11: route \"a\": duplicate route name \"a\" (first used on line 2)",
            "routes.yaml:8:11: route \"bad name\": name must be letters, digits, '-' and '_', got \"bad name\"",
            "routes.yaml:10:5: route is missing its \"name\"",
            "routes.yaml:11:11: name must be a string, got the integer 12 (quote it to make it text)",
        ]
    );
}

#[test]
fn templates() {
    let yaml = "routes:
  - name: r
    match: {path: \"/p/{id}\"}
    filters:
      - consistentHashKey: \"${id\"
      - consistentHashKey: ${request.nope}
      - consistentHashKey: a${}
      - consistentHashKey: ${request.header.}
      - consistentHashKey: sku-${sku}
      - consistentHashKey: ${id}-${request.cookie.session}
    backend: {endpoints: [http://a:1]}
";
    assert_eq!(
        error_lines(yaml),
        [
            "routes.yaml:5:28: route \"r\": filter consistentHashKey: unterminated \"${\" in template \"${id\"",
            "routes.yaml:6:28: route \"r\": filter consistentHashKey: unknown field \"nope\" in \"${request.nope}\" (expected one of: path, host, method, source, query.NAME, header.NAME, cookie.NAME) in template \"${request.nope}\"",
            "routes.yaml:7:28: route \"r\": filter consistentHashKey: empty placeholder \"${}\" in template \"a${}\"",
            "routes.yaml:8:28: route \"r\": filter consistentHashKey: empty name in \"${request.header.}\" in template \"${request.header.}\"",
            "routes.yaml:9:28: route \"r\": filter consistentHashKey: template \"sku-${sku}\" uses ${sku}, but the route's path captures no {sku}",
        ]
    );
}

#[test]
fn params_need_an_exact_path() {
    let yaml = route(
        "    match: {pathPrefix: /p/}\n    filters: [{consistentHashKey: \"${id}\"}]\n    backend: {status: 404}\n",
    );
    assert_eq!(
        one(&yaml),
        "routes.yaml:4:35: route \"r\": filter consistentHashKey: template \"${id}\" uses ${id}, but the route's path captures no {id}"
    );
}

#[test]
fn match_values() {
    let yaml = "routes:
  - name: r
    match:
      path: products/{id}
      pathRegex: \"^/(unclosed\"
      host: \"shop.example.com:8080\"
      method: [GET, post]
      headers: {X-Tenant: 1}
      query: {debug: true}
    backend: {status: 404}
  - name: s
    match: {path: /a, pathPrefix: /b}
    backend: {status: 404}
  - name: t
    match: {path: \"/x/{a}/{a}\"}
    backend: {status: 404}
  - name: u
    match: {path: \"/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}\"}
    backend: {status: 404}
  - name: v
    match: {pathPrefix: \"/static/{id}\", method: []}
    backend: {status: 404}
";
    assert_eq!(
        error_lines(yaml),
        [
            "routes.yaml:4:13: route \"r\": match.path must start with \"/\", got \"products/{id}\"",
            "routes.yaml:5:18: route \"r\": match.pathRegex \"^/(unclosed\" is not a valid regex: unclosed group",
            "routes.yaml:6:13: route \"r\": match.host: host \"shop.example.com:8080\" must be a host name such as shop.example.com or *.example.com, without a port",
            "routes.yaml:7:21: route \"r\": match.method: method \"post\" must be an uppercase token such as GET or POST",
            "routes.yaml:8:27: route \"r\": match.headers.X-Tenant must be a string, got the integer 1 (quote it to make it text)",
            "routes.yaml:9:22: route \"r\": match.query.debug must be a string, got the boolean true (quote it to make it text)",
            "routes.yaml:12:23: route \"s\": match takes \"path\" or \"pathPrefix\", not both",
            "routes.yaml:15:19: route \"t\": match.path: parameter {a} appears twice in path \"/x/{a}/{a}\"",
            "routes.yaml:18:19: route \"u\": match.path: path \"/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}\" captures 9 parameters; at most 8 are allowed",
            "routes.yaml:21:25: route \"v\": match.pathPrefix \"/static/{id}\" cannot capture {params}; use path",
            "routes.yaml:21:49: route \"v\": match.method must name at least one method",
        ]
    );
}

#[test]
fn filter_values() {
    let yaml = "routes:
  - name: r
    filters:
      - consistentHashBalanceFactor: fast
      - lifo: {maxConcurrency: 0, maxQueueSize: -1, timeout: 10}
      - lifoGroup: {maxConcurrency: 2}
      - lifoGroup: {name: \"a b\"}
      - setResponseHeader: {name: \"Bad Header\"}
      - lifo: {timeout: 0s}
    backend: {endpoints: [http://a:1]}
";
    assert_eq!(
        error_lines(yaml),
        [
            "routes.yaml:4:38: route \"r\": filter consistentHashBalanceFactor must be a number, got the string \"fast\"",
            "routes.yaml:5:32: route \"r\": filter lifo maxConcurrency must be >= 1, got 0",
            "routes.yaml:5:49: route \"r\": filter lifo maxQueueSize must be >= 0, got -1",
            "routes.yaml:5:62: route \"r\": filter lifo timeout: invalid duration \"10\": a unit is required (ms, s, m, h), e.g. \"10s\"",
            "routes.yaml:6:20: route \"r\": filter lifoGroup is missing \"name\"",
            "routes.yaml:7:27: route \"r\": filter lifoGroup name must be letters, digits, '-' and '_', got \"a b\"",
            "routes.yaml:8:28: route \"r\": filter setResponseHeader is missing \"value\"",
            "routes.yaml:8:35: route \"r\": filter setResponseHeader: bad header name \"Bad Header\"",
            "routes.yaml:9:25: route \"r\": filter lifo timeout must be greater than 0, got \"0s\"",
        ]
    );
}

#[test]
fn header_filters_may_not_set_framing_or_hop_by_hop_fields() {
    let yaml = "routes:
  - name: r
    filters:
      - setRequestHeader: {name: Content-Length, value: \"0\"}
      - setResponseHeader: {name: transfer-encoding, value: chunked}
      - setRequestHeader: {name: Connection, value: close}
      - setResponseHeader: {name: Upgrade, value: h2c}
      - setRequestHeader: {name: TE, value: trailers}
      - setResponseHeader: {name: Keep-Alive, value: timeout=1}
      - setResponseHeader: {name: Host, value: a}
      - setRequestHeader: {name: Host, value: internal.example}
    backend: {endpoints: [http://a:1]}
";
    assert_eq!(
        error_lines(yaml),
        [
            "routes.yaml:4:34: route \"r\": filter setRequestHeader: \"Content-Length\" frames the message; the proxy sets it",
            "routes.yaml:5:35: route \"r\": filter setResponseHeader: \"transfer-encoding\" frames the message; the proxy sets it",
            "routes.yaml:6:34: route \"r\": filter setRequestHeader: \"Connection\" is hop-by-hop; the proxy sets it per connection",
            "routes.yaml:7:35: route \"r\": filter setResponseHeader: \"Upgrade\" is hop-by-hop; the proxy sets it per connection",
            "routes.yaml:8:34: route \"r\": filter setRequestHeader: \"TE\" is hop-by-hop; the proxy sets it per connection",
            "routes.yaml:9:35: route \"r\": filter setResponseHeader: \"Keep-Alive\" is hop-by-hop; the proxy sets it per connection",
            "routes.yaml:10:35: route \"r\": filter setResponseHeader: \"Host\" is a request header",
        ]
    );
}

#[test]
fn lifo_groups_must_agree() {
    let yaml = "routes:
  - name: a
    filters: [{lifoGroup: {name: catalog, maxConcurrency: 200}}]
    backend: {status: 404}
  - name: b
    filters: [{lifoGroup: {name: catalog, maxConcurrency: 200}}]
    backend: {status: 404}
  - name: c
    filters: [{lifoGroup: {name: catalog, maxConcurrency: 100}}]
    backend: {status: 404}
  - name: d
    filters: [{lifoGroup: {name: catalog, timeout: 1s}}]
    backend: {status: 404}
";
    assert_eq!(
        error_lines(yaml),
        [
            "routes.yaml:9:27: route \"c\": lifoGroup \"catalog\" settings differ from its first definition (route \"a\", line 3); every member of a group must use the same maxConcurrency, maxQueueSize and timeout",
            "routes.yaml:12:27: route \"d\": lifoGroup \"catalog\" settings differ from its first definition (route \"a\", line 3); every member of a group must use the same maxConcurrency, maxQueueSize and timeout",
        ]
    );
}

#[test]
fn backends() {
    let yaml = "routes:
  - name: none
  - name: empty
    backend: {}
  - name: two
    backend: {endpoints: [http://a:1], status: 404}
  - name: no-endpoints
    backend: {endpoints: []}
  - name: bad-endpoints
    backend:
      endpoints:
        - 10.0.0.1:8080
        - http://a:1/path
        - http://a:1
        - http://a:1
        - 8080
  - name: bad-status
    backend: {status: 99}
  - name: bad-service
    backend: {service: {namespace: Shop, port: 0}}
  - name: bad-port
    backend: {service: {namespace: shop, name: api, port: not_a_port}}
  - name: bad-algorithm
    backend: {endpoints: [http://a:1], algorithm: leastConn, retries: -1, timeouts: {connect: fast}}
";
    assert_eq!(
        error_lines(yaml),
        [
            "routes.yaml:2:5: route \"none\": route has no \"backend\" (one of: endpoints, service, status)",
            "routes.yaml:4:14: route \"empty\": backend needs one of: endpoints, service, status",
            "routes.yaml:6:40: route \"two\": backend takes only one of endpoints, service, status; found endpoints and status",
            "routes.yaml:8:26: route \"no-endpoints\": backend.endpoints: no endpoints",
            "routes.yaml:12:11: route \"bad-endpoints\": endpoint \"10.0.0.1:8080\" must be http://host:port or https://host:port: the scheme must be http or https",
            "routes.yaml:13:11: route \"bad-endpoints\": endpoint \"http://a:1/path\" must be http://host:port or https://host:port: no path or query is allowed",
            "routes.yaml:15:11: route \"bad-endpoints\": endpoint \"http://a:1\" is listed twice",
            "routes.yaml:16:11: route \"bad-endpoints\": an endpoint must be a string, got the integer 8080 (quote it to make it text)",
            "routes.yaml:18:23: route \"bad-status\": backend.status must be >= 100, got 99",
            "routes.yaml:20:24: route \"bad-service\": backend.service is missing \"name\"",
            "routes.yaml:20:36: route \"bad-service\": backend.service.namespace must be a DNS label (lowercase letters, digits, '-'), got \"Shop\"",
            "routes.yaml:20:48: route \"bad-service\": backend.service.port must be >= 1, got 0",
            "routes.yaml:22:59: route \"bad-port\": backend.service.port must be a number 1..=65535 or a port name like \"http\", got \"not_a_port\"",
            "routes.yaml:24:51: route \"bad-algorithm\": backend.algorithm: unknown algorithm \"leastConn\", expected one of: consistentHash, powerOfRandomNChoices, roundRobin, random",
            "routes.yaml:24:71: route \"bad-algorithm\": backend.retries must be >= 0, got -1",
            "routes.yaml:24:95: route \"bad-algorithm\": backend.timeouts.connect: invalid duration \"fast\": expected a number before each unit",
        ]
    );
}

#[test]
fn many_errors_are_reported_together_in_file_order() {
    let yaml = "routes:
  - name: a
    match: {path: nope}
    backend: {status: 1000}
  - name: b
    backend: {endpoints: [ftp://x:1], timeouts: {response: 5}}
";
    let errs = errors(yaml);
    assert_eq!(errs.len(), 4);
    let positions: Vec<_> = errs.iter().map(|e| (e.line, e.column)).collect();
    assert_eq!(positions, [(3, 19), (4, 23), (6, 27), (6, 60)]);
    assert_eq!(errs.to_string().lines().count(), 4, "Display: one per line");
    let shown = errs.to_string();
    assert!(
        shown.starts_with("routes.yaml:3:19: route \"a\": "),
        "{shown}"
    );
}

#[test]
fn passive_health_check_errors() {
    let yaml = "routes:
  - name: kind
    backend: {endpoints: [http://a:1], passiveHealthCheck: yes}
  - name: list
    backend: {endpoints: [http://a:1], passiveHealthCheck: [3]}
  - name: keys
    backend: {endpoints: [http://a:1], passiveHealthCheck: {failures: 3}}
  - name: zero
    backend: {endpoints: [http://a:1], passiveHealthCheck: {consecutiveFailures: 0}}
  - name: text
    backend: {endpoints: [http://a:1], passiveHealthCheck: {consecutiveFailures: \"3\"}}
  - name: durations
    backend: {endpoints: [http://a:1], passiveHealthCheck: {ejectFor: 10, maxEjectFor: 0s}}
  - name: cap
    backend: {endpoints: [http://a:1], passiveHealthCheck: {ejectFor: 30s, maxEjectFor: 10s}}
";
    assert_eq!(
        error_lines(yaml),
        [
            "routes.yaml:3:60: route \"kind\": backend.passiveHealthCheck must be false, true or a map of consecutiveFailures, ejectFor, maxEjectFor, got the string \"yes\"",
            "routes.yaml:5:60: route \"list\": backend.passiveHealthCheck must be false, true or a map of consecutiveFailures, ejectFor, maxEjectFor, got a list",
            "routes.yaml:7:61: route \"keys\": unknown key \"failures\" in backend.passiveHealthCheck (expected one of: consecutiveFailures, ejectFor, maxEjectFor)",
            "routes.yaml:9:82: route \"zero\": backend.passiveHealthCheck.consecutiveFailures must be >= 1, got 0",
            "routes.yaml:11:82: route \"text\": backend.passiveHealthCheck.consecutiveFailures must be an integer, got the string \"3\"",
            "routes.yaml:13:71: route \"durations\": backend.passiveHealthCheck.ejectFor: invalid duration \"10\": a unit is required (ms, s, m, h), e.g. \"10s\"",
            "routes.yaml:13:88: route \"durations\": backend.passiveHealthCheck.maxEjectFor must be greater than 0, got \"0s\"",
            "routes.yaml:15:89: route \"cap\": backend.passiveHealthCheck.maxEjectFor (10s) must be at least ejectFor (30s)",
        ]
    );
}

#[test]
fn header_values_with_control_characters_are_refused_at_their_value() {
    let yaml = route(
        "    filters:\n      - setRequestHeader: {name: X-A, value: \"a\\r\\nX-Injected: 1\"}\n    backend: {endpoints: [http://a:1]}\n",
    );
    assert_eq!(
        one(&yaml),
        "routes.yaml:4:46: route \"r\": filter setRequestHeader: header value \"a\\r\\nX-Injected: 1\" has control characters"
    );
}
