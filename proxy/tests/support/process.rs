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
    /// another test's outgoing connection, or another test's proxy that drew
    /// the same port), and the binary then exits at start-up or waits for it
    /// (pingora retries a bind in use for 30 s); so either is retried twice
    /// on other ports.
    fn start_until(routes_yaml: &str, extra: &[&str], probe: &str, fast_path: &str) -> Self {
        let mut attempt = 1;
        loop {
            let mut me = Self::spawn(routes_yaml, extra, fast_path);
            match me.wait_until(probe) {
                Ok(()) => return me,
                Err(why) if attempt < 3 => {
                    eprintln!("ringress did not start ({why}); again on other ports");
                    let _ = me.child.kill();
                    let _ = me.child.wait();
                    attempt += 1;
                }
                Err(why) => panic!("ringress did not start: {why}"),
            }
        }
    }

    /// Whether the admin port answers `probe` with 200 and the proxy port
    /// accepts connections.
    fn serves(&self, probe: &str) -> bool {
        client::get(self.admin, probe).is_ok_and(|r| r.status == 200)
            && std::net::TcpStream::connect(self.listen).is_ok()
    }

    /// Waits until it `serves(probe)` on a proxy port it listens on itself,
    /// or says why not: it exited, or another process holds its port.
    fn wait_until(&mut self, probe: &str) -> Result<(), String> {
        let mut foreign = 0;
        eventually(Duration::from_secs(20), "ringress to start", || {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(Err(format!("exited: {status}")));
            }
            if !self.serves(probe) {
                return None;
            }
            if listens_on(self.child.id(), self.listen.port()) {
                return Some(Ok(()));
            }
            // Serving, yet the proxy port is someone else's: pingora is
            // retrying its bind. Give it a moment (the bind may be under way).
            foreign += 1;
            (foreign > 20).then(|| Err(format!("{} is another process's", self.listen)))
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
            // Two workers unless the test says how many.
            .args(match extra.contains(&"--threads") {
                true => &[][..],
                false => &["--threads", "2"][..],
            })
            .args(["--fast-path", fast_path])
            .args(extra)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            // The access log (`--access-log`), for tests that read it.
            .stdout(std::fs::File::create(dir.join("stdout.log")).expect("stdout file"))
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

    /// What the binary wrote to stdout so far: access-log lines.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.join("stdout.log")).unwrap_or_default()
    }

    pub fn wait_ready(&mut self) {
        if let Err(why) = self.wait_until("/readyz") {
            panic!("ringress did not start: {why}");
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

/// Whether process `pid` holds a listening TCP socket on `port` (Linux: its
/// descriptors against `/proc/net/tcp{,6}`). Where /proc cannot be read,
/// assumes so.
pub fn listens_on(pid: u32, port: u16) -> bool {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            return true;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let local_port = cols
                .get(1)
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            if local_port == Some(port) && cols.get(3) == Some(&"0A") {
                inodes.extend(cols.get(9).map(|i| format!("socket:[{i}]")));
            }
        }
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return true;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path())
            .is_ok_and(|target| inodes.iter().any(|i| target.as_os_str() == i.as_str()))
    })
}
