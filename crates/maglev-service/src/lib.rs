//! maglevd's gRPC service over a running daemon (checker + reconciler),
//! with server reflection and `grpc.health.v1`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod daemon;
mod grpc;
pub mod logs;

use std::future::Future;
use std::sync::Arc;

pub use daemon::{ConfigOutcome, Daemon};
pub use grpc::MaglevService;
use maglev_proto::maglev_server::MaglevServer;
use tokio_stream::wrappers::TcpListenerStream;

/// Serves the API on an already-bound `listener` until `shutdown`
/// completes; `reflection` adds gRPC server reflection, `metrics` counts
/// every RPC.
pub async fn serve(
    listener: tokio::net::TcpListener,
    daemon: Arc<Daemon>,
    reflection: bool,
    metrics: Option<maglev_metrics::GrpcMetricsLayer>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<MaglevServer<MaglevService>>().await;
    let reflection_service = if reflection {
        Some(
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(maglev_proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                .build_v1()
                .expect("valid descriptor sets"),
        )
    } else {
        None
    };
    tonic::transport::Server::builder()
        .layer(tower::util::option_layer(metrics))
        .add_service(health_service)
        .add_optional_service(reflection_service)
        .add_service(MaglevServer::new(MaglevService::new(daemon)))
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await
}

/// Binds a listen address; `:port` means every address (as the Go daemon
/// took it). Logs `event` with the bound address.
pub async fn listen(addr: &str, event: &str) -> std::io::Result<tokio::net::TcpListener> {
    let bind = match addr.strip_prefix(':') {
        Some(port) => format!("[::]:{port}"),
        None => addr.to_string(),
    };
    let listener = tokio::net::TcpListener::bind(&bind).await?;
    tracing::info!(event, addr = %listener.local_addr().map_or(bind, |a| a.to_string()));
    Ok(listener)
}
