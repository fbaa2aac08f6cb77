//! Process metrics under the standard Prometheus client names (`process_*`), read from `/proc`
//! when `/metrics` is scraped: nothing runs between scrapes, and the values are as fresh as the
//! scrape. Rendered as text after the recorder's output because `process_cpu_seconds_total` is a
//! fractional counter, which the `metrics` facade's integer counters cannot carry.

use std::fmt::Write;

// The standard names of the Prometheus client libraries, kept apart from `names` (the
// `switchyard_*` families that dashboards and `docker/metric-names.txt` track).
/// Process CPU seconds (user + system).
pub const PROCESS_CPU_SECONDS_TOTAL: &str = "process_cpu_seconds_total";
/// Process resident memory.
pub const PROCESS_RESIDENT_MEMORY: &str = "process_resident_memory_bytes";
/// Process virtual memory.
pub const PROCESS_VIRTUAL_MEMORY: &str = "process_virtual_memory_bytes";
/// Open file descriptors.
pub const PROCESS_OPEN_FDS: &str = "process_open_fds";
/// Soft limit of open file descriptors.
pub const PROCESS_MAX_FDS: &str = "process_max_fds";
/// Process start time (unix seconds).
pub const PROCESS_START_TIME: &str = "process_start_time_seconds";

/// Clock ticks per second of `/proc/*/stat` times: Linux's USER_HZ, fixed at 100 for userspace.
const USER_HZ: f64 = 100.0;

/// The `process_*` families in Prometheus text format, or nothing off Linux.
pub fn render() -> String {
    let mut out = String::new();
    let Some(p) = read() else { return out };
    let mut family = |name: &str, kind: &str, help: &str, v: f64| {
        let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n\n");
    };
    family(PROCESS_CPU_SECONDS_TOTAL, "counter", "Total user and system CPU time spent in seconds.", p.cpu_seconds);
    family(PROCESS_RESIDENT_MEMORY, "gauge", "Resident memory size in bytes.", p.resident_bytes);
    family(PROCESS_VIRTUAL_MEMORY, "gauge", "Virtual memory size in bytes.", p.virtual_bytes);
    family(PROCESS_OPEN_FDS, "gauge", "Number of open file descriptors.", p.open_fds);
    if let Some(max) = p.max_fds {
        family(PROCESS_MAX_FDS, "gauge", "Maximum number of open file descriptors.", max);
    }
    family(PROCESS_START_TIME, "gauge", "Start time of the process since unix epoch in seconds.", p.start_time_seconds);
    out
}

/// One reading of this process.
#[derive(Debug, PartialEq)]
struct Reading {
    cpu_seconds: f64,
    resident_bytes: f64,
    virtual_bytes: f64,
    open_fds: f64,
    max_fds: Option<f64>,
    start_time_seconds: f64,
}

fn read() -> Option<Reading> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let boot = std::fs::read_to_string("/proc/stat").ok()?;
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as f64;
    parse(&stat, &status, &boot, &limits, open_fds)
}

fn parse(stat: &str, status: &str, boot: &str, limits: &str, open_fds: f64) -> Option<Reading> {
    // The command name (field 2) may hold spaces and parentheses: fields are counted after its
    // last ')'. There, index 0 is field 3 (state), so utime (14) is 11, stime 12, starttime (22) 19.
    let after = stat.rsplit_once(')')?.1.split_whitespace().collect::<Vec<_>>();
    let field = |i: usize| after.get(i)?.parse::<f64>().ok();
    let kb = |key: &str| {
        let line = status.lines().find(|l| l.starts_with(key))?;
        line[key.len()..].split_whitespace().next()?.parse::<f64>().ok().map(|v| v * 1024.0)
    };
    let btime = boot.lines().find_map(|l| l.strip_prefix("btime "))?.trim().parse::<f64>().ok()?;
    let max_fds = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .and_then(|l| l.split_whitespace().next()?.parse::<f64>().ok());
    Some(Reading {
        cpu_seconds: (field(11)? + field(12)?) / USER_HZ,
        resident_bytes: kb("VmRSS:")?,
        virtual_bytes: kb("VmSize:")?,
        open_fds,
        max_fds,
        start_time_seconds: btime + field(19)? / USER_HZ,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_counted_after_the_command_name() {
        let stat = "42 (a) b (c)) S 1 42 42 0 -1 4194304 127 0 0 0 250 50 0 0 20 0 1 0 156602 3133440 409 0";
        let status = "Name:\tx\nVmSize:\t    3892 kB\nVmRSS:\t    1968 kB\n";
        let limits = "Limit  Soft Limit  Hard Limit  Units\nMax open files            20000                20000                files\n";
        let r = parse(stat, status, "cpu 1 2\nbtime 1795792172\n", limits, 7.0).unwrap();
        assert_eq!(r.cpu_seconds, 3.0);
        assert_eq!(r.resident_bytes, 1968.0 * 1024.0);
        assert_eq!(r.virtual_bytes, 3892.0 * 1024.0);
        assert_eq!(r.max_fds, Some(20000.0));
        assert_eq!(r.start_time_seconds, 1795792172.0 + 1566.02);
    }

    #[test]
    fn this_process_is_read_live() {
        let text = render();
        for name in ["process_cpu_seconds_total ", "process_resident_memory_bytes ", "process_open_fds "] {
            let v: f64 = text.lines().find_map(|l| l.strip_prefix(name)).unwrap().parse().unwrap();
            assert!(v >= 0.0, "{name}{v}");
        }
        assert!(text.contains("# TYPE process_cpu_seconds_total counter"));
    }
}
