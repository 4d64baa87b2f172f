//! maglevd's gRPC service over a running daemon (`maglev-daemon`: checker
//! and reconciler), with server reflection, `grpc.health.v1` and a role
//! check on every call.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod access;
mod grpc;

use std::future::Future;
use std::sync::Arc;

pub use grpc::MaglevService;
use maglev_access::listen::{Admission, Listener};
use maglev_daemon::Daemon;
use maglev_proto::maglev_server::MaglevServer;

/// How the API is served.
#[derive(Debug, Clone)]
pub struct ApiOptions {
    /// gRPC server reflection (v1 and v1alpha).
    pub reflection: bool,
    /// Counts every RPC, and every refusal.
    pub metrics: Option<Arc<maglev_metrics::Metrics>>,
    /// TLS, role rules and the connection bound.
    pub admission: Admission,
}

/// Serves the API on already-bound `listeners` until `shutdown`
/// completes. Every call is checked against the role of its connection
/// ([`access::METHODS`]).
pub async fn serve(
    listeners: Vec<Listener>,
    daemon: Arc<Daemon>,
    options: ApiOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<MaglevServer<MaglevService>>().await;
    // Both reflection versions: grpcurl speaks v1, while grpcui, Postman
    // and Python's grpc reflection still ask v1alpha.
    let reflection_builder = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(maglev_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let (reflection_service, reflection_v1alpha) = if options.reflection {
        (
            Some(
                reflection_builder()
                    .build_v1()
                    .expect("valid descriptor sets"),
            ),
            Some(
                reflection_builder()
                    .build_v1alpha()
                    .expect("valid descriptor sets"),
            ),
        )
    } else {
        (None, None)
    };
    let access = access::AccessLayer {
        on_denied: options.metrics.clone().map(|m| {
            let hook: access::DeniedHook =
                Arc::new(move |method, needed| m.grpc_denied(method, &needed.to_string()));
            hook
        }),
    };
    let metrics = options.metrics.map(maglev_metrics::GrpcMetricsLayer);
    tonic::transport::Server::builder()
        // Peers that vanish without a FIN are found and dropped.
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(std::time::Duration::from_secs(10)))
        .layer(tower::util::option_layer(metrics))
        .layer(access)
        .add_service(health_service)
        .add_optional_service(reflection_service)
        .add_optional_service(reflection_v1alpha)
        .add_service(MaglevServer::new(MaglevService::new(daemon)))
        .serve_with_incoming_shutdown(
            maglev_access::listen::incoming(listeners, options.admission),
            shutdown,
        )
        .await
}
