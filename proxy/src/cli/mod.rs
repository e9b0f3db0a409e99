//! Command line: serve, `check`, `ring`.
pub mod ring;
pub mod serve;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "ringress",
    version,
    about = "Kubernetes ingress with consistent-hash load balancing and bounded load",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// The route file (YAML); reloaded when it changes.
    #[arg(long, value_name = "FILE")]
    pub routes: Option<PathBuf>,
    /// Address of the proxy listener.
    #[arg(long, default_value = "0.0.0.0:8080", value_name = "ADDR")]
    pub listen: String,
    /// Address of the admin listener (/metrics, /healthz, /readyz, /routes, /ring, /ring/change).
    #[arg(long, default_value = "127.0.0.1:9911", value_name = "ADDR")]
    pub admin: String,
    /// Worker threads of the proxy listener.
    #[arg(long, default_value_t = default_threads(), value_name = "N")]
    pub threads: usize,
    /// After SIGTERM, how long requests in flight may take to finish.
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub grace_period: Duration,
    /// How often the route file is checked for changes.
    #[arg(long, default_value = "500ms", value_parser = parse_duration, value_name = "DURATION")]
    pub reload_interval: Duration,
    /// Write one JSON line per request to stdout.
    #[arg(long)]
    pub access_log: bool,
    /// Kubernetes client configuration; default: in-cluster service account,
    /// else `KUBECONFIG` or `~/.kube/config`.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// LIFO admission for the whole listener: at most N requests proxied at once.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_concurrency: Option<u64>,
    /// With --max-concurrency: waiters kept (newest served first, oldest shed).
    #[arg(
        long,
        default_value_t = 100,
        value_name = "N",
        requires = "max_concurrency"
    )]
    pub max_queue: usize,
    /// With --max-concurrency: how long a waiter may wait before a 503.
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DURATION", requires = "max_concurrency")]
    pub queue_timeout: Duration,
    /// Longest time from a request's first byte to the end of its header; then 408.
    #[arg(long, default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    pub request_header_timeout: Duration,
    /// Longest wait for the first byte of a request on an open connection; then it is closed.
    #[arg(long, default_value = "60s", value_parser = parse_duration, value_name = "DURATION")]
    pub idle_timeout: Duration,
    /// Largest request header (request line and fields); larger gets 431.
    #[arg(long, default_value = "64KiB", value_parser = parse_header_size, value_name = "BYTES")]
    pub max_request_header: usize,
    /// Largest request body; larger gets 413. Off by default.
    #[arg(long, value_parser = parse_bytes, value_name = "BYTES")]
    pub max_request_body: Option<u64>,
    /// Refuse (400) paths that backends read in more than one way: `;`
    /// parameters, encoded `/` or `\`, backslashes, encoded NUL (README, Paths).
    #[arg(long)]
    pub strict_paths: bool,
    /// `on`: plain keep-alive GET/HEAD requests are served by ringress's own
    /// HTTP/1 loop; `off`: every request goes through pingora's proxy pipeline.
    /// Both apply the same request policy (ARCHITECTURE.md).
    #[arg(long, default_value = "on", value_parser = parse_switch, value_name = "on|off", action = clap::ArgAction::Set)]
    pub fast_path: bool,
    /// Address of the TLS listener (HTTP/1.1 and HTTP/2 by ALPN); needs
    /// --tls-cert and --tls-key.
    #[arg(long, value_name = "ADDR", requires = "tls_cert")]
    pub tls_listen: Option<String>,
    /// A PEM certificate chain for the TLS listener; repeat for more names,
    /// each followed by its --tls-key. SNI picks the pair whose certificate
    /// names the host (wildcards included); the first pair is the default.
    /// Re-read when the file changes.
    #[arg(long, value_name = "FILE", requires = "tls_listen")]
    pub tls_cert: Vec<PathBuf>,
    /// The PEM private key of the --tls-cert in the same position.
    #[arg(long, value_name = "FILE", requires = "tls_listen")]
    pub tls_key: Vec<PathBuf>,
}

fn parse_switch(s: &str) -> Result<bool, String> {
    match s {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("{s:?}: expected on or off")),
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Validate a route file, like `nginx -t`: exit 0, or print the errors and exit 1.
    Check {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Print the endpoint owning each key on a ring of the given endpoints;
    /// with a proposed change (--add, --remove, --after, --add-pods), the
    /// share of keys that would change owner, and between which endpoints.
    Ring(RingArgs),
}

#[derive(clap::Args, Debug)]
pub struct RingArgs {
    /// Comma-separated endpoint addresses, e.g. http://10.0.0.1:8080,http://10.0.0.2:8080
    #[arg(long, value_delimiter = ',', required = true, value_name = "LIST")]
    pub endpoints: Vec<String>,
    /// Proposed change: add these endpoints.
    #[arg(long, value_delimiter = ',', value_name = "ADDR[,ADDR]")]
    pub add: Vec<String>,
    /// Proposed change: remove these endpoints.
    #[arg(long, value_delimiter = ',', value_name = "ADDR[,ADDR]")]
    pub remove: Vec<String>,
    /// Proposed change: the whole endpoint list after it.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "LIST",
        conflicts_with_all = ["add", "remove", "add_pods"]
    )]
    pub after: Option<Vec<String>>,
    /// Proposed change: N new pods whose addresses are not known yet; the
    /// moved share is given as mean, min and max over 100 placeholder addresses.
    #[arg(
        long,
        value_name = "N",
        value_parser = clap::value_parser!(u16).range(1..),
        conflicts_with = "keys"
    )]
    pub add_pods: Option<u16>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Keys to place; optional with a change.
    #[arg(
        value_name = "KEY",
        required_unless_present_any = ["add", "remove", "after", "add_pods"]
    )]
    pub keys: Vec<String>,
}

fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A byte count: `65536`, `64KiB`, `10MiB`, `1GiB`.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let (number, scale) = [("KiB", 1u64 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30)]
        .iter()
        .find_map(|&(unit, scale)| s.strip_suffix(unit).map(|n| (n, scale)))
        .unwrap_or((s, 1));
    number
        .trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| format!("{s:?}: expected a byte count such as 65536, 64KiB or 10MiB"))
}

/// pingora refuses headers over 1 MiB itself (with 400), so a larger limit could not apply.
fn parse_header_size(s: &str) -> Result<usize, String> {
    match parse_bytes(s)? {
        n @ 1024..=1_048_575 => Ok(n as usize),
        _ => Err(format!("{s:?}: must be from 1KiB to 1MiB - 1 byte")),
    }
}

/// `30us`, `500ms`, `10s`, `1m`, `1m30s`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    if let Ok(secs) = s.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).map_err(|e| e.to_string());
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("{s:?}: missing unit (us, ms, s, m, h)"))?;
        let (number, tail) = rest.split_at(digits);
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let value: f64 = number
            .parse()
            .map_err(|_| format!("{s:?}: bad number {number:?}"))?;
        let scale = match unit {
            "us" | "µs" => 0.000_001,
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(format!("{s:?}: unknown unit {unit:?} (us, ms, s, m, h)")),
        };
        total += Duration::try_from_secs_f64(value * scale).map_err(|e| e.to_string())?;
        rest = tail;
    }
    Ok(total)
}
