//! The real `ringress` binary, started on free ports with a route file.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use super::client::{self, Client, Response};
use super::{eventually, free_addr};

pub struct Ringress {
    pub child: Child,
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    pub dir: PathBuf,
    pub routes: PathBuf,
}

/// `RINGRESS_FAST_PATH` (`on` or `off`, default `on`): the `--fast-path`
/// setting every test proxy runs with. `.ci/run` runs the suite under both.
pub fn fast_path() -> String {
    std::env::var("RINGRESS_FAST_PATH").unwrap_or_else(|_| "on".into())
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_ringress")
}

/// A fresh directory under the system temp dir, removed by `Ringress::drop`.
pub fn temp_dir(tag: &str) -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "ringress-test-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl Ringress {
    pub fn start(routes_yaml: &str) -> Self {
        Self::start_with(routes_yaml, &[])
    }

    /// Starts the binary with extra arguments and waits until `/readyz` is 200
    /// and the proxy port accepts connections.
    pub fn start_with(routes_yaml: &str, extra: &[&str]) -> Self {
        Self::start_until(routes_yaml, extra, "/readyz", &fast_path())
    }

    /// As `start_with`, with `--fast-path` set by the test rather than by
    /// `RINGRESS_FAST_PATH`, for tests that compare the two paths (`extra`
    /// cannot override it: at 530e1b3 the binary refuses `--fast-path` given
    /// twice, "invalid value 'true'").
    pub fn start_with_fast_path(routes_yaml: &str, extra: &[&str], on: bool) -> Self {
        Self::start_until(routes_yaml, extra, "/readyz", if on { "on" } else { "off" })
    }

    /// Starts the binary and waits only until it serves (`/healthz` and the
    /// proxy port), for cases where it is not meant to be ready.
    pub fn start_live(routes_yaml: &str, extra: &[&str]) -> Self {
        Self::start_until(routes_yaml, extra, "/healthz", &fast_path())
    }

    /// A free port can be taken between `free_addr` and the binary's bind (by
    /// another test's outgoing connection), and the binary then exits at
    /// start-up; so an exit at start-up is retried twice on other ports.
    fn start_until(routes_yaml: &str, extra: &[&str], probe: &str, fast_path: &str) -> Self {
        let mut attempt = 1;
        loop {
            let mut me = Self::spawn(routes_yaml, extra, fast_path);
            match me.wait_until(probe) {
                Ok(()) => return me,
                Err(status) if attempt < 3 => {
                    eprintln!("ringress exited during start-up ({status}); again on other ports");
                    attempt += 1;
                }
                Err(status) => panic!("ringress exited during start-up: {status}"),
            }
        }
    }

    /// Whether the admin port answers `probe` with 200 and the proxy port
    /// accepts connections.
    fn serves(&self, probe: &str) -> bool {
        client::get(self.admin, probe).is_ok_and(|r| r.status == 200)
            && std::net::TcpStream::connect(self.listen).is_ok()
    }

    /// Waits until it `serves(probe)`, or returns how the binary exited before that.
    fn wait_until(&mut self, probe: &str) -> Result<(), ExitStatus> {
        eventually(Duration::from_secs(20), "ringress to start", || {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(Err(status));
            }
            self.serves(probe).then_some(Ok(()))
        })
    }

    fn spawn(routes_yaml: &str, extra: &[&str], fast_path: &str) -> Self {
        let dir = temp_dir("proxy");
        let routes = dir.join("routes.yaml");
        std::fs::write(&routes, routes_yaml).unwrap();
        let listen = free_addr();
        let admin = free_addr();
        let child = Command::new(binary())
            .arg("--routes")
            .arg(&routes)
            .args([
                "--listen",
                &listen.to_string(),
                "--admin",
                &admin.to_string(),
            ])
            .args(["--threads", "2"])
            .args(["--fast-path", fast_path])
            .args(extra)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start ringress");
        Self {
            child,
            listen,
            admin,
            dir,
            routes,
        }
    }

    pub fn wait_ready(&mut self) {
        if let Err(status) = self.wait_until("/readyz") {
            panic!("ringress exited during start-up: {status}");
        }
    }

    pub fn client(&self) -> Client {
        Client::new(self.listen)
    }

    pub fn get(&self, path: &str) -> Response {
        client::get(self.listen, path).expect("request through ringress")
    }

    pub fn admin_get(&self, path: &str) -> Response {
        client::get(self.admin, path).expect("admin request")
    }

    /// Rewrites the route file in place (the watcher polls it).
    pub fn write_routes(&self, yaml: &str) {
        // Write then rename, as a ConfigMap update does, so the watcher never
        // reads half a file.
        let tmp = self.dir.join("routes.yaml.tmp");
        std::fs::write(&tmp, yaml).unwrap();
        std::fs::rename(&tmp, &self.routes).unwrap();
    }

    /// The value of the sample `name{labels}` in `/metrics` (labels given as
    /// `k="v"` pairs in exposition order; empty for none), or 0 when absent.
    pub fn metric(&self, name: &str, labels: &str) -> f64 {
        let text = self.admin_get("/metrics").body;
        let prefix = if labels.is_empty() {
            format!("{name} ")
        } else {
            format!("{name}{{{labels}}} ")
        };
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    }

    /// Sum of every sample of `name` whose label set contains all `labels`.
    pub fn metric_sum(&self, name: &str, labels: &[&str]) -> f64 {
        let text = self.admin_get("/metrics").body;
        text.lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
            .filter(|l| labels.iter().all(|lab| l.contains(lab)))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit and returns its exit code.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let child = &mut self.child;
        eventually(within, "ringress to exit", || {
            child.try_wait().ok().flatten()
        })
        .code()
    }
}

impl Drop for Ringress {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
