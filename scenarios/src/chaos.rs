//! `oxstack chaos`: a long random walk for soak testing, as a scenario built from a template.
//!
//! A small cloud (`hosts` hosts of 8 vCPUs and 16 GiB in clusters of ten), some VMs, then
//! `steps` random operations with every VM and host operation weighted in, 2% of hypervisor
//! calls failing, 10% of hosts slower than the hypervisor timeout for one minute in five, ping
//! sweeps every 30 simulated seconds, and the invariants checked every
//! `check_every` steps; at the end every fault is lifted, the hosts are swept and reconciled, and
//! the database must agree with the simulator, with nothing leaked.

use crate::error::ScenarioResult;
use crate::spec::Scenario;

/// The knobs of a chaos run.
#[derive(Clone, Copy, Debug)]
pub struct ChaosOptions {
    pub steps: u64,
    pub check_every: u64,
    pub hosts: u32,
}

impl ChaosOptions {
    /// The command that replays a chaos run with `{seed}` in place of the seed.
    pub fn replay_template(&self) -> String {
        format!(
            "oxstack chaos --seed {{seed}} --steps {} --check-every {} --hosts {}",
            self.steps, self.check_every, self.hosts
        )
    }
}

/// The chaos scenario for `o`.
pub fn scenario(o: &ChaosOptions) -> ScenarioResult<Scenario> {
    let hosts = o.hosts.max(1);
    let clusters = hosts.div_ceil(10);
    let per_cluster = hosts.div_ceil(clusters);
    let vms = (u64::from(hosts) * 3).max(10);
    let check_every = o.check_every;
    let steps = o.steps;
    let text = format!(
        r#"
name = "chaos"
description = "oxstack chaos: a long random walk with faults, invariants checked as it goes"

[topology]
clusters_per_zone = {clusters}
hosts_per_cluster = {per_cluster}
host_cpus = 8
host_memory_gib = 16

[simulator.latency]
default = {{ uniform = {{ min_ms = 1, max_ms = 20 }} }}
per_op = {{ create = {{ log_normal = {{ median_ms = 400, sigma = 0.4 }} }}, migrate = {{ log_normal = {{ median_ms = 1500, sigma = 0.5 }} }} }}

[config]
"vm.deletion_policy" = "Never"
"hypervisor.call_timeout_secs" = 10

[[phases]]
kind = "create"
name = "initial VMs"
count = {vms}

[[phases]]
kind = "random"
name = "chaos walk"
steps = {steps}
check_every = {check_every}
ping_every_secs = 30
invalid_percent = 5
weights = {{ create = 6, start = 6, stop = 6, reboot = 4, pause = 3, resume = 3, migrate = 5, destroy = 4, recover = 2, expunge = 3, maintenance = 1, host_crash = 1, host_partition = 1, host_recover = 3, ping = 2, reconcile = 1 }}
[[phases.faults]]
action = "fail_op"
op = "start"
percent = 2
retryable = true
[[phases.faults]]
action = "fail_op"
op = "stop"
percent = 2
[[phases.faults]]
action = "fail_op"
op = "migrate"
percent = 2
retryable = true
[[phases.faults]]
action = "fail_op"
op = "create"
percent = 2
[[phases.faults]]
every_secs = 300
duration_secs = 60
action = "slow"
hosts = "10%"
extra_ms = 15000

[[phases]]
kind = "fault"
name = "lift every fault"
faults = [{{ action = "clear_faults" }}, {{ action = "recover", hosts = "faulty" }}]

[[phases]]
kind = "ping"
name = "reconnect"
sweeps = 2

[[phases]]
kind = "reconcile"

[checks]
vm_states = ["Running", "Paused", "Stopped", "Destroyed"]
max_strays = 1000000
"#
    );
    Scenario::parse(&text, "chaos")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_is_a_valid_scenario() {
        let s = scenario(&ChaosOptions { steps: 100, check_every: 10, hosts: 25 }).unwrap();
        assert_eq!(s.topology.host_count(), 27);
        assert_eq!(s.phases.len(), 5);
    }
}
