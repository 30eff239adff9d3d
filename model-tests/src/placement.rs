//! Placements as the engine makes them, in two steps (`engine/src/services/vm/hold.rs`): the
//! scheduler chooses a host in its in-memory index and counts the VM there at once; then one
//! database transaction reserves the capacity with the row that holds it (and charges a tenant's
//! create to its quotas), and is declined when the host is no longer Enabled or has no room (or
//! the VM's image is gone). A declined reservation is undone in the index and the scheduler
//! chooses again, avoiding that host; one refused for the quota is undone and the create
//! refused QUOTA_EXCEEDED (see `tenants`).
//!
//! Between the two steps the choice is a [`Phantom`]: other placements on the node see it (so
//! a create whose image is deleted meanwhile, or whose host is disabled meanwhile, may send
//! another VM elsewhere and then leave nothing), the database and the evacuation do not. The
//! steps of creates, starts, live migrations and the migrations of an evacuation go through
//! here (see `atoms` for how they are sequenced).
//!
//! A declined host is read again into the index (`RefState::refresh_host`) and avoided by that
//! placement from then on, and the scheduler chooses again in a later step (the engine waits
//! for the operations between their choice and their reservation before it reads the host, so
//! others may run in between); after [`TRIES`] choices the engine gives up. With several nodes,
//! a placement that finds no room in its node's index reloads the caches once (waiting
//! likewise) and chooses again in a later step (`RefState::reload_cache`), starting over its
//! avoided hosts, as `reserve_host` does: a node
//! whose caches lag the other's writes may choose a host the database then declines, or a host
//! a fresh index would not have chosen first, and the model says which (see `cache`).
//!
//! A phantom that the database then accepts is, for everyone else, the same as a reservation
//! made when it was chosen. So, to keep the group search small, the two steps are one unless
//! another operation still to run may change whether the database accepts it (`AtRisk`): a
//! state change or deletion of the chosen host, the delete of the image; and, where the node's
//! index counts less used on the chosen host than the database (`RefState::index_lags`: the
//! other node's placements there), any operation that may release or take capacity there
//! (`linearize::may_move_capacity`). For such an index may offer a host the database has no
//! room on; a release there between the choice and the reservation, say a destroy, then makes
//! the database accept it, and leaves the index lower than either whole order would (the
//! release saturates at zero in an index that counted the choice but not the other node's
//! VMs). The engine runs into that when its database write is slow.
//!
//! A tenant's create is also two steps while another operation still to run may change its
//! quota's verdict (a charge or a refund of the tenant), or, when the engine refused it for its
//! quota, may choose a host while its phantom stands (any other placement): a create refused at
//! its reservation leaves its choice visible to the others until then, which a reservation made
//! when it was chosen would not. And its refusal answers a step later while a refund may come
//! before the engine reads the usage again to say why ([`quota_refusal`]).

use oxstack_engine::services::vm::VmState;

use crate::atoms::{AtRisk, Phase, Progress, Risk};
use crate::engine_model::{NewVm, CONFLICT, NOT_FOUND, NO_CAPACITY};
use crate::reference::{Expected, HostNo, Phantom, RefState, VmNo};
use crate::tenants::QUOTA_EXCEEDED;

/// What a placement step leaves: more steps from a phase, or the answer.
pub type Step = (RefState, Progress);

/// Choices a placement makes before the engine gives up (its `RACE_RETRIES`).
pub const TRIES: u8 = 8;

/// A placement in progress: the hosts the database declined for it, how many choices it made,
/// and whether it reloaded its node's caches.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Attempt {
    pub declined: Vec<HostNo>,
    pub tries: u8,
    pub reloaded: bool,
}

/// `vm`'s placement is over: it answers `answer`.
fn done(mut s: RefState, vm: VmNo, answer: Expected) -> Step {
    s.attempts.remove(&vm);
    (s, Progress::Done(answer))
}

/// No host: INSUFFICIENT_CAPACITY, or NOT_FOUND when the host the request named is gone (the
/// engine looks it up when its placement fails, as a request after the delete would).
fn refused(s: RefState, vm: VmNo, designated: Option<HostNo>) -> Step {
    let gone = designated.is_some_and(|h| !s.hosts.contains_key(&h));
    done(s, vm, Expected::Err(if gone { NOT_FOUND } else { NO_CAPACITY }))
}

/// What a choice of the scheduler gave.
enum Chose {
    /// This host, counted in the index as a phantom.
    Host(HostNo),
    /// Nothing fitted in the node's caches, which it reloaded: it chooses again, in a later
    /// step (other operations run while the node waits to reload).
    Again,
    /// Nothing fits (after a reload, with several nodes), or it chose [`TRIES`] times.
    Nothing,
}

impl RefState {
    /// The scheduler's choice for `vm` of `size` (see [`RefState::choose`]), avoiding `avoid`
    /// and the hosts the database declined for it.
    fn choose_for(
        &mut self,
        vm: VmNo,
        size: usize,
        designated: Option<HostNo>,
        preferred: Option<HostNo>,
        avoid: &[HostNo],
    ) -> Chose {
        let a = self.attempts.entry(vm).or_default();
        if a.tries >= TRIES {
            return Chose::Nothing;
        }
        a.tries += 1;
        let reloaded = a.reloaded;
        let avoided: Vec<HostNo> = avoid.iter().chain(&a.declined).copied().collect();
        match self.choose(size, designated, preferred, &avoided) {
            Some(host) => {
                self.phantoms.insert(vm, Phantom { host, size });
                Chose::Host(host)
            }
            None if !reloaded && self.cache.is_some() => {
                self.reload_cache();
                let a = self.attempts.entry(vm).or_default();
                a.reloaded = true;
                a.declined.clear();
                Chose::Again
            }
            None => Chose::Nothing,
        }
    }

    /// `vm`'s phantom, taken: `Ok(host)` if the database reserves the capacity there, else
    /// `Err(host)` (declined: the host is read again and avoided from then on; the scheduler
    /// chooses again in a later step, as the engine waits to read it).
    fn take_phantom(&mut self, vm: VmNo) -> Result<HostNo, HostNo> {
        let p = self.phantoms.remove(&vm).expect("a placement in progress has a phantom");
        if self.db_accepts(p.host, p.size) {
            return Ok(p.host);
        }
        self.refresh_host(p.host);
        self.attempts.entry(vm).or_default().declined.push(p.host);
        Err(p.host)
    }
}

/// A step of a create (refusals already answered) with no host chosen: the scheduler's choice,
/// and the reservation too unless something may decline it in between (`at_risk`).
pub fn create_chosen(
    mut s: RefState,
    vm: VmNo,
    new: NewVm,
    host: Option<HostNo>,
    at_risk: AtRisk,
) -> Step {
    match s.choose_for(vm, new.size, host, None, &[]) {
        Chose::Host(h) if !at_risk(&reservation(h, &new)) => {
            create_reserved(s, vm, new, host, at_risk)
        }
        Chose::Host(_) | Chose::Again => (s, Progress::Next(Phase::Placing)),
        Chose::Nothing => refused(s, vm, host),
    }
}

/// The database step of a create: reserved and charged (and the rest of the create done), or
/// declined, or refused for its owner's quota (the answer a step later when a refund may come
/// in between, see `tenants`); or, with no host chosen, [`create_chosen`].
pub fn create_reserved(
    mut s: RefState,
    vm: VmNo,
    new: NewVm,
    designated: Option<HostNo>,
    at_risk: AtRisk,
) -> Step {
    if !s.phantoms.contains_key(&vm) {
        return create_chosen(s, vm, new, designated, at_risk);
    }
    if new.image.is_some_and(|i| !s.aux.images.contains_key(&i)) {
        s.phantoms.remove(&vm);
        return done(s, vm, Expected::Err(NOT_FOUND));
    }
    match s.take_phantom(vm) {
        Ok(_)
            if s.over_quota(new.owner, new.size, new.l3s.len())
                && at_risk(&Risk::Refund(new.owner)) =>
        {
            s.attempts.remove(&vm);
            (s, Progress::Next(Phase::QuotaRefused))
        }
        Ok(host) => {
            let answer = s.commit_create(vm, &new, host);
            done(s, vm, answer)
        }
        Err(_) => (s, Progress::Next(Phase::Placing)),
    }
}

/// What a create the database refused for its owner's quota answers once the engine read the
/// usage again: QUOTA_EXCEEDED, or CONFLICT when no limit is exceeded any more (a refund came
/// in between).
pub fn quota_refusal(s: &RefState, new: &NewVm) -> Expected {
    if s.over_quota(new.owner, new.size, new.l3s.len()) {
        Expected::Err(QUOTA_EXCEEDED)
    } else {
        Expected::Err(CONFLICT)
    }
}

/// The database step of a placement of `new` on `host`, as a risk.
fn reservation(host: HostNo, new: &NewVm) -> Risk {
    let charged = new.owner.is_tenant().then_some(new.owner);
    Risk::Reservation { host, image: new.image, charged }
}

/// The database step of a start or migration on `host`, as a risk.
fn holding(host: HostNo) -> Risk {
    Risk::Reservation { host, image: None, charged: None }
}

/// A step of a start (refusals already answered) with no host chosen: the host the VM is
/// defined on if it fits, else the scheduler's choice; the VM is Starting; reserved at once
/// unless something may decline it in between (`at_risk`). When nothing is left the VM is
/// Stopped and the start refused.
pub fn start_chosen(mut s: RefState, vm: VmNo, host: Option<HostNo>, at_risk: AtRisk) -> Step {
    let (size, last) = (s.vm(vm).size, s.vm(vm).last_host);
    match s.choose_for(vm, size, host, last, &[]) {
        Chose::Host(h) => {
            s.vm_mut(vm).state = VmState::Starting;
            if !at_risk(&holding(h)) {
                return start_reserved(s, vm, host, at_risk);
            }
            (s, Progress::Next(Phase::Placing))
        }
        Chose::Again => {
            s.vm_mut(vm).state = VmState::Starting;
            (s, Progress::Next(Phase::Placing))
        }
        Chose::Nothing => {
            if s.vm(vm).state == VmState::Starting {
                s.vm_mut(vm).state = VmState::Stopped;
            }
            refused(s, vm, host)
        }
    }
}

/// The database step of a start: reserved and the VM started there, or declined; or, with no
/// host chosen, [`start_chosen`].
pub fn start_reserved(s: RefState, vm: VmNo, designated: Option<HostNo>, at_risk: AtRisk) -> Step {
    let mut s = s;
    if !s.phantoms.contains_key(&vm) {
        return start_chosen(s, vm, designated, at_risk);
    }
    match s.take_phantom(vm) {
        Ok(host) => {
            let answer = s.finish_start(vm, host);
            done(s, vm, answer)
        }
        Err(_) => (s, Progress::Next(Phase::Placing)),
    }
}

/// A step of a live migration (refusals already answered) with no target chosen: the target,
/// named or the scheduler's choice (never the current host); the VM is Migrating; reserved at
/// once unless something may decline it in between (`at_risk`). When nothing is left the VM is
/// Running where it was and the migration refused. Also used for the migrations of an
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
        Chose::Host(h) => {
            s.vm_mut(vm).state = VmState::Migrating;
            if !at_risk(&holding(h)) {
                return migration_reserved(s, vm, to, (placing, moving), at_risk);
            }
            (s, Progress::Next(placing))
        }
        Chose::Again => {
            s.vm_mut(vm).state = VmState::Migrating;
            (s, Progress::Next(placing))
        }
        Chose::Nothing => {
            if s.vm(vm).state == VmState::Migrating {
                s.vm_mut(vm).state = VmState::Running;
            }
            refused(s, vm, to)
        }
    }
}

/// The database step of a live migration: the target reserved (the VM holds both hosts until
/// it moves, from `moving`), or declined (from `placing`); or, with no target chosen,
/// [`migration_chosen`].
pub fn migration_reserved(
    mut s: RefState,
    vm: VmNo,
    designated: Option<HostNo>,
    (placing, moving): (Phase, Phase),
    at_risk: AtRisk,
) -> Step {
    if !s.phantoms.contains_key(&vm) {
        return migration_chosen(s, vm, designated, (placing, moving), at_risk);
    }
    match s.take_phantom(vm) {
        Ok(target) => {
            s.vm_mut(vm).target = Some(target);
            s.attempts.remove(&vm);
            (s, Progress::Next(moving))
        }
        Err(_) => (s, Progress::Next(placing)),
    }
}
