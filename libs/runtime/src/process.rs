//! This process's memory and CPU, for the health reports (the gateway's and every service's
//! Ops info) and the `memory_percent` alert rule. Memory is measured against the cgroup's limit
//! when the process runs under one (a container), else against the machine's memory; CPU is
//! the share of one core used since the previous reading.

use std::sync::{Mutex, OnceLock};

use sysinfo::{MemoryRefreshKind, Pid, ProcessRefreshKind, ProcessesToUpdate, System};

/// One reading.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProcessStats {
    /// Resident memory, bytes.
    pub rss_bytes: u64,
    /// What the process may use: the cgroup's limit, else the machine's memory.
    pub memory_limit_bytes: u64,
    /// `rss_bytes` as a percentage of `memory_limit_bytes`.
    pub memory_percent: f64,
    /// Percent of one core since the previous reading (can pass 100 on several cores).
    pub cpu_percent: f64,
}

impl From<ProcessStats> for portico_proto::ops::v1::ProcessStats {
    fn from(s: ProcessStats) -> Self {
        portico_proto::ops::v1::ProcessStats {
            rss_bytes: s.rss_bytes,
            memory_limit_bytes: s.memory_limit_bytes,
            memory_percent: s.memory_percent,
            cpu_percent: s.cpu_percent,
        }
    }
}

struct Sampler {
    system: System,
    pid: Pid,
}

fn sampler() -> Option<&'static Mutex<Sampler>> {
    static SAMPLER: OnceLock<Option<Mutex<Sampler>>> = OnceLock::new();
    SAMPLER
        .get_or_init(|| {
            let pid = sysinfo::get_current_pid().ok()?;
            let system = System::new().ok()?;
            Some(Mutex::new(Sampler { system, pid }))
        })
        .as_ref()
}

/// Reads this process's figures now (`None` where the platform cannot say).
pub fn stats() -> Option<ProcessStats> {
    let mut s = sampler()?.lock().ok()?;
    let pid = s.pid;
    s.system.refresh_processes_specifics(
        ProcessesToUpdate::Some(&[pid]),
        false,
        ProcessRefreshKind::nothing().with_memory().with_cpu(),
    );
    s.system
        .refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
    let limit = s
        .system
        .cgroup_limits()
        .map(|c| c.total_memory)
        .filter(|t| *t > 0)
        .unwrap_or_else(|| s.system.total_memory());
    let process = s.system.process(pid)?;
    let rss = process.memory();
    Some(ProcessStats {
        rss_bytes: rss,
        memory_limit_bytes: limit,
        memory_percent: if limit == 0 {
            0.0
        } else {
            rss as f64 * 100.0 / limit as f64
        },
        cpu_percent: f64::from(process.cpu_usage()),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(target_os = "linux")]
    fn this_process_has_memory_and_a_limit() {
        let _hold: Vec<u8> = vec![1; 4 << 20];
        let s = super::stats().unwrap_or_default();
        assert!(s.rss_bytes > 1 << 20, "{s:?}");
        assert!(s.memory_limit_bytes >= s.rss_bytes, "{s:?}");
        assert!(s.memory_percent > 0.0 && s.memory_percent <= 100.0, "{s:?}");
        assert!(s.cpu_percent >= 0.0);
    }
}
