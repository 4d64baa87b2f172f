//! The standard `process_*` families, read from `/proc/self` at scrape
//! time.

use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The process families.
#[derive(Debug, Default)]
pub(crate) struct Process {
    cpu: Gauge<f64, std::sync::atomic::AtomicU64>,
    resident: Gauge,
    virtual_memory: Gauge,
    open_fds: Gauge,
    max_fds: Gauge,
    start_time: Gauge<f64, std::sync::atomic::AtomicU64>,
}

impl Process {
    pub(crate) fn register(&self, r: &mut Registry) {
        r.register_with_unit(
            "process_cpu",
            "Total user and system CPU time spent",
            prometheus_client::registry::Unit::Seconds,
            CounterFromGauge(self.cpu.clone()),
        );
        r.register(
            "process_resident_memory_bytes",
            "Resident memory size",
            self.resident.clone(),
        );
        r.register(
            "process_virtual_memory_bytes",
            "Virtual memory size",
            self.virtual_memory.clone(),
        );
        r.register(
            "process_open_fds",
            "Open file descriptors",
            self.open_fds.clone(),
        );
        r.register(
            "process_max_fds",
            "Limit of open file descriptors",
            self.max_fds.clone(),
        );
        r.register(
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch",
            self.start_time.clone(),
        );
    }

    pub(crate) fn update(&self) {
        let ticks = clock_ticks();
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
            if let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) {
                let f: Vec<&str> = rest.split_whitespace().collect();
                let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
                // Fields 14/15 (utime, stime), 22 (starttime), 23 (vsize).
                self.cpu.set((num(11) + num(12)) / ticks);
                self.virtual_memory.set(num(20) as i64);
                if let Some(boot) = boot_time() {
                    self.start_time.set(boot + num(19) / ticks);
                }
            }
        }
        // VmRSS in kB: no page size to know.
        if let Some(kb) = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.split_whitespace().next()?.parse::<i64>().ok())
            })
        {
            self.resident.set(kb * 1024);
        }
        if let Ok(d) = std::fs::read_dir("/proc/self/fd") {
            self.open_fds.set(d.count() as i64);
        }
        if let Ok(limits) = std::fs::read_to_string("/proc/self/limits") {
            if let Some(max) = limits
                .lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|v| v.parse::<i64>().ok())
            {
                self.max_fds.set(max);
            }
        }
    }
}

/// `/proc` counts CPU time in USER_HZ, which Linux fixes at 100 for
/// userspace on every architecture.
fn clock_ticks() -> f64 {
    100.0
}

fn boot_time() -> Option<f64> {
    std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// A counter whose value is read, not incremented (CPU seconds).
#[derive(Debug, Clone)]
struct CounterFromGauge(Gauge<f64, std::sync::atomic::AtomicU64>);

impl prometheus_client::encoding::EncodeMetric for CounterFromGauge {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::MetricEncoder<'_>,
    ) -> Result<(), std::fmt::Error> {
        encoder.encode_counter::<prometheus_client::encoding::NoLabelSet, f64, u64>(
            &self.0.get(),
            None,
        )
    }

    fn metric_type(&self) -> prometheus_client::metrics::MetricType {
        prometheus_client::metrics::MetricType::Counter
    }
}
