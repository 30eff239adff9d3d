//! Placements as the engine makes them, in two steps (`engine/src/services/vm/hold.rs`): the
//! scheduler chooses a host in its in-memory index and counts the VM there at once; then one
//! database transaction reserves the capacity with the row that holds it, and is declined when
//! the host is no longer Enabled (or the VM's image is gone). A declined reservation is undone
//! in the index and the scheduler chooses again, avoiding that host.
//!
//! Between the two steps the choice is a [`Phantom`]: other placements on the node see it (so
//! a create whose image is deleted meanwhile, or whose host is disabled meanwhile, may send
//! another VM elsewhere and then leave nothing), the database and the evacuation do not. The
//! steps of creates, starts, live migrations and the migrations of an evacuation go through
//! here (see `atoms` for how they are sequenced).
//!
//! A phantom that the database then accepts is, for everyone else, the same as a reservation
//! made when it was chosen. So the two steps are one unless another operation still to run may
//! make the database decline it (`AtRisk`): a state change or deletion of the chosen host, the
//! delete of the image. That keeps the group search small.

use oxstack_engine::services::vm::VmState;

use crate::atoms::{AtRisk, Phase, Progress};
use crate::aux::AuxNo;
use crate::engine_model::{NOT_FOUND, NO_CAPACITY};
use crate::reference::{Expected, HostNo, Phantom, RefState, VmNo};
use crate::transitions::NIC_SETS;

/// What a placement step leaves: more steps from a phase, or the answer.
pub type Step = (RefState, Progress);

fn done(s: RefState, answer: Expected) -> Step {
    (s, Progress::Done(answer))
}

/// No host: INSUFFICIENT_CAPACITY, or NOT_FOUND when the host the request named is gone (the
/// engine looks it up when its placement fails, as a request after the delete would).
fn refused(s: RefState, designated: Option<HostNo>) -> Step {
    let gone = designated.is_some_and(|h| !s.hosts.contains_key(&h));
    done(s, Expected::Err(if gone { NOT_FOUND } else { NO_CAPACITY }))
}

impl RefState {
    /// The scheduler's choice for `vm` of `size` (see [`RefState::choose`]), counted in its
    /// index as a phantom; `None` when nothing fits.
    fn choose_for(
        &mut self,
        vm: VmNo,
        size: usize,
        designated: Option<HostNo>,
        preferred: Option<HostNo>,
        avoid: &[HostNo],
    ) -> Option<HostNo> {
        let host = self.choose(size, designated, preferred, avoid)?;
        self.phantoms.insert(vm, Phantom { host, size });
        Some(host)
    }

    /// `vm`'s phantom, taken: `Ok(host)` if the database reserves the capacity there, else
    /// `Err(host)` (declined).
    fn take_phantom(&mut self, vm: VmNo) -> Result<HostNo, HostNo> {
        let p = self.phantoms.remove(&vm).expect("a placement in progress has a phantom");
        if self.db_accepts(p.host, p.size) {
            Ok(p.host)
        } else {
            Err(p.host)
        }
    }
}

/// The first step of a create (refusals already answered): the scheduler's choice, and the
/// reservation too unless something may decline it in between (`at_risk`).
pub fn create_chosen(
    mut s: RefState,
    vm: VmNo,
    (size, nics): (usize, usize),
    (host, image): (Option<HostNo>, Option<AuxNo>),
    at_risk: AtRisk,
) -> Step {
    match s.choose_for(vm, size, host, None, &[]) {
        Some(h) if !at_risk(h, image) => create_reserved(s, vm, (size, nics), host, image),
        Some(_) => (s, Progress::Next(Phase::Placing)),
        None => refused(s, host),
    }
}

/// The database step of a create: reserved (and the rest of the create done), or declined and
/// chosen again.
pub fn create_reserved(
    mut s: RefState,
    vm: VmNo,
    (size, nics): (usize, usize),
    designated: Option<HostNo>,
    image: Option<AuxNo>,
) -> Step {
    if image.is_some_and(|i| !s.aux.images.contains_key(&i)) {
        s.phantoms.remove(&vm);
        return done(s, Expected::Err(NOT_FOUND));
    }
    match s.take_phantom(vm) {
        Ok(host) => {
            let answer = s.commit_create(vm, size, NIC_SETS[nics], image, host);
            done(s, answer)
        }
        Err(_) if designated.is_some() => refused(s, designated),
        Err(declined) => match s.choose_for(vm, size, None, None, &[declined]) {
            Some(_) => (s, Progress::Next(Phase::Placing)),
            None => refused(s, designated),
        },
    }
}

/// The first step of a start (refusals already answered): the host the VM is defined on if it
/// fits, else the scheduler's choice; the VM is Starting; reserved at once unless something
/// may decline it in between (`at_risk`).
pub fn start_chosen(mut s: RefState, vm: VmNo, host: Option<HostNo>, at_risk: AtRisk) -> Step {
    let (size, last) = (s.vm(vm).size, s.vm(vm).last_host);
    match s.choose_for(vm, size, host, last, &[]) {
        Some(h) => {
            s.vm_mut(vm).state = VmState::Starting;
            if !at_risk(h, None) {
                return start_reserved(s, vm, host);
            }
            (s, Progress::Next(Phase::Placing))
        }
        None => refused(s, host),
    }
}

/// The database step of a start: reserved and the VM started there, or declined and chosen
/// again.
pub fn start_reserved(mut s: RefState, vm: VmNo, designated: Option<HostNo>) -> Step {
    let (size, last) = (s.vm(vm).size, s.vm(vm).last_host);
    let again = match s.take_phantom(vm) {
        Ok(host) => {
            let answer = s.finish_start(vm, host);
            return done(s, answer);
        }
        Err(_) if designated.is_some() => None,
        Err(declined) => s.choose_for(vm, size, None, last, &[declined]),
    };
    match again {
        Some(_) => (s, Progress::Next(Phase::Placing)),
        None => {
            s.vm_mut(vm).state = VmState::Stopped;
            refused(s, designated)
        }
    }
}

/// The first step of a live migration (refusals already answered): the target, named or the
/// scheduler's choice (never the current host); the VM is Migrating; reserved at once unless
/// something may decline it in between (`at_risk`). Also used for the migrations of an
/// evacuation: `(placing, moving)` are the phases to go on from.
pub fn migration_chosen(
    mut s: RefState,
    vm: VmNo,
    to: Option<HostNo>,
    (placing, moving): (Phase, Phase),
    at_risk: AtRisk,
) -> Step {
    let (size, source) = (s.vm(vm).size, s.placed(vm));
    match s.choose_for(vm, size, to, None, &[source]) {
        Some(h) => {
            s.vm_mut(vm).state = VmState::Migrating;
            if !at_risk(h, None) {
                return migration_reserved(s, vm, to, (placing, moving));
            }
            (s, Progress::Next(placing))
        }
        None => refused(s, to),
    }
}

/// The database step of a live migration: the target reserved (the VM holds both hosts until
/// it moves, from `moving`), or declined and chosen again (from `placing`); when nothing is
/// left, the VM is Running where it was and the migration refused.
pub fn migration_reserved(
    mut s: RefState,
    vm: VmNo,
    designated: Option<HostNo>,
    (placing, moving): (Phase, Phase),
) -> Step {
    let (size, source) = (s.vm(vm).size, s.placed(vm));
    let again = match s.take_phantom(vm) {
        Ok(target) => {
            s.vm_mut(vm).target = Some(target);
            return (s, Progress::Next(moving));
        }
        Err(_) if designated.is_some() => None,
        Err(declined) => s.choose_for(vm, size, None, None, &[source, declined]),
    };
    match again {
        Some(_) => (s, Progress::Next(placing)),
        None => {
            s.vm_mut(vm).state = VmState::Running;
            refused(s, designated)
        }
    }
}
