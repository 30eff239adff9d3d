//! The summary `oxstack sim` prints: rates, latency percentiles, peak memory.

use std::time::Duration;

use serde::Serialize;

/// Raw figures of one run.
pub struct RunFigures {
    pub hosts: u32,
    pub host_failures: u64,
    pub register_time: Duration,
    pub vms: u32,
    pub vm_failures: u64,
    pub first_error: Option<String>,
    pub create_time: Duration,
    pub latencies: Vec<Duration>,
    pub sweep_pinged: u64,
    pub sweep_time: Duration,
    pub total_time: Duration,
    pub seed: u64,
}

/// The summary.
#[derive(Debug, Serialize)]
pub struct Report {
    pub seed: u64,
    pub hosts: u32,
    pub host_failures: u64,
    pub register_secs: f64,
    pub hosts_per_sec: f64,
    pub vms: u32,
    pub vms_created: u64,
    pub vm_failures: u64,
    pub first_error: Option<String>,
    pub create_secs: f64,
    pub vms_per_sec: f64,
    pub create_p50_ms: f64,
    pub create_p99_ms: f64,
    pub create_p999_ms: f64,
    pub ping_sweep_hosts: u64,
    pub ping_sweep_secs: f64,
    pub simulator_vms: u64,
    pub peak_rss_mib: Option<f64>,
    pub db_file_mib: Option<f64>,
    pub total_secs: f64,
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)].as_secs_f64() * 1e3
}

/// Peak resident set size of this process (VmHWM), in MiB.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

impl Report {
    /// Summarizes a run.
    pub fn new(mut f: RunFigures, simulator_vms: u64, db_bytes: Option<u64>) -> Self {
        f.latencies.sort();
        let created = f.latencies.len() as u64;
        Self {
            seed: f.seed,
            hosts: f.hosts,
            host_failures: f.host_failures,
            register_secs: f.register_time.as_secs_f64(),
            hosts_per_sec: f64::from(f.hosts) / f.register_time.as_secs_f64().max(1e-9),
            vms: f.vms,
            vms_created: created,
            vm_failures: f.vm_failures,
            first_error: f.first_error,
            create_secs: f.create_time.as_secs_f64(),
            vms_per_sec: created as f64 / f.create_time.as_secs_f64().max(1e-9),
            create_p50_ms: percentile(&f.latencies, 0.50),
            create_p99_ms: percentile(&f.latencies, 0.99),
            create_p999_ms: percentile(&f.latencies, 0.999),
            ping_sweep_hosts: f.sweep_pinged,
            ping_sweep_secs: f.sweep_time.as_secs_f64(),
            simulator_vms,
            peak_rss_mib: peak_rss_mib(),
            db_file_mib: db_bytes.map(|b| b as f64 / (1024.0 * 1024.0)),
            total_secs: f.total_time.as_secs_f64(),
        }
    }

    /// Prints the human summary.
    pub fn print(&self) {
        println!("oxstack sim summary (seed {})", self.seed);
        println!(
            "  hosts registered  {} of {} in {:.2} s ({:.0} hosts/s)",
            u64::from(self.hosts) - self.host_failures,
            self.hosts,
            self.register_secs,
            self.hosts_per_sec
        );
        println!(
            "  VMs created       {} of {} in {:.2} s ({:.0} VMs/s), {} failed",
            self.vms_created, self.vms, self.create_secs, self.vms_per_sec, self.vm_failures
        );
        if let Some(e) = &self.first_error {
            println!("  first failure     {e}");
        }
        println!(
            "  create latency    p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms",
            self.create_p50_ms, self.create_p99_ms, self.create_p999_ms
        );
        println!(
            "  ping sweep        {} hosts in {:.3} s",
            self.ping_sweep_hosts, self.ping_sweep_secs
        );
        println!("  simulator VMs     {}", self.simulator_vms);
        match self.peak_rss_mib {
            Some(m) => println!("  peak RSS          {m:.0} MiB"),
            None => println!("  peak RSS          unknown (no /proc/self/status)"),
        }
        if let Some(m) = self.db_file_mib {
            println!("  database file     {m:.1} MiB");
        }
        println!("  total             {:.2} s", self.total_secs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_distribution() {
        let lat: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&lat, 0.5), 51.0);
        assert_eq!(percentile(&lat, 0.99), 99.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }
}
