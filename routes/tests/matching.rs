//! Which route a request reaches: conditions and precedence.

mod common;

use common::{table, winner, Req};

#[test]
fn no_match_section_matches_everything_and_an_empty_table_nothing() {
    let t = table("routes:\n  - name: all\n    backend: {status: 404}\n");
    for path in ["/", "/a/b", "", "*"] {
        assert_eq!(
            winner(&t, &Req::get(path)).as_deref(),
            Some("all"),
            "{path}"
        );
    }
    assert!(winner(&table("routes: []"), &Req::get("/")).is_none());
}

#[test]
fn exact_paths_and_params() {
    let t = table(
        "routes:
  - name: root
    match: {path: /}
    backend: {status: 404}
  - name: product
    match: {path: \"/products/{id}\"}
    backend: {status: 404}
  - name: review
    match: {path: \"/products/{id}/reviews/{review}\"}
    backend: {status: 404}
",
    );
    assert_eq!(winner(&t, &Req::get("/")).as_deref(), Some("root"));
    let req = Req::get("/products/42?x=1");
    let m = t.find(&req).unwrap();
    assert_eq!(m.route.name, "product");
    assert_eq!(m.param("id"), Some("42"));
    assert_eq!(m.param("nope"), None);
    let req = Req::get("/products/42/reviews/7");
    let m = t.find(&req).unwrap();
    assert_eq!(m.route.name, "review");
    assert_eq!(
        m.params().collect::<Vec<_>>(),
        [("id", "42"), ("review", "7")]
    );
    for miss in [
        "/products",
        "/products/",
        "/products/42/",
        "/products/42/reviews",
        "/x",
    ] {
        assert!(t.find(&Req::get(miss)).is_none(), "{miss}");
    }
}

#[test]
fn prefixes_are_subtrees_whatever_the_trailing_slash() {
    for prefix in ["/static/", "/static"] {
        let yaml = format!(
            "routes:\n  - name: s\n    match: {{pathPrefix: {prefix}}}\n    backend: {{status: 404}}\n"
        );
        let t = table(&yaml);
        for hit in ["/static", "/static/", "/static/a/b"] {
            assert_eq!(
                winner(&t, &Req::get(hit)).as_deref(),
                Some("s"),
                "{prefix} {hit}"
            );
        }
        for miss in ["/staticx", "/", "/stat", "/a/static"] {
            assert!(winner(&t, &Req::get(miss)).is_none(), "{prefix} {miss}");
        }
    }
    let root =
        table("routes:\n  - name: r\n    match: {pathPrefix: /}\n    backend: {status: 404}\n");
    assert_eq!(winner(&root, &Req::get("/any/thing")).as_deref(), Some("r"));
}

#[test]
fn regexes() {
    let t = table(
        "routes:
  - name: versioned
    match: {pathRegex: \"^/v[0-9]+/\"}
    backend: {status: 404}
",
    );
    assert_eq!(winner(&t, &Req::get("/v2/x")).as_deref(), Some("versioned"));
    assert!(winner(&t, &Req::get("/vx/x")).is_none());
}

#[test]
fn hosts_ignore_case_and_port_and_wildcards_need_a_subdomain() {
    let t = table(
        "routes:
  - name: exact
    match: {host: shop.example.com}
    backend: {status: 404}
  - name: wild
    match: {host: \"*.example.com\"}
    backend: {status: 404}
",
    );
    let host = |h: &str| winner(&t, &Req::get("/").host(h));
    assert_eq!(host("SHOP.example.COM:8080").as_deref(), Some("exact"));
    assert_eq!(host("a.example.com").as_deref(), Some("wild"));
    assert_eq!(host("a.b.Example.com:443").as_deref(), Some("wild"));
    assert_eq!(host("example.com"), None);
    assert_eq!(host("notexample.com"), None);
    assert_eq!(winner(&t, &Req::get("/")), None, "no Host header");
}

#[test]
fn methods_headers_and_query() {
    let t = table(
        "routes:
  - name: r
    match:
      method: [GET, HEAD]
      headers: {X-Tenant: acme}
      query: {debug: \"1\"}
    backend: {status: 404}
",
    );
    let ok = || Req::get("/?debug=1&debug=2").header("x-tenant", "acme");
    assert_eq!(winner(&t, &ok()).as_deref(), Some("r"));
    assert_eq!(winner(&t, &ok().method("HEAD")).as_deref(), Some("r"));
    assert_eq!(winner(&t, &ok().method("POST")), None);
    assert_eq!(
        winner(&t, &ok().method("get")),
        None,
        "methods are case-sensitive"
    );
    let wrong_value = Req::get("/?debug=1").header("x-tenant", "Acme");
    assert_eq!(winner(&t, &wrong_value), None, "header values are exact");
    let no_header = Req::get("/?debug=1");
    assert_eq!(winner(&t, &no_header), None);
    let second = Req::get("/?debug=2&debug=1").header("x-tenant", "acme");
    assert_eq!(winner(&t, &second), None, "first occurrence counts");
    let no_query = Req::get("/").header("x-tenant", "acme");
    assert_eq!(winner(&t, &no_query), None);
}

#[test]
fn exact_beats_prefix_beats_regex_and_none() {
    let yaml = "routes:
  - name: none
    match: {method: GET, host: a.example.com}
    backend: {status: 404}
  - name: regex
    match: {pathRegex: ^/a}
    backend: {status: 404}
  - name: prefix
    match: {pathPrefix: /a}
    backend: {status: 404}
  - name: exact
    match: {path: /a/b}
    backend: {status: 404}
";
    let t = table(yaml);
    let req = |p: &str| Req::get(p).host("a.example.com");
    assert_eq!(winner(&t, &req("/a/b")).as_deref(), Some("exact"));
    assert_eq!(winner(&t, &req("/a/c")).as_deref(), Some("prefix"));
    assert_eq!(
        winner(&t, &req("/ab")).as_deref(),
        Some("none"),
        "more conditions than regex"
    );
    assert_eq!(winner(&t, &Req::get("/ab")).as_deref(), Some("regex"));
    assert_eq!(winner(&t, &Req::get("/b")), None);
}

#[test]
fn a_failing_condition_falls_through_to_the_next_best() {
    let t = table(
        "routes:
  - name: prefix
    match: {pathPrefix: /a}
    backend: {status: 404}
  - name: exact-post
    match: {path: /a/b, method: POST}
    backend: {status: 404}
  - name: deeper-prefix-for-b
    match: {pathPrefix: /a/b, host: b.example.com}
    backend: {status: 404}
",
    );
    assert_eq!(winner(&t, &Req::get("/a/b")).as_deref(), Some("prefix"));
    assert_eq!(
        winner(&t, &Req::get("/a/b").host("b.example.com")).as_deref(),
        Some("deeper-prefix-for-b")
    );
    assert_eq!(
        winner(&t, &Req::get("/a/b").method("POST")).as_deref(),
        Some("exact-post")
    );
}

#[test]
fn longer_prefix_wins() {
    let t = table(
        "routes:
  - name: short
    match: {pathPrefix: /api}
    backend: {status: 404}
  - name: long
    match: {pathPrefix: /api/v2/}
    backend: {status: 404}
",
    );
    assert_eq!(winner(&t, &Req::get("/api/v2/x")).as_deref(), Some("long"));
    assert_eq!(winner(&t, &Req::get("/api/v2")).as_deref(), Some("long"));
    assert_eq!(winner(&t, &Req::get("/api/v1/x")).as_deref(), Some("short"));
}

#[test]
fn literal_segment_beats_param_at_the_same_position() {
    let t = table(
        "routes:
  - name: param-first
    match: {path: \"/p/{id}/x\"}
    backend: {status: 404}
  - name: literal-later
    match: {path: \"/p/{id}/{tail}\"}
    backend: {status: 404}
  - name: literal-first
    match: {path: \"/p/new/{tail}\"}
    backend: {status: 404}
",
    );
    // Position 2: `new` (literal) beats `{id}` although `{id}/x` is literal
    // further on.
    assert_eq!(
        winner(&t, &Req::get("/p/new/x")).as_deref(),
        Some("literal-first")
    );
    // Same position 2 ({id}), then `x` beats `{tail}`.
    assert_eq!(
        winner(&t, &Req::get("/p/7/x")).as_deref(),
        Some("param-first")
    );
    assert_eq!(
        winner(&t, &Req::get("/p/7/y")).as_deref(),
        Some("literal-later")
    );
    // The literal branch captures too.
    let req = Req::get("/p/new/y");
    let m = t.find(&req).unwrap();
    assert_eq!(m.route.name, "literal-first");
    assert_eq!(m.param("tail"), Some("y"));
}

#[test]
fn backtracks_from_a_literal_dead_end_to_the_param() {
    let t = table(
        "routes:
  - name: literal
    match: {path: /p/new/edit}
    backend: {status: 404}
  - name: param
    match: {path: \"/p/{id}/view\"}
    backend: {status: 404}
",
    );
    let req = Req::get("/p/new/view");
    let m = t.find(&req).unwrap();
    assert_eq!(m.route.name, "param");
    assert_eq!(m.param("id"), Some("new"));
}

#[test]
fn more_conditions_win_then_file_order() {
    let t = table(
        "routes:
  - name: plain
    match: {path: /a}
    backend: {status: 404}
  - name: plain-too
    match: {path: /a}
    backend: {status: 404}
  - name: host
    match: {path: /a, host: h.example.com}
    backend: {status: 404}
  - name: host-and-header
    match: {path: /a, host: h.example.com, headers: {X-A: \"1\"}}
    backend: {status: 404}
  - name: method
    match: {path: /a, method: POST}
    backend: {status: 404}
",
    );
    assert_eq!(winner(&t, &Req::get("/a")).as_deref(), Some("plain"));
    let h = || Req::get("/a").host("h.example.com");
    assert_eq!(winner(&t, &h()).as_deref(), Some("host"));
    assert_eq!(
        winner(&t, &h().header("x-a", "1")).as_deref(),
        Some("host-and-header")
    );
    // host and method are one condition each: tie, the earlier route wins.
    assert_eq!(winner(&t, &h().method("POST")).as_deref(), Some("host"));
    assert_eq!(
        winner(&t, &Req::get("/a").method("POST")).as_deref(),
        Some("method")
    );
}

#[test]
fn regex_combines_with_a_path_rule() {
    let t = table(
        "routes:
  - name: numeric
    match: {path: \"/item/{id}\", pathRegex: \"^/item/[0-9]+$\"}
    backend: {status: 404}
  - name: any
    match: {path: \"/item/{id}\"}
    backend: {status: 404}
",
    );
    assert_eq!(
        winner(&t, &Req::get("/item/12")).as_deref(),
        Some("numeric")
    );
    assert_eq!(winner(&t, &Req::get("/item/ab")).as_deref(), Some("any"));
}

#[test]
fn exact_and_wildcard_hosts_tie_and_file_order_decides() {
    let t = table(
        "routes:
  - name: wild
    match: {path: /, host: \"*.example.com\"}
    backend: {status: 404}
  - name: exact
    match: {path: /, host: a.example.com}
    backend: {status: 404}
  - name: exact-b
    match: {path: /, host: b.example.com}
    backend: {status: 404}
  - name: wild-later
    match: {path: /, host: \"*.example.com\"}
    backend: {status: 404}
  - name: any-host
    match: {path: /}
    backend: {status: 404}
",
    );
    let host = |h: &str| winner(&t, &Req::get("/").host(h));
    assert_eq!(host("a.example.com").as_deref(), Some("wild"));
    assert_eq!(host("b.example.com").as_deref(), Some("wild"));
    assert_eq!(host("c.example.com").as_deref(), Some("wild"));
    assert_eq!(host("other.org").as_deref(), Some("any-host"));
    assert_eq!(winner(&t, &Req::get("/")).as_deref(), Some("any-host"));
}
