//! gRPC through the real binary: tonic clients over h2c to ringress, tonic
//! servers behind it over h2c (`backend.protocol: h2c`), with a raw-bytes
//! codec instead of protobuf code generation. Also the proxy's own answers
//! to gRPC requests (trailers-only, `grpc-status`) to HTTP/2 and HTTP/1.1
//! clients.

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes};
use futures::{Stream, StreamExt};
use tonic::body::Body;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::{BoxFuture, Context, Poll, Service};
use tonic::metadata::MetadataMap;
use tonic::server::{Grpc, NamedService, ServerStreamingService, UnaryService};
use tonic::{Code, Request, Response, Status};

use support::{free_addr, Ringress};

/// Messages as they are: no protobuf.
#[derive(Clone, Copy, Default)]
struct RawCodec;
struct RawEncoder;
struct RawDecoder;

impl Encoder for RawEncoder {
    type Item = Bytes;
    type Error = Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Bytes;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

/// A gRPC server standing for one pod: `test.Pod/Who` answers with the
/// pod's name and the request; `test.Pod/Count` streams `n` replies and ends
/// with a custom trailer beside `grpc-status`.
#[derive(Clone)]
struct Pod {
    name: &'static str,
}

impl NamedService for Pod {
    const NAME: &'static str = "test.Pod";
}

struct Who(&'static str);
struct Count(&'static str);

type Replies = Pin<Box<dyn Stream<Item = Result<Bytes, Status>> + Send>>;

impl UnaryService<Bytes> for Who {
    type Response = Bytes;
    type Future = BoxFuture<Response<Bytes>, Status>;
    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let pod = self.0;
        Box::pin(async move {
            let said = String::from_utf8_lossy(request.get_ref()).into_owned();
            Ok(Response::new(Bytes::from(format!("{pod}:{said}"))))
        })
    }
}

impl ServerStreamingService<Bytes> for Count {
    type Response = Bytes;
    type ResponseStream = Replies;
    type Future = BoxFuture<Response<Replies>, Status>;
    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let pod = self.0;
        Box::pin(async move {
            let n: usize = std::str::from_utf8(request.get_ref())
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| Status::invalid_argument("not a number"))?;
            let mut trailer = MetadataMap::new();
            trailer.insert("x-pod-count", n.to_string().parse().unwrap());
            let end = Status::with_metadata(Code::Ok, "", trailer);
            let replies = (0..n)
                .map(move |i| Ok(Bytes::from(format!("{pod}#{i}"))))
                .chain(std::iter::once(Err(end)));
            Ok(Response::new(
                Box::pin(futures::stream::iter(replies)) as Replies
            ))
        })
    }
}

impl Service<http::Request<Body>> for Pod {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let pod = self.name;
        Box::pin(async move {
            let mut grpc = Grpc::new(RawCodec);
            Ok(match req.uri().path() {
                "/test.Pod/Who" => grpc.unary(Who(pod), req).await,
                "/test.Pod/Count" => grpc.server_streaming(Count(pod), req).await,
                "/test.Pod/Slow" => {
                    // Longer than the `slow` route's response timeout.
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    grpc.unary(Who(pod), req).await
                }
                _ => Status::unimplemented("no such method").into_http(),
            })
        })
    }
}

/// Starts one tonic server per name on `rt`: their addresses, in order, and
/// the connections all of them accepted so far.
fn start_pods(
    rt: &tokio::runtime::Runtime,
    names: &[&'static str],
) -> (Vec<SocketAddr>, Arc<AtomicUsize>) {
    let accepted = Arc::new(AtomicUsize::new(0));
    let addrs = names
        .iter()
        .map(|&name| {
            let listener = rt
                .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
                .unwrap();
            let addr = listener.local_addr().unwrap();
            let counter = Arc::clone(&accepted);
            let incoming =
                tonic::transport::server::TcpIncoming::from(listener).inspect(move |_| {
                    counter.fetch_add(1, Ordering::SeqCst);
                });
            rt.spawn(
                tonic::transport::Server::builder()
                    .add_service(Pod { name })
                    .serve_with_incoming(incoming),
            );
            addr
        })
        .collect();
    (addrs, accepted)
}

/// `pods`: a route keyed by the `x-user` header over them; `slow`: the
/// first pod with a short response timeout; `dead`: an endpoint nobody
/// listens on.
fn routes(pods: &[SocketAddr], dead: SocketAddr) -> String {
    let endpoints: Vec<String> = pods.iter().map(|a| format!("http://{a}")).collect();
    format!(
        r#"routes:
  - name: pods
    match: {{pathPrefix: /test.Pod/}}
    filters:
      - consistentHashKey: "${{request.header.x-user}}"
    backend:
      protocol: h2c
      endpoints: [{}]
  - name: slow
    match: {{path: /test.Pod/Slow}}
    backend:
      protocol: h2c
      timeouts: {{response: 300ms}}
      endpoints: [{}]
  - name: dead
    match: {{pathPrefix: /test.Dead/}}
    backend:
      protocol: h2c
      retries: 0
      endpoints: [http://{dead}]
"#,
        endpoints.join(", "),
        endpoints[0]
    )
}

struct Setup {
    rt: tokio::runtime::Runtime,
    rg: Ringress,
}

fn setup() -> Setup {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (pods, _) = start_pods(&rt, &["pod-a", "pod-b", "pod-c"]);
    let rg = Ringress::start(&routes(&pods, free_addr()));
    Setup { rt, rg }
}

async fn client(proxy: SocketAddr) -> tonic::client::Grpc<tonic::transport::Channel> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{proxy}"))
        .unwrap()
        .timeout(Duration::from_secs(10))
        .connect()
        .await
        .expect("h2c connection to ringress");
    tonic::client::Grpc::new(channel)
}

fn request(user: &str, body: &str) -> Request<Bytes> {
    let mut req = Request::new(Bytes::from(body.to_owned()));
    req.metadata_mut().insert("x-user", user.parse().unwrap());
    req
}

async fn who(
    c: &mut tonic::client::Grpc<tonic::transport::Channel>,
    path: &'static str,
    user: &str,
) -> Result<String, Status> {
    c.ready().await.unwrap();
    let path = http::uri::PathAndQuery::from_static(path);
    let reply = c.unary(request(user, "hi"), path, RawCodec).await?;
    Ok(String::from_utf8(reply.into_inner().to_vec()).unwrap())
}

#[test]
fn unary_calls_reach_the_same_pod_for_the_same_key() {
    let Setup { rt, rg } = setup();
    rt.block_on(async {
        let mut c = client(rg.listen).await;
        let first = who(&mut c, "/test.Pod/Who", "alice").await.unwrap();
        assert!(
            first.starts_with("pod-") && first.ends_with(":hi"),
            "{first}"
        );
        for _ in 0..10 {
            assert_eq!(who(&mut c, "/test.Pod/Who", "alice").await.unwrap(), first);
        }
        let mut pods = std::collections::HashSet::new();
        for user in 0..30 {
            let reply = who(&mut c, "/test.Pod/Who", &format!("user-{user}")).await;
            pods.insert(reply.unwrap().split(':').next().unwrap().to_owned());
        }
        assert!(pods.len() > 1, "keys spread over pods: {pods:?}");
    });
    // Recorded once each response is out, which may be just after the
    // client has it.
    support::eventually(Duration::from_secs(5), "41 requests counted", || {
        (rg.metric_sum("ringress_requests_total", &["route=\"pods\"", "2xx"]) >= 41.0).then_some(())
    });
}

#[test]
fn streamed_replies_and_trailers_reach_the_client() {
    let Setup { rt, rg } = setup();
    rt.block_on(async {
        let mut c = client(rg.listen).await;
        let owner = who(&mut c, "/test.Pod/Who", "bob").await.unwrap();
        let owner = owner.split(':').next().unwrap().to_owned();
        c.ready().await.unwrap();
        let path = http::uri::PathAndQuery::from_static("/test.Pod/Count");
        let mut stream = c
            .server_streaming(request("bob", "50"), path, RawCodec)
            .await
            .expect("stream starts")
            .into_inner();
        let mut replies = Vec::new();
        while let Some(reply) = stream.message().await.expect("no error mid-stream") {
            replies.push(String::from_utf8(reply.to_vec()).unwrap());
        }
        let want: Vec<String> = (0..50).map(|i| format!("{owner}#{i}")).collect();
        assert_eq!(replies, want, "every reply, in order, from the key's pod");
        let trailers = stream.trailers().await.unwrap().expect("trailers");
        assert_eq!(trailers.get("x-pod-count").unwrap(), "50");

        // A status the endpoint ends with is the client's too.
        c.ready().await.unwrap();
        let path = http::uri::PathAndQuery::from_static("/test.Pod/Count");
        let err = c
            .server_streaming(request("bob", "many"), path, RawCodec)
            .await
            .expect_err("the pod refuses");
        assert_eq!(
            (err.code(), err.message()),
            (Code::InvalidArgument, "not a number")
        );
    });
}

#[test]
fn the_proxy_s_own_errors_are_grpc_statuses() {
    let Setup { rt, rg } = setup();
    rt.block_on(async {
        let mut c = client(rg.listen).await;
        let err = who(&mut c, "/test.Dead/Who", "carol").await.unwrap_err();
        assert_eq!(
            (err.code(), err.message()),
            (Code::Unavailable, "all endpoints failed")
        );
        let err = who(&mut c, "/test.Pod/Slow", "carol").await.unwrap_err();
        assert_eq!(
            (err.code(), err.message()),
            (Code::DeadlineExceeded, "upstream timeout")
        );
        let err = who(&mut c, "/nowhere.Svc/Call", "carol").await.unwrap_err();
        assert_eq!(
            (err.code(), err.message()),
            (Code::Unimplemented, "no route")
        );
        // The connection is still good after the proxy's answers.
        assert!(who(&mut c, "/test.Pod/Who", "carol").await.is_ok());
    });
    // Counted as the proxy decided them, not as the 200 on the wire.
    let count = |route: &str, class: &str| {
        rg.metric_sum(
            "ringress_requests_total",
            &[
                &format!("route=\"{route}\""),
                &format!("status_class=\"{class}\""),
            ],
        )
    };
    support::eventually(Duration::from_secs(5), "the answers counted", || {
        (count("dead", "5xx") == 1.0 && count("slow", "5xx") == 1.0).then_some(())
    });
    assert_eq!(count("dead", "2xx") + count("slow", "2xx"), 0.0);
}

#[test]
fn an_http1_client_reaches_an_h2c_endpoint_and_gets_grpc_answers() {
    let Setup { rt: _rt, rg } = setup();
    let mut client = rg.client();
    // One gRPC message: uncompressed, 2 bytes.
    let frame = "\0\0\0\0\u{2}hi";
    let grpc = [
        ("content-type", "application/grpc"),
        ("te", "trailers"),
        ("x-user", "dave"),
    ];
    let r = client
        .request("POST", "/test.Pod/Who", &grpc, frame)
        .unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("content-type"), Some("application/grpc"));
    assert!(r.body.contains(":hi"), "the pod's reply: {:?}", r.body);

    let r = client
        .request("POST", "/test.Dead/Who", &grpc, frame)
        .unwrap();
    assert_eq!(
        (r.status, r.header("grpc-status"), r.header("grpc-message")),
        (200, Some("14"), Some("all endpoints failed"))
    );
    assert_eq!(r.body, "");
    let r = support::client::get(rg.listen, "/test.Dead/Who").unwrap();
    assert_eq!(r.status, 502, "not gRPC: a plain answer");

    // A bodiless GET is one the fast path could carry; it leaves h2c routes
    // to pingora, which speaks HTTP/2 to the pod (HTTP/1.1 would not get a
    // gRPC status back from it).
    let r = support::client::get(rg.listen, "/test.Pod/Who").unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.header("grpc-status").is_some(), "{r:?}");
}

#[test]
fn concurrent_calls_share_connections_to_a_pod() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // One pod: bounded load has nowhere to spill, every call goes to it.
    let (pods, accepted) = start_pods(&rt, &["solo"]);
    let rg = Ringress::start(&routes(&pods, free_addr()));
    const CALLS: usize = 64;
    rt.block_on(async {
        let c = client(rg.listen).await;
        let mut first = c.clone();
        assert_eq!(
            who(&mut first, "/test.Pod/Who", "erin").await.unwrap(),
            "solo:hi"
        );
        let calls = (0..CALLS).map(|_| {
            let mut c = c.clone();
            async move { who(&mut c, "/test.Pod/Who", "erin").await }
        });
        for reply in futures::future::join_all(calls).await {
            assert_eq!(reply.unwrap(), "solo:hi");
        }
    });
    // pingora opens a connection per stream in flight unless told otherwise
    // (`max_h2_streams` 1): 64 for these calls. Multiplexed, they share the
    // first call's connection; on a busy machine a few more open while
    // pingora moves that connection between its idle and in-use pools (1 to
    // 12 seen with the whole file running on 2 cores).
    let connections = accepted.load(Ordering::SeqCst);
    eprintln!(
        "{} calls over {connections} connections to the pod",
        CALLS + 1
    );
    assert!(
        connections <= CALLS / 2,
        "{connections} connections for {CALLS} calls"
    );
}
