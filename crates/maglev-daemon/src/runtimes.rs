//! The threads maglevd runs on: the main runtime (API, `/metrics`,
//! signals; the binary's), the probe threads, and the VPP writer's thread.

use std::time::Duration;

/// The probe threads: every probe and agent loop runs here, so that many
/// of them never delay the API or the VPP writer, and they use every
/// core. `threads` 0 means one per core.
pub fn probe_runtime(threads: u16) -> std::io::Result<tokio::runtime::Runtime> {
    let threads = match threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => usize::from(n),
    };
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("maglevd-probe")
        .enable_all()
        .build()
}

/// The VPP writer's thread: the reconciler and its VPP connection on a
/// current-thread runtime of their own (the VPP client is fastest with
/// its callers on one thread), so the API and `/metrics`, on the main
/// runtime, never wait for a sync's CPU work.
#[derive(Debug)]
pub struct VppThread {
    handle: tokio::runtime::Handle,
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl VppThread {
    /// Starts the thread, named `maglevd-vpp`.
    pub fn start() -> std::io::Result<VppThread> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = rt.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("maglevd-vpp".into())
            .spawn(move || {
                rt.block_on(async {
                    let _ = stopped.await;
                });
                rt.shutdown_timeout(Duration::from_millis(200));
            })?;
        Ok(VppThread {
            handle,
            stop,
            thread,
        })
    }

    /// Where the reconciler is to be spawned
    /// (`ReconcilerOptions::runtime`).
    pub fn handle(&self) -> tokio::runtime::Handle {
        self.handle.clone()
    }

    /// Stops the thread; whatever still runs on it gets 200 ms.
    pub fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}
