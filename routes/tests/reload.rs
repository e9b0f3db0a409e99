//! Hot reload: atomic publication, and the previous table kept on errors.

mod common;

use std::sync::Arc;

use common::{table, winner, Req};
use ringress_routes::RouteSource;

const V1: &str = "routes:\n  - name: v1\n    backend: {status: 404}\n";
const V2: &str = "routes:\n  - name: v2\n    backend: {status: 404}\n";

#[test]
fn a_valid_change_is_published_and_bumps_the_generation() {
    let source = RouteSource::new("routes.yaml", table(V1));
    assert_eq!(source.generation(), 0);
    let before = source.current();
    let published = source.reload(V2).unwrap();
    assert_eq!(source.generation(), 1);
    assert!(Arc::ptr_eq(&published, &source.current()));
    assert_eq!(
        winner(&source.load(), &Req::get("/")).as_deref(),
        Some("v2")
    );
    // A reader holding the old table keeps a whole, working table.
    assert_eq!(winner(&before, &Req::get("/")).as_deref(), Some("v1"));
}

#[test]
fn an_invalid_change_keeps_the_previous_table() {
    let source = RouteSource::new("conf/routes.yaml", table(V1));
    let errors = source
        .reload("routes:\n  - name: v2\n    backend: {status: 42}\n")
        .unwrap_err();
    assert_eq!(
        errors.to_string(),
        "conf/routes.yaml:3:23: route \"v2\": backend.status must be >= 100, got 42"
    );
    assert_eq!(source.generation(), 0);
    assert_eq!(
        winner(&source.current(), &Req::get("/")).as_deref(),
        Some("v1")
    );
    source.reload(V2).unwrap();
    assert_eq!(source.generation(), 1);
}

#[test]
fn readers_never_see_a_half_built_table() {
    let source = Arc::new(RouteSource::new("routes.yaml", table(V1)));
    let writer = {
        let source = Arc::clone(&source);
        std::thread::spawn(move || {
            for i in 0..200 {
                source.reload(if i % 2 == 0 { V2 } else { V1 }).unwrap();
            }
        })
    };
    let req = Req::get("/");
    for _ in 0..2_000 {
        let name = winner(&source.load(), &req).unwrap();
        assert!(name == "v1" || name == "v2");
    }
    writer.join().unwrap();
    assert_eq!(source.generation(), 200);
}
