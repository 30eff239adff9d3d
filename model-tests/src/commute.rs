//! Which operations of a group commute: what each may read or change ([`keys`]), so that the
//! search (`linearize`) can take an operation that touches nothing the remaining ones touch
//! without trying it in every position.
//!
//! The keys over-approximate: an operation that may read or change something has its key
//! (more keys only make the search slower; a missing one would make it miss orders). They rely
//! on what a group guarantees (see `group`): no injected failure, every host reachable, enough
//! addresses for every create (so addresses, which only add up, need no key).

use oxstack_engine::services::host::HostState;

use crate::aux::{AuxNo, Parent};
use crate::reference::{HostNo, RefHost, RefState, RefVm, VmNo};
use crate::tenants::{charges, refunds, Owner};
use crate::transitions::Transition;

/// Something an operation may read or change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    Vm(VmNo),
    /// A host: its existence and state, the VMs placed, defined or arriving on it, its
    /// capacity in the engine and the simulator.
    Host(HostNo),
    /// The same, of a host in an aux cluster, which the scheduler never chooses (see
    /// `RefState::schedulable`).
    AuxHost(HostNo),
    /// The scheduler's choice among all hosts: every [`Key::Host`].
    Scheduler,
    Aux(AuxNo),
    /// The config, read (by the scheduler's strategy, a destroy's deletion policy).
    Config,
    /// The config, changed: conflicts with every read.
    ConfigChange,
    /// With several nodes, the primary storage as the node's topology counts it: a volume freed
    /// where it counted fewer than the database saturates at zero (see `cache`), so how far
    /// depends on the volumes made before.
    Storage,
    /// A tenant's quota usage: its creates are charged, expunges (and destroys, under the Direct
    /// policy) of its VMs refunded, and whether a create is refused depends on what was before.
    Quota(Owner),
}

impl Key {
    fn conflicts(&self, other: &Key) -> bool {
        use Key as K;
        match (self, other) {
            (K::Scheduler, K::Host(_) | K::Scheduler) | (K::Host(_), K::Scheduler) => true,
            (K::Host(a) | K::AuxHost(a), K::Host(b) | K::AuxHost(b)) => a == b,
            (K::ConfigChange, K::Config | K::ConfigChange) | (K::Config, K::ConfigChange) => true,
            (a, b) => a == b && *a != K::Config,
        }
    }
}

/// Whether two operations' keys overlap.
pub fn conflict(a: &[Key], b: &[Key]) -> bool {
    a.iter().any(|x| b.iter().any(|y| x.conflicts(y)))
}

/// What `op` may read or change in `state`.
pub fn keys(state: &RefState, op: &Transition) -> Vec<Key> {
    use Transition as T;
    // A host that does not exist (yet) may be added to the main cluster.
    let host = |h: HostNo| match state.hosts.get(&h) {
        Some(RefHost { cluster: Some(_), .. }) => Key::AuxHost(h),
        _ => Key::Host(h),
    };
    let vm = op.vm_acted_on().and_then(|v| state.vms.get(&v));
    // The hosts the VM holds or is defined on, and the image it was made from.
    let placed = vm.and_then(|v| v.host).map(host);
    let defined = vm.and_then(|v| v.last_host).map(host);
    let image = vm.and_then(|v| v.image).map(Key::Aux);
    let a = &state.aux;
    let l2_of = |l3: &AuxNo| a.l3s.get(l3).map(|l2| Key::Aux(*l2));
    let parent_of = |n: &AuxNo| {
        let parent = [a.clusters.get(n), a.l2s.get(n), a.bss.get(n), a.images.get(n)]
            .into_iter()
            .flatten()
            .find_map(|p| match p {
                Parent::Aux(p) => Some(Key::Aux(*p)),
                Parent::Main => None,
            });
        parent.or_else(|| l2_of(n))
    };
    // With several nodes, a placement on a named host that finds it full in its node's index
    // reloads the node's caches, which every other placement reads; and creates, destroys and
    // expunges change how the node's topology counts the primary storage.
    let reloads = state.cache.is_some().then_some(Key::Scheduler);
    let storage = state.cache.is_some().then_some(Key::Storage);
    let mut k: Vec<Key> = storage
        .filter(|_| matches!(op, T::CreateVm { .. } | T::Destroy { .. } | T::Expunge { .. }))
        .into_iter()
        .collect();
    k.extend(
        Owner::TENANTS
            .into_iter()
            .filter(|o| charges(op, *o) || refunds(state, op, *o))
            .map(Key::Quota),
    );
    k.extend(match op {
        T::CreateVm { vm, host: Some(h), image, .. } => {
            [Some(Key::Vm(*vm)), Some(host(*h)), image.map(Key::Aux), reloads]
                .into_iter()
                .flatten()
                .collect()
        }
        T::CreateVm { vm, host: None, image, .. } => {
            [Some(Key::Vm(*vm)), Some(Key::Scheduler), Some(Key::Config), image.map(Key::Aux)]
                .into_iter()
                .flatten()
                .collect()
        }
        T::Start { vm, host: Some(h) } => {
            [Some(Key::Vm(*vm)), Some(host(*h)), defined, reloads].into_iter().flatten().collect()
        }
        T::Migrate { vm, to: Some(h) } => {
            [Some(Key::Vm(*vm)), Some(host(*h)), placed, reloads].into_iter().flatten().collect()
        }
        T::Start { vm, host: None } | T::Migrate { vm, to: None } => {
            vec![Key::Vm(*vm), Key::Scheduler, Key::Config]
        }
        // Running or Paused decides whether an evacuation migrates or stops it; and an
        // evacuation that stops it (no room elsewhere) makes these refused afterwards (a
        // reboot, which leaves the VM Running where it is, too).
        T::Stop { vm, .. } | T::Reboot { vm } | T::Pause { vm } | T::Resume { vm } => {
            std::iter::once(Key::Vm(*vm)).chain(placed).collect()
        }
        T::Destroy { vm } => [Some(Key::Vm(*vm)), Some(Key::Config), placed, defined, image]
            .into_iter()
            .flatten()
            .collect(),
        T::Recover { vm } | T::Expunge { vm } => {
            [Some(Key::Vm(*vm)), defined, image].into_iter().flatten().collect()
        }
        T::AddHost { host: h, cluster: Some(c) } => vec![Key::AuxHost(*h), Key::Aux(*c)],
        T::AddHost { host: h, cluster: None } => vec![Key::Host(*h)],
        T::RemoveHost { host: h } => {
            let cluster = state.hosts.get(h).and_then(|h| h.cluster).map(Key::Aux);
            std::iter::once(host(*h)).chain(cluster).collect()
        }
        // Entering Maintenance migrates VMs where the scheduler (and its strategy) says, and
        // migrates or stops the VMs on the host, each in its queue (so an operation on one of
        // them waits for, or is waited for by, the evacuation).
        T::SetHostState { host: h, state: HostState::Maintenance } => {
            let on = |v: &&RefVm| v.host == Some(*h) || v.target == Some(*h);
            let vms = state.vms.iter().filter(|(_, v)| on(v)).map(|(n, _)| Key::Vm(*n));
            [host(*h), Key::Scheduler, Key::Config].into_iter().chain(vms).collect()
        }
        T::SetHostState { host: h, .. } => vec![host(*h)],
        T::SetConfig { .. } => vec![Key::ConfigChange],
        T::CreateAux { n, parent, .. } => {
            let parent = match parent {
                Parent::Aux(p) => Some(Key::Aux(*p)),
                Parent::Main => None,
            };
            std::iter::once(Key::Aux(*n)).chain(parent).collect()
        }
        // A child's delete changes whether its parent's delete is refused.
        T::DeleteAux { n, .. } => std::iter::once(Key::Aux(*n)).chain(parent_of(n)).collect(),
        T::CreateIpRange { l3, .. } => std::iter::once(Key::Aux(*l3)).chain(l2_of(l3)).collect(),
        _ => vec![Key::Scheduler, Key::ConfigChange],
    });
    k.dedup();
    k
}
