//! The threads maglevd runs on: the main runtime (API, `/metrics`,
//! signals; the binary's), the probe threads, and the VPP writer's thread.

use std::time::Duration;

/// The probe threads: every probe and agent loop runs here, so that many
/// of them never delay the API or the VPP writer, and they use every
/// core. Each thread runs a current-thread runtime of its own and the
/// checker hands backends to them in turn: every thread keeps its own
/// timers and sockets, and a probe never wakes another thread (a
/// work-stealing runtime cost 1.6× the CPU per probe on two threads;
/// docs/benchmarks.md). `threads` 0 means one per core.
#[derive(Debug)]
pub struct ProbeThreads {
    threads: Vec<RuntimeThread>,
}

impl ProbeThreads {
    /// Starts the threads, named `maglevd-probe`.
    pub fn start(threads: u16) -> std::io::Result<ProbeThreads> {
        let n = match threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => usize::from(n),
        };
        let threads = (0..n)
            .map(|_| RuntimeThread::start("maglevd-probe"))
            .collect::<std::io::Result<_>>()?;
        Ok(ProbeThreads { threads })
    }

    /// Where probe loops are to be spawned (`CheckerOptions::runtimes`).
    pub fn handles(&self) -> Vec<tokio::runtime::Handle> {
        self.threads.iter().map(RuntimeThread::handle).collect()
    }

    /// Stops the threads, all at once; whatever still runs on them gets
    /// 200 ms.
    pub fn stop(self) {
        let joins: Vec<_> = self
            .threads
            .into_iter()
            .map(|t| {
                let _ = t.stop.send(());
                t.thread
            })
            .collect();
        for j in joins {
            let _ = j.join();
        }
    }
}

/// One current-thread runtime on a thread of its own, until stopped.
#[derive(Debug)]
pub struct RuntimeThread {
    handle: tokio::runtime::Handle,
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl RuntimeThread {
    /// Starts the thread, named `name`.
    pub fn start(name: &str) -> std::io::Result<RuntimeThread> {
        // Sockets and timers only: signals are the main runtime's, and a
        // runtime with the process driver reaps orphans on every park
        // (0.5 % of a probe thread's samples).
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()?;
        let handle = rt.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                rt.block_on(async {
                    let _ = stopped.await;
                });
                rt.shutdown_timeout(Duration::from_millis(200));
            })?;
        Ok(RuntimeThread {
            handle,
            stop,
            thread,
        })
    }

    /// A handle to this thread's runtime, to spawn onto it.
    pub fn handle(&self) -> tokio::runtime::Handle {
        self.handle.clone()
    }

    /// Stops the thread; whatever still runs on it gets 200 ms.
    pub fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}

/// The VPP writer's thread: the reconciler and its VPP connection on a
/// current-thread runtime of their own (the VPP client is fastest with
/// its callers on one thread), so the API and `/metrics`, on the main
/// runtime, never wait for a sync's CPU work.
#[derive(Debug)]
pub struct VppThread(RuntimeThread);

impl VppThread {
    /// Starts the thread, named `maglevd-vpp`.
    pub fn start() -> std::io::Result<VppThread> {
        RuntimeThread::start("maglevd-vpp").map(VppThread)
    }

    /// Where the reconciler is to be spawned
    /// (`ReconcilerOptions::runtime`).
    pub fn handle(&self) -> tokio::runtime::Handle {
        self.0.handle()
    }

    /// Stops the thread; whatever still runs on it gets 200 ms.
    pub fn stop(self) {
        self.0.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_threads_run_what_is_spawned_and_stop_together() {
        let threads = ProbeThreads::start(3).unwrap();
        let handles = threads.handles();
        assert_eq!(handles.len(), 3);
        let ran: Vec<(Option<String>, std::thread::ThreadId)> = handles
            .iter()
            .map(|h| {
                let (tx, rx) = std::sync::mpsc::channel();
                h.spawn(async move {
                    let t = std::thread::current();
                    let _ = tx.send((t.name().map(str::to_string), t.id()));
                });
                rx.recv().unwrap()
            })
            .collect();
        let ids: std::collections::HashSet<_> = ran.iter().map(|r| r.1).collect();
        assert_eq!(ids.len(), 3, "three threads: {ran:?}");
        assert!(ran.iter().all(|r| r.0.as_deref() == Some("maglevd-probe")));
        // A task that never ends does not keep a thread from stopping.
        for h in &handles {
            h.spawn(std::future::pending::<()>());
        }
        let started = std::time::Instant::now();
        threads.stop();
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
