//! What the sidecar benches read about a spawned process.

/// User + system CPU seconds `pid` has used: fields 14 and 15 of `/proc/<pid>/stat`, after
/// the parenthesised command name (Linux clock ticks are 1/100 s).
pub fn cpu_secs(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = s.rsplit_once(')').map_or("", |(_, r)| r);
    rest.split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse::<u64>().ok())
        .sum::<u64>() as f64
        / 100.0
}
