//! Sustained keyed traffic from a few keep-alive clients, collecting every
//! failure, for tests that change things under load.
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use super::client::Client;

pub struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    workers: Vec<JoinHandle<Vec<String>>>,
}

/// What a load run saw: successful requests, and each failure described.
pub struct Outcome {
    pub ok: usize,
    pub failures: Vec<String>,
}

impl Load {
    /// `workers` clients each send `GET /products/{worker}-{n}` until stopped;
    /// anything but a 200 answering that very request (the backend's
    /// `x-path`) is a failure.
    pub fn start(addr: SocketAddr, workers: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let workers = (0..workers)
            .map(|w| {
                let (stop, ok) = (Arc::clone(&stop), Arc::clone(&ok));
                thread::spawn(move || {
                    let mut client = Client::new(addr);
                    let mut failures = Vec::new();
                    let mut n = 0;
                    while !stop.load(Ordering::SeqCst) {
                        n += 1;
                        let path = format!("/products/{w}-{n}");
                        match client.get(&path) {
                            // A 200 that answers another request is a failure too.
                            Ok(r)
                                if r.status == 200 && r.header("x-path") == Some(path.as_str()) =>
                            {
                                ok.fetch_add(1, Ordering::SeqCst);
                            }
                            other => failures.push(format!("{path}: {other:?}")),
                        }
                    }
                    failures
                })
            })
            .collect();
        Self { stop, ok, workers }
    }

    pub fn stop(self) -> Outcome {
        self.stop.store(true, Ordering::SeqCst);
        let failures = self
            .workers
            .into_iter()
            .flat_map(|w| w.join().expect("load worker"))
            .collect();
        Outcome {
            ok: self.ok.load(Ordering::SeqCst),
            failures,
        }
    }
}
