//! An in-memory VPP for the reconciler's tests (test builds only): VPP's
//! lb state kept by the cache's own model of each call
//! ([`ActualState::apply`]), refusing what VPP refuses (an AS of a missing
//! VIP, a VIP twice), buckets as VPP with per-AS weights builds them, and
//! switches a test pulls: refuse the next calls, drop the connection,
//! restart (state gone, new pid), stop answering connects. Every connect
//! attempt and every write is logged with the (paused) clock's time.
//!
//! It models the lb state the reconciler reads and writes, not the wire or
//! the data plane: those are the simulator's and real VPP's tests.

use std::sync::{Arc, Mutex};

use maglev_vpp::{Error, LbConfig, VppError};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::actual::ActualState;
use crate::plan::Op;
use crate::port::{Hello, VppConnector, VppPort};

#[derive(Debug)]
struct Inner {
    state: ActualState,
    v2: bool,
    pid: u32,
    accepting: bool,
    refuse_calls: u32,
    conf: Option<LbConfig>,
    next_index: u32,
    calls: Vec<(Instant, Op)>,
    connects: Vec<Instant>,
    reads: usize,
}

/// The model VPP; clones share it.
#[derive(Debug, Clone)]
pub(crate) struct ModelVpp {
    inner: Arc<Mutex<Inner>>,
    /// The connection generation: a port of an older one is closed.
    generation: Arc<watch::Sender<u64>>,
}

impl ModelVpp {
    /// A running VPP, empty, with (`v2`) or without the lb v2 messages.
    pub(crate) fn new(v2: bool) -> ModelVpp {
        ModelVpp {
            inner: Arc::new(Mutex::new(Inner {
                state: ActualState::default(),
                v2,
                pid: 1000,
                accepting: true,
                refuse_calls: 0,
                conf: None,
                next_index: 0,
                calls: Vec::new(),
                connects: Vec::new(),
                reads: 0,
            })),
            generation: Arc::new(watch::Sender::new(0)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("model lock")
    }

    /// What VPP holds.
    pub(crate) fn state(&self) -> ActualState {
        self.lock().state.clone()
    }

    /// Every write call so far, with when it arrived.
    pub(crate) fn calls(&self) -> Vec<(Instant, Op)> {
        self.lock().calls.clone()
    }

    /// When each connect was tried.
    pub(crate) fn connects(&self) -> Vec<Instant> {
        self.lock().connects.clone()
    }

    /// Full reads of the lb state so far.
    pub(crate) fn reads(&self) -> usize {
        self.lock().reads
    }

    /// The `lb_conf` last set.
    pub(crate) fn conf(&self) -> Option<LbConfig> {
        self.lock().conf
    }

    /// The next `n` write calls are refused (`VALUE_EXIST`, as a VPP whose
    /// state moved behind our back answers).
    pub(crate) fn refuse_next_calls(&self, n: u32) {
        self.lock().refuse_calls = n;
    }

    /// Changes VPP's state behind the reconciler's back (drift).
    pub(crate) fn tamper(&self, f: impl FnOnce(&mut ActualState)) {
        f(&mut self.lock().state);
    }

    /// Closes every open connection (VPP keeps its state).
    pub(crate) fn drop_connections(&self) {
        self.generation.send_modify(|g| *g += 1);
    }

    /// Whether connects are answered.
    pub(crate) fn set_accepting(&self, accepting: bool) {
        self.lock().accepting = accepting;
        if !accepting {
            self.drop_connections();
        }
    }

    /// A VPP restart: connections closed, the lb state gone, a new pid.
    pub(crate) fn restart(&self) {
        {
            let mut i = self.lock();
            i.state = ActualState::default();
            i.conf = None;
            i.pid += 1;
        }
        self.drop_connections();
    }
}

/// One connection to the model.
#[derive(Debug, Clone)]
pub(crate) struct ModelPort {
    vpp: ModelVpp,
    generation: u64,
}

impl ModelPort {
    fn check(&self) -> Result<(), Error> {
        if *self.vpp.generation.borrow() == self.generation {
            Ok(())
        } else {
            Err(Error::Disconnected)
        }
    }
}

fn refused(msg: &'static str, error: VppError) -> Error {
    Error::Vpp { msg, error }
}

impl VppPort for ModelPort {
    async fn read(&self) -> Result<ActualState, Error> {
        self.check()?;
        let mut i = self.vpp.lock();
        i.reads += 1;
        let mut state = i.state.clone();
        // VPP with weights builds its table from them; without, it has no
        // per-AS counts in its dump (the CLI would have them; this model
        // has no CLI).
        if i.v2 {
            for v in state.vips.values_mut() {
                if let Some(buckets) = v.predicted_buckets() {
                    for (a, s) in &mut v.ases {
                        s.buckets = buckets.get(a).copied();
                    }
                }
            }
        }
        Ok(state)
    }

    async fn call(&self, op: &Op) -> Result<(), Error> {
        self.check()?;
        let mut i = self.vpp.lock();
        let msg = match op {
            Op::VipAdd(_) | Op::VipDel(_) => "lb_add_del_vip_v2",
            Op::AsAdd { .. } | Op::AsDel { .. } => "lb_add_del_as_v2",
            Op::AsSetWeight { .. } => "lb_as_set_weight",
        };
        if i.refuse_calls > 0 {
            i.refuse_calls -= 1;
            return Err(refused(msg, VppError::ValueExist));
        }
        let vip = op.vip();
        let exists = i.state.vips.contains_key(&vip);
        match op {
            Op::VipAdd(_) if exists => return Err(refused(msg, VppError::ValueExist)),
            Op::VipDel(_) | Op::AsAdd { .. } | Op::AsDel { .. } | Op::AsSetWeight { .. }
                if !exists =>
            {
                return Err(refused(msg, VppError::NoSuchEntry))
            }
            _ => {}
        }
        let v2 = i.v2;
        i.state.apply(op, v2);
        if let Op::VipAdd(spec) = op {
            let index = i.next_index;
            i.next_index += 1;
            if let Some(v) = i.state.vips.get_mut(&spec.key) {
                v.index = Some(index);
            }
        }
        i.calls.push((Instant::now(), *op));
        Ok(())
    }

    async fn ping(&self) -> Result<u32, Error> {
        self.check()?;
        Ok(self.vpp.lock().pid)
    }

    fn has_conf_get(&self) -> bool {
        self.vpp.lock().v2
    }

    async fn conf_get(&self) -> Result<LbConfig, Error> {
        self.check()?;
        let i = self.vpp.lock();
        Ok(i.conf.unwrap_or(LbConfig {
            ip4_src_address: std::net::Ipv4Addr::UNSPECIFIED,
            ip6_src_address: std::net::Ipv6Addr::UNSPECIFIED,
            sticky_buckets_per_core: 1024,
            flow_timeout: 40,
        }))
    }

    async fn conf_set(&self, conf: &LbConfig) -> Result<(), Error> {
        self.check()?;
        self.vpp.lock().conf = Some(*conf);
        Ok(())
    }

    fn reader(&self) -> Option<crate::reconciler::VppReader> {
        // Readers go through the reconciler's queue here.
        None
    }

    fn closed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.vpp.generation.subscribe();
        let mine = self.generation;
        async move {
            let _ = rx.wait_for(|g| *g != mine).await;
        }
    }
}

impl VppConnector for ModelVpp {
    type Port = ModelPort;

    async fn connect(&self) -> Result<(ModelPort, Hello), String> {
        let (accepting, v2, pid) = {
            let mut i = self.lock();
            i.connects.push(Instant::now());
            (i.accepting, i.v2, i.pid)
        };
        if !accepting {
            return Err("connection refused (model VPP is down)".to_string());
        }
        let port = ModelPort {
            vpp: self.clone(),
            generation: *self.generation.borrow(),
        };
        let hello = Hello {
            version: "model".to_string(),
            build_date: String::new(),
            build_directory: String::new(),
            pid,
            lb_v2: v2,
        };
        Ok((port, hello))
    }
}
