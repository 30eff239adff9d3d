//! Focused groups: operations around one target, so that the races a group is for happen
//! often rather than by chance (see `group`, which mixes these with groups of any operations).
//!
//! - Ranges: IP range creates on the L3 networks of one aux L2 network (its overlap domain),
//!   some with the same or overlapping candidates.
//! - A parent and its children: the delete of an aux zone, cluster, L2 or L3 network, backup
//!   storage or image, among creates of its children (clusters, L2 networks and backup storages in the
//!   zone; hosts in the cluster; L3 networks on the L2; ranges on an L3 network; images on the
//!   backup storage; VMs from the image).
//! - Maintenance: a main host entering Maintenance among creates naming it or landing
//!   anywhere, and actions on the VMs it holds (stops, destroys, pauses, migrations).
//!
//! Each theme gives the operations in a random order (a `Vec` proptest shrinks).

use oxstack_engine::services::host::HostState;
use oxstack_engine::services::vm::VmState;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::strategy::{BoxedStrategy, Union};

use crate::aux::{clash, valid, AuxKind, AuxNo, Parent, RANGES};
use crate::reference::{HostNo, RefState, VmNo, SIZES};
use crate::transitions::{owner, owner_naming, pick, Transition, NIC_SETS};

/// The themes `state` allows, as one strategy of operation lists, or `None`.
pub fn focused(state: &RefState) -> Option<BoxedStrategy<Vec<Transition>>> {
    let mut themes: Vec<(u32, BoxedStrategy<Vec<Transition>>)> = Vec::new();
    themes.extend(ranges(state));
    themes.extend(parent(state).map(|s| (3, s)));
    themes.extend(maintenance(state).map(|s| (3, s)));
    (!themes.is_empty()).then(|| Union::new_weighted(themes).boxed())
}

/// Range creates on the L3 networks of one aux L2 network that has some, with the theme's
/// weight. Where an L2 network has two or more, the theme weighs twice as much and most of its
/// groups start with a pair of valid, clashing candidates on two of them: the race only the
/// database's own check settles (the engine's check before the insert passes both when they
/// interleave).
fn ranges(state: &RefState) -> Option<(u32, BoxedStrategy<Vec<Transition>>)> {
    let a = &state.aux;
    let domains: Vec<Vec<AuxNo>> = a
        .l2s
        .keys()
        .map(|l2| a.l3s.iter().filter(|(_, p)| *p == l2).map(|(l3, _)| *l3).collect::<Vec<_>>())
        .filter(|l3s| !l3s.is_empty())
        .collect();
    if domains.is_empty() {
        return None;
    }
    let creates = |l3s: Vec<AuxNo>, n: std::ops::RangeInclusive<usize>| {
        let create = (pick(l3s), 0..RANGES.len())
            .prop_map(|(l3, range)| Transition::CreateIpRange { l3, range });
        vec(create, n)
    };
    let any = pick(domains.clone()).prop_flat_map(move |l3s| creates(l3s, 2..=6)).boxed();
    let pairs: Vec<(AuxNo, AuxNo, Vec<AuxNo>)> = domains
        .iter()
        .flat_map(|l3s| {
            l3s.iter().flat_map(move |x| {
                l3s.iter().filter(move |y| x < *y).map(move |y| (*x, *y, l3s.clone()))
            })
        })
        .collect();
    if pairs.is_empty() {
        return Some((2, any));
    }
    let race = (pick(pairs), pick(clashing_candidates())).prop_flat_map(
        move |((l3a, l3b, l3s), (x, y))| {
            creates(l3s, 0..=4).prop_map(move |mut rest| {
                rest.splice(
                    0..0,
                    [
                        Transition::CreateIpRange { l3: l3a, range: x },
                        Transition::CreateIpRange { l3: l3b, range: y },
                    ],
                );
                rest
            })
        },
    );
    Some((4, Union::new_weighted(vec![(1, any), (2, race.boxed())]).boxed()))
}

/// Pairs of candidate ranges that are each valid and clash with each other.
fn clashing_candidates() -> Vec<(usize, usize)> {
    let valid: Vec<usize> = (0..RANGES.len()).filter(|r| valid(*r)).collect();
    valid
        .iter()
        .flat_map(|x| valid.iter().filter(move |y| x < *y && clash(*x, **y)).map(move |y| (*x, *y)))
        .collect()
}

/// Creates of children of `p` (a parent of `kind`), numbered later.
fn children(state: &RefState, kind: AuxKind, p: AuxNo) -> BoxedStrategy<Transition> {
    let n = AuxNo(0);
    let parent = Parent::Aux(p);
    match kind {
        AuxKind::Zone => pick(vec![AuxKind::Cluster, AuxKind::L2, AuxKind::Bs])
            .prop_map(move |kind| Transition::CreateAux { kind, n, parent })
            .boxed(),
        AuxKind::Cluster => Just(Transition::AddHost { host: HostNo(0), cluster: Some(p) }).boxed(),
        AuxKind::L2 => Just(Transition::CreateAux { kind: AuxKind::L3, n, parent }).boxed(),
        AuxKind::L3 => (0..RANGES.len())
            .prop_map(move |range| Transition::CreateIpRange { l3: p, range })
            .boxed(),
        AuxKind::Bs => Just(Transition::CreateAux { kind: AuxKind::Image, n, parent }).boxed(),
        AuxKind::Image => {
            let hosts: Vec<Option<HostNo>> =
                std::iter::once(None).chain(state.hosts.keys().copied().map(Some)).collect();
            (0..SIZES.len(), 0..NIC_SETS.len(), pick(hosts), owner())
                .prop_map(move |(size, nics, host, owner)| Transition::CreateVm {
                    vm: VmNo(0),
                    size,
                    nics,
                    host,
                    image: Some(p),
                    owner: owner_naming(host, owner),
                })
                .boxed()
        }
    }
}

/// The delete of one aux parent among creates of its children.
fn parent(state: &RefState) -> Option<BoxedStrategy<Vec<Transition>>> {
    let a = &state.aux;
    let targets: Vec<(AuxKind, AuxNo)> =
        AuxKind::ALL.into_iter().flat_map(|k| a.all(k).into_iter().map(move |n| (k, n))).collect();
    if targets.is_empty() {
        return None;
    }
    let st = state.clone();
    let s = pick(targets).prop_flat_map(move |(kind, p)| {
        (vec(children(&st, kind, p), 1..=6), any::<proptest::sample::Index>()).prop_map(
            move |(mut ops, at)| {
                let at = at.index(ops.len() + 1);
                ops.insert(at, Transition::DeleteAux { kind, n: p });
                ops
            },
        )
    });
    Some(s.boxed())
}

/// A main host entering Maintenance among creates and actions on its VMs.
fn maintenance(state: &RefState) -> Option<BoxedStrategy<Vec<Transition>>> {
    let hosts: Vec<HostNo> =
        state.hosts.iter().filter(|(_, h)| h.cluster.is_none()).map(|(n, _)| *n).collect();
    if hosts.is_empty() {
        return None;
    }
    let st = state.clone();
    let s = pick(hosts).prop_flat_map(move |host| {
        let on: Vec<VmNo> = st
            .vms
            .iter()
            .filter(|(_, v)| {
                v.host == Some(host) && matches!(v.state, VmState::Running | VmState::Paused)
            })
            .map(|(n, _)| *n)
            .collect();
        let create = (0..SIZES.len(), 0..NIC_SETS.len(), any::<bool>(), owner()).prop_map(
            move |(size, nics, named, owner)| Transition::CreateVm {
                vm: VmNo(0),
                size,
                nics,
                host: named.then_some(host),
                image: None,
                owner: owner_naming(named.then_some(host), owner),
            },
        );
        let mut others: Vec<(u32, BoxedStrategy<Transition>)> = vec![(3, create.boxed())];
        if !on.is_empty() {
            let action = (pick(on), 0..4u8).prop_map(|(vm, a)| match a {
                0 => Transition::Stop { vm, force: false },
                1 => Transition::Destroy { vm },
                2 => Transition::Pause { vm },
                _ => Transition::Migrate { vm, to: None },
            });
            others.push((2, action.boxed()));
        }
        let enter = Transition::SetHostState { host, state: HostState::Maintenance };
        (vec(Union::new_weighted(others), 1..=6), any::<proptest::sample::Index>()).prop_map(
            move |(mut ops, at)| {
                let at = at.index(ops.len() + 1);
                ops.insert(at, enter.clone());
                ops
            },
        )
    });
    Some(s.boxed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_racing_candidates_are_valid_pairs_that_clash() {
        let pairs = clashing_candidates();
        assert!(pairs.len() >= 3, "{pairs:?}");
        for (x, y) in pairs {
            assert!(valid(x) && valid(y) && x < y && clash(x, y), "{x} {y}");
        }
    }
}
