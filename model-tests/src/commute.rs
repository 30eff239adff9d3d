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
use crate::reference::{HostNo, RefState, VmNo};
use crate::transitions::Transition;

/// Something an operation may read or change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    Vm(VmNo),
    /// A host: its existence and state, the VMs placed, defined or arriving on it, its
    /// capacity in the engine and the simulator.
    Host(HostNo),
    /// The scheduler's choice among all hosts: every [`Key::Host`].
    Scheduler,
    Aux(AuxNo),
    Config,
}

impl Key {
    fn conflicts(&self, other: &Key) -> bool {
        match (self, other) {
            (Key::Scheduler, Key::Host(_) | Key::Scheduler) | (Key::Host(_), Key::Scheduler) => {
                true
            }
            (a, b) => a == b,
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
    let vm = op.vm_acted_on().and_then(|v| state.vms.get(&v));
    // The hosts the VM holds or is defined on, and the image it was made from.
    let placed = vm.and_then(|v| v.host).map(Key::Host);
    let defined = vm.and_then(|v| v.last_host).map(Key::Host);
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
    let mut k: Vec<Key> = match op {
        T::CreateVm { vm, host: Some(h), image, .. } => {
            [Some(Key::Vm(*vm)), Some(Key::Host(*h)), image.map(Key::Aux)]
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
            [Some(Key::Vm(*vm)), Some(Key::Host(*h)), defined].into_iter().flatten().collect()
        }
        T::Migrate { vm, to: Some(h) } => {
            [Some(Key::Vm(*vm)), Some(Key::Host(*h)), placed].into_iter().flatten().collect()
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
        T::AddHost { host, cluster } => {
            std::iter::once(Key::Host(*host)).chain(cluster.map(Key::Aux)).collect()
        }
        T::RemoveHost { host } => {
            let cluster = state.hosts.get(host).and_then(|h| h.cluster).map(Key::Aux);
            std::iter::once(Key::Host(*host)).chain(cluster).collect()
        }
        // Entering Maintenance migrates VMs where the scheduler (and its strategy) says.
        T::SetHostState { host, state: HostState::Maintenance } => {
            vec![Key::Host(*host), Key::Scheduler, Key::Config]
        }
        T::SetHostState { host, .. } => vec![Key::Host(*host)],
        T::SetConfig { .. } => vec![Key::Config],
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
        _ => vec![Key::Scheduler, Key::Config],
    };
    k.dedup();
    k
}
