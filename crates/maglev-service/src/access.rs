//! The role each RPC needs, and the layer that refuses a call whose
//! connection lacks it (`PERMISSION_DENIED`, logged and counted).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use maglev_access::{PeerInfo, Role};
use tracing::warn;

/// The service whose methods are listed in [`METHODS`].
pub const SERVICE: &str = "maglev.Maglev";

/// Every method of `maglev.Maglev` and the role it needs. A method not
/// listed needs admin (fail closed); a test compares this table with the
/// service's descriptor so that a new RPC cannot go without a row.
pub const METHODS: &[(&str, Role)] = &[
    ("ListFrontends", Role::Read),
    ("GetFrontend", Role::Read),
    ("ListBackends", Role::Read),
    ("GetBackend", Role::Read),
    ("PauseBackend", Role::Admin),
    ("ResumeBackend", Role::Admin),
    ("EnableBackend", Role::Admin),
    ("DisableBackend", Role::Admin),
    ("ListHealthChecks", Role::Read),
    ("GetHealthCheck", Role::Read),
    ("SetFrontendPoolBackendWeight", Role::Admin),
    ("WatchEvents", Role::Read),
    ("CheckConfig", Role::Admin),
    ("ReloadConfig", Role::Admin),
    ("GetVPPInfo", Role::Read),
    ("GetVPPLBState", Role::Read),
    ("SyncVPPLBState", Role::Admin),
    ("GetVPPLBCounters", Role::Read),
];

/// The role a request path needs, and the method name for logs (`None`
/// for a method of ours that is not in the table). Other services (health,
/// reflection) are reads.
pub fn required_role(path: &str) -> (Role, Option<&'static str>) {
    let Some(method) = path
        .strip_prefix('/')
        .and_then(|p| p.strip_prefix(SERVICE))
        .and_then(|p| p.strip_prefix('/'))
    else {
        return (Role::Read, None);
    };
    match METHODS.iter().find(|(m, _)| *m == method) {
        Some((m, role)) => (*role, Some(m)),
        None => (Role::Admin, None),
    }
}

/// Called with (method, role needed) for each refusal.
pub type DeniedHook = Arc<dyn Fn(&str, Role) + Send + Sync>;

/// The layer to put on the tonic server.
#[derive(Clone, Default)]
pub struct AccessLayer {
    /// Called for each refusal (metrics).
    pub on_denied: Option<DeniedHook>,
}

impl std::fmt::Debug for AccessLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessLayer")
    }
}

impl<S> tower::Layer<S> for AccessLayer {
    type Service = Access<S>;
    fn layer(&self, inner: S) -> Access<S> {
        Access {
            inner,
            on_denied: self.on_denied.clone(),
        }
    }
}

/// The service the layer makes.
#[derive(Clone)]
pub struct Access<S> {
    inner: S,
    on_denied: Option<DeniedHook>,
}

impl<S> std::fmt::Debug for Access<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Access")
    }
}

impl<S, B> tower::Service<http::Request<B>> for Access<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let (needed, method) = required_role(req.uri().path());
        let peer = req
            .extensions()
            .get::<PeerInfo>()
            .cloned()
            .unwrap_or_else(PeerInfo::unknown);
        if peer.role >= needed {
            return Box::pin(self.inner.call(req));
        }
        let method = method.unwrap_or("unknown");
        warn!(event = "grpc-denied", method, peer = %peer.who, role = %peer.role, needed = %needed);
        if let Some(hook) = &self.on_denied {
            hook(method, needed);
        }
        let status = tonic::Status::permission_denied(format!(
            "{method} needs the {needed} role; this connection ({}) has the {} role",
            peer.who, peer.role
        ));
        Box::pin(async move { Ok(status.into_http()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    /// Every RPC of the service has a row, and every row is an RPC.
    #[test]
    fn every_rpc_has_a_role() {
        let set = prost_types::FileDescriptorSet::decode(maglev_proto::FILE_DESCRIPTOR_SET)
            .expect("descriptor set");
        let rpcs: Vec<String> = set
            .file
            .iter()
            .filter(|f| f.package() == "maglev")
            .flat_map(|f| f.service.iter())
            .filter(|s| s.name() == "Maglev")
            .flat_map(|s| s.method.iter().map(|m| m.name().to_string()))
            .collect();
        assert!(rpcs.len() >= 18, "{rpcs:?}");
        for rpc in &rpcs {
            assert!(
                METHODS.iter().any(|(m, _)| m == rpc),
                "RPC {rpc} has no role in access::METHODS"
            );
        }
        for (m, _) in METHODS {
            assert!(rpcs.iter().any(|r| r == m), "{m} is not an RPC");
        }
    }

    #[test]
    fn paths() {
        assert_eq!(
            required_role("/maglev.Maglev/PauseBackend"),
            (Role::Admin, Some("PauseBackend"))
        );
        assert_eq!(
            required_role("/maglev.Maglev/ListFrontends"),
            (Role::Read, Some("ListFrontends"))
        );
        assert_eq!(required_role("/maglev.Maglev/Nope"), (Role::Admin, None));
        assert_eq!(
            required_role("/grpc.health.v1.Health/Check"),
            (Role::Read, None)
        );
    }
}
