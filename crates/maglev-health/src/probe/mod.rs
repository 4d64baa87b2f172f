//! Probes: the [`Probe`] trait and the [`Prober`] that builds one per
//! health check, sharing what can be shared (ICMP sockets, TLS settings,
//! the network namespace).

mod grpc;
mod http;
mod http1;
mod icmp;
mod layered;
mod netns;
mod tcp;

use std::collections::HashMap;
use std::fmt::Debug;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use maglev_config::{CheckSpec, HealthCheck};

/// The shared TLS client configuration of HTTPS probes.
pub use maglev_tls::client_config as tls_client_config;
pub use netns::Sockets;

use crate::result::{Code, ProbeResult};

/// The HTTP check's response reader on `reply` as a backend's whole
/// answer (`body`: read the body, as a check with a regex does): the
/// status and how much body was kept, or the L7RSP text. For the fuzzer:
/// whatever the bytes, it must neither panic nor grow without bound.
#[doc(hidden)]
pub fn read_http_reply(reply: &[u8], body: bool) -> Result<(u16, Option<usize>), String> {
    let mut io = tokio::io::join(reply, tokio::io::sink());
    let run = http1::exchange(&mut io, b"GET / HTTP/1.1\r\n\r\n", false, body);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| e.to_string())?;
    let r = rt.block_on(run)?;
    Ok((r.status, r.body.map(|b| b.len())))
}

/// A boxed future, so [`Probe`] can be a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One kind of health probe. Implementations finish within
/// [`Probe::timeout`], whatever the backend does.
pub trait Probe: Send + Sync + Debug {
    /// Probes `target` once.
    fn check(&self, target: IpAddr) -> BoxFuture<'_, ProbeResult>;
    /// The deadline of one check.
    fn timeout(&self) -> Duration;
}

/// Why probing cannot be set up at all.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The network namespace could not be entered.
    #[error("cannot enter network namespace {name:?}: {source} (needs CAP_SYS_ADMIN and an existing namespace)")]
    Netns {
        /// The configured name or path.
        name: String,
        /// Cause.
        source: std::io::Error,
    },
}

/// Builds probes for health checks.
#[derive(Debug, Clone)]
pub struct Prober {
    sockets: Sockets,
    user_agent: String,
    icmp: Arc<icmp::Pingers>,
    tls: maglev_tls::TlsConfigs,
    built: Arc<Mutex<Built>>,
}

/// The probes handed out and still in use, by health check name: every
/// backend of a check shares its one probe. Each probe is read on every
/// probe of every backend, so one copy stays in the cache where a copy per
/// backend (its strings, its [`netns::QuickConnect`]) was a cold read per
/// probe (measured: a quarter of the checker's user-space time at 1,000
/// backends).
#[derive(Debug, Default)]
struct Built {
    by_name: HashMap<String, Vec<BuiltProbe>>,
    /// Names kept after the last sweep of probes no longer in use.
    swept: usize,
}

/// What a probe was built from ([`Prober::probe_for`] reads nothing
/// else of the health check), and the probe while some backend uses it.
#[derive(Debug)]
struct BuiltProbe {
    spec: CheckSpec,
    timeout: Duration,
    probe: Weak<dyn Probe>,
}

impl Prober {
    /// A prober whose sockets are made in `netns` (a name under
    /// `/run/netns`, or a path), or in the daemon's own namespace.
    pub fn new(netns: Option<&str>, user_agent: impl Into<String>) -> Result<Prober, SetupError> {
        Ok(Prober {
            sockets: Sockets::new(netns)?,
            user_agent: user_agent.into(),
            icmp: Arc::new(icmp::Pingers::default()),
            tls: maglev_tls::TlsConfigs::default(),
            built: Arc::default(),
        })
    }

    /// The socket factory (the configured namespace), for agent checks.
    pub fn sockets(&self) -> Sockets {
        self.sockets.clone()
    }

    /// The default `User-Agent`: `maglevd/<version>`.
    pub fn default_user_agent() -> String {
        format!("maglevd/{}", env!("CARGO_PKG_VERSION"))
    }

    /// The probe for `hc`: the one already in use for a health check of
    /// that name with the same spec and timeout, else a new one.
    pub fn probe_for(&self, hc: &HealthCheck) -> Arc<dyn Probe> {
        let mut built = self.built.lock().expect("prober lock");
        let same = built.by_name.get(&hc.name).and_then(|all| {
            all.iter()
                .filter(|b| b.spec == hc.spec && b.timeout == hc.timeout)
                .find_map(|b| b.probe.upgrade())
        });
        if let Some(p) = same {
            return p;
        }
        let probe = self.build(hc);
        let all = built.by_name.entry(hc.name.clone()).or_default();
        all.retain(|b| b.probe.strong_count() > 0);
        all.push(BuiltProbe {
            spec: hc.spec.clone(),
            timeout: hc.timeout,
            probe: Arc::downgrade(&probe),
        });
        // Names whose probes are all gone (reloads renamed or dropped
        // checks) are swept once the map has doubled since the last sweep.
        if built.by_name.len() > 2 * built.swept.max(16) {
            built.by_name.retain(|_, all| {
                all.retain(|b| b.probe.strong_count() > 0);
                !all.is_empty()
            });
            built.swept = built.by_name.len();
        }
        probe
    }

    fn build(&self, hc: &HealthCheck) -> Arc<dyn Probe> {
        match &hc.spec {
            CheckSpec::Tcp { port } => Arc::new(tcp::TcpProbe {
                port: *port,
                timeout: hc.timeout,
                sockets: self.sockets.clone(),
                quick: Default::default(),
            }),
            CheckSpec::Http(h) => Arc::new(http::HttpProbe::new(
                h.clone(),
                hc.timeout,
                self.sockets.clone(),
                self.user_agent.clone(),
                &self.tls,
            )),
            CheckSpec::Grpc(g) => Arc::new(grpc::GrpcProbe::new(
                g.clone(),
                hc.timeout,
                self.sockets.clone(),
                self.user_agent.clone(),
                &self.tls,
            )),
            CheckSpec::Icmp => Arc::new(icmp::IcmpProbe {
                pingers: Arc::clone(&self.icmp),
                sockets: self.sockets.clone(),
                timeout: hc.timeout,
            }),
        }
    }
}

/// Runs `fut` until `deadline`; `None` when it expired.
pub(crate) async fn within<T>(
    deadline: tokio::time::Instant,
    fut: impl Future<Output = T>,
) -> Option<T> {
    tokio::time::timeout_at(deadline, fut).await.ok()
}

/// A failed result from a local error.
pub(crate) fn sock_err(
    detail: impl Into<std::borrow::Cow<'static, str>>,
    took: Duration,
) -> ProbeResult {
    ProbeResult::new(Code::SockErr, detail, took)
}

/// Whether a socket or connect error is this host's (out of file
/// descriptors, buffers, memory, source addresses or ports) rather than the
/// backend's: such a failure says nothing about the backend.
pub fn is_local_error(e: &std::io::Error) -> bool {
    use nix::errno::Errno;
    let Some(code) = e.raw_os_error() else {
        // Ours, e.g. "netns thread gone".
        return e.kind() == std::io::ErrorKind::Other;
    };
    [
        Errno::EMFILE,
        Errno::ENFILE,
        Errno::ENOBUFS,
        Errno::ENOMEM,
        Errno::EADDRNOTAVAIL,
        // A non-blocking TCP connect with no free ephemeral port.
        Errno::EAGAIN,
    ]
    .iter()
    .any(|errno| *errno as i32 == code)
}

/// The result of a failed TCP connect: `SOCKERR` when the failure is local
/// (see [`is_local_error`]), `L4CON` when the backend or the path to it
/// refused.
pub(crate) fn connect_failed(e: &std::io::Error, took: Duration) -> ProbeResult {
    if is_local_error(e) {
        sock_err(format!("local: {e}"), took)
    } else {
        ProbeResult::new(Code::L4Con, e.to_string(), took)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checks(yaml_checks: &str) -> std::collections::BTreeMap<String, Arc<HealthCheck>> {
        let yaml = format!(
            "maglev:\n  vpp: {{ lb: {{ ipv4-src-address: 198.51.100.1, ipv6-src-address: '2001:db8::1' }} }}\n  healthchecks:\n{yaml_checks}"
        );
        maglev_config::load_str(&yaml, "t.yaml")
            .unwrap()
            .config
            .healthchecks
    }

    /// Every backend of a check is given the same probe; a check whose
    /// spec or timeout changed gets a new one, and one no longer in use
    /// is built again.
    #[test]
    fn backends_of_one_check_share_its_probe() {
        let prober = Prober::new(None, "t").unwrap();
        let before = checks(
            "    web: { type: http, port: 80, timeout: 1s, params: { path: /a } }\n    tcp: { type: tcp, port: 22 }\n",
        );
        let web = prober.probe_for(&before["web"]);
        let again = prober.probe_for(&before["web"]);
        assert!(Arc::ptr_eq(&web, &again));
        let tcp = prober.probe_for(&before["tcp"]);
        assert!(!Arc::ptr_eq(&web, &tcp));

        let after = checks(
            "    web: { type: http, port: 80, timeout: 1s, params: { path: /b } }\n    tcp: { type: tcp, port: 22, timeout: 3s }\n",
        );
        let web2 = prober.probe_for(&after["web"]);
        assert!(!Arc::ptr_eq(&web, &web2), "a new path is a new probe");
        assert_eq!(
            prober.probe_for(&after["tcp"]).timeout(),
            Duration::from_secs(3)
        );
        // The old spec's probe is still in use, and still shared.
        assert!(Arc::ptr_eq(&web, &prober.probe_for(&before["web"])));

        // What is not in use anymore is not kept alive by the prober.
        assert_eq!(Arc::strong_count(&tcp), 1);
        drop(tcp);
        let rebuilt = prober.probe_for(&before["tcp"]);
        assert_eq!(rebuilt.timeout(), before["tcp"].timeout);
    }

    /// Checks that reloads dropped do not stay in the prober's map.
    #[test]
    fn checks_no_longer_in_use_are_swept() {
        let prober = Prober::new(None, "t").unwrap();
        let yaml: String = (0..100)
            .map(|i| format!("    c{i}: {{ type: tcp, port: {} }}\n", 1000 + i))
            .collect();
        let all = checks(&yaml);
        let kept = prober.probe_for(&all["c0"]);
        for hc in all.values() {
            drop(prober.probe_for(hc));
        }
        let names = prober.built.lock().unwrap().by_name.len();
        assert!(names <= 33, "{names} names kept");
        assert!(Arc::ptr_eq(&kept, &prober.probe_for(&all["c0"])));
    }
}
