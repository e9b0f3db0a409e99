//! The cost of a scale event before it happens, through the real binary:
//! `ringress ring --add/--remove/--after/--add-pods` and the admin
//! `/ring/change`, checked against figures this file computes itself (each
//! endpoint's exact share summed from the ring's positions, owners of sampled
//! key hashes through the ring crate, and owners of named keys through the
//! plain `ringress ring KEY...`).
mod support;

use std::collections::BTreeMap;
use std::process::{Command, Output};
use std::time::Duration;

use ringress_ring::{HashRing, Registry, SplitMix64};
use serde_json::Value;
use support::{eventually, Backend, Ringress};

fn addrs(ids: &[u8]) -> Vec<String> {
    ids.iter()
        .map(|i| format!("http://10.0.0.{i}:8080"))
        .collect()
}

fn ring(list: &[String]) -> HashRing {
    let registry = Registry::new();
    HashRing::new(list.iter().map(|a| registry.endpoint(a)).collect())
}

/// The share of key hashes `addr` owns on a ring of `list`: the arcs ending
/// at its positions, summed here from the ring's sorted positions.
fn share(list: &[String], addr: &str) -> f64 {
    let ring = ring(list);
    let positions: Vec<(u64, usize)> = ring.positions().collect();
    let mut previous = positions.last().unwrap().0;
    let mut owned: u128 = 0;
    for &(hash, owner) in &positions {
        if ring.endpoints()[owner].addr() == addr {
            owned += u128::from(hash.wrapping_sub(previous));
        }
        previous = hash;
    }
    if positions
        .iter()
        .all(|&(_, o)| ring.endpoints()[o].addr() == addr)
    {
        return 1.0;
    }
    owned as f64 / 2f64.powi(64)
}

/// Moved share and (from, to) shares over `n` random key hashes, looked up
/// one by one on both rings.
fn sampled(before: &[String], after: &[String], n: usize) -> BTreeMap<(String, String), f64> {
    let (old, new) = (ring(before), ring(after));
    let mut rng = SplitMix64(2024);
    let mut flows = BTreeMap::new();
    for _ in 0..n {
        let key = rng.next();
        let from = old.endpoints()[old.owner(key).unwrap()].addr();
        let to = new.endpoints()[new.owner(key).unwrap()].addr();
        if from != to {
            *flows.entry((from.to_string(), to.to_string())).or_default() += 1.0 / n as f64;
        }
    }
    flows
}

/// 4.5 standard deviations of a 100k-key estimate of a share up to one half.
const SAMPLED_TOLERANCE: f64 = 0.0072;

fn assert_flows_match_sampled(json: &Value, before: &[String], after: &[String]) {
    let sampled = sampled(before, after, 100_000);
    let reported: BTreeMap<(String, String), f64> = json["flows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let name = |k: &str| f[k].as_str().unwrap().to_string();
            ((name("from"), name("to")), f["fraction"].as_f64().unwrap())
        })
        .collect();
    for pair in sampled.keys() {
        assert!(reported.contains_key(pair), "sampled {pair:?} not reported");
    }
    for (pair, fraction) in &reported {
        let estimate = sampled.get(pair).copied().unwrap_or(0.0);
        assert!(
            (fraction - estimate).abs() < SAMPLED_TOLERANCE,
            "{pair:?}: reported {fraction}, sampled {estimate}"
        );
    }
    let total: f64 = reported.values().sum();
    assert!(
        (total - moved(json)).abs() < 1e-12,
        "flows sum to the moved share"
    );
    let estimate: f64 = sampled.values().sum();
    assert!((moved(json) - estimate).abs() < SAMPLED_TOLERANCE);
}

fn moved(json: &Value) -> f64 {
    json["moved_fraction"].as_f64().unwrap()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

fn ringress_ring(args: &[&str]) -> Output {
    Command::new(support::process::binary())
        .arg("ring")
        .args(args)
        .output()
        .unwrap()
}

fn stdout_of(args: &[&str]) -> String {
    let out = ringress_ring(args);
    assert!(out.status.success(), "{args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

fn json_of(args: &[&str]) -> Value {
    serde_json::from_str(&stdout_of(&[args, &["--json"]].concat())).unwrap()
}

/// Each key's owner by the plain `ringress ring --endpoints LIST KEY...`.
fn owners_by_cli(list: &[String], keys: &[String]) -> BTreeMap<String, String> {
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    stdout_of(&[&["--endpoints", &list.join(",")], &keys[..]].concat())
        .lines()
        .map(|l| l.split_once('\t').unwrap())
        .map(|(k, o)| (k.to_string(), o.to_string()))
        .collect()
}

/// The percentage on the text output's `moved:` line.
fn moved_percent(text: &str) -> f64 {
    let line = text.lines().find(|l| l.starts_with("moved: ")).unwrap();
    line["moved: ".len()..]
        .split('%')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn keys(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("sku-{i}")).collect()
}

#[test]
fn cli_plus_one_pod_moves_exactly_its_share_and_only_to_it() {
    let before = addrs(&[1, 2, 3, 4]);
    let new_pod = "http://10.0.0.5:8080";
    let after = [&before[..], &[new_pod.to_string()]].concat();
    let list = before.join(",");
    let json = json_of(&["--endpoints", &list, "--add", new_pod]);
    let exact = share(&after, new_pod);
    assert!((moved(&json) - exact).abs() < 1e-12, "{json} vs {exact}");
    assert!((0.1..0.3).contains(&exact), "about 1/5: {exact}");
    assert_eq!(strings(&json["added"]), [new_pod]);
    assert!(strings(&json["removed"]).is_empty());
    assert_eq!(strings(&json["after"]), after);
    for flow in json["flows"].as_array().unwrap() {
        assert_eq!(flow["to"], new_pod, "{json}");
    }
    assert_flows_match_sampled(&json, &before, &after);

    let text = stdout_of(&["--endpoints", &list, "--add", new_pod]);
    assert!(
        text.starts_with("endpoints: 4 → 5 (added 1, removed 0)\n"),
        "{text}"
    );
    assert!(
        (moved_percent(&text) - exact * 100.0).abs() < 0.0006,
        "{text}"
    );
}

#[test]
fn cli_minus_one_pod_moves_only_its_keys_as_the_plain_cli_places_them() {
    let before = addrs(&[1, 2, 3, 4, 5]);
    let gone = &before[1];
    let after: Vec<String> = before.iter().filter(|a| *a != gone).cloned().collect();
    let keys = keys(300);
    let key_args: Vec<&str> = keys.iter().map(String::as_str).collect();
    let list = before.join(",");
    let text = stdout_of(&[&["--endpoints", &list, "--remove", gone], &key_args[..]].concat());
    assert!(
        text.starts_with("endpoints: 5 → 4 (added 0, removed 1)\n"),
        "{text}"
    );
    assert!(
        (moved_percent(&text) - share(&before, gone) * 100.0).abs() < 0.0006,
        "{text}"
    );

    let lines: Vec<&str> = text.lines().collect();
    let flows_at = lines.iter().position(|l| l.starts_with("from ")).unwrap();
    let keys_at = lines.iter().position(|l| l.starts_with("key ")).unwrap();
    assert_eq!(
        keys_at - flows_at - 1,
        4,
        "its keys go to each of the 4 others"
    );
    for flow in &lines[flows_at + 1..keys_at] {
        assert_eq!(
            flow.split_whitespace().next(),
            Some(gone.as_str()),
            "{flow}"
        );
    }

    let (old, new) = (owners_by_cli(&before, &keys), owners_by_cli(&after, &keys));
    let rows = &lines[keys_at + 1..];
    assert_eq!(rows.len(), keys.len());
    for row in rows {
        let cells: Vec<&str> = row.split_whitespace().collect();
        let (key, from, to) = (cells[0], cells[1], cells[2]);
        assert_eq!((from, to), (old[key].as_str(), new[key].as_str()), "{row}");
        assert_eq!(cells.get(3) == Some(&"moved"), from != to, "{row}");
        assert_eq!(from != to, from == gone, "only its keys move: {row}");
    }
}

#[test]
fn cli_list_change_agrees_with_keys_hashed_through_the_plain_cli() {
    let before = addrs(&[1, 2, 3, 4, 5]);
    let after = addrs(&[4, 1, 7, 3, 8]);
    let keys = keys(400);
    let key_args: Vec<&str> = keys.iter().map(String::as_str).collect();
    let json = json_of(
        &[
            &[
                "--endpoints",
                &before.join(","),
                "--after",
                &after.join(","),
            ],
            &key_args[..],
        ]
        .concat(),
    );
    assert_eq!(strings(&json["added"]), addrs(&[7, 8]));
    assert_eq!(strings(&json["removed"]), addrs(&[2, 5]));
    assert_flows_match_sampled(&json, &before, &after);

    let (old, new) = (owners_by_cli(&before, &keys), owners_by_cli(&after, &keys));
    let flows = json["flows"].as_array().unwrap();
    let mut moved_keys = 0;
    for k in json["keys"].as_array().unwrap() {
        let key = k["key"].as_str().unwrap();
        let (from, to) = (k["before"].as_str().unwrap(), k["after"].as_str().unwrap());
        assert_eq!((from, to), (old[key].as_str(), new[key].as_str()));
        assert_eq!(k["moved"], from != to);
        if from != to {
            moved_keys += 1;
            assert!(
                flows.iter().any(|f| f["from"] == from && f["to"] == to),
                "{k}"
            );
        }
    }
    // 400 named keys: 5 standard deviations of their moved share.
    let named = moved_keys as f64 / keys.len() as f64;
    assert!(
        (named - moved(&json)).abs() < 0.125,
        "{named} vs {}",
        moved(&json)
    );
}

#[test]
fn cli_unchanged_list_moves_nothing() {
    let list = addrs(&[1, 2, 3]);
    let json = json_of(&[
        "--endpoints",
        &list.join(","),
        "--after",
        &addrs(&[3, 1, 2]).join(","),
    ]);
    assert_eq!(moved(&json), 0.0);
    assert!(json["flows"].as_array().unwrap().is_empty());
}

#[test]
fn cli_add_pods_gives_the_spread_over_placeholder_addresses() {
    let list = addrs(&[1, 2, 3, 4]).join(",");
    let json = json_of(&["--endpoints", &list, "--add-pods", "1"]);
    let f = |k: &str| json[k].as_f64().unwrap();
    let (mean, min, max) = (
        f("moved_fraction_mean"),
        f("moved_fraction_min"),
        f("moved_fraction_max"),
    );
    assert_eq!(json["samples"], 100);
    assert!(min < mean && mean < max, "{json}");
    assert!((mean - 0.2).abs() < 0.02, "about 1/5 on average: {json}");
    // The same question, the same answer.
    assert_eq!(json, json_of(&["--endpoints", &list, "--add-pods", "1"]));

    let text = stdout_of(&[
        "--endpoints",
        &list,
        "--remove",
        "http://10.0.0.1:8080",
        "--add-pods",
        "2",
    ]);
    assert!(
        text.starts_with("endpoints: 4 → 5 (2 new pod(s), addresses not known yet)\n"),
        "{text}"
    );
    assert!(
        text.contains("on average over 100 placeholder addresses (min "),
        "{text}"
    );
}

#[test]
fn cli_refuses_changes_that_cannot_apply_with_exit_2() {
    let list = addrs(&[1, 2]).join(",");
    let cases: [(&[&str], &str); 8] = [
        (
            &["--remove", "http://10.0.0.9:8080"],
            "cannot remove http://10.0.0.9:8080: not an endpoint",
        ),
        (
            &["--add", "http://10.0.0.1:8080"],
            "cannot add http://10.0.0.1:8080: already an endpoint",
        ),
        (&["--remove", &list], "the change leaves no endpoint"),
        (&["--after", ""], "empty endpoint address"),
        (&["--after", "a", "--add", "b"], "cannot be used with"),
        (&["--add-pods", "1", "some-key"], "cannot be used with"),
        (&["--add-pods", "0"], "invalid value"),
        (&[], "required"),
    ];
    for (args, why) in cases {
        let out = ringress_ring(&[&["--endpoints", &list], args].concat());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(why), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

fn routes_yaml(endpoints: &[String]) -> String {
    let list = endpoints.join(", ");
    format!(
        r#"routes:
  - name: products
    match:
      path: /products/{{id}}
    filters:
      - consistentHashKey: "${{id}}"
    backend:
      algorithm: consistentHash
      endpoints: [{list}]
  - name: search
    match:
      path: /search
    backend:
      algorithm: roundRobin
      endpoints: [{list}]
  - name: health
    match:
      path: /health
    backend:
      status: 200
"#
    )
}

fn admin_json(proxy: &Ringress, query: &str) -> (u16, Value) {
    let resp = proxy.admin_get(&format!("/ring/change?{query}"));
    let body = serde_json::from_str(&resp.body).unwrap_or_else(|_| panic!("{}", resp.body));
    (resp.status, body)
}

#[test]
fn admin_ring_change_is_computed_against_the_endpoints_in_force() {
    let backends: Vec<Backend> = ["a", "b", "c"].map(Backend::start).into();
    let urls: Vec<String> = backends.iter().map(Backend::url).collect();
    let proxy = Ringress::start(&routes_yaml(&urls));
    let new_pod = "http://127.0.0.1:1";

    let (status, add) = admin_json(&proxy, &format!("route=products&add={new_pod}"));
    assert_eq!(status, 200, "{add}");
    assert_eq!(add["route"], "products");
    assert_eq!(strings(&add["before"]), urls);
    let after = [&urls[..], &[new_pod.to_string()]].concat();
    assert!(
        (moved(&add) - share(&after, new_pod)).abs() < 1e-12,
        "{add}"
    );
    let cli = json_of(&["--endpoints", &urls.join(","), "--add", new_pod]);
    assert_eq!(add["flows"], cli["flows"], "the admin and the CLI agree");

    let (status, remove) = admin_json(&proxy, &format!("route=products&remove={}", urls[1]));
    assert_eq!(status, 200, "{remove}");
    assert!(
        (moved(&remove) - share(&urls, &urls[1])).abs() < 1e-12,
        "{remove}"
    );

    // Repeated and comma-separated parameters are one list; `after` too.
    let two = "http://127.0.0.1:1,http://127.0.0.1:2";
    let (_, commas) = admin_json(&proxy, &format!("route=products&add={two}"));
    let (_, repeated) = admin_json(
        &proxy,
        "route=products&add=http://127.0.0.1:1&add=http://127.0.0.1:2",
    );
    assert_eq!(commas, repeated);
    let (_, replaced) = admin_json(
        &proxy,
        &format!("route=products&after={},{two}", urls.join(",")),
    );
    assert_eq!(replaced["flows"], commas["flows"]);
    assert_flows_match_sampled(&commas, &urls, &strings(&commas["after"]));

    // A new route file: the next answer starts from the new list.
    proxy.write_routes(&routes_yaml(&urls[..2]));
    let (status, back) = eventually(Duration::from_secs(10), "the reload", || {
        let (status, v) = admin_json(&proxy, &format!("route=products&add={}", urls[2]));
        (v["before"] == serde_json::json!(urls[..2])).then_some((status, v))
    });
    assert_eq!(status, 200, "{back}");
    assert!(
        (moved(&back) - share(&urls, &urls[2])).abs() < 1e-12,
        "{back}"
    );
}

#[test]
fn admin_ring_change_refuses_bad_queries() {
    let backends: Vec<Backend> = ["a", "b"].map(Backend::start).into();
    let urls: Vec<String> = backends.iter().map(Backend::url).collect();
    let proxy = Ringress::start(&routes_yaml(&urls));
    let all = urls.join(",");
    let cases = [
        ("", 400, "route missing"),
        ("route=products", 400, "no change given"),
        (
            "route=products&add=x&after=y",
            400,
            "after cannot be combined",
        ),
        ("route=products&ad=x", 400, "unknown parameter \"ad\""),
        (
            "route=products&remove=http://nope",
            400,
            "cannot remove http://nope: not an endpoint",
        ),
        ("route=products&add=", 400, "empty endpoint address"),
        (
            &format!("route=products&remove={all}"),
            400,
            "the change leaves no endpoint",
        ),
        ("route=nope&add=x", 404, "no route named \"nope\""),
        ("route=search&add=x", 400, "balances by roundRobin"),
        ("route=health&add=x", 400, "status backend"),
    ];
    for (query, status, why) in cases {
        let (got, body) = admin_json(&proxy, query);
        assert_eq!(got, status, "{query}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains(why),
            "{query}: {body}"
        );
    }
}
