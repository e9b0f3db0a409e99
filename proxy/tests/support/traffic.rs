//! Sustained keyed traffic that records every request (key, when it started
//! and ended, status and serving backend, or the error), for tests that break
//! backends under load and must say exactly which requests failed and why.
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::client::Client;

#[derive(Debug, Clone)]
pub struct Sample {
    pub key: String,
    pub started: Instant,
    pub finished: Instant,
    /// Status and `x-backend` header, or the client's error (e.g. a response
    /// cut short).
    pub result: Result<(u16, String, String), String>,
}

impl Sample {
    pub fn ok(&self) -> bool {
        matches!(&self.result, Ok((200, _, _)))
    }

    /// The backend that answered 200, if any.
    pub fn backend(&self) -> Option<&str> {
        match &self.result {
            Ok((200, backend, _)) => Some(backend),
            _ => None,
        }
    }

    /// A short reason for a failure: `502 upstream error`, `io: ...`.
    pub fn why(&self) -> String {
        match &self.result {
            Ok((status, _, body)) => format!("{status} {}", body.trim_end()),
            Err(e) => format!("client error: {e}"),
        }
    }
}

pub struct Traffic {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicUsize>,
    workers: Vec<JoinHandle<Vec<Sample>>>,
}

impl Traffic {
    /// `workers` keep-alive clients each send `GET {prefix}{key}` over `keys`
    /// in turn (each from its own offset) until stopped.
    pub fn start(addr: SocketAddr, workers: usize, prefix: &str, keys: &[String]) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicUsize::new(0));
        let keys: Arc<Vec<String>> = Arc::new(keys.to_vec());
        let workers = (0..workers)
            .map(|w| {
                let (stop, done) = (Arc::clone(&stop), Arc::clone(&done));
                let keys = Arc::clone(&keys);
                let prefix = prefix.to_string();
                thread::spawn(move || {
                    let mut client = Client::new(addr);
                    client.timeout = Duration::from_secs(20);
                    let mut samples = Vec::new();
                    let mut n = w * keys.len() / workers.max(1);
                    while !stop.load(Ordering::SeqCst) {
                        let key = &keys[n % keys.len()];
                        n += 1;
                        let started = Instant::now();
                        let result = client
                            .get(&format!("{prefix}{key}"))
                            .map(|r| {
                                let backend = r.header("x-backend").unwrap_or("").to_string();
                                (r.status, backend, r.body)
                            })
                            .map_err(|e| format!("{:?}: {e}", e.kind()));
                        samples.push(Sample {
                            key: key.clone(),
                            started,
                            finished: Instant::now(),
                            result,
                        });
                        done.fetch_add(1, Ordering::SeqCst);
                    }
                    samples
                })
            })
            .collect();
        Self {
            stop,
            done,
            workers,
        }
    }

    /// Requests completed so far (answered or failed), for pacing a test by
    /// traffic rather than by the clock.
    pub fn completed(&self) -> usize {
        self.done.load(Ordering::SeqCst)
    }

    /// Waits until `n` more requests have completed.
    pub fn wait_for(&self, n: usize, within: Duration) {
        let target = self.completed() + n;
        super::eventually(within, "traffic to make progress", || {
            (self.completed() >= target).then_some(())
        });
    }

    pub fn stop(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::SeqCst);
        let mut all: Vec<Sample> = self
            .workers
            .into_iter()
            .flat_map(|w| w.join().expect("traffic worker"))
            .collect();
        all.sort_by_key(|s| s.started);
        all
    }
}
