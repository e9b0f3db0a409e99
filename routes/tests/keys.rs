//! Consistent-hash key resolution: templates, fallbacks, last-resolving-wins.

mod common;

use common::{table, Req};

fn key(yaml_filters: &str, path_rule: &str, req: &Req) -> String {
    let yaml = format!(
        "routes:\n  - name: r\n    match: {{{path_rule}}}\n    filters:\n{yaml_filters}    backend: {{endpoints: [http://a:1]}}\n"
    );
    let t = table(&yaml);
    let m = t.find(req).expect("route matches");
    let mut out = String::from("stale");
    m.route.hash_key(&m, req, &mut out);
    out
}

#[test]
fn params_and_text_mix() {
    let req = Req::get("/products/42");
    let k = key(
        "      - consistentHashKey: \"sku-${id}!\"\n",
        "path: \"/products/{id}\"",
        &req,
    );
    assert_eq!(k, "sku-42!");
}

#[test]
fn request_fields() {
    let req = Req::get("/p?tenant=acme&tenant=other")
        .method("PUT")
        .host("Shop.example.com:8443")
        .header("x-user", "u1")
        .header("cookie", "a=1; session=s9")
        .peer("10.1.2.3");
    let cases = [
        ("${request.path}", "/p"),
        ("${request.host}", "Shop.example.com:8443"),
        ("${request.method}", "PUT"),
        ("${request.query.tenant}", "acme"),
        ("${request.header.X-User}", "u1"),
        ("${request.cookie.session}", "s9"),
        ("${request.source}", "10.1.2.3"),
        ("${request.method}:${request.cookie.a}", "PUT:1"),
    ];
    for (template, want) in cases {
        let filters = format!("      - consistentHashKey: \"{template}\"\n");
        assert_eq!(key(&filters, "", &req), want, "{template}");
    }
}

#[test]
fn falls_back_to_forwarded_for_then_peer() {
    let filters = "      - consistentHashKey: \"${request.header.X-User}\"\n";
    let forwarded = Req::get("/")
        .header("x-forwarded-for", " 203.0.113.7 , 10.0.0.1")
        .peer("10.9.9.9");
    assert_eq!(key(filters, "", &forwarded), "203.0.113.7");
    let peer_only = Req::get("/").peer("2001:db8::1");
    assert_eq!(key(filters, "", &peer_only), "2001:db8::1");
    let empty_forwarded = Req::get("/")
        .header("x-forwarded-for", " ,x")
        .peer("10.9.9.9");
    assert_eq!(key(filters, "", &empty_forwarded), "10.9.9.9");
    assert_eq!(
        key(filters, "", &Req::get("/")),
        "",
        "nothing known: empty key"
    );
    // No consistentHashKey at all.
    assert_eq!(key("", "", &Req::get("/").peer("10.0.0.5")), "10.0.0.5");
    // A template resolves only when every placeholder is non-empty.
    let partial = "      - consistentHashKey: \"${request.header.X-User}-${request.query.q}\"\n";
    let req = Req::get("/?q=").header("x-user", "u").peer("10.0.0.6");
    assert_eq!(key(partial, "", &req), "10.0.0.6");
    let req = Req::get("/?q=1").header("x-user", "u").peer("10.0.0.6");
    assert_eq!(key(partial, "", &req), "u-1");
}

#[test]
fn source_is_the_client_address() {
    let filters = "      - consistentHashKey: \"${request.source}\"\n";
    let req = Req::get("/")
        .header("x-forwarded-for", "198.51.100.1")
        .peer("10.0.0.1");
    assert_eq!(key(filters, "", &req), "198.51.100.1");
}

#[test]
fn the_last_key_that_resolves_wins() {
    let filters = "      - consistentHashKey: \"${request.query.a}\"
      - consistentHashKey: \"${request.header.X-B}\"
      - consistentHashKey: \"${request.cookie.c}\"
";
    let all = Req::get("/?a=A").header("x-b", "B").header("cookie", "c=C");
    assert_eq!(key(filters, "", &all), "C");
    let no_cookie = Req::get("/?a=A").header("x-b", "B");
    assert_eq!(key(filters, "", &no_cookie), "B");
    let only_query = Req::get("/?a=A");
    assert_eq!(key(filters, "", &only_query), "A");
}

#[test]
fn the_buffer_is_reused() {
    let t = table(
        "routes:\n  - name: r\n    match: {path: \"/p/{id}\"}\n    filters: [{consistentHashKey: \"${id}\"}]\n    backend: {endpoints: [http://a:1]}\n",
    );
    let mut out = String::with_capacity(64);
    let ptr = out.as_ptr();
    for id in ["1", "22", "333"] {
        let req = Req::get(&format!("/p/{id}"));
        let m = t.find(&req).unwrap();
        m.route.hash_key(&m, &req, &mut out);
        assert_eq!(out, id);
    }
    assert_eq!(out.as_ptr(), ptr, "no reallocation within capacity");
}
