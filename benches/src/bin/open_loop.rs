//! Open-loop HTTP/1.1 load at a constant rate, with latency corrected for coordinated omission
//! (what wrk2 does; Debian ships only wrk, whose closed loop sends the next request only when a
//! response came back, so a stalled server also stalls the clock that would have counted it).
//!
//! Request `i` is due at `start + i / rate` whatever happened before it. A pacer thread hands each
//! due request to connection `i % conns` at its time; a connection sends its requests one at a
//! time over one keep-alive connection, and a request's latency runs from the time it was due to
//! the end of its response, so time spent queued behind a slow response counts.
//!
//! ```text
//! open-loop --url http://127.0.0.1:18080 --rate 20000 --seconds 8 [--conns 64] [--keys 100000] [--zipf]
//! ```
//!
//! Requests are `GET /products/<id>` with ids as benches/e2e/keys.lua draws them. Prints one JSON
//! object: completed requests, errors, unfinished (still queued 5 s after the last was due),
//! achieved req/s, `kept_up_rps` (responses that ended by the time the last request was due, per
//! second: the rate the server kept up with, below the target when it queues) and latency
//! percentiles in milliseconds.
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// How long requests may still finish after the last one was due.
const DRAIN: Duration = Duration::from_secs(5);

struct Args {
    addr: SocketAddr,
    host: String,
    rate: f64,
    seconds: f64,
    conns: usize,
    keys: u64,
    zipf: bool,
}

const USAGE: &str = "usage: open-loop --url http://HOST:PORT --rate REQ_PER_S --seconds S \
                     [--conns N (64)] [--keys N (100000)] [--zipf]";

fn parse_args() -> Result<Args, String> {
    let mut url = None;
    let (mut rate, mut seconds, mut conns, mut keys, mut zipf) = (None, None, 64, 100_000, false);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        let number = |name: &str, v: String| -> Result<f64, String> {
            v.parse::<f64>()
                .ok()
                .filter(|n| n.is_finite() && *n > 0.0)
                .ok_or(format!("{name}: {v:?} is not a positive number"))
        };
        match flag.as_str() {
            "--url" => url = Some(value("--url")?),
            "--rate" => rate = Some(number("--rate", value("--rate")?)?),
            "--seconds" => seconds = Some(number("--seconds", value("--seconds")?)?),
            "--conns" => conns = number("--conns", value("--conns")?)? as usize,
            "--keys" => keys = number("--keys", value("--keys")?)? as u64,
            "--zipf" => zipf = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let url = url.ok_or("--url is required")?;
    let host = url
        .strip_prefix("http://")
        .map(|h| h.trim_end_matches('/'))
        .filter(|h| !h.is_empty() && !h.contains('/'))
        .ok_or(format!("--url {url:?}: want http://HOST:PORT"))?
        .to_owned();
    let addr = host
        .to_socket_addrs()
        .map_err(|e| format!("--url {url:?}: {e}"))?
        .next()
        .ok_or(format!("--url {url:?}: no address"))?;
    Ok(Args {
        addr,
        host,
        rate: rate.ok_or("--rate is required")?,
        seconds: seconds.ok_or("--seconds is required")?,
        conns: conns.max(1),
        keys: keys.max(1),
        zipf,
    })
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("open-loop: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(&args)) {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("open-loop: {e}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Default)]
struct ConnStats {
    /// Nanoseconds from due time to the end of the response, one per completed request.
    latencies: Vec<u64>,
    errors: u64,
    unfinished: u64,
    /// Responses that ended by the time the last request was due: over `seconds`, the rate the
    /// server kept up with (below the target rate when it queues).
    in_time: u64,
}

async fn run(args: &Args) -> Result<String, String> {
    let total = (args.rate * args.seconds).round() as u64;
    // Every connection is up before the clock starts, so connecting is not measured.
    let mut streams = Vec::with_capacity(args.conns);
    for _ in 0..args.conns {
        streams.push(connect(args.addr).await.map_err(|e| {
            format!(
                "connecting to {}: {e} (is the server listening?)",
                args.addr
            )
        })?);
    }
    let start = Instant::now() + Duration::from_millis(20);
    let end = start + Duration::from_secs_f64(args.seconds);
    let deadline = end + DRAIN;
    let mut senders = Vec::with_capacity(args.conns);
    let mut tasks = Vec::with_capacity(args.conns);
    for (n, stream) in streams.into_iter().enumerate() {
        let (tx, rx) = mpsc::unbounded_channel::<Instant>();
        senders.push(tx);
        let keys = Keys::new(args.keys, args.zipf, n as u64);
        tasks.push(tokio::spawn(connection(
            stream,
            args.addr,
            args.host.clone(),
            keys,
            rx,
            end,
            deadline,
        )));
    }
    // The pacer is a task of this runtime: handing a request to a connection is a same-thread
    // wake, not a thread hop (a pacer thread cost ~30 µs of CPU per request, on the core the
    // backends share: the generator, not the proxies, set the limit at 18,000 req/s).
    let pacer = tokio::spawn(pace(start, args.rate, total, senders));
    let mut all = ConnStats::default();
    for task in tasks {
        let s = task.await.map_err(|e| e.to_string())?;
        all.latencies.extend(s.latencies);
        all.errors += s.errors;
        all.unfinished += s.unfinished;
        all.in_time += s.in_time;
    }
    pacer.await.map_err(|e| e.to_string())??;
    let mut lat = all.latencies;
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return 0.0;
        }
        let i = ((p / 100.0) * lat.len() as f64).ceil() as usize;
        lat[i.clamp(1, lat.len()) - 1] as f64 / 1e6
    };
    Ok(format!(
        "{{\"target_rps\": {}, \"requests\": {}, \"errors\": {}, \"unfinished\": {}, \
         \"rps\": {:.1}, \"kept_up_rps\": {:.1}, \"p50_ms\": {:.4}, \"p90_ms\": {:.4}, \
         \"p99_ms\": {:.4}, \"p999_ms\": {:.4}, \"max_ms\": {:.4}}}",
        args.rate,
        lat.len(),
        all.errors,
        all.unfinished,
        lat.len() as f64 / args.seconds,
        all.in_time as f64 / args.seconds,
        pct(50.0),
        pct(90.0),
        pct(99.0),
        pct(99.9),
        lat.last().copied().unwrap_or(0) as f64 / 1e6
    ))
}

/// Wakes no more often than this: requests due closer together than this go out together, each
/// still timed from its own due time. At 20,000 req/s that is one wake per request at most.
const MIN_WAKE: Duration = Duration::from_micros(20);

/// Hands request `i` to connection `i % conns` at `start + i / rate`, woken by a timerfd
/// (nanosecond timers; tokio's tick in milliseconds, which would bunch sends into bursts).
async fn pace(
    start: Instant,
    rate: f64,
    total: u64,
    senders: Vec<mpsc::UnboundedSender<Instant>>,
) -> Result<(), String> {
    let mut timer = Timer::new().map_err(|e| format!("timerfd: {e}"))?;
    let due = |i: u64| start + Duration::from_secs_f64(i as f64 / rate);
    let mut i = 0;
    while i < total {
        let now = Instant::now();
        while i < total && due(i) <= now {
            // A closed channel means its connection gave up (past the deadline): nothing to do.
            let _ = senders[(i % senders.len() as u64) as usize].send(due(i));
            i += 1;
        }
        if i < total {
            let wait = due(i).max(now + MIN_WAKE) - now;
            timer
                .sleep(wait)
                .await
                .map_err(|e| format!("timerfd: {e}"))?;
        }
    }
    Ok(())
}

/// A one-shot timerfd in tokio's reactor.
struct Timer(tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>);

impl Timer {
    fn new() -> std::io::Result<Self> {
        use std::os::fd::FromRawFd;
        // SAFETY: timerfd_create returns a new descriptor we own, or -1.
        let fd = unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_NONBLOCK) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` is open and owned by nothing else.
        let owned = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        // SAFETY: the descriptor is owned by the AsyncFd for as long as it is registered.
        let registered = unsafe { tokio::io::unix::AsyncFd::register(owned) };
        Ok(Self(registered.map_err(std::io::Error::from)?))
    }

    async fn sleep(&mut self, wait: Duration) -> std::io::Result<()> {
        use std::os::fd::AsRawFd;
        let fd = self.0.get_ref().as_raw_fd();
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: wait.as_secs() as libc::time_t,
                // Zero would disarm it.
                tv_nsec: libc::c_long::from(wait.subsec_nanos().max(1)),
            },
        };
        // SAFETY: `fd` is a timerfd; `spec` outlives the call; no old value asked for.
        if unsafe { libc::timerfd_settime(fd, 0, &spec, std::ptr::null_mut()) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        loop {
            let mut ready = self.0.readable().await?;
            let mut expirations = [0u8; 8];
            // SAFETY: reads 8 bytes into a buffer of 8.
            let n = unsafe { libc::read(fd, expirations.as_mut_ptr().cast(), 8) };
            if n == 8 {
                return Ok(());
            }
            ready.clear_ready();
        }
    }
}

async fn connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

async fn connection(
    mut stream: TcpStream,
    addr: SocketAddr,
    host: String,
    mut keys: Keys,
    mut due: mpsc::UnboundedReceiver<Instant>,
    end: Instant,
    deadline: Instant,
) -> ConnStats {
    let mut stats = ConnStats::default();
    let mut buf = Vec::with_capacity(16 * 1024);
    let mut request = Vec::with_capacity(128);
    let mut broken = false;
    while let Some(due_at) = due.recv().await {
        if Instant::now() > deadline {
            stats.unfinished += 1 + drain(&mut due);
            break;
        }
        if broken {
            match connect(addr).await {
                Ok(s) => {
                    stream = s;
                    broken = false;
                }
                Err(_) => {
                    stats.errors += 1;
                    continue;
                }
            }
        }
        request.clear();
        request.extend_from_slice(
            format!(
                "GET /products/{} HTTP/1.1\r\nHost: {host}\r\n\r\n",
                keys.draw()
            )
            .as_bytes(),
        );
        let outcome = exchange(&mut stream, &request, &mut buf, deadline).await;
        match outcome {
            Ok(status) if (200..400).contains(&status) => {
                let now = Instant::now();
                stats.in_time += u64::from(now <= end);
                stats
                    .latencies
                    .push(now.duration_since(due_at).as_nanos() as u64);
            }
            Ok(_) => stats.errors += 1,
            Err(_) => {
                stats.errors += 1;
                broken = true;
            }
        }
    }
    stats
}

fn drain(rx: &mut mpsc::UnboundedReceiver<Instant>) -> u64 {
    rx.close();
    let mut n = 0;
    while rx.try_recv().is_ok() {
        n += 1;
    }
    n
}

/// Writes one request and reads its whole response; returns its status.
async fn exchange(
    stream: &mut TcpStream,
    request: &[u8],
    buf: &mut Vec<u8>,
    deadline: Instant,
) -> Result<u16, String> {
    let io = async {
        stream.write_all(request).await.map_err(|e| e.to_string())?;
        buf.clear();
        let mut scratch = [0u8; 16 * 1024];
        loop {
            if let Some(done) = response_complete(buf)? {
                buf.drain(..done.1);
                return Ok(done.0);
            }
            let n = stream.read(&mut scratch).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("connection closed mid-response".to_owned());
            }
            buf.extend_from_slice(&scratch[..n]);
        }
    };
    tokio::time::timeout_at(deadline.into(), io)
        .await
        .map_err(|_| "deadline".to_owned())?
}

/// `Some((status, length))` once `buf` holds a whole response (Content-Length or chunked).
fn response_complete(buf: &[u8]) -> Result<Option<(u16, usize)>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let head = match response.parse(buf).map_err(|e| e.to_string())? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => return Ok(None),
    };
    let status = response.code.unwrap_or(0);
    let header = |name: &str| {
        response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_ascii_lowercase())
    };
    if header("transfer-encoding").is_some_and(|te| te.ends_with("chunked")) {
        return Ok(chunked_end(&buf[head..])?.map(|n| (status, head + n)));
    }
    let length = match header("content-length") {
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| format!("content-length {v:?}"))?,
        None if status == 204 || status == 304 || status < 200 => 0,
        None => return Err("response without length".to_owned()),
    };
    Ok((buf.len() >= head + length).then_some((status, head + length)))
}

/// The length of a complete chunked body at the start of `body` (trailers included).
fn chunked_end(body: &[u8]) -> Result<Option<usize>, String> {
    let mut at = 0;
    loop {
        let Some(eol) = find(&body[at..], b"\r\n") else {
            return Ok(None);
        };
        let line = std::str::from_utf8(&body[at..at + eol]).map_err(|e| e.to_string())?;
        let size = usize::from_str_radix(line.split(';').next().unwrap().trim(), 16)
            .map_err(|_| format!("chunk size {line:?}"))?;
        at += eol + 2;
        if size == 0 {
            // Trailers end with an empty line.
            return Ok(find(&body[at..], b"\r\n\r\n")
                .map(|t| at + t + 4)
                .or_else(|| body[at..].starts_with(b"\r\n").then_some(at + 2)));
        }
        if body.len() < at + size + 2 {
            return Ok(None);
        }
        at += size + 2;
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Product ids as benches/e2e/keys.lua draws them: uniform, or `n^(u^3)` for hot keys.
struct Keys {
    n: u64,
    zipf: bool,
    state: u64,
}

impl Keys {
    fn new(n: u64, zipf: bool, seed: u64) -> Self {
        let clock = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Keys {
            n,
            zipf,
            state: (clock ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1,
        }
    }

    /// xorshift64*: plenty for spreading keys.
    fn uniform(&mut self) -> f64 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        (self.state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn draw(&mut self) -> u64 {
        let u = self.uniform();
        if self.zipf {
            ((self.n as f64).powf(u * u * u).floor() as u64).max(1)
        } else {
            1 + (u * self.n as f64) as u64 % self.n
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_and_chunked_framing() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1";
        assert_eq!(response_complete(r).unwrap(), Some((200, 41)));
        assert_eq!(response_complete(&r[..40]).unwrap(), None);
        let c =
            b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
        assert_eq!(response_complete(c).unwrap(), Some((404, c.len())));
        assert_eq!(response_complete(&c[..c.len() - 1]).unwrap(), None);
        let t = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: 1\r\n\r\n";
        assert_eq!(response_complete(t).unwrap(), Some((200, t.len())));
        assert!(response_complete(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
    }

    #[test]
    fn keys_stay_in_range_and_zipf_is_skewed() {
        for zipf in [false, true] {
            let mut k = Keys::new(1000, zipf, 7);
            let ids: Vec<u64> = (0..20_000).map(|_| k.draw()).collect();
            assert!(ids.iter().all(|&i| (1..=1000).contains(&i)));
            let low = ids.iter().filter(|&&i| i <= 10).count();
            // Uniform: ~1% of ids are <= 10; n^(u^3): P(u^3 <= 1/3) = 69%.
            if zipf {
                assert!(low > 12_000, "{low}");
            } else {
                assert!(low < 400, "{low}");
            }
        }
    }
}
