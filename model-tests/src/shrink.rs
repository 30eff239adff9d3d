//! Shrinking a failing case further than proptest does. proptest's state-machine shrinking
//! removes transitions in a fixed order and stops at the first case it cannot shorten that way,
//! which can be several steps longer than needed, and never looks inside a group of operations
//! started at once. [`minimize`] then tries removing every single step and every pair of steps,
//! running each group one operation at a time and removing each of its operations, running the
//! operation a node was killed in the middle of without the kill, again after each change that
//! keeps the case failing, until none does: the case it returns fails, and no longer fails
//! without any one or any two of its steps, nor with any group or kill simpler (within its
//! budget of runs; it says when the budget ran out first).
//!
//! Removing a step also removes the later steps the model no longer allows without it (they
//! depended on it, as a start depends on its VM's create): see [`allowed`].

use std::collections::HashSet;

use crate::reference::RefState;
use crate::transitions::{preconditions, Transition};

/// Runs of the case [`minimize`] may make when `OXSTACK_MODEL_MINIMIZE_RUNS` is not set.
pub const DEFAULT_RUNS: usize = 500;

/// What [`minimize`] found.
#[derive(Debug)]
pub struct Minimized {
    /// The shortest failing case found.
    pub steps: Vec<Transition>,
    /// How it failed.
    pub failure: String,
    /// Cases run.
    pub runs: usize,
    /// Whether every single step and every pair was tried on the case returned (false when the
    /// budget ran out first).
    pub minimal: bool,
}

/// The steps of `steps` that the model allows in order from `start`, each one checked
/// against the state the allowed ones before it leave.
pub fn allowed(start: &RefState, steps: &[Transition]) -> Vec<Transition> {
    let mut state = start.clone();
    let mut kept = Vec::with_capacity(steps.len());
    for t in steps {
        if preconditions(&state, t) {
            state = crate::apply::apply(state, t);
            kept.push(t.clone());
        }
    }
    kept
}

/// `steps` without the steps at `gone`, and the later ones the model then no longer allows.
fn without(start: &RefState, steps: &[Transition], gone: &[usize]) -> Vec<Transition> {
    let rest: Vec<Transition> = steps
        .iter()
        .enumerate()
        .filter(|(i, _)| !gone.contains(i))
        .map(|(_, t)| t.clone())
        .collect();
    allowed(start, &rest)
}

/// Shortens `steps`, a case that failed with `failure` from `start`, while it
/// still fails (see the module doc): contiguous runs of steps first, halving their length
/// down to single steps, then each group run one operation at a time or without one of its
/// operations, then every pair of steps, over again after any change that keeps it failing,
/// until a whole round changes nothing. `fails` runs a case and says how it failed, or `None`
/// when it passed; it is called at most `budget` times, never twice for one case.
pub fn minimize(
    start: &RefState,
    steps: Vec<Transition>,
    failure: String,
    budget: usize,
    fails: impl FnMut(&[Transition]) -> Option<String>,
) -> Minimized {
    let mut search = Search {
        start: start.clone(),
        best: Minimized { steps, failure, runs: 0, minimal: false },
        tried: HashSet::new(),
        budget,
        fails,
    };
    search.tried.insert(format!("{:?}", search.best.steps));
    loop {
        let mut removed = false;
        let mut run = search.best.steps.len() / 2;
        while run >= 1 {
            let mut start = 0;
            while start + run <= search.best.steps.len() {
                let gone: Vec<usize> = (start..start + run).collect();
                match search.try_without(&gone) {
                    Tried::Fails => removed = true,
                    Tried::Passes => start += 1,
                    Tried::OutOfBudget => return search.best,
                }
            }
            run /= 2;
        }
        if !removed {
            removed = match search.simpler_groups() {
                Some(found) => found,
                None => return search.best,
            };
        }
        if !removed {
            'pairs: for i in 0..search.best.steps.len() {
                for j in i + 1..search.best.steps.len() {
                    match search.try_without(&[i, j]) {
                        Tried::Fails => {
                            removed = true;
                            break 'pairs;
                        }
                        Tried::Passes => {}
                        Tried::OutOfBudget => return search.best,
                    }
                }
            }
        }
        if !removed {
            search.best.minimal = true;
            return search.best;
        }
    }
}

/// What trying a shorter case gave.
enum Tried {
    /// It fails: it is the best case now.
    Fails,
    /// It passes, or was tried before, or is the same case.
    Passes,
    OutOfBudget,
}

struct Search<F> {
    start: RefState,
    best: Minimized,
    /// The cases run so far (as their `Debug` text).
    tried: HashSet<String>,
    budget: usize,
    fails: F,
}

impl<F: FnMut(&[Transition]) -> Option<String>> Search<F> {
    /// Runs the best case without the steps at `gone` (and the steps that needed them).
    fn try_without(&mut self, gone: &[usize]) -> Tried {
        let candidate = without(&self.start, &self.best.steps, gone);
        self.try_case(candidate)
    }

    /// Tries each group of the best case run one operation at a time (its operations as steps
    /// of their own), then without each of its operations, and each operation a node was
    /// killed in the middle of run without the kill, until one such case fails:
    /// `Some(true)` then, `Some(false)` when none does, `None` when the budget ran out.
    fn simpler_groups(&mut self) -> Option<bool> {
        for g in 0..self.best.steps.len() {
            let ops = match &self.best.steps[g] {
                Transition::Group { ops } => ops.clone(),
                // The operation alone, no node killed in its middle.
                Transition::KillNode { during, .. } => vec![(**during).clone()],
                _ => continue,
            };
            if ops.len() == 1 {
                let mut candidate = self.best.steps.clone();
                candidate[g] = ops[0].clone();
                match self.try_case(allowed(&self.start, &candidate)) {
                    Tried::Fails => return Some(true),
                    Tried::Passes => continue,
                    Tried::OutOfBudget => return None,
                }
            }
            let mut simpler = vec![ops.clone()];
            simpler.extend((0..ops.len()).map(|k| {
                let mut fewer = ops.clone();
                fewer.remove(k);
                // One operation left is a step of its own.
                match fewer.len() {
                    1 => fewer,
                    _ => vec![Transition::Group { ops: fewer }],
                }
            }));
            for replacement in simpler {
                let mut candidate = self.best.steps[..g].to_vec();
                candidate.extend(replacement);
                candidate.extend_from_slice(&self.best.steps[g + 1..]);
                match self.try_case(allowed(&self.start, &candidate)) {
                    Tried::Fails => return Some(true),
                    Tried::Passes => {}
                    Tried::OutOfBudget => return None,
                }
            }
        }
        Some(false)
    }

    /// Runs `candidate` unless it was run before; keeps it if it fails.
    fn try_case(&mut self, candidate: Vec<Transition>) -> Tried {
        if !self.tried.insert(format!("{candidate:?}")) {
            return Tried::Passes;
        }
        if self.best.runs >= self.budget {
            return Tried::OutOfBudget;
        }
        self.best.runs += 1;
        match (self.fails)(&candidate) {
            Some(failure) => {
                self.best.steps = candidate;
                self.best.failure = failure;
                Tried::Fails
            }
            None => Tried::Passes,
        }
    }
}

/// The budget of runs: `OXSTACK_MODEL_MINIMIZE_RUNS`, or [`DEFAULT_RUNS`].
pub fn budget() -> usize {
    std::env::var("OXSTACK_MODEL_MINIMIZE_RUNS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(DEFAULT_RUNS)
}

#[cfg(test)]
mod tests {
    use proptest::strategy::{Strategy, ValueTree};
    use proptest::test_runner::TestRunner;
    use proptest_state_machine::ReferenceStateMachine;

    use super::*;
    use crate::machine::CloudModel;

    /// The first `n` sequences of `len` steps the generator makes (the model allows every
    /// step), with the seeds of their initial states.
    fn generated(n: usize, len: usize) -> Vec<(u64, Vec<Transition>)> {
        let mut runner = TestRunner::deterministic();
        let strategy = CloudModel::<1>::sequential_strategy(len..=len);
        (0..n)
            .map(|_| {
                let (state, steps, _) = strategy.new_tree(&mut runner).unwrap().current();
                (state.seed, allowed(&state, &steps))
            })
            .collect()
    }

    /// The cases of the first 60 generated that have `bug`, with their seeds.
    fn cases_with(bug: impl Fn(&[Transition]) -> bool) -> Vec<(u64, Vec<Transition>)> {
        let with: Vec<_> = generated(60, 50).into_iter().filter(|(_, steps)| bug(steps)).collect();
        assert!(with.len() >= 5, "only {} of 60 generated cases have the planted bug", with.len());
        with
    }

    fn shrunk(seed: u64, steps: Vec<Transition>, bug: impl Fn(&[Transition]) -> bool) -> Minimized {
        let start = RefState::new(seed);
        let found =
            minimize(&start, steps, "planted".into(), 1_000_000, |s| bug(s).then(String::new));
        assert!(found.minimal, "the budget ran out");
        assert!(bug(&found.steps), "the case returned has the bug");
        assert_eq!(allowed(&start, &found.steps), found.steps, "the model allows every step");
        found
    }

    /// A create that needs no other step: on no named host, from the main image.
    fn plain_create(t: &Transition) -> bool {
        matches!(t, Transition::CreateVm { host: None, image: None, .. })
    }

    #[test]
    fn a_planted_bug_shrinks_to_its_known_minimal_witness() {
        // The planted bug: the second plain create fails. Its only minimal witness is two
        // plain creates, whatever else the case did.
        let bug = |s: &[Transition]| s.iter().filter(|t| plain_create(t)).count() >= 2;
        for (seed, steps) in cases_with(bug) {
            let found = shrunk(seed, steps.clone(), bug);
            assert!(
                found.steps.len() == 2 && found.steps.iter().all(plain_create),
                "{} steps shrank to {:?}",
                steps.len(),
                found.steps
            );
        }
    }

    #[test]
    fn a_planted_bug_with_dependent_steps_shrinks_to_a_case_no_step_can_leave() {
        // The planted bug: a stop after a reboot of the same VM fails. A witness holds what
        // the VM needed to be created, so its length is not fixed; the one found must lose
        // the bug without any one of its steps.
        let bug = |s: &[Transition]| {
            s.iter().enumerate().any(|(i, t)| match t {
                Transition::Reboot { vm } => s[i..]
                    .iter()
                    .any(|later| matches!(later, Transition::Stop { vm: v, .. } if v == vm)),
                _ => false,
            })
        };
        for (seed, steps) in cases_with(bug) {
            let found = shrunk(seed, steps.clone(), bug);
            for i in 0..found.steps.len() {
                let less = without(&RefState::new(seed), &found.steps, &[i]);
                assert!(!bug(&less), "{:?} still has the bug without step {i}", found.steps);
            }
            assert!(found.steps.len() < steps.len());
        }
    }

    #[test]
    fn a_planted_bug_inside_a_group_shrinks_out_of_the_group() {
        // The planted bug: a reboot fails, run alone or in a group. The cases found need no
        // group: the reboot is a step of its own, after what its VM needed.
        fn reboots(s: &[Transition]) -> bool {
            s.iter().any(|t| match t {
                Transition::Reboot { .. } => true,
                Transition::Group { ops } => reboots(ops),
                _ => false,
            })
        }
        let in_groups = |s: &[Transition]| {
            s.iter().any(|t| matches!(t, Transition::Group { ops } if reboots(ops)))
        };
        let cases: Vec<_> = generated(150, 50).into_iter().filter(|(_, s)| in_groups(s)).collect();
        assert!(cases.len() >= 3, "only {} generated cases reboot in a group", cases.len());
        for (seed, steps) in cases {
            let found = shrunk(seed, steps, reboots);
            assert!(
                !found.steps.iter().any(|t| matches!(t, Transition::Group { .. })),
                "{:?}",
                found.steps
            );
            assert!(
                matches!(found.steps.last(), Some(Transition::Reboot { .. })),
                "{:?}",
                found.steps
            );
        }
    }

    #[test]
    fn two_steps_that_must_go_together_apart_are_removed_as_a_pair() {
        // The planted bug needs exactly three ping sweeps and an even number of plain creates.
        // In C P C P C P C no single step and no run of steps can go; only two creates
        // together, which the pings keep apart.
        let create = |n| Transition::CreateVm {
            vm: crate::reference::VmNo(n),
            size: 0,
            nics: 0,
            host: None,
            image: None,
            owner: crate::tenants::Owner::Admin,
        };
        let steps = vec![
            create(0),
            Transition::PingSweep,
            create(1),
            Transition::PingSweep,
            create(2),
            Transition::PingSweep,
            create(3),
        ];
        assert_eq!(allowed(&RefState::new(0), &steps), steps);
        let bug = |s: &[Transition]| {
            let pings = s.iter().filter(|t| matches!(t, Transition::PingSweep)).count();
            let creates = s.iter().filter(|t| plain_create(t)).count();
            pings == 3 && creates >= 2 && creates % 2 == 0
        };
        let found = shrunk(0, steps, bug);
        assert_eq!(found.steps.len(), 5, "{:?}", found.steps);
    }

    #[test]
    fn it_stops_at_its_budget_and_says_so() {
        let (seed, steps) = generated(1, 50).remove(0);
        let mut runs = 0;
        let found = minimize(&RefState::new(seed), steps.clone(), "always".into(), 7, |_| {
            runs += 1;
            None
        });
        assert_eq!((runs, found.runs, found.minimal), (7, 7, false));
        assert_eq!(found.steps, steps);
    }

    #[test]
    fn a_case_no_removal_keeps_failing_is_minimal_as_it_is() {
        let (seed, steps) = generated(1, 10).remove(0);
        let found = minimize(&RefState::new(seed), steps.clone(), "f".into(), 100_000, |_| None);
        assert!(found.minimal);
        assert_eq!(found.steps, steps);
        // Runs of halving lengths (fewer than 2n), then every pair, then each group one
        // operation at a time and without each of its operations: each case once.
        let n = steps.len();
        let groups: usize = steps
            .iter()
            .map(|t| match t {
                Transition::Group { ops } => 1 + ops.len(),
                _ => 0,
            })
            .sum();
        let most = 2 * n + n * (n - 1) / 2 + groups;
        assert!(found.runs <= most, "{} runs for {n} steps", found.runs);
    }
}
