//! Signals: SIGTERM drains, SIGINT stops at once.
//!
//! On SIGTERM `/readyz` turns 503 immediately, pingora stops accepting and lets
//! requests in flight finish for the grace period; the process exits as soon as
//! none is left rather than sleeping out the whole period.
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::{ShutdownSignal, ShutdownSignalWatch};
use tokio::signal::unix::{signal, SignalKind};

use crate::control::ingress::Ingress;

pub struct DrainOnSignal {
    pub ingress: Arc<Ingress>,
}

#[async_trait]
impl ShutdownSignalWatch for DrainOnSignal {
    async fn recv(&self) -> ShutdownSignal {
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
        let mut quit = signal(SignalKind::quit()).expect("SIGQUIT handler");
        tokio::select! {
            _ = int.recv() => {
                log::info!("SIGINT: stopping now");
                ShutdownSignal::FastShutdown
            }
            _ = term.recv() => self.drain("SIGTERM"),
            _ = quit.recv() => self.drain("SIGQUIT"),
        }
    }
}

impl DrainOnSignal {
    fn drain(&self, signal: &str) -> ShutdownSignal {
        log::info!(
            "{signal}: draining ({} requests in flight)",
            self.ingress.active_requests()
        );
        self.ingress.start_draining();
        let ingress = Arc::clone(&self.ingress);
        std::thread::spawn(move || exit_when_idle(&ingress));
        ShutdownSignal::GracefulTerminate
    }
}

/// Exits 0 once no request has been in flight for two checks in a row; the
/// grace period in pingora's main thread remains the upper bound.
fn exit_when_idle(ingress: &Ingress) {
    let mut idle_checks = 0;
    loop {
        std::thread::sleep(Duration::from_millis(50));
        if ingress.active_requests() == 0 {
            idle_checks += 1;
            if idle_checks >= 2 {
                log::info!("drained: exiting");
                std::process::exit(0);
            }
        } else {
            idle_checks = 0;
        }
    }
}
