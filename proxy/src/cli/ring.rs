//! `ringress ring`: each key's owner on a ring of endpoints and, for a
//! proposed change of the endpoints, the share of keys that would change
//! owner and between which endpoints (ownership only, as
//! [`ringress_ring::Movement`] explains).
use std::process::ExitCode;

use ringress_ring::{hash_key, Change, HashRing, Movement, Registry, SplitMix64};
use serde_json::json;

use super::RingArgs;
use crate::admin::change_json;

/// Placeholder addresses tried for `--add-pods`.
const SAMPLES: usize = 100;
/// Fixed, so that the same question gets the same answer.
const SEED: u64 = 0x5ca1_e0f5;

pub fn run(args: &RingArgs) -> ExitCode {
    match report(args) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(why) => {
            eprintln!("ringress ring: {why}");
            ExitCode::from(2)
        }
    }
}

fn report(args: &RingArgs) -> Result<String, String> {
    if args.endpoints.iter().any(String::is_empty) {
        return Err("--endpoints: empty endpoint address".into());
    }
    // Addresses named by --add/--remove apply before any placeholder pods.
    let edit = Change::Edit {
        add: args.add.clone(),
        remove: args.remove.clone(),
    };
    let (change, pods) = match (&args.after, args.add_pods) {
        (Some(after), _) => (Change::Replace(after.clone()), 0),
        (None, Some(pods)) => (edit, usize::from(pods)),
        (None, None) if args.add.is_empty() && args.remove.is_empty() => return Ok(owners(args)),
        (None, None) => (edit, 0),
    };
    let after = change.apply(&args.endpoints).map_err(|e| e.to_string())?;
    Ok(if pods > 0 {
        new_pods(args, &after, pods)
    } else {
        moves(args, &after)
    })
}

fn ring(registry: &Registry, addrs: &[String]) -> HashRing {
    HashRing::new(addrs.iter().map(|a| registry.endpoint(a)).collect())
}

fn owner<'r>(ring: &'r HashRing, key: &str) -> &'r str {
    let i = ring
        .owner(hash_key(key.as_bytes()))
        .expect("rings here are not empty");
    ring.endpoints()[i].addr()
}

/// No change: each key and its owner, tab-separated.
fn owners(args: &RingArgs) -> String {
    let ring = ring(&Registry::new(), &args.endpoints);
    if args.json {
        let keys: Vec<_> = args
            .keys
            .iter()
            .map(|k| json!({"key": k, "owner": owner(&ring, k)}))
            .collect();
        return format!("{}\n", json!({"endpoints": args.endpoints, "keys": keys}));
    }
    args.keys
        .iter()
        .map(|k| format!("{k}\t{}\n", owner(&ring, k)))
        .collect()
}

/// A change to known addresses: the exact share moved, by (from, to), and
/// each key's owner before and after.
fn moves(args: &RingArgs, after: &[String]) -> String {
    let before = &args.endpoints;
    let registry = Registry::new();
    let (old, new) = (ring(&registry, before), ring(&registry, after));
    let movement = Movement::between(&old, &new).expect("both lists are non-empty");
    let keys: Vec<[&str; 3]> = args
        .keys
        .iter()
        .map(|k| [k.as_str(), owner(&old, k), owner(&new, k)])
        .collect();
    if args.json {
        let mut body = change_json(before, after, &movement);
        if !keys.is_empty() {
            body["keys"] = keys
                .iter()
                .map(|[k, b, a]| json!({"key": k, "before": b, "after": a, "moved": b != a}))
                .collect();
        }
        return format!("{body}\n");
    }
    let added = after.iter().filter(|a| !before.contains(a)).count();
    let removed = before.iter().filter(|a| !after.contains(a)).count();
    let mut out = format!(
        "endpoints: {} → {} (added {added}, removed {removed})\nmoved: {} of keys\n",
        before.len(),
        after.len(),
        percent(movement.fraction())
    );
    if !movement.flows.is_empty() {
        let flows = movement
            .flows
            .iter()
            .map(|f| [f.from.clone(), f.to.clone(), percent(f.fraction())]);
        out += &table(["from", "to", "share"], flows);
    }
    if !keys.is_empty() {
        let rows = keys.iter().map(|[k, b, a]| {
            let moved = if b == a { "" } else { "moved" };
            [k, b, a, moved].map(str::to_string)
        });
        out += &table(["key", "before", "after", ""], rows);
    }
    out
}

/// `--add-pods N`: the moved share depends on the addresses the pods will
/// get, so it is given over placeholder addresses.
fn new_pods(args: &RingArgs, known: &[String], pods: usize) -> String {
    let registry = Registry::new();
    let old = ring(&registry, &args.endpoints);
    let mut rng = SplitMix64(SEED);
    let fractions: Vec<f64> = (0..SAMPLES)
        .map(|_| {
            let mut after = known.to_vec();
            after.extend((0..pods).map(|_| format!("new-pod-{:016x}", rng.next())));
            let new = ring(&registry, &after);
            Movement::between(&old, &new)
                .expect("both lists are non-empty")
                .fraction()
        })
        .collect();
    let mean = fractions.iter().sum::<f64>() / SAMPLES as f64;
    let min = fractions.iter().copied().fold(f64::INFINITY, f64::min);
    let max = fractions.iter().copied().fold(0.0, f64::max);
    if args.json {
        let body = json!({
            "before": args.endpoints,
            "after_known": known,
            "add_pods": pods,
            "samples": SAMPLES,
            "moved_fraction_mean": mean,
            "moved_fraction_min": min,
            "moved_fraction_max": max,
        });
        return format!("{body}\n");
    }
    format!(
        "endpoints: {} → {} ({pods} new pod(s), addresses not known yet)\n\
         moved: {} of keys on average over {SAMPLES} placeholder addresses \
         (min {}, max {})\n",
        args.endpoints.len(),
        known.len() + pods,
        percent(mean),
        percent(min),
        percent(max)
    )
}

fn percent(fraction: f64) -> String {
    format!("{:.3}%", fraction * 100.0)
}

/// Rows under a header, columns padded to their widest cell.
fn table<const N: usize>(header: [&str; N], rows: impl Iterator<Item = [String; N]>) -> String {
    let rows: Vec<[String; N]> = std::iter::once(header.map(str::to_string))
        .chain(rows)
        .collect();
    let widths: Vec<usize> = (0..N)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, &w)| format!("{cell:w$}"))
            .collect();
        out += cells.join("  ").trim_end();
        out.push('\n');
    }
    out
}
