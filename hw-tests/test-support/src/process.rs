//! Figures of a running process read from `/proc`: CPU time and resident memory.

// The workspace denies unsafe code; this file needs it for
// sysconf(3) and kill(2) through libc; each unsafe block says why it is sound (SAFETY).
#![allow(unsafe_code)]

use crate::{Error, Result};

/// CPU time and memory of one process at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessUsage {
    /// User plus system CPU time since the process started, in seconds.
    pub cpu_seconds: f64,
    /// Resident set size, in KiB.
    pub rss_kib: u64,
}

/// Reads `/proc/PID/stat` and `/proc/PID/status`.
pub fn usage(pid: u32) -> Result<ProcessUsage> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(Error::io(format!(
        "read /proc/{pid}/stat (has the process exited?)"
    )))?;
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    let after = stat.rsplit_once(')').map(|(_, s)| s).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the name: state is field 3, utime field 14, stime field 15 (1-based, man 5 proc).
    let ticks = |i: usize| -> u64 { fields.get(i - 3).and_then(|v| v.parse().ok()).unwrap_or(0) };
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let cpu_seconds = (ticks(14) + ticks(15)) as f64 / hz;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(Error::io(format!("read /proc/{pid}/status")))?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    Ok(ProcessUsage {
        cpu_seconds,
        rss_kib,
    })
}

/// CPU seconds per thread name of process `pid` (digits stripped from names, so that worker
/// pools add up), from `/proc/PID/task`.
pub fn thread_cpu_seconds(pid: u32) -> std::collections::BTreeMap<String, f64> {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let mut by_name = std::collections::BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return by_name;
    };
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name: String = stat[open + 1..close]
            .chars()
            .filter(|c| !c.is_ascii_digit())
            .collect();
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        // utime and stime are fields 14 and 15; `fields` starts at field 3.
        *by_name.entry(name).or_insert(0.0) += (ticks(11) + ticks(12)) as f64 / hz;
    }
    by_name
}

/// Sends SIGTERM to `pid`.
pub fn terminate(pid: u32) {
    // SAFETY: kill(2) with a pid we started; a stale pid only yields ESRCH.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGTERM);
    }
}
