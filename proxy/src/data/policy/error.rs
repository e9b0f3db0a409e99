//! The data plane's one error type and the one table of answers to it.
//!
//! Every failure a transport meets (a refused request, a dead endpoint, a
//! broken response, a full queue) becomes a [`ProxyError`]; [`ProxyError::answer`]
//! says what the client gets. Transports only write that answer.
use crate::data::metrics::Reject;

/// Which side of the proxy failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The client: a request the proxy refuses, or a client gone mid-exchange.
    Downstream,
    /// An endpoint: refused, timed out, broke, or answered something unusable.
    Upstream,
    /// The proxy itself (or its routing table).
    Internal,
}

/// What failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// No route matches the request.
    NoRoute,
    /// A `status` route answers with this code.
    StatusRoute(u16),
    /// The route's pool has no endpoint (or none left to try).
    NoEndpoints,
    /// Every candidate the retry budget allowed failed to connect.
    AllFailed,
    /// An endpoint did not answer within the route's response timeout.
    UpstreamTimeout,
    /// An endpoint's connection broke before a whole response.
    UpstreamBroken,
    /// An endpoint's response head cannot be forwarded as it is (invalid
    /// status, ambiguous framing, unsolicited `101`, endless interim responses).
    BadResponse,
    /// A LIFO admission queue is full.
    QueueFull,
    /// A request waited in a LIFO queue past its timeout.
    QueueTimeout,
    /// A request the proxy refuses before routing it.
    Rejected(Reject),
    /// The client went away: nothing to answer.
    ClientGone,
    /// A bug or an inconsistent table.
    Internal,
}

/// A failure of one request, and whether another endpoint may be tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyError {
    pub kind: ErrorKind,
    pub retryable: bool,
}

/// The response the proxy writes for an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    /// 0: write nothing (the client is gone).
    pub status: u16,
    pub body: &'static str,
    /// `Retry-After: 1` (a queue refused the request).
    pub retry_after: bool,
    /// The connection closes after the answer: the request's framing is in
    /// doubt, or its body was left unread.
    pub close: bool,
}

impl ProxyError {
    pub const fn new(kind: ErrorKind) -> Self {
        Self {
            kind,
            retryable: false,
        }
    }

    pub const fn retryable(kind: ErrorKind) -> Self {
        Self {
            kind,
            retryable: true,
        }
    }

    pub fn side(&self) -> Side {
        match self.kind {
            ErrorKind::Rejected(_) | ErrorKind::ClientGone => Side::Downstream,
            ErrorKind::AllFailed
            | ErrorKind::UpstreamTimeout
            | ErrorKind::UpstreamBroken
            | ErrorKind::BadResponse => Side::Upstream,
            ErrorKind::NoRoute
            | ErrorKind::StatusRoute(_)
            | ErrorKind::NoEndpoints
            | ErrorKind::QueueFull
            | ErrorKind::QueueTimeout
            | ErrorKind::Internal => Side::Internal,
        }
    }

    /// The metric reason of a refused request.
    pub fn rejection(&self) -> Option<Reject> {
        match self.kind {
            ErrorKind::Rejected(reason) => Some(reason),
            _ => None,
        }
    }

    /// The one table of answers.
    pub fn answer(&self) -> Answer {
        let plain = |status, body| Answer {
            status,
            body,
            retry_after: false,
            close: false,
        };
        match self.kind {
            ErrorKind::NoRoute => plain(404, "no route\n"),
            ErrorKind::StatusRoute(code) => plain(code, status_line(code)),
            ErrorKind::NoEndpoints => plain(503, "no endpoints\n"),
            ErrorKind::AllFailed => plain(502, "all endpoints failed\n"),
            ErrorKind::UpstreamTimeout => plain(504, "upstream timeout\n"),
            ErrorKind::UpstreamBroken | ErrorKind::BadResponse => plain(502, "upstream error\n"),
            ErrorKind::QueueFull => Answer {
                retry_after: true,
                ..plain(503, "queue full\n")
            },
            ErrorKind::QueueTimeout => Answer {
                retry_after: true,
                ..plain(503, "queue timeout\n")
            },
            ErrorKind::Rejected(reason) => {
                let (status, body) = match reason {
                    Reject::BodyTooLarge => (413, "request body too large\n"),
                    Reject::MethodNotAllowed => (405, "method not allowed\n"),
                    Reject::HeaderTimeout => (408, "request timeout\n"),
                    Reject::HeaderTooLarge => (431, "request header too large\n"),
                    Reject::BadPath | Reject::AmbiguousPath => (400, "bad path\n"),
                    Reject::BadTarget => (400, "bad request target\n"),
                    Reject::MissingHost => (400, "missing host\n"),
                    Reject::BadHost => (400, "bad host\n"),
                    Reject::BadRequest
                    | Reject::Smuggling
                    | Reject::BadBody
                    | Reject::Incomplete => (400, "bad request\n"),
                };
                // Smuggling: the framing is in doubt; a body over the limit
                // stays unread; a broken body leaves the stream out of step; a
                // client that cannot write a request line is not trusted with more.
                let close = matches!(
                    reason,
                    Reject::Smuggling | Reject::BodyTooLarge | Reject::BadBody | Reject::BadTarget
                );
                Answer {
                    close,
                    ..plain(status, body)
                }
            }
            ErrorKind::ClientGone => plain(0, ""),
            ErrorKind::Internal => plain(500, "internal error\n"),
        }
    }
}

/// gRPC status codes the proxy answers with (the gRPC `Code` numbers).
pub mod grpc_code {
    pub const OK: u8 = 0;
    pub const INVALID_ARGUMENT: u8 = 3;
    pub const DEADLINE_EXCEEDED: u8 = 4;
    pub const PERMISSION_DENIED: u8 = 7;
    pub const RESOURCE_EXHAUSTED: u8 = 8;
    pub const UNIMPLEMENTED: u8 = 12;
    pub const INTERNAL: u8 = 13;
    pub const UNAVAILABLE: u8 = 14;
    pub const UNAUTHENTICATED: u8 = 16;
}

/// The proxy's answer to a gRPC request (`content-type: application/grpc…`):
/// HTTP 200 and no body, the outcome in `grpc-status` and `grpc-message` as a
/// trailers-only response, which gRPC clients read as the call's status
/// (another status would be a protocol error to them). Metrics and the
/// access log still record [`Answer::status`], the HTTP status the proxy
/// decided (a 502 is counted as a 5xx), not the 200 on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrpcAnswer {
    /// The `grpc-status` code.
    pub code: u8,
    /// The `grpc-message`: the answer's one line, without its line break
    /// (plain ASCII, so it needs no percent-encoding).
    pub message: &'static str,
}

/// Whether a request's `content-type` makes it a gRPC call
/// (`application/grpc`, `application/grpc+proto`, `application/grpc-web`…).
#[inline]
pub fn is_grpc(content_type: &[u8]) -> bool {
    const GRPC: &[u8] = b"application/grpc";
    content_type.len() >= GRPC.len() && content_type[..GRPC.len()].eq_ignore_ascii_case(GRPC)
}

impl Answer {
    /// The gRPC form of this answer. The code follows the HTTP status: the
    /// endpoint or capacity is missing (502, 503: `UNAVAILABLE`, which
    /// clients may retry), time ran out (504, 408), nothing serves the
    /// method (404), a limit (429, 413, 431), a bad request (400); the rest
    /// is `INTERNAL`.
    pub fn grpc(&self) -> GrpcAnswer {
        use grpc_code::*;
        let code = match self.status {
            200..=299 => OK,
            400 => INVALID_ARGUMENT,
            401 => UNAUTHENTICATED,
            403 => PERMISSION_DENIED,
            404 => UNIMPLEMENTED,
            408 | 504 => DEADLINE_EXCEEDED,
            413 | 429 | 431 => RESOURCE_EXHAUSTED,
            502 | 503 => UNAVAILABLE,
            _ => INTERNAL,
        };
        GrpcAnswer {
            code,
            message: self.body.trim_end(),
        }
    }
}

/// The body of a `status` route's answer.
fn status_line(status: u16) -> &'static str {
    match status {
        200 => "ok\n",
        204 => "",
        301 | 302 | 307 | 308 => "redirect\n",
        400 => "bad request\n",
        413 => "request body too large\n",
        401 => "unauthorized\n",
        403 => "forbidden\n",
        404 => "not found\n",
        410 => "gone\n",
        429 => "too many requests\n",
        500 => "internal error\n",
        503 => "unavailable\n",
        _ => "\n",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_has_one_answer() {
        let a = ProxyError::new(ErrorKind::Rejected(Reject::Smuggling)).answer();
        assert_eq!((a.status, a.close), (400, true));
        let a = ProxyError::new(ErrorKind::QueueFull).answer();
        assert_eq!(
            (a.status, a.retry_after, a.body),
            (503, true, "queue full\n")
        );
        assert_eq!(ProxyError::new(ErrorKind::BadResponse).answer().status, 502);
        assert_eq!(
            ProxyError::new(ErrorKind::StatusRoute(204)).answer().body,
            ""
        );
        assert_eq!(ProxyError::new(ErrorKind::ClientGone).answer().status, 0);
        assert_eq!(ProxyError::new(ErrorKind::AllFailed).side(), Side::Upstream);
    }

    #[test]
    fn grpc_requests_get_a_grpc_status_for_each_answer() {
        use grpc_code::*;
        let grpc = |kind| ProxyError::new(kind).answer().grpc();
        let cases = [
            (ErrorKind::AllFailed, UNAVAILABLE, "all endpoints failed"),
            (ErrorKind::UpstreamBroken, UNAVAILABLE, "upstream error"),
            (ErrorKind::NoEndpoints, UNAVAILABLE, "no endpoints"),
            (ErrorKind::QueueFull, UNAVAILABLE, "queue full"),
            (
                ErrorKind::UpstreamTimeout,
                DEADLINE_EXCEEDED,
                "upstream timeout",
            ),
            (ErrorKind::NoRoute, UNIMPLEMENTED, "no route"),
            (
                ErrorKind::StatusRoute(429),
                RESOURCE_EXHAUSTED,
                "too many requests",
            ),
            (
                ErrorKind::Rejected(Reject::BodyTooLarge),
                RESOURCE_EXHAUSTED,
                "request body too large",
            ),
            (
                ErrorKind::Rejected(Reject::BadPath),
                INVALID_ARGUMENT,
                "bad path",
            ),
            (ErrorKind::Internal, INTERNAL, "internal error"),
            (ErrorKind::StatusRoute(418), INTERNAL, ""),
            (ErrorKind::StatusRoute(204), OK, ""),
        ];
        for (kind, code, message) in cases {
            assert_eq!(grpc(kind), GrpcAnswer { code, message }, "{kind:?}");
        }
    }

    #[test]
    fn grpc_is_recognised_by_content_type_prefix() {
        assert!(is_grpc(b"application/grpc"));
        assert!(is_grpc(b"application/grpc+proto"));
        assert!(is_grpc(b"Application/GRPC-web"));
        assert!(!is_grpc(b"application/json"));
        assert!(!is_grpc(b"application/grp"));
    }
}
