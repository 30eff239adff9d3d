//! The `[checks]` section (and `kind = "check"` phases): what must hold.
//!
//! ```toml
//! [checks]
//! invariants = true          # the engine's invariants and the simulator's own bookkeeping
//! consistent = true          # every Running/Paused VM on a Connected host runs there, and
//!                            # the simulator runs nothing the database does not place there
//! no_leaks = true            # failed creates left nothing; one volume and NIC per VM
//! no_transitional = true     # no VM left Starting, Migrating, ... once the system is idle
//! vm_states = ["Running", "Unknown", "Stopped"]   # each VM in one of these
//! all_vms_in = "Running"     # shorthand for vm_states = ["Running"]
//! min_vms = 500              # at least this many VMs exist
//! max_strays = 0             # VMs a host runs that the database destroyed while it was away
//! no_internal_errors = true  # no operation failed with INTERNAL, DATABASE_ERROR or UNAVAILABLE
//! ```

use oxstack_engine::services::vm::VmState;
use serde::Deserialize;

use super::Problems;

/// What to check. Every boolean defaults to true; the others are off unless given.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checks {
    #[serde(default = "yes")]
    pub invariants: bool,
    #[serde(default = "yes")]
    pub consistent: bool,
    #[serde(default = "yes")]
    pub no_leaks: bool,
    #[serde(default = "yes")]
    pub no_transitional: bool,
    #[serde(default = "yes")]
    pub no_internal_errors: bool,
    #[serde(default)]
    pub vm_states: Option<Vec<String>>,
    #[serde(default)]
    pub all_vms_in: Option<String>,
    #[serde(default)]
    pub min_vms: Option<u64>,
    #[serde(default)]
    pub max_strays: u64,
}

impl Default for Checks {
    fn default() -> Self {
        Self {
            invariants: true,
            consistent: true,
            no_leaks: true,
            no_transitional: true,
            no_internal_errors: true,
            vm_states: None,
            all_vms_in: None,
            min_vms: None,
            max_strays: 0,
        }
    }
}

fn yes() -> bool {
    true
}

impl Checks {
    /// The states every VM must be in, if the checks restrict them.
    pub fn allowed_states(&self) -> Option<Vec<VmState>> {
        let mut names: Vec<&String> = Vec::new();
        if let Some(list) = &self.vm_states {
            names.extend(list);
        }
        if let Some(one) = &self.all_vms_in {
            names.push(one);
        }
        if names.is_empty() {
            return None;
        }
        Some(names.iter().filter_map(|n| n.parse().ok()).collect())
    }

    pub(super) fn validate(&self, key: &str, p: &mut Problems) {
        let listed = self.vm_states.iter().flatten().map(|s| ("vm_states", s));
        for (field, name) in listed.chain(self.all_vms_in.iter().map(|s| ("all_vms_in", s))) {
            if let Err(e) = name.parse::<VmState>() {
                p.add(&format!("{key}.{field}"), e);
            }
        }
        if self.vm_states.is_some() && self.all_vms_in.is_some() {
            p.add(&format!("{key}.all_vms_in"), "give either vm_states or all_vms_in");
        }
    }
}
