//! maglevd's gRPC service over a running daemon (checker + reconciler),
//! with server reflection and `grpc.health.v1`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod args;
pub mod daemon;
mod grpc;
pub mod logs;
pub mod notify;
pub mod signals;

use std::future::Future;
use std::sync::Arc;

pub use daemon::{ConfigOutcome, Daemon};
pub use grpc::MaglevService;
use maglev_proto::maglev_server::MaglevServer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_stream::wrappers::ReceiverStream;

/// gRPC connections served at once. More wait in the kernel's backlog and
/// cost this process no file descriptor, so a flood of idle connections
/// cannot starve the probes of descriptors.
pub const MAX_GRPC_CONNECTIONS: usize = 256;

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
    // Both reflection versions: grpcurl speaks v1, while grpcui, Postman
    // and Python's grpc reflection still ask v1alpha.
    let reflection_builder = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(maglev_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let (reflection_service, reflection_v1alpha) = if reflection {
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
    tonic::transport::Server::builder()
        // Peers that vanish without a FIN are found and dropped.
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(std::time::Duration::from_secs(10)))
        .tcp_keepalive(Some(std::time::Duration::from_secs(60)))
        .layer(tower::util::option_layer(metrics))
        .add_service(health_service)
        .add_optional_service(reflection_service)
        .add_optional_service(reflection_v1alpha)
        .add_service(MaglevServer::new(MaglevService::new(daemon)))
        .serve_with_incoming_shutdown(limited(listener, MAX_GRPC_CONNECTIONS), shutdown)
        .await
}

/// A connection holding one of the listener's slots until it closes.
#[derive(Debug)]
struct Limited {
    stream: TcpStream,
    _slot: OwnedSemaphorePermit,
}

impl AsyncRead for Limited {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Limited {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

impl tonic::transport::server::Connected for Limited {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.stream.connect_info()
    }
}

/// The listener's connections, at most `max` open at once: no accept while
/// all slots are taken.
fn limited(
    listener: tokio::net::TcpListener,
    max: usize,
) -> ReceiverStream<std::io::Result<Limited>> {
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        let slots = Arc::new(Semaphore::new(max));
        loop {
            let slot = tokio::select! {
                () = tx.closed() => return,
                s = Arc::clone(&slots).acquire_owned() => s.expect("never closed"),
            };
            let accepted = tokio::select! {
                () = tx.closed() => return,
                a = listener.accept() => a,
            };
            match accepted {
                Ok((stream, _)) => {
                    let c = Limited {
                        stream,
                        _slot: slot,
                    };
                    if tx.send(Ok(c)).await.is_err() {
                        return;
                    }
                }
                // EMFILE and the like: back off instead of spinning.
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            }
        }
    });
    ReceiverStream::new(rx)
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
