//! Groups run by the model itself, for testing the group search (`linearize`) without the
//! engine: [`random_run`] takes a group's atomic steps (`atoms`) in a random order, as an engine
//! that behaves exactly as the model says could, and [`Snapshot::of`] is what the engine would
//! show in the state that leaves. Whatever shortcuts the search takes, it must explain every
//! such run (`tests/search.rs`); a run it cannot explain is a shortcut that loses orders, one
//! it needs more than its budget for is a group too large for it.
//!
//! A random run may take every placement in two steps (its choice in the scheduler's index,
//! then the database), not only those `placement` splits because something may change in
//! between whether the database accepts them: otherwise a placement the database accepts is,
//! for everyone else, the same as one reserved when it was chosen, so the search must explain
//! those runs too.

use std::collections::BTreeMap;

use crate::atoms::{held, queue, step, Phase, Progress, Queue, Risk};
use crate::aux::{Parent, RANGES};
use crate::invariants::{expected_bss, image_bytes};
use crate::linearize::{may_decline, may_move_capacity};
use crate::reference::{Expected, Reach, RefState, L3_IPS, ROOT_BYTES};
use crate::snapshot::{SnapAux, SnapHost, SnapL3, SnapVm, Snapshot};
use crate::tenants::{charges, may_choose, refunds, Owner};
use crate::transitions::Transition;

/// What a group did in a run: each operation's answer (error code, `None` for success), the
/// order they finished in, the state it left.
pub struct Run {
    pub answers: Vec<Option<String>>,
    pub completed: Vec<usize>,
    pub end: RefState,
}

/// A small deterministic generator (splitmix64), so that a run is replayed from its seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) % n as u64) as usize
    }
}

/// Which placements a run takes in two steps.
#[derive(Clone, Copy, Debug)]
pub enum Split {
    /// Those whose acceptance by the database something still to run may change (as
    /// `linearize` does).
    AtRisk,
    /// Every one.
    All,
}

/// `ops` run from `start`, one atomic step at a time, each time a step of an operation chosen
/// at random among those that can take one, with one of its results chosen at random.
///
/// Panics if the operations deadlock (none can step and some are not finished): the model's
/// steps would be wrong.
pub fn random_run(start: &RefState, ops: &[Transition], seed: u64, split: Split) -> Run {
    let mut rng = Rng(seed);
    let mut state = start.clone();
    let mut phases: Vec<Option<Phase>> = vec![Some(Phase::Start); ops.len()];
    let mut answers = vec![None; ops.len()];
    let mut completed = Vec::with_capacity(ops.len());
    while completed.len() < ops.len() {
        let held: Vec<Queue> = ops
            .iter()
            .zip(&phases)
            .flat_map(|(op, p)| p.map(|p| held(op, p)).unwrap_or_default())
            .collect();
        let mut choices: Vec<(usize, Vec<(RefState, Progress)>)> = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            let Some(phase) = phases[i] else { continue };
            if phase == Phase::Start && queue(op).is_some_and(|q| held.contains(&q)) {
                continue;
            }
            let at_risk = |risk: &Risk| match split {
                Split::All => true,
                Split::AtRisk => risk_of(&state, ops, &phases, i, risk),
            };
            let steps = step(&state, op, phase, &at_risk);
            if !steps.is_empty() {
                choices.push((i, steps));
            }
        }
        assert!(!choices.is_empty(), "the group's operations deadlock: {ops:?} at {phases:?}");
        let (i, mut steps) = choices.swap_remove(rng.below(choices.len()));
        let (next, progress) = steps.swap_remove(rng.below(steps.len()));
        state = next;
        match progress {
            Progress::Next(p) => phases[i] = Some(p),
            Progress::Done(answer) => {
                phases[i] = None;
                answers[i] = match answer {
                    Expected::Ok => None,
                    Expected::Err(code) => Some(code.to_owned()),
                    Expected::Batch { .. } => unreachable!("no batch is in a group"),
                };
                completed.push(i);
            }
        }
    }
    Run { answers, completed, end: state }
}

/// Whether an operation other than `i` of `ops` (at `phases`) may change what `risk` says
/// between two steps of `i`'s placement, as `linearize` asks it, without the engine's answers
/// (so for more placements than it: a tenant's create with any other of the tenant's creates,
/// destroys or expunges not finished, or with any other placement not finished).
fn risk_of(
    state: &RefState,
    ops: &[Transition],
    phases: &[Option<Phase>],
    i: usize,
    risk: &Risk,
) -> bool {
    let others = || ops.iter().enumerate().filter(move |(j, _)| *j != i && phases[*j].is_some());
    match *risk {
        Risk::Reservation { host, image, charged } => {
            let quota = |owner: Owner| {
                others().any(|(_, op)| {
                    charges(op, owner) || refunds(state, op, owner) || may_choose(op)
                })
            };
            charged.is_some_and(quota)
                || others().any(|(j, op)| {
                    (phases[j] == Some(Phase::Start) && may_decline(op, Some(host), image))
                        || (state.index_lags(host) && may_move_capacity(state, op, host))
                })
        }
        Risk::Refund(owner) => others().any(|(_, op)| refunds(state, op, owner)),
    }
}

impl Snapshot {
    /// What the engine and the simulator would show if they were exactly in `state` (aux
    /// resources read), so that `diff` finds no difference with it.
    pub fn of(state: &RefState) -> Snapshot {
        let hosts =
            state.hosts.iter().map(|(n, h)| (*n, SnapHost::expected(state, *n, h))).collect();
        let vms = state.vms.iter().map(|(n, v)| (*n, SnapVm::expected(v))).collect();
        let main_l3s = (0..L3_IPS.len())
            .map(|l3| {
                let used = u64::from(state.ips_used(l3));
                (used, used, u64::from(L3_IPS[l3]))
            })
            .collect();
        let sim_hosts = state
            .hosts
            .iter()
            .map(|(n, h)| {
                let (cpus, memory) = state.sim_used(*n);
                (*n, (u64::from(cpus), memory, h.reach == Reach::Up))
            })
            .collect();
        Snapshot {
            hosts,
            vms,
            unknown: Vec::new(),
            main_l3s,
            storage_used: ROOT_BYTES * state.vms.len() as u64,
            sim_count: state.sim.len(),
            sim_vms: state.sim.iter().map(|(n, d)| (*n, (Some(d.host), d.power))).collect(),
            sim_hosts,
            sim_no_room: state.sim_no_room,
            usage: Owner::TENANTS.into_iter().map(|o| (o, state.usage(o))).collect(),
            aux: Some(aux_of(state)),
            node: crate::nodes::NodeSnap {
                config: state.config.clone(),
                cache: state.cache.as_ref().map(|c| crate::nodes::CacheSnap {
                    hosts: state.hosts.keys().map(|h| (*h, state.index_entry(*h))).collect(),
                    storage: u64::try_from(state.storage_used() + c.storage).ok(),
                }),
            },
            raw_vms: BTreeMap::new(),
            raw_hosts: Vec::new(),
        }
    }
}

/// The aux resources of `state` as the engine would show them.
fn aux_of(state: &RefState) -> SnapAux {
    let a = &state.aux;
    let l3s = a
        .l3s
        .iter()
        .map(|(n, l2)| {
            let ranges = a.ranges.iter().filter(|(l, _)| l == n).map(|(_, r)| RANGES[*r]);
            let snap = SnapL3 {
                l2: Some(*l2),
                used_ips: 0,
                total_ips: a.total_ips(*n),
                ranges: ranges.collect(),
            };
            (*n, snap)
        })
        .collect();
    SnapAux {
        zones: a.zones.clone(),
        clusters: a.clusters.iter().map(|(n, z)| (*n, Some(*z))).collect(),
        l2s: a.l2s.iter().map(|(n, z)| (*n, Some(*z))).collect(),
        l3s,
        bss: expected_bss(a),
        images: a.images.iter().map(|(n, bs)| (*n, Some(*bs))).collect(),
        main_bs_used: ROOT_BYTES + image_bytes(a, Parent::Main),
        unknown: Vec::new(),
        dangling: Vec::new(),
    }
}
