//! Which pod owns a key? Reads keys from stdin, one per line, and prints the
//! endpoint each maps to on a ring of the endpoints given as arguments.
//!
//! `cargo run -p ringress-ring --example lookup -- http://10.0.0.1:8080 http://10.0.0.2:8080 < keys.txt`
use std::io::{self, BufRead, BufWriter, Write};

use ringress_ring::{hash_key, HashRing, Registry};

fn main() -> io::Result<()> {
    let addrs: Vec<String> = std::env::args().skip(1).collect();
    if addrs.is_empty() {
        eprintln!("usage: lookup ENDPOINT... < keys (one per line)");
        std::process::exit(2);
    }
    let registry = Registry::new();
    let ring = HashRing::new(addrs.iter().map(|a| registry.endpoint(a)).collect());
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    for line in io::stdin().lock().lines() {
        let key = line?;
        let owner = ring
            .owner(hash_key(key.as_bytes()))
            .expect("at least one endpoint");
        writeln!(out, "{}", ring.endpoints()[owner].addr())?;
    }
    out.flush()
}
