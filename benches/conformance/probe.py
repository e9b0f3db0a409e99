#!/usr/bin/env python3
"""HTTP/1.1 conformance probe: ringress (fast path on and off) against HAProxy.

Each case is raw request bytes, sent unchanged to every proxy, plus the raw bytes
a scripted backend answers with. Per case and proxy it records what the client got
(status lines, whether the connection stayed open) and what the backend received
(forwarded or not, the request line and the headers the case is about). The
outcomes become a markdown table (--markdown) for RELIABILITY.md's conformance
table (issue 20). Only the standard library: it must run on any CI box.

    python3 benches/conformance/probe.py --ringress target/debug/ringress --markdown out.md
"""
import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Path: {path}\r\n\r\nok"
FIRST_BYTE_WAIT = 6.5  # longer than HAProxy's 5 s timeouts and ringress's 5 s response timeout
IDLE_WAIT = 0.7        # after this much silence following a response, the connection is "open"


def req(*lines, body=b""):
    """A request from lines joined with CRLF; lines are str or bytes (bytes kept raw)."""
    parts = [l.encode("latin-1") if isinstance(l, str) else l for l in lines]
    return b"\r\n".join(parts) + b"\r\n\r\n" + body


def get(target="/", *hdrs, version="HTTP/1.1", host="h"):
    lines = ["GET %s %s" % (target, version)] + (["Host: " + host] if host else []) + list(hdrs)
    return req(*lines)


class Case:
    def __init__(self, cid, group, rule, name, request, resp=OK, show=(), line=False,
                 body=False, rshow=(), rbody=False, head=False, then=None, close=False):
        self.cid, self.group, self.rule, self.name = cid, group, rule, name
        self.request, self.resp = request, resp
        self.show = show      # request headers whose value at the backend matters
        self.line = line      # show the request line the backend got
        self.body = body      # show the request body the backend got
        self.rshow = rshow    # response headers whose value at the client matters
        self.rbody = rbody    # show the response body the client got
        self.head = head      # responses to this request have no body
        self.then = then      # a second request sent on the same connection afterwards
        self.close = close    # backend closes its connection after answering


# --- the cases -----------------------------------------------------------------------------
F, L, H, P, S, R, Q, X = ("request framing", "request line and target", "Host", "hop-by-hop",
                          "header syntax", "responses", "pipelining", "path")
S63 = "RFC 9112 §6.3"
CASES = [
    # Request framing: a proxy and its backend must agree where each request ends.
    Case("F1", F, S63 + " ¶3", "CL and TE: chunked together (`CL: 4`, body `1␍␊Z␍␊0␍␊␍␊`)",
         req("POST / HTTP/1.1", "Host: h", "Content-Length: 4", "Transfer-Encoding: chunked",
             body=b"1\r\nZ\r\n0\r\n\r\n"), show=("content-length", "transfer-encoding"), body=True),
    Case("F2", F, S63 + " ¶5, RFC 9110 §8.6", "duplicate CL, same value (`3` twice)",
         req("POST / HTTP/1.1", "Host: h", "Content-Length: 3", "Content-Length: 3", body=b"abc"),
         show=("content-length",), body=True),
    Case("F3", F, S63 + " ¶5", "duplicate CL, different values (`3`, `4`)",
         req("POST / HTTP/1.1", "Host: h", "Content-Length: 3", "Content-Length: 4", body=b"abcd"),
         show=("content-length",), body=True),
    Case("F4", F, S63 + " ¶5, RFC 9110 §8.6", "CL list, same values (`3, 3`)",
         req("POST / HTTP/1.1", "Host: h", "Content-Length: 3, 3", body=b"abc"),
         show=("content-length",), body=True),
    Case("F5", F, S63 + " ¶5", "CL list, different values (`3, 4`)",
         req("POST / HTTP/1.1", "Host: h", "Content-Length: 3, 4", body=b"abcd"),
         show=("content-length",), body=True),
    Case("F6", F, S63 + " ¶5", "bad CL `+3`",
         req("POST / HTTP/1.1", "Host: h", "Content-Length: +3", body=b"abc"),
         show=("content-length",), body=True),
    Case("F7", F, S63 + " ¶5", "bad CL `abc`",
         req("POST / HTTP/1.1", "Host: h", "Content-Length: abc", body=b"abc"), body=True),
    Case("F8", F, S63 + " ¶4", "TE `chunked, gzip` (chunked not last)",
         req("POST / HTTP/1.1", "Host: h", "Transfer-Encoding: chunked, gzip",
             body=b"3\r\nabc\r\n0\r\n\r\n"), show=("transfer-encoding",), body=True),
    Case("F9", F, S63 + " ¶4", "TE `gzip` alone",
         req("POST / HTTP/1.1", "Host: h", "Transfer-Encoding: gzip", body=b"abc"),
         show=("transfer-encoding",), body=True),
    Case("F10", F, "RFC 9112 §6.1", "TE `chunked` twice (two field lines)",
         req("POST / HTTP/1.1", "Host: h", "Transfer-Encoding: chunked", "Transfer-Encoding: chunked",
             body=b"3\r\nabc\r\n0\r\n\r\n"), show=("transfer-encoding",), body=True),
    Case("F11", F, "RFC 9112 §7", "TE `Chunked` (coding names are case-insensitive)",
         req("POST / HTTP/1.1", "Host: h", "Transfer-Encoding: Chunked",
             body=b"3\r\nabc\r\n0\r\n\r\n"), show=("transfer-encoding",), body=True),
    Case("F12", F, "RFC 9112 §5.2, §6.3", "TE value on an obs-fold line (`TE:␍␊ chunked`)",
         req("POST / HTTP/1.1", "Host: h", "Transfer-Encoding:", " chunked",
             body=b"3\r\nabc\r\n0\r\n\r\n"), show=("transfer-encoding",), body=True),
    Case("F13", F, "RFC 9112 §7.1", "chunk size overflow (`ffffffffffffffff1`)",
         req("POST / HTTP/1.1", "Host: h", "Transfer-Encoding: chunked",
             body=b"ffffffffffffffff1\r\nabc\r\n0\r\n\r\n"), body=True),
    Case("F14", F, "RFC 9112 §7.1", "chunk data not followed by CRLF (`3␍␊abcXX0␍␊␍␊`)",
         req("POST / HTTP/1.1", "Host: h", "Transfer-Encoding: chunked",
             body=b"3\r\nabcXX0\r\n\r\n"), body=True),
    Case("F15", F, "RFC 9112 §7.1.1", "chunk extensions (`3;a=b;c`)",
         req("POST / HTTP/1.1", "Host: h", "Transfer-Encoding: chunked",
             body=b"3;a=b;c\r\nabc\r\n0\r\n\r\n"), body=True),
    Case("F16", F, "RFC 9112 §2.2, §7.1", "bare LF in chunk lines (`3␊abc␊0␊␊`)",
         req("POST / HTTP/1.1", "Host: h", "Transfer-Encoding: chunked",
             body=b"3\nabc\n0\n\n"), body=True),
    Case("F17", F, "RFC 9112 §2.2", "bare LF line endings in the head",
         b"GET / HTTP/1.1\nHost: h\n\n", line=True, show=("host",)),
    Case("F18", F, "RFC 9112 §6.3 ¶6, RFC 9110 §9.3.1", "GET with a CL body (`CL: 5`, `hello`)",
         req("GET / HTTP/1.1", "Host: h", "Content-Length: 5", body=b"hello"),
         show=("content-length",), body=True),
    Case("F19", F, "RFC 9112 §6.3 ¶4, RFC 9110 §9.3.1", "GET with a chunked body",
         req("GET / HTTP/1.1", "Host: h", "Transfer-Encoding: chunked", body=b"5\r\nhello\r\n0\r\n\r\n"),
         show=("transfer-encoding",), body=True),
    Case("F20", F, "RFC 9112 §7.1.2", "chunked trailer field (`X-T: 1`)",
         req("POST / HTTP/1.1", "Host: h", "Transfer-Encoding: chunked",
             body=b"3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n"), body=True),
    Case("F21", F, S63 + " ¶3", "GET with CL and TE: chunked (fast-path candidate method)",
         req("GET / HTTP/1.1", "Host: h", "Content-Length: 4", "Transfer-Encoding: chunked",
             body=b"1\r\nZ\r\n0\r\n\r\n"), show=("content-length", "transfer-encoding"), body=True),
    # Request line and targets.
    Case("L1", L, "RFC 9112 §3", "two spaces between method and target",
         b"GET  / HTTP/1.1\r\nHost: h\r\n\r\n", line=True),
    Case("L1b", L, "RFC 9112 §3", "two spaces before `/admin` (the 403 route)",
         b"GET  /admin HTTP/1.1\r\nHost: h\r\n\r\n", line=True),
    Case("L2", L, "RFC 9112 §3", "tab between method and target",
         b"GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n", line=True),
    Case("L3", L, "RFC 9112 §3.2.2", "absolute-form `http://h/x`",
         get("http://h/x"), line=True, show=("host",)),
    Case("L4", L, "RFC 9112 §3.2.3", "authority-form with GET (`GET h:80`)",
         get("h:80"), line=True),
    Case("L5", L, "RFC 9112 §3.2.4", "asterisk-form with GET (`GET *`)", get("*"), line=True),
    Case("L6", L, "RFC 9112 §3.2.4", "asterisk-form with OPTIONS (control)",
         req("OPTIONS * HTTP/1.1", "Host: h"), line=True),
    Case("L7", L, "RFC 9112 §3.2", "space inside the target (`/a b`)", get("/a b"), line=True),
    Case("L8", L, "RFC 9112 §3.2", "control char in the target (`/a\\x01b`)",
         get("/a\x01b"), line=True),
    Case("L9", L, "RFC 9112 §3.2", "DEL in the target (`/a\\x7fb`)", get("/a\x7fb"), line=True),
    Case("L10", L, "RFC 9112 §3.2", "fragment in the target (`/a#f`)", get("/a#f"), line=True),
    Case("L11", L, "RFC 9112 §9.3", "HTTP/1.0 with Host", get("/", version="HTTP/1.0"), line=True),
    Case("L12", L, "RFC 9112 §2.3, RFC 9110 §15.6.6", "`HTTP/2.0` in the request line",
         get("/", version="HTTP/2.0"), line=True),
    Case("L13", L, "RFC 9110 §6.2", "`HTTP/1.2` (higher minor: treat as 1.1)",
         get("/", version="HTTP/1.2"), line=True),
    Case("L14", L, "RFC 9112 §2.3", "missing version (`GET /`, HTTP/0.9)",
         b"GET /\r\nHost: h\r\n\r\n", line=True),
    Case("L15", L, "RFC 9112 §2.3", "lowercase version `http/1.1`",
         get("/", version="http/1.1"), line=True),
    Case("L16", L, "RFC 9110 §9.1", "lowercase method `get` (methods are case-sensitive)",
         req("get / HTTP/1.1", "Host: h"), line=True),
    Case("L17", L, "RFC 9112 §2.2", "empty line before the request line",
         b"\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", line=True),
    Case("L18", L, "RFC 9112 §3.2.3, RFC 9110 §9.3.6", "`CONNECT h:80` (authority-form control)",
         req("CONNECT h:80 HTTP/1.1", "Host: h:80"), line=True),
    # Host.
    Case("H1", H, "RFC 9112 §3.2", "HTTP/1.1 without Host", get("/", host=None), show=("host",)),
    Case("H2", H, "RFC 9112 §3.2", "two Host lines (`a`, `b`)",
         req("GET / HTTP/1.1", "Host: a", "Host: b"), show=("host",)),
    Case("H3", H, "RFC 9112 §3.2", "two Host lines, same value",
         req("GET / HTTP/1.1", "Host: h", "Host: h"), show=("host",)),
    Case("H4", H, "RFC 9112 §3.2.2", "absolute-form `http://abs/x` with `Host: hdr`",
         get("http://abs/x", host="hdr"), line=True, show=("host",)),
    Case("H5", H, "RFC 9112 §3.2, RFC 9110 §7.2", "HTTP/1.0 without Host",
         get("/", version="HTTP/1.0", host=None), show=("host",)),
    Case("H6", H, "RFC 9112 §3.2, RFC 9110 §7.2", "empty Host (`Host:`)",
         req("GET / HTTP/1.1", "Host:"), show=("host",)),
    Case("H7", H, "RFC 9112 §3.2", "Host with a space (`a b`)", get("/", host="a b"), show=("host",)),
    Case("H8", H, "RFC 9112 §3.2", "Host with a slash (`h/x`)", get("/", host="h/x"), show=("host",)),
    Case("H9", H, "RFC 9112 §3.2", "Host with userinfo (`u@h`)", get("/", host="u@h"), show=("host",)),
    # Hop-by-hop.
    Case("P1", P, "RFC 9110 §7.6.1", "request `Connection: X-Hop` + `X-Hop: 1`",
         get("/", "Connection: X-Hop", "X-Hop: 1"), show=("connection", "x-hop")),
    Case("P2", P, "RFC 9110 §7.6.1", "response `Connection: X-Resp` + `X-Resp: 1`", get("/"),
         resp=b"HTTP/1.1 200 OK\r\nConnection: X-Resp\r\nX-Resp: 1\r\nContent-Length: 2\r\n\r\nok",
         rshow=("x-resp",)),
    Case("P3", P, "RFC 9110 §7.6.1", "request `Keep-Alive: timeout=5`",
         get("/", "Keep-Alive: timeout=5"), show=("keep-alive",)),
    Case("P4", P, "RFC 9110 §7.6.1", "response `Keep-Alive: timeout=5`", get("/"),
         resp=b"HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5\r\nContent-Length: 2\r\n\r\nok",
         rshow=("keep-alive",)),
    Case("P5", P, "RFC 9110 §7.6.1, §10.1.4", "request `TE: trailers` without `Connection: TE`",
         get("/", "TE: trailers"), show=("te",)),
    Case("P6", P, "RFC 9110 §6.6.2, §7.6.1", "request `Trailer: X-T` (no body)",
         get("/", "Trailer: X-T"), show=("trailer",)),
    Case("P7", P, "RFC 9110 §7.8", "`Upgrade: websocket` without `Connection: upgrade`",
         get("/", "Upgrade: websocket"), show=("upgrade", "connection")),
    Case("P8", P, "RFC 9110 §7.8", "Upgrade handshake, backend answers 101 then data (control)",
         get("/", "Connection: upgrade", "Upgrade: websocket", "Sec-WebSocket-Version: 13",
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="), show=("upgrade", "connection"),
         resp=b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n"
              b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\nhi",
         close=True, rbody=True),
    Case("P9", P, "RFC 9112 Appendix C.2.2, RFC 9110 §7.6.1", "request `Proxy-Connection: keep-alive`",
         get("/", "Proxy-Connection: keep-alive"), show=("proxy-connection",)),
    Case("P10", P, "RFC 9110 §7.6.1", "`Connection: Host` (names an end-to-end field)",
         get("/", "Connection: Host"), show=("host",)),
    Case("P11", P, "RFC 9112 §9.6", "request `Connection: close` (control)",
         get("/", "Connection: close"), show=("connection",)),
    Case("P12", P, "RFC 9110 §7.6.1", "POST with `Connection: Content-Length` (framing field named)",
         req("POST / HTTP/1.1", "Host: h", "Connection: Content-Length", "Content-Length: 3",
             body=b"abc"), show=("content-length", "transfer-encoding"), body=True),
    # Header syntax.
    Case("S1", S, "RFC 9112 §5.1", "space before colon in a request (`X-A : 1`)",
         get("/", "X-A : 1"), show=("x-a",)),
    Case("S2", S, "RFC 9112 §5.1", "space before colon in a response (`X-R : 1`)", get("/"),
         resp=b"HTTP/1.1 200 OK\r\nX-R : 1\r\nContent-Length: 2\r\n\r\nok", rshow=("x-r",)),
    Case("S3", S, "RFC 9112 §5.2", "obs-fold in a request (`X-A: 1␍␊ 2`)",
         get("/", "X-A: 1", " 2"), show=("x-a",)),
    Case("S4", S, "RFC 9112 §5.2", "obs-fold in a response (`X-R: 1␍␊ 2`)", get("/"),
         resp=b"HTTP/1.1 200 OK\r\nX-R: 1\r\n 2\r\nContent-Length: 2\r\n\r\nok", rshow=("x-r",)),
    Case("S5", S, "RFC 9110 §5.5", "NUL in a request value (`a\\0b`)",
         get("/", b"X-A: a\x00b"), show=("x-a",)),
    Case("S6", S, "RFC 9110 §5.5, RFC 9112 §2.2", "bare CR in a request value (`a\\rb`)",
         get("/", b"X-A: a\rb"), show=("x-a",)),
    Case("S7", S, "RFC 9110 §5.5", "NUL in a response value", get("/"),
         resp=b"HTTP/1.1 200 OK\r\nX-R: a\x00b\r\nContent-Length: 2\r\n\r\nok", rshow=("x-r",)),
    Case("S8", S, "RFC 9110 §5.4", "20 KiB header value", get("/", "X-A: " + "a" * 20480)),
    Case("S9", S, "RFC 9110 §5.4, RFC 6585 §5", "70 KiB header value",
         get("/", "X-A: " + "a" * 71680)),
    Case("S10", S, "RFC 9112 §5", "header line without colon (`X-A 1`)", get("/", "X-A 1")),
    Case("S11", S, "RFC 9110 §5.1", "empty field name (`: x`)", get("/", ": x")),
    Case("S12", S, "RFC 9110 §5.1", "non-token char in name (`X(A): 1`)", get("/", "X(A): 1")),
    Case("S13", S, "RFC 9112 §2.2", "whitespace-led line right after the request line",
         b"GET / HTTP/1.1\r\n X-A: 1\r\nHost: h\r\n\r\n", show=("x-a", "host")),
    # Responses.
    Case("R1", R, "RFC 9112 §4, RFC 9110 §15", "status `000`", get("/"),
         resp=b"HTTP/1.1 000 Zero\r\nContent-Length: 2\r\n\r\nok"),
    Case("R2", R, "RFC 9112 §4, RFC 9110 §15", "status `600`", get("/"),
         resp=b"HTTP/1.1 600 Six\r\nContent-Length: 2\r\n\r\nok"),
    Case("R3", R, "RFC 9112 §4", "status `2OO` (letters)", get("/"),
         resp=b"HTTP/1.1 2OO OK\r\nContent-Length: 2\r\n\r\nok"),
    Case("R4", R, "RFC 9112 §4", "status line without reason or SP (`HTTP/1.1 200`)", get("/"),
         resp=b"HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok"),
    Case("R5", R, "RFC 9110 §7.8, §15.2.2", "101 to a request without Upgrade", get("/"),
         resp=b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\nhi",
         close=True, rbody=True),
    Case("R6", R, "RFC 9110 §15.2", "103 before the final 200", get("/"),
         resp=b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n" + OK),
    Case("R7", R, S63 + " ¶3", "response CL and TE (`CL: 7`, chunked `2 ok`)", get("/"),
         resp=b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\nTransfer-Encoding: chunked\r\n\r\n"
              b"2\r\nok\r\n0\r\n\r\n", rbody=True, then=get("/next")),
    Case("R8", R, "RFC 9110 §5.6.1, RFC 9112 §6.1", "response TE `chunked,` (empty list element)", get("/"),
         resp=b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked,\r\n\r\n2\r\nok\r\n0\r\n\r\n", rbody=True),
    Case("R9", R, S63 + " ¶4", "response TE `gzip` (not chunked: read until close)", get("/"),
         resp=b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nzz", close=True, rbody=True),
    Case("R10", R, S63 + " ¶5", "response duplicate CL, different (`2`, `3`)", get("/"),
         resp=b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!", close=True),
    Case("R11", R, S63 + " ¶5", "response CL `abc`", get("/"),
         resp=b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\nok", close=True),
    Case("R12", R, S63 + " ¶8", "close-delimited body (no CL/TE, then close)", get("/"),
         resp=b"HTTP/1.1 200 OK\r\n\r\nclose-delimited", close=True, rbody=True),
    Case("R13", R, S63 + " ¶1, RFC 9110 §9.3.2", "HEAD answered with a 2-byte body, then GET /next",
         req("HEAD / HTTP/1.1", "Host: h"), head=True, then=get("/next"),
         resp=b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Path: {path}\r\n\r\nok"),
    Case("R14", R, S63 + " ¶1, RFC 9110 §15.3.5", "204 with `Content-Length: 2` and no body", get("/"),
         resp=b"HTTP/1.1 204 No Content\r\nContent-Length: 2\r\n\r\n", then=get("/next")),
    Case("R15", R, "RFC 9112 §2.2", "response with bare LF line endings", get("/"),
         resp=b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok", rbody=True),
    # Pipelining.
    Case("Q1", Q, "RFC 9112 §9.3.2", "two GETs in one write (`/p1`, `/p2`)",
         get("/p1") + get("/p2"), line=True, rshow=("x-path",)),
    Case("Q2", Q, "RFC 9112 §9.3.2", "POST with body then GET in one write",
         req("POST /p1 HTTP/1.1", "Host: h", "Content-Length: 3", body=b"abc") + get("/p2"),
         line=True, rshow=("x-path",)),
    # Paths: the route table has /admin (prefix) answered 403 by the proxy itself.
    Case("X1", X, "RFC 3986 §3.3", "`/admin;x` (matrix param; /admin is a 403 route)",
         get("/admin;x"), line=True),
    Case("X2", X, "RFC 9110 §4.2.3, RFC 3986 §2.2", "`/admin%2Fx` (encoded slash)",
         get("/admin%2Fx"), line=True),
    Case("X3", X, "RFC 3986 §5.2.4", "`/a/./b` (dot segment)", get("/a/./b"), line=True),
    Case("X4", X, "RFC 3986 §5.2.4", "`/x/../admin` (dot-dot into the 403 route)",
         get("/x/../admin"), line=True),
    Case("X5", X, "RFC 3986 §5.2.4", "`/../x` (climbs above root)", get("/../x"), line=True),
    Case("X6", X, "RFC 3986 §6.2.2", "`//admin` (empty segment)", get("//admin"), line=True),
    Case("X7", X, "RFC 3986 §6.2.2.2", "`/%61dmin` (encoded unreserved)", get("/%61dmin"), line=True),
    Case("X8", X, "RFC 3986 §5.2.4", "`/a/%2e%2e/admin` (encoded dot-dot)",
         get("/a/%2e%2e/admin"), line=True),
]


# --- the scripted backend ------------------------------------------------------------------
HEAD_END = re.compile(rb"\r?\n\r?\n")


def parse_head(raw):
    lines = re.split(rb"\r?\n", raw)
    hdrs = []
    for l in lines[1:]:
        if b":" in l:
            n, v = l.split(b":", 1)
            hdrs.append((n.strip().lower().decode("latin-1"), v.strip(), l))
    return lines[0], hdrs


def cl_value(v):
    """Content-Length as a backend reads it: a number, or a list of one repeated number."""
    vals = {x.strip() for x in v.split(b",")}
    return int(vals.pop()) if len(vals) == 1 and all(x.isdigit() for x in vals) else None


class Backend:
    """Answers every request with the current case's raw bytes and logs what arrived."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.resp, self.close, self.log = OK, False, []
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            c, _ = self.sock.accept()
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    def serve(self, c):
        c.settimeout(20)
        buf = b""

        def more():
            nonlocal buf
            d = c.recv(65536)
            if not d:
                raise EOFError
            buf += d

        try:
            while True:
                while not HEAD_END.search(buf):
                    more()
                m = HEAD_END.search(buf)
                head, buf = buf[:m.start()], buf[m.end():]
                line, hdrs = parse_head(head)
                h = {n: v for n, v, _ in hdrs}
                entry = {"line": line, "hdrs": hdrs, "body": b"", "complete": False}
                self.log.append(entry)
                if b"chunked" in h.get("transfer-encoding", b"").lower():
                    while True:  # chunked: the proxy re-frames, so CRLF is expected
                        while b"\r\n" not in buf:
                            more()
                        size_line, buf = buf.split(b"\r\n", 1)
                        size = int(size_line.split(b";")[0], 16)
                        if size == 0:
                            while not (buf.startswith(b"\r\n") or b"\r\n\r\n" in buf):
                                more()
                            buf = buf[2:] if buf.startswith(b"\r\n") else buf.split(b"\r\n\r\n", 1)[1]
                            break
                        while len(buf) < size + 2:
                            more()
                        entry["body"] += buf[:size]
                        buf = buf[size + 2:]
                elif cl_value(h.get("content-length", b"")) is not None:
                    n = cl_value(h["content-length"])
                    while len(buf) < n:
                        more()
                    entry["body"], buf = buf[:n], buf[n:]
                entry["complete"] = True
                path = line.split(b" ")[1] if line.count(b" ") >= 2 else b"?"
                c.sendall(self.resp.replace(b"{path}", path))
                if self.close:
                    time.sleep(0.3)
                    return
        except Exception:
            return
        finally:
            c.close()


# --- the client ----------------------------------------------------------------------------
def exchange(sock, data):
    """Send data, read until the peer closes or falls silent; returns (bytes, state)."""
    try:
        sock.sendall(data)
    except OSError:
        pass
    buf, deadline = b"", time.time() + FIRST_BYTE_WAIT
    while True:
        sock.settimeout(max(0.01, deadline - time.time()))
        try:
            d = sock.recv(65536)
        except socket.timeout:
            return buf, "open"
        except ConnectionResetError:
            return buf, "reset"
        if not d:
            return buf, "closed"
        buf += d
        deadline = time.time() + IDLE_WAIT


def parse_responses(buf, head):
    """Split what the client got into responses: [(code, headers, body)], leftover note."""
    out, i = [], 0
    while i < len(buf):
        m = HEAD_END.search(buf, i)
        if not m:
            return out, "garbage `%s`" % esc(buf[i:i + 20])
        line, hdrs = parse_head(buf[i:m.start()])
        st = re.match(rb"HTTP/1\.[01] (\d{3})", line)
        if not st:
            return out, "garbage `%s`" % esc(buf[i:i + 20])
        code, h, j = int(st.group(1)), {n: v for n, v, _ in hdrs}, m.end()
        if code == 101:
            out.append((code, hdrs, buf[j:]))
            return out, None
        if 100 <= code < 200 or code in (204, 304) or head:
            body = b""
        elif b"chunked" in h.get("transfer-encoding", b"").lower():
            body = b""
            while True:
                k = buf.find(b"\r\n", j)
                if k < 0:
                    return out + [(code, hdrs, body)], "truncated"
                try:
                    size = int(buf[j:k].split(b";")[0], 16)
                except ValueError:
                    return out + [(code, hdrs, body)], "bad chunked body"
                j = k + 2
                if size == 0:
                    j = buf.find(b"\r\n\r\n", j - 2) + 4
                    break
                body += buf[j:j + size]
                j += size + 2
        elif "content-length" in h:
            n = int(h["content-length"])
            body, j = buf[j:j + n], j + n
            if len(body) < n:
                return out + [(code, hdrs, body)], "truncated"
        else:
            body, j = buf[j:], len(buf)
        out.append((code, hdrs, body))
        i = j
    return out, None


def esc(b):
    s = b.decode("latin-1") if isinstance(b, bytes) else b
    s = "".join(c if 32 <= ord(c) < 127 else repr(c)[1:-1] for c in s)
    return s.replace("|", "\\|").replace("`", "'")


def short(b, n=40):
    s = esc(b)
    return s if len(s) <= n else s[:n] + "…"


def run_case(port, backend, case):
    backend.resp, backend.close, backend.log = case.resp, case.close, []
    s = socket.create_connection(("127.0.0.1", port))
    buf, state = exchange(s, case.request)
    resps, note = parse_responses(buf, case.head)
    second = None
    if case.then is not None and state == "open":
        b2, state = exchange(s, case.then)
        second = parse_responses(b2, False)
    s.close()
    time.sleep(0.1)  # a late forward still lands in this case's log
    return {"resps": resps, "note": note, "state": state, "second": second,
            "log": list(backend.log)}


def describe(case, r):
    """One table cell: client status(es), connection state, what the backend got."""
    codes = "+".join("%03d" % c for c, _, _ in r["resps"]) or "no answer"
    parts = [codes + (" (%s)" % r["note"] if r["note"] else ""), r["state"]]
    final = r["resps"][-1] if r["resps"] else None
    for name in case.rshow:
        raw = [l for c, hd, _ in r["resps"] for n, _, l in hd if n == name]
        parts.append("client got `%s`" % "`, `".join(short(l) for l in raw)
                     if raw else "client got no " + name)
    if case.rbody and final:
        parts.append("body `%s`" % short(final[2]))
    if r["second"] is not None:
        rs, note = r["second"]
        parts.append("then " + ("+".join("%03d" % c for c, _, _ in rs) or "no answer")
                     + (" (%s)" % note if note else ""))
    log = r["log"]
    if not log:
        parts.append("not forwarded")
    else:
        for k, e in enumerate(log[:2]):
            got = ["forwarded" if len(log) == 1 else "fwd %d/%d" % (k + 1, len(log))]
            if not e["complete"]:
                got[0] += " (body cut)"
            if case.line:
                got.append("`%s`" % short(e["line"], 60))
            for name in case.show:
                vals = [v for n, v, _ in e["hdrs"] if n == name]
                got.append("%s: `%s`" % (name, "`, `".join(short(v) for v in vals))
                           if vals else "no " + name)
            if case.body:
                got.append("body `%s`" % short(e["body"]))
            parts.append(" ".join(got))
    return ", ".join(parts)


# --- the proxies ---------------------------------------------------------------------------
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port, backend, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(get("/ready", "Connection: close"))
                s.settimeout(2)
                if s.recv(100).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit("proxy on port %d never answered 200" % port)


def start_ringress(binary, fast, backend, tmp):
    # /admin is a route the proxy answers itself with 403: path cases show whether a
    # normalized or encoded path reaches the backend past it.
    routes = os.path.join(tmp, "routes-%s.yaml" % fast)
    with open(routes, "w") as f:
        f.write("""routes:
  - name: admin
    match: {pathPrefix: /admin}
    backend: {status: 403}
  - name: all
    backend:
      algorithm: roundRobin
      endpoints: [http://127.0.0.1:%d]
      timeouts: {connect: 1s, response: 5s}
      retries: 0
      passiveHealthCheck: false
""" % backend.port)
    port = free_port()
    p = subprocess.Popen([binary, "--listen", "127.0.0.1:%d" % port, "--admin",
                          "127.0.0.1:%d" % free_port(), "--routes", routes, "--threads", "1",
                          "--fast-path", fast],
                         stdout=subprocess.DEVNULL, stderr=open(routes + ".log", "w"))
    return p, port


def start_haproxy(binary, backend, tmp):
    # The same /admin rule as ringress's route (pathPrefix: the path or a sub-path).
    port = free_port()
    cfg = os.path.join(tmp, "haproxy.cfg")
    with open(cfg, "w") as f:
        f.write("""global
    nbthread 1
defaults
    mode http
    option http-keep-alive
    timeout connect 5s
    timeout client 5s
    timeout server 5s
    timeout http-request 5s
frontend fe
    bind 127.0.0.1:%d
    acl admin path /admin
    acl admin path_beg /admin/
    http-request deny deny_status 403 if admin
    default_backend be
backend be
    server s1 127.0.0.1:%d
""" % (port, backend.port))
    p = subprocess.Popen([binary, "-db", "-f", cfg], stdout=subprocess.DEVNULL,
                         stderr=open(cfg + ".log", "w"))
    return p, port


def markdown(results, names):
    out = ["| rule | case | " + " | ".join(names) + " |",
           "| --- | --- |" + " --- |" * len(names)]
    group = None
    for case in CASES:
        if case.cid not in results[names[0]]:
            continue
        if case.group != group:
            group = case.group
            out.append("| **%s** | |" % group + " |" * len(names))
        cells = [describe(case, results[n][case.cid]) for n in names]
        out.append("| %s | %s: %s | %s |" % (case.rule, case.cid, case.name, " | ".join(cells)))
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ringress", required=True, help="the ringress binary")
    ap.add_argument("--haproxy", default="/usr/sbin/haproxy")
    ap.add_argument("--markdown", help="write the table here (default: stdout)")
    ap.add_argument("--json", help="also write the raw outcomes here")
    ap.add_argument("--cases", default="", help="comma-separated case ids (default: all)")
    a = ap.parse_args()
    only = set(a.cases.split(",")) - {""}
    cases = [c for c in CASES if not only or c.cid in only]

    tmp = tempfile.mkdtemp(prefix="conformance-")
    names = ["ringress fast-path on", "ringress fast-path off", "HAProxy 2.6"]
    backends = {n: Backend() for n in names}
    procs = [start_ringress(a.ringress, "on", backends[names[0]], tmp),
             start_ringress(a.ringress, "off", backends[names[1]], tmp),
             start_haproxy(a.haproxy, backends[names[2]], tmp)]
    results = {n: {} for n in names}
    try:
        for n, (_, port) in zip(names, procs):
            wait_ready(port, backends[n])

        def run(n, port):  # the three proxies run side by side, each with its own backend
            for c in cases:
                results[n][c.cid] = run_case(port, backends[n], c)
        ts = [threading.Thread(target=run, args=(n, port)) for n, (_, port) in zip(names, procs)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    finally:
        for p, _ in procs:
            p.terminate()
            p.wait()
    table = markdown(results, names)
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(table)
    else:
        sys.stdout.write(table)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({n: {cid: describe(next(c for c in CASES if c.cid == cid), r)
                           for cid, r in rs.items()} for n, rs in results.items()}, f, indent=1)
    print("logs and configs in " + tmp, file=sys.stderr)


if __name__ == "__main__":
    main()
