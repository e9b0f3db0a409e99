//! The admin listener: `/metrics`, `/healthz`, `/readyz`, `/routes`, `/ring`,
//! `/ring/change`.
//!
//! It runs as a background service rather than a pingora listener so that it
//! keeps answering (`/readyz` → 503) while the proxy listener drains.
use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use ringress_ring::{hash_key, Algorithm, Change, Movement, NoExclusion, PickContext};
use serde_json::json;

use crate::control::ingress::Ingress;
use crate::data::table::{now_ms, Pool, RouteRuntime, Runtime};

/// Serves admin requests on `listener` until the process exits.
pub async fn serve(listener: std::net::TcpListener, ingress: Arc<Ingress>) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            log::error!("admin listener: {e}");
            return;
        }
    };
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                log::warn!("admin accept: {e}");
                continue;
            }
        };
        let ingress = Arc::clone(&ingress);
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let ingress = Arc::clone(&ingress);
                async move { Ok::<_, Infallible>(handle(&ingress, &req)) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn handle(ingress: &Ingress, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let query = req.uri().query().unwrap_or("");
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n".into()),
        "/readyz" => readyz(ingress),
        "/metrics" => {
            let mut resp = text(StatusCode::OK, ingress.metrics().render());
            resp.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            resp
        }
        "/routes" => routes(ingress),
        "/ring" => ring(ingress, query),
        "/ring/change" => ring_change(ingress, query),
        _ => text(StatusCode::NOT_FOUND, "not found\n".into()),
    }
}

fn readyz(ingress: &Ingress) -> Response<Full<Bytes>> {
    if ingress.is_draining() {
        return text(StatusCode::SERVICE_UNAVAILABLE, "draining\n".into());
    }
    let unsynced = ingress.unsynced_services();
    if !unsynced.is_empty() {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("services not synced: {}\n", unsynced.join(", ")),
        );
    }
    text(StatusCode::OK, "ready\n".into())
}

fn routes(ingress: &Ingress) -> Response<Full<Bytes>> {
    let runtime = ingress.runtime();
    let now = now_ms();
    let routes: Vec<_> = runtime
        .routes
        .iter()
        .map(|rr| {
            let endpoints: Vec<_> = rr.pool.as_ref().map_or_else(Vec::new, |pool| {
                pool.balancer
                    .endpoints()
                    .iter()
                    .map(|e| {
                        let mut view = json!({
                            "address": e.addr(),
                            "in_flight": e.in_flight(),
                            "ejected_for_ms": e.health().ejected_for_ms(now),
                        });
                        // While it fades in: the share of its keys it takes now.
                        if let Some(fade) = rr.fade_in.filter(|f| f.fading(e.ready_since_ms(), now))
                        {
                            view["fade_in_share"] = json!(fade.ramp(e.ready_since_ms(), now));
                        }
                        view
                    })
                    .collect()
            });
            json!({"route": &*rr.route, "endpoints": endpoints})
        })
        .collect();
    json_response(
        StatusCode::OK,
        json!({"generation": ingress.generation(), "routes": routes}),
    )
}

fn ring(ingress: &Ingress, query: &str) -> Response<Full<Bytes>> {
    let mut route = None;
    let mut key = None;
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("route", v)) => route = Some(percent_decode(v)),
            Some(("key", v)) => key = Some(percent_decode(v)),
            _ => {}
        }
    }
    let (Some(route), Some(key)) = (route, key) else {
        return json_response(
            StatusCode::BAD_REQUEST,
            json!({"error": "usage: /ring?route=NAME&key=KEY"}),
        );
    };
    let runtime = ingress.runtime();
    let (rr, pool) = match balanced_route(&runtime, &route) {
        Ok(found) => found,
        Err((status, body)) => return json_response(status, body),
    };
    let ctx = PickContext {
        key_hash: hash_key(key.as_bytes()),
        random: crate::data::policy::attempts::random_u64(),
    };
    // The data plane's choice: ejected endpoints avoided unless all are.
    let now = now_ms();
    let pick = ringress_ring::pick(&*pool.balancer, &ctx, &NoExclusion, rr.soft(now));
    let Some(pick) = pick else {
        return json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": "no endpoints", "route": route, "key": key}),
        );
    };
    let endpoints = pool.balancer.endpoints();
    // The ring's owner even when ejection moved the key to its neighbour.
    let owner = match pool.balancer.algorithm() {
        Algorithm::ConsistentHash => pool
            .balancer
            .pick(&ctx, &NoExclusion)
            .map_or(pick.owner, |p| p.owner),
        _ => pick.owner,
    };
    let ejected: Vec<&str> = endpoints
        .iter()
        .filter(|e| e.health().is_ejected(now))
        .map(|e| e.addr())
        .collect();
    json_response(
        StatusCode::OK,
        json!({
            "route": route,
            "key": key,
            "algorithm": pool.balancer.algorithm().name(),
            "endpoint": endpoints[pick.endpoint].addr(),
            "in_flight": endpoints[pick.endpoint].in_flight(),
            "owner": endpoints[owner].addr(),
            "spilled": pick.spilled(),
            "ejected": ejected,
        }),
    )
}

const RING_CHANGE_USAGE: &str = "usage: /ring/change?route=NAME&add=ADDR&remove=ADDR \
     (each repeatable or comma-separated) or /ring/change?route=NAME&after=ADDR,ADDR,...";

/// What a proposed change of a route's endpoints would move, computed against
/// the endpoint list the data plane uses now.
fn ring_change(ingress: &Ingress, query: &str) -> Response<Full<Bytes>> {
    let (route, change) = match change_query(query) {
        Ok(parsed) => parsed,
        Err(why) => {
            return json_response(
                StatusCode::BAD_REQUEST,
                json!({"error": why, "usage": RING_CHANGE_USAGE}),
            )
        }
    };
    let runtime = ingress.runtime();
    let (_, pool) = match balanced_route(&runtime, &route) {
        Ok(found) => found,
        Err((status, body)) => return json_response(status, body),
    };
    let algorithm = pool.balancer.algorithm();
    if algorithm != Algorithm::ConsistentHash {
        return json_response(
            StatusCode::BAD_REQUEST,
            json!({"error": format!(
                "route {route:?} balances by {algorithm}: keys have no owner to move; \
                 only consistentHash routes place keys on a ring"
            )}),
        );
    }
    let before: Vec<String> = pool
        .balancer
        .endpoints()
        .iter()
        .map(|e| e.addr().to_string())
        .collect();
    let after = match change.apply(&before) {
        Ok(after) => after,
        Err(e) => {
            return json_response(
                StatusCode::BAD_REQUEST,
                json!({"error": e.to_string(), "route": route}),
            )
        }
    };
    let Some(movement) = Movement::of_lists(&before, &after) else {
        return json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": "no endpoints", "route": route}),
        );
    };
    let mut body = change_json(&before, &after, &movement);
    body["route"] = route.into();
    json_response(StatusCode::OK, body)
}

/// `route` and a change: `add`/`remove` (repeatable, comma-separated) or `after`.
fn change_query(query: &str) -> Result<(String, Change), String> {
    let mut route = None;
    let (mut add, mut remove, mut after) = (Vec::new(), Vec::new(), None::<Vec<String>>);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(value);
        let list = value.split(',').map(str::to_string);
        match name {
            "route" => route = Some(value),
            "add" => add.extend(list),
            "remove" => remove.extend(list),
            "after" => after.get_or_insert_with(Vec::new).extend(list),
            _ => return Err(format!("unknown parameter {name:?}")),
        }
    }
    let route = route.ok_or("route missing")?;
    let change = match after {
        Some(_) if !(add.is_empty() && remove.is_empty()) => {
            return Err("after cannot be combined with add or remove".into())
        }
        Some(after) => Change::Replace(after),
        None if add.is_empty() && remove.is_empty() => return Err("no change given".into()),
        None => Change::Edit { add, remove },
    };
    Ok((route, change))
}

/// A proposed change of an endpoint list as JSON, shared with
/// `ringress ring --json`.
pub fn change_json(before: &[String], after: &[String], movement: &Movement) -> serde_json::Value {
    let flows: Vec<_> = movement
        .flows
        .iter()
        .map(|f| json!({"from": f.from, "to": f.to, "fraction": f.fraction()}))
        .collect();
    let missing = |from: &[String], of: &[String]| -> Vec<String> {
        of.iter().filter(|a| !from.contains(a)).cloned().collect()
    };
    json!({
        "before": before,
        "after": after,
        "added": missing(before, after),
        "removed": missing(after, before),
        "moved_fraction": movement.fraction(),
        "flows": flows,
    })
}

/// The route named `route` and its pool, or the status and body saying why not.
fn balanced_route<'a>(
    runtime: &'a Runtime,
    route: &str,
) -> Result<(&'a RouteRuntime, &'a Pool), (StatusCode, serde_json::Value)> {
    let Some(rr) = runtime.route(route) else {
        return Err((
            StatusCode::NOT_FOUND,
            json!({"error": format!("no route named {route:?}")}),
        ));
    };
    let Some(pool) = &rr.pool else {
        return Err((
            StatusCode::BAD_REQUEST,
            json!({"error": format!("route {route:?} answers by itself (status backend)")}),
        ));
    };
    Ok((rr, pool))
}

fn percent_decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = match bytes[i] {
            b'+' => Some((b' ', 1)),
            b'%' if i + 2 < bytes.len() => hex(bytes[i + 1])
                .zip(hex(bytes[i + 2]))
                .map(|(h, l)| (h << 4 | l, 3)),
            _ => None,
        };
        let (byte, width) = decoded.unwrap_or((bytes[i], 1));
        out.push(byte);
        i += width;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

fn json_response(status: StatusCode, value: serde_json::Value) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(value.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}
