//! The API's listeners and who may do what on them, from maglevd's flags.

use std::sync::Arc;

use maglev_access::listen::{Admission, Listener, UnixOptions};
use maglev_access::role::Pattern;
use maglev_access::tls::{ServerFiles, ServerTls};
use maglev_access::{AdminRules, Endpoint};
use tracing::{info, warn};

use crate::args::Flags;

/// gRPC connections served at once, over all listeners. More wait in the
/// kernel's backlog and cost this process no file descriptor, so a flood
/// of idle connections cannot starve the probes of descriptors.
pub const MAX_GRPC_CONNECTIONS: usize = 256;

/// Bound listeners and their admission rules.
#[derive(Debug)]
pub struct Api {
    /// Every `--grpc-addr`, bound.
    pub listeners: Vec<Listener>,
    /// TLS, roles and the connection bound.
    pub admission: Admission,
    /// The server certificate, when TLS is on (re-read on reload; shared
    /// with `/metrics` under --metrics-tls).
    pub tls: Option<Arc<ServerTls>>,
}

/// A group name or number.
fn resolve_group(g: &str) -> Result<u32, String> {
    if let Ok(n) = g.parse::<u32>() {
        return Ok(n);
    }
    match nix::unistd::Group::from_name(g) {
        Ok(Some(group)) => Ok(group.gid.as_raw()),
        Ok(None) => Err(format!("--grpc-socket-group: no group named {g:?}")),
        Err(e) => Err(format!("--grpc-socket-group {g:?}: {e}")),
    }
}

/// Binds every `--grpc-addr` with the access settings of `flags`. An
/// error names the flag at fault.
pub async fn bind(flags: &Flags) -> Result<Api, String> {
    let endpoints =
        Endpoint::parse_list(&flags.grpc_addr).map_err(|e| format!("--grpc-addr: {e}"))?;
    let gid = match &flags.grpc_socket_group {
        Some(g) => resolve_group(g)?,
        None => nix::unistd::getegid().as_raw(),
    };
    let tls = match (&flags.tls_cert, &flags.tls_key) {
        (Some(cert), Some(key)) => Some(Arc::new(
            ServerTls::load(ServerFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: flags.tls_client_ca.clone(),
            })
            .map_err(|e| format!("TLS: {e}"))?,
        )),
        _ => None,
    };
    let admin_clients = flags
        .admin_client
        .iter()
        .map(|p| Pattern::new(p))
        .collect::<Result<Vec<_>, _>>()?;
    let rules = AdminRules {
        insecure_admin_tcp: flags.insecure_admin_tcp,
        admin_clients,
        unix_admin_gid: Some(gid),
    };
    let mut listeners = Vec::new();
    for ep in &endpoints {
        let unix = UnixOptions {
            mode: flags.grpc_socket_mode,
            gid: Some(gid),
        };
        let l = Listener::bind(ep, unix, tls.is_some())
            .await
            .map_err(|e| format!("--grpc-addr {ep}: {e}"))?;
        let access = match ep {
            Endpoint::Unix(_) => format!(
                "mode {:o} gid {gid}: admin for root, this user and group {gid}, read otherwise",
                flags.grpc_socket_mode
            ),
            Endpoint::Tcp(_, scheme) if scheme.tls(tls.is_some()) => {
                if flags.tls_client_ca.is_some() {
                    "TLS with client certificates: admin when --admin-client matches, read otherwise"
                        .to_string()
                } else {
                    "TLS: read".to_string()
                }
            }
            Endpoint::Tcp(..) if flags.insecure_admin_tcp => {
                "plain TCP: admin (--insecure-admin-tcp)".to_string()
            }
            Endpoint::Tcp(..) => "plain TCP: read".to_string(),
        };
        info!(event = "grpc-listen", addr = %l.local_addr(), access);
        listeners.push(l);
    }
    let plain_tcp = endpoints
        .iter()
        .any(|e| matches!(e, Endpoint::Tcp(_, s) if !s.tls(tls.is_some())));
    if flags.insecure_admin_tcp && plain_tcp {
        warn!(
            event = "insecure-admin-tcp",
            "plain TCP clients are admin: anyone who can reach the gRPC port can change weights and disable backends"
        );
    }
    Ok(Api {
        listeners,
        admission: Admission {
            tls: tls.clone(),
            rules: Arc::new(rules),
            max_connections: MAX_GRPC_CONNECTIONS,
        },
        tls,
    })
}

/// Re-reads the TLS files (on reload); the old certificate stays when
/// they are bad.
pub fn reload_tls(tls: &ServerTls) {
    match tls.reload() {
        Ok(()) => info!(event = "tls-reloaded", cert = %tls.files().cert.display()),
        Err(e) => {
            warn!(event = "tls-reload-failed", error = %e, "the previous certificate stays in use")
        }
    }
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
