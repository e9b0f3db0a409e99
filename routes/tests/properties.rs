//! Properties of the matcher over arbitrary request paths.

mod common;

use common::{table, Req};
use proptest::prelude::*;

const TABLE: &str = "routes:
  - name: product
    match: {path: \"/products/{id}\"}
    backend: {status: 404}
  - name: review
    match: {path: \"/products/{id}/reviews/{r}\"}
    backend: {status: 404}
  - name: static
    match: {pathPrefix: /static/}
    backend: {status: 404}
  - name: versioned
    match: {pathRegex: \"^/v[0-9]+/\"}
    backend: {status: 404}
  - name: tenant
    match: {host: \"*.example.com\", path: /}
    backend: {status: 404}
";

proptest! {
    #[test]
    fn never_panics_on_arbitrary_targets(path in ".*", host in ".*") {
        let t = table(TABLE);
        let req = Req::get("").host(&host);
        let req = Req { path, ..req };
        if let Some(m) = t.find(&req) {
            let mut key = String::new();
            m.route.hash_key(&m, &req, &mut key);
        }
    }

    #[test]
    fn a_param_captures_exactly_its_segment(id in "[^/?]{1,40}") {
        let t = table(TABLE);
        let req = Req { path: format!("/products/{id}"), ..Req::get("/") };
        let m = t.find(&req).unwrap();
        prop_assert_eq!(&m.route.name, "product");
        prop_assert_eq!(m.param("id"), Some(id.as_str()));
    }

    #[test]
    fn prefix_matches_every_subpath(rest in "[a-z0-9/]{0,30}") {
        let t = table(TABLE);
        let req = Req { path: format!("/static/{rest}"), ..Req::get("/") };
        let m = t.find(&req).unwrap();
        prop_assert_eq!(&m.route.name, "static");
    }
}
