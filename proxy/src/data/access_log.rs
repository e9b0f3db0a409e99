//! One JSON line per request on stdout, when enabled with `--access-log`.
use std::io::Write;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub struct Entry<'a> {
    pub client: Option<IpAddr>,
    pub protocol: &'static str,
    pub scheme: &'static str,
    pub method: &'a str,
    pub host: Option<&'a str>,
    pub path: &'a str,
    pub route: Option<&'a str>,
    pub endpoint: Option<&'a str>,
    pub status: u16,
    pub spilled: bool,
    pub retries: u32,
    pub duration: Duration,
}

pub fn write(e: &Entry<'_>) {
    let ts = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let line = serde_json::json!({
        "ts": ts,
        "client": e.client.map(|ip| ip.to_string()),
        "protocol": e.protocol,
        "scheme": e.scheme,
        "method": e.method,
        "host": e.host,
        "path": e.path,
        "route": e.route,
        "endpoint": e.endpoint,
        "status": e.status,
        "spilled": e.spilled,
        "retries": e.retries,
        "duration_ms": e.duration.as_secs_f64() * 1000.0,
    });
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
}
