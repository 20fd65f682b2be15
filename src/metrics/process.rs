//! The standard `process_*` metrics every Prometheus client library exports,
//! read from `/proc` (Linux only; elsewhere the collector reports nothing).

use std::fs;

use super::Collector;

/// Clock ticks per second of `/proc/<pid>/stat` times. Linux reports them in
/// USER_HZ, which is 100 on every architecture (Prometheus's procfs assumes
/// the same).
const USER_HZ: f64 = 100.0;

/// Reports the process metrics of the current process.
pub fn collect(out: &mut Collector) {
    let Some(process) = read_self() else {
        return;
    };
    out.counter(
        "process_cpu_seconds_total",
        "Total user and system CPU time spent in seconds.",
        process.cpu_seconds,
    );
    out.gauge(
        "process_resident_memory_bytes",
        "Resident memory size in bytes.",
        process.resident_memory_bytes,
    );
    out.gauge(
        "process_virtual_memory_bytes",
        "Virtual memory size in bytes.",
        process.virtual_memory_bytes,
    );
    out.gauge(
        "process_start_time_seconds",
        "Start time of the process since unix epoch in seconds.",
        process.start_time_seconds,
    );
    if let Some(open_fds) = process.open_fds {
        out.gauge(
            "process_open_fds",
            "Number of open file descriptors.",
            open_fds,
        );
    }
    if let Some(max_fds) = process.max_fds {
        out.gauge(
            "process_max_fds",
            "Maximum number of open file descriptors.",
            max_fds,
        );
    }
}

#[derive(Debug, PartialEq)]
struct Process {
    cpu_seconds: f64,
    resident_memory_bytes: f64,
    virtual_memory_bytes: f64,
    start_time_seconds: f64,
    open_fds: Option<f64>,
    max_fds: Option<f64>,
}

fn read_self() -> Option<Process> {
    let stat = fs::read_to_string("/proc/self/stat").ok()?;
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let boot_time = boot_time_seconds(&fs::read_to_string("/proc/stat").ok()?)?;
    let mut process = parse(&stat, &status, boot_time)?;
    process.open_fds = fs::read_dir("/proc/self/fd")
        .ok()
        .map(|entries| entries.count() as f64);
    process.max_fds = fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| max_open_files(&limits));
    Some(process)
}

/// Parses `/proc/self/stat` and `/proc/self/status`; `boot_time` is the
/// `btime` of `/proc/stat`.
fn parse(stat: &str, status: &str, boot_time: f64) -> Option<Process> {
    // The command name (field 2) is in parentheses and may contain spaces or
    // parentheses itself; the fields after the last `)` are plain numbers.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // `fields[0]` is field 3 (state) of proc(5).
    let field = |n: usize| -> Option<f64> { fields.get(n - 3)?.parse().ok() };
    let utime = field(14)?;
    let stime = field(15)?;
    let start_ticks = field(22)?;
    let vsize = field(23)?;
    let rss_kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(Process {
        cpu_seconds: (utime + stime) / USER_HZ,
        resident_memory_bytes: rss_kib * 1024.0,
        virtual_memory_bytes: vsize,
        start_time_seconds: boot_time + start_ticks / USER_HZ,
        open_fds: None,
        max_fds: None,
    })
}

fn boot_time_seconds(proc_stat: &str) -> Option<f64> {
    proc_stat
        .lines()
        .find_map(|line| line.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

fn max_open_files(limits: &str) -> Option<f64> {
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))?;
    // "Max open files            1024                 1048576              files"
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        let stat = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 1000 0 0 0 \
                    250 130 0 0 20 0 8 0 123400 987654321 2000 18446744073709551615";
        let status = "Name:\tsextant\nVmPeak:\t  100 kB\nVmRSS:\t    8000 kB\nThreads:\t8\n";
        let process = parse(stat, status, 1_700_000_000.0).unwrap();
        assert_eq!(
            process,
            Process {
                cpu_seconds: 3.8,
                resident_memory_bytes: 8_192_000.0,
                virtual_memory_bytes: 987_654_321.0,
                start_time_seconds: 1_700_001_234.0,
                open_fds: None,
                max_fds: None,
            }
        );
        assert_eq!(
            boot_time_seconds("cpu 1 2 3\nbtime 1700000000\nprocesses 9\n"),
            Some(1.7e9)
        );
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 1048576              files\n";
        assert_eq!(max_open_files(limits), Some(1024.0));
    }

    #[test]
    fn reads_this_process() {
        let mut out = Collector::default();
        collect(&mut out);
        let text = out.render();
        assert!(
            text.contains("# TYPE process_cpu_seconds_total counter\n"),
            "{text}"
        );
        assert!(text.contains("\nprocess_open_fds "), "{text}");
    }
}
