//! Idle keep-alive connections on the plain listener. An idle connection holds
//! no buffer: ringress waits for the client's next bytes without one
//! (`data/transport/plain.rs`), and takes a buffer when they arrive. These
//! tests hold hundreds of connections idle, then use them again the ways a
//! client does: a whole request, a request trickled in pieces, two pipelined
//! requests, and check every answer came from the pod the ring names, on one
//! worker thread and on several (connections moved to the worker serving them).
mod support;

use std::thread;
use std::time::Duration;

use support::{consistent_routes, Backend, Raw, Ringress};

const CONNECTIONS: usize = 300;

fn get(id: usize) -> Vec<u8> {
    format!("GET /products/{id} HTTP/1.1\r\nHost: shop.test\r\n\r\n").into_bytes()
}

/// The pod that served `response`, checked to be a kept-alive 200.
fn pod(response: Option<support::RawResponse>, what: &str) -> String {
    let response = response.unwrap_or_else(|| panic!("{what}: no response"));
    assert_eq!(response.status, 200, "{what}: {}", response.status_line);
    assert_ne!(
        response.header("connection").map(str::to_ascii_lowercase),
        Some("close".into()),
        "{what}: the connection stays open"
    );
    response
        .header("x-backend")
        .unwrap_or_else(|| panic!("{what}: no x-backend"))
        .to_string()
}

fn idle_connections_serve_again(threads: &str) {
    let pods = [
        Backend::start("a"),
        Backend::start("b"),
        Backend::start("c"),
    ];
    let routes = consistent_routes(&pods.iter().collect::<Vec<_>>(), "");
    let proxy = Ringress::start_with(&routes, &["--threads", threads]);

    let mut conns: Vec<Raw> = (0..CONNECTIONS)
        .map(|_| Raw::connect(proxy.listen))
        .collect();
    let mut owners = Vec::with_capacity(CONNECTIONS);
    for (i, conn) in conns.iter_mut().enumerate() {
        owners.push(pod(conn.send(&get(i)).response(), &format!("first {i}")));
    }
    assert!(
        pods.iter().all(|p| owners.contains(&p.name)),
        "{CONNECTIONS} keys reach every pod: {owners:?}"
    );
    // Idle long enough for every connection to be waiting without a buffer.
    thread::sleep(Duration::from_millis(300));

    for (i, conn) in conns.iter_mut().enumerate() {
        let request = get(i);
        let what = format!("after idle {i}");
        match i % 3 {
            // A whole request.
            0 => assert_eq!(pod(conn.send(&request).response(), &what), owners[i]),
            // Trickled: the first byte ends the wait, the rest follow.
            1 => {
                conn.send(&request[..1]);
                thread::sleep(Duration::from_millis(2));
                conn.send(&request[1..10]);
                thread::sleep(Duration::from_millis(2));
                conn.send(&request[10..]);
                assert_eq!(pod(conn.response(), &what), owners[i]);
            }
            // Two pipelined requests in one write: answered in order.
            _ => {
                let next = (i + 1) % CONNECTIONS;
                conn.send(&[request, get(next)].concat());
                assert_eq!(pod(conn.response(), &what), owners[i]);
                assert_eq!(pod(conn.response(), &what), owners[next]);
            }
        }
    }
    // And again after a second idle period: nothing was left behind.
    thread::sleep(Duration::from_millis(100));
    for (i, conn) in conns.iter_mut().enumerate().step_by(7) {
        let what = format!("second idle {i}");
        assert_eq!(pod(conn.send(&get(i)).response(), &what), owners[i]);
    }
}

#[test]
fn idle_keep_alive_connections_serve_again_on_one_worker() {
    idle_connections_serve_again("1");
}

#[test]
fn idle_keep_alive_connections_serve_again_on_several_workers() {
    idle_connections_serve_again("3");
}
