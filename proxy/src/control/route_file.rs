//! Route-file hot reload: polls the file and puts each good version in force.
//!
//! Polling (every `--reload-interval`, 500 ms by default) rather than inotify
//! because Kubernetes updates a mounted ConfigMap by swapping a symlink, which
//! inotify on the file misses.
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::control::ingress::Ingress;

pub async fn watch_routes(
    path: PathBuf,
    mut last: String,
    interval: Duration,
    ingress: Arc<Ingress>,
) {
    let mut failing_text: Option<String> = None;
    let mut unreadable = false;
    loop {
        tokio::time::sleep(interval).await;
        let text = match tokio::fs::read_to_string(&path).await {
            Ok(text) => {
                unreadable = false;
                text
            }
            Err(e) => {
                if !unreadable {
                    log::error!(
                        "route file {}: {e}; the routes in force stay",
                        path.display()
                    );
                    ingress.metrics().reload_failures.inc();
                    unreadable = true;
                }
                continue;
            }
        };
        if text == last || failing_text.as_deref() == Some(text.as_str()) {
            continue;
        }
        let started = Instant::now();
        // Compiling the table and looking up endpoint names block: not on a
        // runtime thread, which also serves requests.
        let reload = {
            let (ingress, text) = (Arc::clone(&ingress), text.clone());
            tokio::task::spawn_blocking(move || ingress.reload(&text)).await
        };
        let Ok(reload) = reload else {
            log::error!("route file {}: reload task failed", path.display());
            continue;
        };
        match reload {
            Ok(()) => {
                ingress
                    .metrics()
                    .reload_seconds
                    .observe(started.elapsed().as_secs_f64());
                log::info!(
                    "route file {}: generation {} in force",
                    path.display(),
                    ingress.generation()
                );
                last = text;
                failing_text = None;
            }
            Err(errors) => {
                log::error!(
                    "route file {} rejected, the previous routes stay in force:\n{errors}",
                    path.display()
                );
                failing_text = Some(text);
            }
        }
    }
}
