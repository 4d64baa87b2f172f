//! gRPC server metrics as a tower layer: started, handled (by code) and
//! handling time, by service and method.
//!
//! Service and method come from the request path, which a client chooses,
//! so only the known ones become label values; anything else is counted as
//! `unknown`. The code is read from the response headers (errors are sent
//! as trailers-only responses); a response without one is `OK`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use crate::Metrics;

/// The RPCs whose names may become label values.
const KNOWN: &[(&str, &[&str])] = &[
    (
        "maglev.Maglev",
        &[
            "ListFrontends",
            "GetFrontend",
            "ListBackends",
            "GetBackend",
            "PauseBackend",
            "ResumeBackend",
            "EnableBackend",
            "DisableBackend",
            "ListHealthChecks",
            "GetHealthCheck",
            "SetFrontendPoolBackendWeight",
            "WatchEvents",
            "CheckConfig",
            "ReloadConfig",
            "GetVPPInfo",
            "GetVPPLBState",
            "SyncVPPLBState",
            "GetVPPLBCounters",
        ],
    ),
    ("grpc.health.v1.Health", &["Check", "Watch"]),
    (
        "grpc.reflection.v1.ServerReflection",
        &["ServerReflectionInfo"],
    ),
];

fn labels(path: &str) -> (String, String) {
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let (service, method) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    match KNOWN.iter().find(|(s, _)| *s == service) {
        Some((s, methods)) if methods.contains(&method) => (s.to_string(), method.to_string()),
        Some((s, _)) => (s.to_string(), "unknown".to_string()),
        None => ("unknown".to_string(), "unknown".to_string()),
    }
}

fn code_name(code: &str) -> &'static str {
    match code.trim() {
        "0" => "OK",
        "1" => "Canceled",
        "2" => "Unknown",
        "3" => "InvalidArgument",
        "4" => "DeadlineExceeded",
        "5" => "NotFound",
        "6" => "AlreadyExists",
        "7" => "PermissionDenied",
        "8" => "ResourceExhausted",
        "9" => "FailedPrecondition",
        "10" => "Aborted",
        "11" => "OutOfRange",
        "12" => "Unimplemented",
        "13" => "Internal",
        "14" => "Unavailable",
        "15" => "DataLoss",
        "16" => "Unauthenticated",
        _ => "Unknown",
    }
}

/// The layer to put on the tonic server.
#[derive(Debug, Clone)]
pub struct GrpcMetricsLayer(pub Arc<Metrics>);

impl<S> tower::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;
    fn layer(&self, inner: S) -> GrpcMetrics<S> {
        GrpcMetrics {
            inner,
            metrics: Arc::clone(&self.0),
        }
    }
}

/// The service the layer makes.
#[derive(Debug, Clone)]
pub struct GrpcMetrics<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S, B, RB> tower::Service<http::Request<B>> for GrpcMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let (service, method) = labels(req.uri().path());
        let base = vec![("grpc_service", service), ("grpc_method", method)];
        self.metrics.grpc_started.get_or_create(&base).inc();
        let metrics = Arc::clone(&self.metrics);
        let fut = self.inner.call(req);
        Box::pin(async move {
            let start = Instant::now();
            let result = fut.await;
            let code = match &result {
                Ok(resp) => resp
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .map_or("OK", code_name),
                Err(_) => "Unknown",
            };
            let mut with_code = base.clone();
            with_code.push(("grpc_code", code.to_string()));
            metrics.grpc_handled.get_or_create(&with_code).inc();
            metrics
                .grpc_seconds
                .get_or_create(&base)
                .observe(start.elapsed().as_secs_f64());
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_names_become_labels() {
        assert_eq!(
            labels("/maglev.Maglev/GetFrontend"),
            ("maglev.Maglev".into(), "GetFrontend".into())
        );
        assert_eq!(
            labels("/maglev.Maglev/Evil"),
            ("maglev.Maglev".into(), "unknown".into())
        );
        assert_eq!(labels("/x.Y/Z"), ("unknown".into(), "unknown".into()));
        assert_eq!(code_name("5"), "NotFound");
    }
}
