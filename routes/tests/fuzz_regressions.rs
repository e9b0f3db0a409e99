//! Inputs the fuzz targets (`fuzz/`, run by `benches/fuzz.sh`) found to
//! break an invariant, kept inline with the behaviour now expected.

mod common;

use common::error_lines;

/// A file without a final line break: yaml-rust2 reports the end of the
/// stream on a line after the text, so errors there named a line the file
/// does not have (`fuzz.yaml:4:1` for three lines). They now point at the
/// text's last character, where an editor can jump.
#[test]
fn errors_at_the_end_of_a_file_without_a_final_newline_stay_inside_it() {
    // route_file crash-7a00dd7447b6e0af6236f5e7b2815572cbf7021b
    let lines = error_lines("routes:\n  - name: r\n{body}");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("routes.yaml:3:7: YAML syntax error: "),
        "{lines:?}"
    );
    assert_eq!(
        error_lines("routes: ["),
        ["routes.yaml:1:10: YAML syntax error: while parsing a node, did not find expected node content"]
    );
    // Empty values at the end of the text sit right after their key.
    assert_eq!(
        error_lines("routes:\n  - name: r\n    backend:"),
        ["routes.yaml:3:13: route \"r\": backend must be a map, got nothing (null)"]
    );
    assert_eq!(
        error_lines("routes:\n  - name: r\n    backend: {status: 200}\n    match:\n      path:"),
        ["routes.yaml:5:12: route \"r\": match.path must be a string, got nothing (null)"]
    );
    // With the final line break the end is the start of the empty last line,
    // as before.
    assert_eq!(
        error_lines("routes: [\n"),
        ["routes.yaml:2:1: YAML syntax error: while parsing a node, did not find expected node content"]
    );
    // `\r` alone ends a line in YAML.
    assert_eq!(
        error_lines("routes:\r  - name: r\r    backend:"),
        ["routes.yaml:3:13: route \"r\": backend must be a map, got nothing (null)"]
    );
}

/// Without a top-level `routes` key the errors came back unsorted: the
/// "missing" error at the root after unknown keys further down, and a
/// duplicate key (found while reading the map) before the unknown key
/// above it.
#[test]
fn a_file_without_routes_lists_its_errors_in_file_order() {
    // route_file crash-b80efb57752d8bd6f20e473c0133fae580757659, minimised.
    assert_eq!(
        error_lines(":\n:"),
        [
            "routes.yaml:1:1: unknown key \"\" in the route file (expected one of: routes)",
            "routes.yaml:1:1: missing the top-level key \"routes\" (a list of routes)",
            "routes.yaml:2:1: duplicate key \"\" in the route file",
        ]
    );
    assert_eq!(
        error_lines("rout:\n  - name: r\ntatus: 404\n"),
        [
            "routes.yaml:1:1: unknown key \"rout\" in the route file (expected one of: routes)",
            "routes.yaml:1:1: missing the top-level key \"routes\" (a list of routes)",
            "routes.yaml:3:1: unknown key \"tatus\" in the route file (expected one of: routes)",
        ]
    );
}

/// Nested aliases multiply: this 400-byte file expanded to 10^8 nodes
/// (19 GB, 73 s) before the route file bounded what aliases may copy.
/// Found while sizing the route_file target's memory limit.
#[test]
fn nested_aliases_cannot_expand_without_bound() {
    let mut yaml = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..=7 {
        let p = format!("*a{}", i - 1);
        let list = [p.as_str(); 10].join(",");
        yaml.push_str(&format!("a{i}: &a{i} [{list}]\n"));
    }
    yaml.push_str("routes: []\n");
    let lines = error_lines(&yaml);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("routes.yaml:5:")
            && lines[0].contains("YAML aliases here copy more than 100000 nodes"),
        "{lines:?}"
    );
}

#[test]
fn ordinary_aliases_still_share_parts_of_routes() {
    let mut yaml = String::from(
        "routes:\n  - name: r0\n    match: {path: /r0}\n    backend: &b {endpoints: [http://a:1, http://b:2], timeouts: {connect: 1s}}\n",
    );
    for i in 1..2000 {
        yaml.push_str(&format!(
            "  - name: r{i}\n    match: {{path: /r{i}}}\n    backend: *b\n"
        ));
    }
    let t = common::table(&yaml);
    assert_eq!(t.len(), 2000);
    let last = t.get("r1999").unwrap();
    assert_eq!(last.backend, t.get("r0").unwrap().backend);
}

/// yaml-rust2 takes a NUL for the end of the text, so positions after it
/// drifted past the end of their line (`fuzz.yaml:3:6` on a line of four
/// characters). YAML allows no NUL; the file is refused at the NUL.
#[test]
fn a_nul_character_is_refused_where_it_is() {
    // route_file crash-2e4714931be28c931f52816d0443dd885847f4bf, minimised
    // (0xCE 0xCE, invalid UTF-8, read as two U+FFFD).
    assert_eq!(
        error_lines(":\n>\r \u{FFFD}\u{FFFD}\0\n"),
        ["routes.yaml:3:4: YAML syntax error: a NUL character (U+0000) is not allowed"]
    );
    assert_eq!(
        error_lines("routes:\n  - name: r\0\n    backend: {status: 200}\n"),
        ["routes.yaml:2:12: YAML syntax error: a NUL character (U+0000) is not allowed"]
    );
}
