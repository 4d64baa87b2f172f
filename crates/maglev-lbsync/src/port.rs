//! The reconciler's seam to VPP: what it needs of a connection
//! ([`VppPort`]) and how it opens one ([`VppConnector`]).
//!
//! The real implementation is `maglev_vpp`'s API client ([`LbConnector`],
//! [`LbApi`]); [`crate::model`] is an in-memory VPP built on the cache's own
//! model of each call ([`ActualState::apply`]), so the reconciler's logic
//! (warmup, retries, reconnects, caches) is tested on paused time without
//! a simulator or a socket.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use maglev_vpp::{ApiObserver, Client, ClientOptions, Error, LbApi, LbConfig};

use crate::actual::{self, ActualState};
use crate::plan::Op;
use crate::reconciler::VppReader;

/// What a connected VPP told about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// `show_version`'s version.
    pub version: String,
    /// Its build date.
    pub build_date: String,
    /// Its build directory.
    pub build_directory: String,
    /// VPP's pid (`control_ping`).
    pub pid: u32,
    /// Whether it has the lb v2 messages (per-AS weights, `lb_conf_get`).
    pub lb_v2: bool,
}

/// One connection to VPP's lb plugin, as the reconciler uses it. Cheap to
/// clone (the apply step runs one clone per VIP address).
pub(crate) trait VppPort: Clone + Send + Sync + 'static {
    /// Everything VPP holds (VIPs, their ASes, table lengths, indexes).
    fn read(&self) -> impl Future<Output = Result<ActualState, Error>> + Send;
    /// One write call of a plan.
    fn call(&self, op: &Op) -> impl Future<Output = Result<(), Error>> + Send;
    /// `control_ping`: VPP's pid.
    fn ping(&self) -> impl Future<Output = Result<u32, Error>> + Send;
    /// Whether VPP can report its `lb_conf`.
    fn has_conf_get(&self) -> bool;
    /// VPP's `lb_conf`.
    fn conf_get(&self) -> impl Future<Output = Result<LbConfig, Error>> + Send;
    /// Sets `lb_conf`.
    fn conf_set(&self, conf: &LbConfig) -> impl Future<Output = Result<(), Error>> + Send;
    /// Resolves when VPP closes the connection.
    fn closed(&self) -> impl Future<Output = ()> + Send + 'static;
    /// A read-only view for readers outside the reconciler's task, if this
    /// connection can serve one.
    fn reader(&self) -> Option<VppReader>;
}

/// Opens connections to VPP.
pub(crate) trait VppConnector: Send + Sync + 'static {
    /// The connection.
    type Port: VppPort;
    /// Connects; the error says why not (logged by the reconciler).
    fn connect(&self) -> impl Future<Output = Result<(Self::Port, Hello), String>> + Send;
}

/// The real VPP: its binary API socket.
#[derive(Clone)]
pub struct LbConnector {
    /// The API socket.
    pub socket: PathBuf,
    /// Our client name in VPP.
    pub client_name: String,
    /// Per-call timeout.
    pub call_timeout: Duration,
    /// Counts every API message.
    pub observer: Option<Arc<dyn ApiObserver>>,
}

impl std::fmt::Debug for LbConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LbConnector")
            .field("socket", &self.socket)
            .finish_non_exhaustive()
    }
}

impl VppConnector for LbConnector {
    type Port = LbApi;

    async fn connect(&self) -> Result<(LbApi, Hello), String> {
        let client = Client::connect(
            &self.socket,
            ClientOptions {
                name: self.client_name.clone(),
                timeout: self.call_timeout,
                observer: self.observer.clone(),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| e.to_string())?;
        let lb = LbApi::new(client);
        let version = lb.show_version().await.map_err(|e| e.to_string())?;
        if !lb.has_lb_plugin() {
            return Err(format!(
                "VPP {} has no lb plugin (lb_add_del_vip is not in its message table): \
                 enable lb_plugin.so in VPP's startup.conf",
                version.version
            ));
        }
        let pid = lb.client().ping().await.map_err(|e| e.to_string())?;
        let hello = Hello {
            version: version.version,
            build_date: version.build_date,
            build_directory: version.build_directory,
            pid,
            lb_v2: lb.has_v2(),
        };
        Ok((lb, hello))
    }
}

impl VppPort for LbApi {
    async fn read(&self) -> Result<ActualState, Error> {
        actual::read(self).await
    }

    async fn call(&self, op: &Op) -> Result<(), Error> {
        match op {
            Op::VipAdd(spec) => self.vip_add(spec).await,
            Op::VipDel(key) => self.vip_del(key).await,
            Op::AsAdd {
                vip,
                address,
                weight,
            } => self.as_add(vip, *address, *weight).await,
            Op::AsDel {
                vip,
                address,
                flush,
            } => self.as_del(vip, *address, *flush).await,
            Op::AsSetWeight {
                vip,
                address,
                weight,
                flush,
            } => self.as_set_weight(vip, *address, *weight, *flush).await,
        }
    }

    async fn ping(&self) -> Result<u32, Error> {
        self.client().ping().await
    }

    fn has_conf_get(&self) -> bool {
        LbApi::has_conf_get(self)
    }

    async fn conf_get(&self) -> Result<LbConfig, Error> {
        LbApi::conf_get(self).await
    }

    async fn conf_set(&self, conf: &LbConfig) -> Result<(), Error> {
        LbApi::conf_set(self, conf).await
    }

    fn closed(&self) -> impl Future<Output = ()> + Send + 'static {
        let client = self.client().clone();
        async move { client.closed().await }
    }

    fn reader(&self) -> Option<VppReader> {
        Some(VppReader(self.clone()))
    }
}
