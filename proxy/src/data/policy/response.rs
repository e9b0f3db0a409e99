//! Which endpoint response heads the proxy forwards, and how their bodies
//! end. A head that fails here is a 502 on every transport, and counts
//! against the endpoint like a broken connection.
use crate::data::policy::error::{ErrorKind, ProxyError};

/// Interim (1xx) responses tolerated before a final one: an endpoint that
/// keeps sending them is broken, not slow.
pub const MAX_INTERIM_RESPONSES: usize = 16;

/// How the body of a response ends (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body: a response to HEAD, or 1xx, 204, 304.
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding` ending in `chunked`.
    Chunked,
    /// Neither: the body ends when the endpoint closes the connection, so the
    /// client's connection closes after it too.
    UntilClose,
}

const BAD: ProxyError = ProxyError::new(ErrorKind::BadResponse);

/// Whether a status may be forwarded: 100–599, and a `101` only to a request
/// that asked to upgrade. Other interim responses are forwarded to HTTP/1.1
/// clients as they arrive (RFC 9110 §15.2), at most
/// [`MAX_INTERIM_RESPONSES`] of them.
pub fn check_status(status: u16, upgrade_requested: bool) -> Result<(), ProxyError> {
    match status {
        101 if !upgrade_requested => Err(BAD),
        100..=599 => Ok(()),
        _ => Err(BAD),
    }
}

/// The framing of a final response with `status` to a request that was
/// (`head_request`) or was not HEAD, from its header fields. Ambiguous
/// framing — `Content-Length` with `Transfer-Encoding`, conflicting or
/// malformed lengths, a list as a length — is a [`ErrorKind::BadResponse`]:
/// forwarding it would let the client and the proxy disagree where it ends.
pub fn framing<'a>(
    status: u16,
    head_request: bool,
    fields: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> Result<BodyFraming, ProxyError> {
    let mut length: Option<u64> = None;
    let mut last_coding: Option<&[u8]> = None;
    for (name, value) in fields {
        if name.eq_ignore_ascii_case("content-length") {
            let value = value.trim_ascii();
            if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
                return Err(BAD);
            }
            let value = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or(BAD)?;
            if length.is_some_and(|l| l != value) {
                return Err(BAD);
            }
            length = Some(value);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // Several fields form one list; empty elements do not count.
            if let Some(last) = value
                .split(|&b| b == b',')
                .map(<[u8]>::trim_ascii)
                .rfind(|c| !c.is_empty())
            {
                last_coding = Some(last);
            } else if last_coding.is_none() {
                last_coding = Some(b"");
            }
        }
    }
    if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(BodyFraming::Empty);
    }
    match (last_coding, length) {
        (Some(_), Some(_)) => Err(BAD),
        (Some(c), None) if c.eq_ignore_ascii_case(b"chunked") => Ok(BodyFraming::Chunked),
        // A transfer coding without chunked last: read until close.
        (Some(c), None) if !c.is_empty() => Ok(BodyFraming::UntilClose),
        (Some(_), None) => Err(BAD),
        (None, Some(n)) => Ok(BodyFraming::Length(n)),
        (None, None) => Ok(BodyFraming::UntilClose),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(
        status: u16,
        head: bool,
        fields: &[(&'static str, &'static str)],
    ) -> Result<BodyFraming, ProxyError> {
        framing(status, head, fields.iter().map(|(n, v)| (*n, v.as_bytes())))
    }

    #[test]
    fn response_framing_follows_rfc_9112() {
        use BodyFraming::*;
        assert_eq!(
            frame(200, false, &[("Content-Length", "12")]),
            Ok(Length(12))
        );
        assert_eq!(
            frame(
                200,
                false,
                &[("content-length", "5"), ("Content-Length", "5")]
            ),
            Ok(Length(5))
        );
        assert_eq!(
            frame(200, false, &[("Transfer-Encoding", "gzip, chunked")]),
            Ok(Chunked)
        );
        assert_eq!(
            frame(
                200,
                false,
                &[
                    ("Transfer-Encoding", "gzip"),
                    ("Transfer-Encoding", "chunked")
                ]
            ),
            Ok(Chunked)
        );
        assert_eq!(
            frame(200, false, &[("Transfer-Encoding", "chunked,")]),
            Ok(Chunked)
        );
        assert_eq!(
            frame(200, false, &[("Transfer-Encoding", "gzip")]),
            Ok(UntilClose)
        );
        assert_eq!(frame(200, false, &[]), Ok(UntilClose));
        assert_eq!(frame(200, true, &[("Content-Length", "12")]), Ok(Empty));
        assert_eq!(frame(204, false, &[]), Ok(Empty));
        assert_eq!(frame(304, false, &[("Content-Length", "12")]), Ok(Empty));
        for bad in [
            &[("Content-Length", "5"), ("Content-Length", "6")][..],
            &[("Content-Length", "-1")],
            &[("Content-Length", "1,1")],
            &[("Content-Length", "5, 5")],
            &[("Content-Length", "")],
            &[("Content-Length", "5"), ("Transfer-Encoding", "chunked")],
            &[("Transfer-Encoding", "")],
            &[("Transfer-Encoding", " , ")],
        ] {
            assert_eq!(frame(200, false, bad), Err(BAD), "{bad:?}");
        }
    }

    #[test]
    fn statuses_outside_100_to_599_and_unasked_upgrades_are_refused() {
        for ok in [100, 103, 200, 404, 599] {
            assert_eq!(check_status(ok, false), Ok(()), "{ok}");
        }
        for bad in [0, 99, 600, 999] {
            assert_eq!(check_status(bad, false), Err(BAD), "{bad}");
        }
        assert_eq!(check_status(101, false), Err(BAD));
        assert_eq!(check_status(101, true), Ok(()));
    }
}
