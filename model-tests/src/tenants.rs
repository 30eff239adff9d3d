//! Tenants in the model: whose each VM is, and the quotas a tenant's creates are charged
//! against (issue 19).
//!
//! Besides the admin, the cloud has two tenant accounts with small quotas, chosen so that
//! random cases run into them often: [`Owner::Tenant1`] may hold 3 VMs; [`Owner::Tenant2`] 4
//! vCPUs, 6 GiB of memory and 5 addresses (two VMs of the middle size, or four small ones
//! with one NIC each). Every create names its owner (a tenant's never names a host: the API
//! refuses a tenant's user that, see `api/src/caller.rs`). The admin's VMs are nobody's on one
//! node's engine calls (`VmService::create_vm`, as `oxstack sim` makes them) and the admin
//! account's over the API; neither is charged.
//!
//! A tenant's VM is charged from the transaction that reserves its host until it is expunged
//! (a destroyed VM still counts): one VM, its vCPUs and memory, one address per NIC, its root
//! volume's bytes. A create whose charge would exceed any limit is refused QUOTA_EXCEEDED in
//! that transaction, after the scheduler chose a host (so a create with no host left is
//! INSUFFICIENT_CAPACITY whatever the quota) and before its NICs (so an L3 network with no
//! address left is only found by a create within its quota). The model charges and refunds
//! nothing itself: an account's usage is the sum over the VMs of the model it owns
//! ([`RefState::usage`]), which the engine's must equal after every step (`invariants`).
//!
//! Under concurrency (a group, `linearize`) a tenant's create chooses its host, and its charge
//! is decided later, when the database reserves it: another create of the same account, or an
//! expunge of one of its VMs, may come in between (`placement`, `atoms::Risk`). A create
//! refused then says why by reading the usage again: QUOTA_EXCEEDED, or CONFLICT when a
//! refund came in between and no limit is exceeded any more (`Phase::QuotaRefused`).

use oxstack_engine::services::identity::accounts::{AccountUsage, Quotas};

use crate::reference::{RefState, GIB, ROOT_BYTES, SIZES};
use crate::transitions::Transition;

/// QUOTA_EXCEEDED.
pub const QUOTA_EXCEEDED: &str = "QUOTA_EXCEEDED";

/// Whose a VM is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Owner {
    /// The admin (the admin account, or nobody): never charged.
    Admin,
    /// A tenant that may hold 3 VMs.
    Tenant1,
    /// A tenant that may hold 4 vCPUs, 6 GiB of memory and 5 addresses.
    Tenant2,
}

impl Owner {
    /// Every owner.
    pub const ALL: [Owner; 3] = [Owner::Admin, Owner::Tenant1, Owner::Tenant2];
    /// The tenants.
    pub const TENANTS: [Owner; 2] = [Owner::Tenant1, Owner::Tenant2];

    /// The tenant account's quotas; `None` for the admin, which has none.
    pub fn quotas(self) -> Option<Quotas> {
        match self {
            Owner::Admin => None,
            Owner::Tenant1 => Some(Quotas { max_vms: Some(3), ..Quotas::default() }),
            Owner::Tenant2 => Some(Quotas {
                max_cpus: Some(4),
                max_memory_bytes: Some(6 * GIB),
                max_ips: Some(5),
                ..Quotas::default()
            }),
        }
    }

    /// Whether it is a tenant (charged, and seeing only its own VMs).
    pub fn is_tenant(self) -> bool {
        self != Owner::Admin
    }

    /// The tenant account's name (and its user's, over the API).
    pub fn account_name(self) -> &'static str {
        match self {
            Owner::Admin => "admin",
            Owner::Tenant1 => "tenant1",
            Owner::Tenant2 => "tenant2",
        }
    }
}

/// What one VM of `SIZES[size]` with `nics` NICs is charged.
pub fn charge(size: usize, nics: usize) -> AccountUsage {
    let (cpus, memory) = SIZES[size];
    AccountUsage {
        vms: 1,
        cpus: u64::from(cpus),
        memory_bytes: memory,
        ips: nics as u64,
        volume_bytes: ROOT_BYTES,
    }
}

/// `a` and `b` added up.
fn plus(a: AccountUsage, b: AccountUsage) -> AccountUsage {
    AccountUsage {
        vms: a.vms + b.vms,
        cpus: a.cpus + b.cpus,
        memory_bytes: a.memory_bytes + b.memory_bytes,
        ips: a.ips + b.ips,
        volume_bytes: a.volume_bytes + b.volume_bytes,
    }
}

/// Whether `usage` is within every limit of `quotas`.
fn within(quotas: &Quotas, usage: &AccountUsage) -> bool {
    let limits = [
        (quotas.max_vms, usage.vms),
        (quotas.max_cpus, usage.cpus),
        (quotas.max_memory_bytes, usage.memory_bytes),
        (quotas.max_ips, usage.ips),
        (quotas.max_volume_bytes, usage.volume_bytes),
    ];
    limits.into_iter().all(|(limit, used)| limit.is_none_or(|l| used <= l))
}

impl RefState {
    /// What `owner`'s VMs hold against its quotas: the sum of their charges, destroyed VMs
    /// included (all zero for the admin, which is not charged).
    pub fn usage(&self, owner: Owner) -> AccountUsage {
        if !owner.is_tenant() {
            return AccountUsage::default();
        }
        (self.vms.values().filter(|v| v.owner == owner))
            .fold(AccountUsage::default(), |sum, v| plus(sum, charge(v.size, v.l3s.len())))
    }

    /// Whether `owner`'s quotas refuse one more VM of `size` with `nics` NICs.
    pub fn over_quota(&self, owner: Owner, size: usize, nics: usize) -> bool {
        owner.quotas().is_some_and(|q| !within(&q, &plus(self.usage(owner), charge(size, nics))))
    }

    /// How many more VMs of `size` with `nics` NICs `owner`'s quotas allow (`u32::MAX` for
    /// the admin).
    pub fn quota_room(&self, owner: Owner, size: usize, nics: usize) -> u32 {
        let Some(q) = owner.quotas() else { return u32::MAX };
        let (mut used, one) = (self.usage(owner), charge(size, nics));
        let mut room = 0;
        // A VM holds at least one of everything its quotas limit, and they are small.
        while room < 64 && within(&q, &plus(used, one)) {
            used = plus(used, one);
            room += 1;
        }
        room
    }
}

/// Whether `op` may charge `owner`'s quotas: a create of its.
pub fn charges(op: &Transition, owner: Owner) -> bool {
    matches!(op, Transition::CreateVm { owner: o, .. } if *o == owner && owner.is_tenant())
}

/// Whether `op` may refund `owner`'s quotas in `state`: an expunge of one of its VMs, or a
/// destroy (which expunges under the Direct deletion policy).
pub fn refunds(state: &RefState, op: &Transition, owner: Owner) -> bool {
    let of_owner = |vm| state.vms.get(vm).is_some_and(|v| v.owner == owner);
    owner.is_tenant()
        && matches!(op, Transition::Destroy { vm } | Transition::Expunge { vm } if of_owner(vm))
}

/// Whether `op` may choose a host in the scheduler's index while it runs: a create, start or
/// live migration, or a host entering Maintenance (its evacuation).
pub fn may_choose(op: &Transition) -> bool {
    use oxstack_engine::services::host::HostState;
    matches!(
        op,
        Transition::CreateVm { .. }
            | Transition::Start { .. }
            | Transition::Migrate { .. }
            | Transition::SetHostState { state: HostState::Maintenance, .. }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::apply;
    use crate::reference::VmNo;

    fn create(vm: u32, size: usize, nics: usize, owner: Owner) -> Transition {
        Transition::CreateVm { vm: VmNo(vm), size, nics, host: None, image: None, owner }
    }

    #[test]
    fn tenant1_is_refused_its_fourth_vm_and_may_create_again_once_one_is_expunged() {
        let mut s = RefState::new(0);
        for vm in 0..3 {
            s = apply(s, &create(vm, 0, 0, Owner::Tenant1));
        }
        assert_eq!(s.usage(Owner::Tenant1).vms, 3);
        assert!(s.over_quota(Owner::Tenant1, 0, 0));
        assert_eq!(s.quota_room(Owner::Tenant1, 0, 0), 0);
        let refused = apply(s.clone(), &create(3, 0, 0, Owner::Tenant1));
        assert!(!refused.vms.contains_key(&VmNo(3)), "refused: {:?}", refused.vms.keys());
        assert!(!s.over_quota(Owner::Admin, 0, 0) && !s.over_quota(Owner::Tenant2, 0, 0));
        s = apply(s, &Transition::Destroy { vm: VmNo(0) });
        assert!(s.over_quota(Owner::Tenant1, 0, 0), "a destroyed VM still counts");
        s = apply(s, &Transition::Expunge { vm: VmNo(0) });
        assert_eq!(s.quota_room(Owner::Tenant1, 0, 0), 1);
    }

    #[test]
    fn tenant2_runs_out_of_cpus_memory_or_addresses() {
        let s = RefState::new(0);
        // (1 vCPU, 1 GiB): four; with two NICs each, two (5 addresses).
        assert_eq!(s.quota_room(Owner::Tenant2, 0, 1), 4);
        assert_eq!(s.quota_room(Owner::Tenant2, 0, 2), 2);
        // (2 vCPUs, 2 GiB): two; (1 vCPU, 3 GiB): two (6 GiB).
        assert_eq!(s.quota_room(Owner::Tenant2, 1, 1), 2);
        assert_eq!(s.quota_room(Owner::Tenant2, 2, 1), 2);
        assert_eq!(s.quota_room(Owner::Admin, 2, 1), u32::MAX);
    }
}
