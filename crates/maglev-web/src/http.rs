//! The HTTP side: the page, its JSON API, the event stream and the admin
//! actions. Read-only paths never wait for a maglevd (they read the hub);
//! only an admin action calls one, with a deadline.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use maglev_proto as pb;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio_stream::wrappers::ReceiverStream;
use tracing::{info, warn};

use crate::auth::{Gate, COOKIE};
use crate::broker::{Audience, Start};
use crate::hub::Hub;

type Body = BoxBody<Bytes, Infallible>;

/// Connections served at once; more wait in the kernel's backlog.
pub const MAX_CONNECTIONS: usize = 2_048;
/// Event streams open at once; more get 503.
pub const MAX_STREAMS: usize = 1_024;
/// Seconds between `: ping` comments on an event stream.
pub const PING: Duration = Duration::from_secs(15);
/// The largest admin request body.
const MAX_BODY: usize = 4 * 1024;
/// How long an admin action may wait for maglevd.
const ACTION_TIMEOUT: Duration = Duration::from_secs(10);

/// Every response's security headers: no inline script, no framing, no
/// sniffing, no referrer leaking names.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const INDEX: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const STYLE: &str = include_str!("../assets/style.css");
const ICON: &str = include_str!("../assets/icon.svg");

/// The version answer.
pub fn version() -> serde_json::Value {
    json!({
        "name": "maglevd-frontend",
        "version": env!("CARGO_PKG_VERSION"),
        "commit": env!("MAGLEV_GIT_COMMIT"),
        "date": env!("MAGLEV_BUILD_DATE"),
    })
}

/// What the server needs.
#[derive(Debug)]
pub struct App {
    /// The maglevds' state.
    pub hub: Arc<Hub>,
    /// The admin gate.
    pub gate: Gate,
    streams: Arc<Semaphore>,
    stop: watch::Receiver<bool>,
}

fn respond(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()).boxed());
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(content_type).unwrap_or(HeaderValue::from_static("text/plain")),
    );
    r
}

fn json_response(status: StatusCode, v: &impl serde::Serialize) -> Response<Body> {
    respond(
        status,
        "application/json",
        serde_json::to_vec(v).unwrap_or_default(),
    )
}

fn error(status: StatusCode, why: &str) -> Response<Body> {
    json_response(status, &json!({ "error": why }))
}

fn secure(mut r: Response<Body>) -> Response<Body> {
    let h = r.headers_mut();
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    r
}

fn redirect(to: &'static str) -> Response<Body> {
    let mut r = respond(StatusCode::MOVED_PERMANENTLY, "text/plain", to);
    r.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static(to));
    r
}

fn header_str(req: &Request<Incoming>, name: header::HeaderName) -> Option<&str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

impl App {
    /// The app over a hub and a gate.
    pub fn new(hub: Arc<Hub>, gate: Gate) -> (Arc<App>, watch::Sender<bool>) {
        let (tx, rx) = watch::channel(false);
        if !gate.enabled() {
            warn!(
                event = "admin-disabled",
                "/admin/ answers 404: set MAGLEV_FRONTEND_USER and MAGLEV_FRONTEND_PASSWORD (or MAGLEV_FRONTEND_PASSWORD_HASH) to turn it on"
            );
        }
        let app = App {
            hub,
            gate,
            streams: Arc::new(Semaphore::new(MAX_STREAMS)),
            stop: rx,
        };
        (Arc::new(app), tx)
    }

    /// Answers one request.
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        secure(self.route(req).await)
    }

    async fn route(self: Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        let path = req.uri().path().to_string();
        let get = req.method() == Method::GET || req.method() == Method::HEAD;
        if path.starts_with("/admin") {
            return self.admin(req, &path).await;
        }
        if !get {
            let mut r = error(StatusCode::METHOD_NOT_ALLOWED, "only GET here");
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return r;
        }
        match path.as_str() {
            "/" | "/view" => redirect("/view/"),
            "/healthz" => respond(StatusCode::OK, "text/plain", "ok\n"),
            "/view/" => page(),
            "/favicon.ico" | "/assets/icon.svg" => asset("image/svg+xml", ICON),
            "/assets/app.js" => asset("text/javascript; charset=utf-8", APP_JS),
            "/assets/style.css" => asset("text/css; charset=utf-8", STYLE),
            "/view/api/state" => json_response(StatusCode::OK, &self.hub.snapshot()),
            "/view/api/maglevds" => json_response(StatusCode::OK, &self.hub.list()),
            "/view/api/version" => json_response(StatusCode::OK, &version()),
            "/view/api/events" => self.events(&req, Audience::Everyone),
            p => match p.strip_prefix("/view/api/state/") {
                Some(name) => {
                    let name = percent_decode(name);
                    match self.hub.maglevd(&name) {
                        Some((id, m)) => json_response(
                            StatusCode::OK,
                            &json!({ "last_event_id": id, "maglevd": m }),
                        ),
                        None => error(StatusCode::NOT_FOUND, &format!("no maglevd named {name:?}")),
                    }
                }
                None => error(StatusCode::NOT_FOUND, "not found"),
            },
        }
    }

    /// Everything under /admin: closed without credentials, else basic
    /// auth once and a session cookie after.
    async fn admin(self: Arc<Self>, req: Request<Incoming>, path: &str) -> Response<Body> {
        if !self.gate.enabled() {
            return error(
                StatusCode::NOT_FOUND,
                "the admin side is off: no credentials are configured",
            );
        }
        let (session, new_cookie) = match self.gate.session(header_str(&req, header::COOKIE)) {
            Some(s) => (s, false),
            None => {
                let auth = header_str(&req, header::AUTHORIZATION).map(str::to_string);
                let app = Arc::clone(&self);
                // The password hash is slow on purpose: off the runtime.
                let ok = tokio::task::spawn_blocking(move || app.gate.login(auth.as_deref()))
                    .await
                    .unwrap_or(false);
                if !ok {
                    if req.headers().contains_key(header::AUTHORIZATION) {
                        warn!(event = "admin-login-failed", path = %path);
                    }
                    let mut r = error(StatusCode::UNAUTHORIZED, "credentials needed");
                    r.headers_mut().insert(
                        header::WWW_AUTHENTICATE,
                        HeaderValue::from_static(
                            "Basic realm=\"maglevd-frontend\", charset=\"UTF-8\"",
                        ),
                    );
                    return r;
                }
                (self.gate.open_session(), true)
            }
        };
        let mut r = match (req.method().clone(), path) {
            (Method::GET, "/admin") => redirect("/admin/"),
            (Method::GET, "/admin/") => page(),
            (Method::GET, "/admin/api/session") => json_response(
                StatusCode::OK,
                &json!({ "user": self.gate.user(), "csrf": self.gate.csrf(&session) }),
            ),
            (Method::GET, "/admin/api/events") => self.events(&req, Audience::Admin),
            (Method::POST, "/admin/api/action") => {
                if new_cookie {
                    // A token needs a session the browser already holds.
                    error(StatusCode::FORBIDDEN, "no session: load /admin/ first")
                } else {
                    self.action(req, &session).await
                }
            }
            (_, "/admin/api/action") => {
                let mut r = error(StatusCode::METHOD_NOT_ALLOWED, "POST only");
                r.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("POST"));
                r
            }
            _ => error(StatusCode::NOT_FOUND, "not found"),
        };
        if new_cookie {
            let cookie = format!("{COOKIE}={session}; Path=/admin; HttpOnly; SameSite=Strict");
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                r.headers_mut().append(header::SET_COOKIE, v);
            }
        }
        r
    }

    /// `POST /admin/api/action`: same origin, the session's CSRF token,
    /// then one RPC to the maglevd named.
    async fn action(&self, req: Request<Incoming>, session: &str) -> Response<Body> {
        let host = header_str(&req, header::HOST).unwrap_or("");
        let origin = header_str(&req, header::ORIGIN).unwrap_or("");
        let origin_host = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .unwrap_or("");
        if host.is_empty() || origin_host != host {
            warn!(event = "admin-refused", why = "origin", origin = %origin, host = %host);
            return error(StatusCode::FORBIDDEN, "cross-origin request refused");
        }
        let token = req
            .headers()
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !self.gate.csrf_ok(session, token) {
            warn!(event = "admin-refused", why = "csrf");
            return error(StatusCode::FORBIDDEN, "missing or wrong CSRF token");
        }
        let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => return error(StatusCode::PAYLOAD_TOO_LARGE, "body over 4 KiB"),
        };
        let a: Action = match serde_json::from_slice(&body) {
            Ok(a) => a,
            Err(e) => return error(StatusCode::BAD_REQUEST, &format!("body: {e}")),
        };
        let Some(i) = self.hub.index(&a.maglevd) else {
            return error(
                StatusCode::NOT_FOUND,
                &format!("maglevd: no maglevd named {:?}", a.maglevd),
            );
        };
        let Some(mut c) = self.hub.client(i) else {
            return error(
                StatusCode::BAD_GATEWAY,
                &format!("maglevd {}: not connected", a.maglevd),
            );
        };
        let user = self.gate.user().unwrap_or("");
        let named = |r: pb::BackendActionRequest| tonic::Request::new(r);
        let backend = pb::BackendActionRequest {
            name: a.backend.clone(),
        };
        let call = async {
            match a.action.as_str() {
                "pause" => c.pause_backend(named(backend)).await.map(|_| ()),
                "resume" => c.resume_backend(named(backend)).await.map(|_| ()),
                "enable" => c.enable_backend(named(backend)).await.map(|_| ()),
                "disable" => c.disable_backend(named(backend)).await.map(|_| ()),
                "weight" => {
                    let req = pb::SetWeightRequest {
                        frontend: a.frontend.clone().unwrap_or_default(),
                        pool: a.pool.clone().unwrap_or_default(),
                        backend: a.backend.clone(),
                        weight: a.weight.unwrap_or(u64::MAX),
                    };
                    c.set_frontend_pool_backend_weight(req).await.map(|_| ())
                }
                other => Err(tonic::Status::invalid_argument(format!(
                    "action: {other:?} is not one of pause, resume, enable, disable, weight"
                ))),
            }
        };
        let result = match tokio::time::timeout(ACTION_TIMEOUT, call).await {
            Ok(r) => r,
            Err(_) => Err(tonic::Status::deadline_exceeded(
                "maglevd did not answer within 10 s",
            )),
        };
        info!(
            event = "admin-action",
            user = %user,
            maglevd = %a.maglevd,
            action = %a.action,
            backend = %a.backend,
            frontend = a.frontend.as_deref().unwrap_or(""),
            pool = a.pool.as_deref().unwrap_or(""),
            weight = a.weight.unwrap_or(0),
            result = %result.as_ref().map_or_else(|s| s.message().to_string(), |_| "ok".into()),
        );
        // An override makes no transition event: ask for a refresh.
        self.hub.link(i).poke.notify_one();
        match result {
            Ok(()) => json_response(StatusCode::OK, &json!({ "ok": true })),
            Err(s) => {
                let status = match s.code() {
                    tonic::Code::NotFound => StatusCode::NOT_FOUND,
                    tonic::Code::InvalidArgument | tonic::Code::FailedPrecondition => {
                        StatusCode::BAD_REQUEST
                    }
                    tonic::Code::PermissionDenied => StatusCode::FORBIDDEN,
                    _ => StatusCode::BAD_GATEWAY,
                };
                error(status, s.message())
            }
        }
    }

    /// An event stream: `retry:`, then the replay or a `resync`, then live
    /// events and a `: ping` every 15 s.
    fn events(&self, req: &Request<Incoming>, audience: Audience) -> Response<Body> {
        let Ok(slot) = Arc::clone(&self.streams).try_acquire_owned() else {
            return error(StatusCode::SERVICE_UNAVAILABLE, "too many event streams");
        };
        let last = req
            .headers()
            .get("last-event-id")
            .and_then(|v| v.to_str().ok());
        let (start, mut live) = self.hub.broker.subscribe(last);
        let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, Infallible>>(64);
        let mut stop = self.stop.clone();
        let allowed = move |a: Audience| audience == Audience::Admin || a == Audience::Everyone;
        tokio::spawn(async move {
            let _slot = slot;
            let send = |b: Bytes| tx.send(Ok(Frame::data(b)));
            const RESYNC: &[u8] = b"event: resync\ndata: {}\n\n";
            if send(Bytes::from_static(b"retry: 2000\n\n")).await.is_err() {
                return;
            }
            match start {
                Start::Resync => {
                    if send(Bytes::from_static(RESYNC)).await.is_err() {
                        return;
                    }
                }
                Start::Replay(events) => {
                    for e in events.iter().filter(|e| allowed(e.audience)) {
                        if send(e.wire()).await.is_err() {
                            return;
                        }
                    }
                }
            }
            let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING, PING);
            loop {
                let wire = tokio::select! {
                    _ = stop.changed() => return,
                    () = tx.closed() => return,
                    _ = ping.tick() => Bytes::from_static(b": ping\n\n"),
                    ev = live.recv() => match ev {
                        Ok(e) if allowed(e.audience) => e.wire(),
                        Ok(_) => continue,
                        // Fell behind: what it holds is stale, start over.
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                            Bytes::from_static(RESYNC)
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    },
                };
                if send(wire).await.is_err() {
                    return;
                }
            }
        });
        let mut r = Response::new(BodyExt::boxed(StreamBody::new(ReceiverStream::new(rx))));
        let h = r.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        h.insert("x-accel-buffering", HeaderValue::from_static("no"));
        r
    }
}

/// An admin action.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Action {
    maglevd: String,
    action: String,
    backend: String,
    frontend: Option<String>,
    pool: Option<String>,
    weight: Option<u64>,
}

fn page() -> Response<Body> {
    respond(StatusCode::OK, "text/html; charset=utf-8", INDEX)
}

fn asset(content_type: &str, body: &'static str) -> Response<Body> {
    let mut r = respond(StatusCode::OK, content_type, body);
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Serves the dashboard on an already-bound listener until `shutdown`
/// completes; then ends every event stream.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Arc<App>,
    stop: watch::Sender<bool>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            p = Arc::clone(&slots).acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            a = listener.accept() => a,
        };
        let Ok((stream, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let app = Arc::clone(&app);
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let app = Arc::clone(&app);
                async move { Ok::<_, Infallible>(app.handle(req).await) }
            });
            let _ = http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), svc)
                .await;
            drop(permit);
        });
    }
    let _ = stop.send(true);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_in_paths_are_decoded() {
        assert_eq!(percent_decode("lb%201"), "lb 1");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
