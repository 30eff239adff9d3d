//! The fault plan: rules that make matching calls fail (or lose their reply) on purpose.
//!
//! A rule matches a call by operation kind and host (either may be left open), fires with a
//! probability drawn from the target host's generator, and can be limited to a number of firings.
//! Rules are checked in the order they were added; the first that fires decides the call.

use oxstack_hypervisor::{HostId, OpKind};
use rand::RngExt;
use serde::{Deserialize, Serialize};

use crate::rng::SimRng;

/// Identifies a fault rule in a `SimCloud`, for removing it later.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FaultRuleId(pub u64);

impl std::fmt::Display for FaultRuleId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What happens to a call a rule fires on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultEffect {
    /// The call fails with `OperationFailed` and changes nothing.
    #[default]
    Fail,
    /// The call takes effect, but the caller gets `Timeout` (a lost reply or callback): the engine
    /// cannot tell whether it happened and must retry idempotently or reconcile.
    LoseReply,
}

/// One rule of the fault plan. In config files every field is optional; an empty rule fails every
/// call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FaultRule {
    /// Only calls of this kind; `None` matches every kind.
    pub op: Option<OpKind>,
    /// Only calls addressed to this host (for migrations: from or to it); `None` matches all.
    pub host: Option<HostId>,
    /// Chance that a matching call fails, in `[0, 1]` (values outside are clamped).
    pub probability: f64,
    /// How many more times the rule may fire; `None` is unlimited.
    pub remaining: Option<u64>,
    /// Whether the injected `OperationFailed` says retrying may succeed.
    pub retryable: bool,
    /// Fail the call, or apply it and lose the reply.
    pub effect: FaultEffect,
}

impl Default for FaultRule {
    fn default() -> Self {
        Self::always()
    }
}

impl FaultRule {
    /// A rule failing every call, non-retryably, forever. Narrow it with the builder methods.
    pub fn always() -> Self {
        Self {
            op: None,
            host: None,
            probability: 1.0,
            remaining: None,
            retryable: false,
            effect: FaultEffect::Fail,
        }
    }

    /// Only calls of kind `op`.
    pub fn on_op(mut self, op: OpKind) -> Self {
        self.op = Some(op);
        self
    }

    /// Only calls addressed to `host`.
    pub fn on_host(mut self, host: HostId) -> Self {
        self.host = Some(host);
        self
    }

    /// Fires with probability `probability`.
    pub fn with_probability(mut self, probability: f64) -> Self {
        self.probability = probability;
        self
    }

    /// Fires at most `count` times.
    pub fn times(mut self, count: u64) -> Self {
        self.remaining = Some(count);
        self
    }

    /// Marks injected failures as retryable.
    pub fn retryable(mut self) -> Self {
        self.retryable = true;
        self
    }

    /// Applies the call and loses its reply instead of failing it.
    pub fn lose_reply(mut self) -> Self {
        self.effect = FaultEffect::LoseReply;
        self
    }

    fn matches(&self, op: OpKind, host: HostId, peer: Option<HostId>) -> bool {
        self.remaining != Some(0)
            && self.op.is_none_or(|wanted| wanted == op)
            && self.host.is_none_or(|wanted| wanted == host || Some(wanted) == peer)
    }

    /// Draws whether the rule fires. Certain outcomes (p <= 0, p >= 1) draw nothing.
    fn fires(&self, rng: &mut SimRng) -> bool {
        let p = self.probability;
        if p.is_nan() || p <= 0.0 {
            false
        } else if p >= 1.0 {
            true
        } else {
            rng.random_bool(p)
        }
    }
}

/// A rule that fired on a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct InjectedFault {
    pub rule: FaultRuleId,
    pub retryable: bool,
    pub effect: FaultEffect,
}

/// The rules in force, in the order they were added.
#[derive(Debug, Default)]
pub(crate) struct FaultPlan {
    rules: Vec<(FaultRuleId, FaultRule)>,
    next_id: u64,
}

impl FaultPlan {
    pub fn add(&mut self, rule: FaultRule) -> FaultRuleId {
        let id = FaultRuleId(self.next_id);
        self.next_id += 1;
        self.rules.push((id, rule));
        id
    }

    pub fn remove(&mut self, id: FaultRuleId) -> Option<FaultRule> {
        let position = self.rules.iter().position(|(rule_id, _)| *rule_id == id)?;
        Some(self.rules.remove(position).1)
    }

    pub fn clear(&mut self) {
        self.rules.clear();
    }

    pub fn rules(&self) -> Vec<(FaultRuleId, FaultRule)> {
        self.rules.clone()
    }

    /// Decides whether a call fails: the first matching rule that fires wins and uses up one of
    /// its firings. `rng` is the target host's generator.
    pub fn check(
        &mut self,
        op: OpKind,
        host: HostId,
        peer: Option<HostId>,
        rng: &mut SimRng,
    ) -> Option<InjectedFault> {
        for (id, rule) in &mut self.rules {
            if rule.matches(op, host, peer) && rule.fires(rng) {
                if let Some(left) = rule.remaining.as_mut() {
                    *left -= 1;
                }
                return Some(InjectedFault {
                    rule: *id,
                    retryable: rule.retryable,
                    effect: rule.effect,
                });
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::host_id;

    fn check(plan: &mut FaultPlan, op: OpKind, host: HostId) -> Option<InjectedFault> {
        plan.check(op, host, None, &mut SimRng::from_seed(1))
    }

    #[test]
    fn op_and_host_filters() {
        let (a, b) = (host_id(1), host_id(2));
        let mut plan = FaultPlan::default();
        let rule = plan.add(FaultRule::always().on_op(OpKind::Create).on_host(a));
        assert_eq!(check(&mut plan, OpKind::Create, a).map(|f| f.rule), Some(rule));
        assert_eq!(check(&mut plan, OpKind::Start, a), None);
        assert_eq!(check(&mut plan, OpKind::Create, b), None);
        // A migration from b to a touches a.
        assert!(plan.check(OpKind::Create, b, Some(a), &mut SimRng::from_seed(1)).is_some());
    }

    #[test]
    fn count_limits_firings_and_first_rule_wins() {
        let host = host_id(1);
        let mut plan = FaultPlan::default();
        let limited = plan.add(FaultRule::always().times(2).retryable());
        let fallback = plan.add(FaultRule::always().lose_reply());
        let fired: Vec<_> =
            (0..4).map(|_| check(&mut plan, OpKind::Ping, host).map(|f| f.rule)).collect();
        assert_eq!(fired, [Some(limited), Some(limited), Some(fallback), Some(fallback)]);
        assert_eq!(plan.rules()[0].1.remaining, Some(0));
        let injected = check(&mut plan, OpKind::Ping, host).unwrap();
        assert_eq!(injected.effect, FaultEffect::LoseReply);
        assert!(!injected.retryable);
    }

    #[test]
    fn probability_is_respected_and_clamped() {
        let host = host_id(1);
        let mut rng = SimRng::from_seed(5);
        let mut plan = FaultPlan::default();
        plan.add(FaultRule::always().with_probability(0.3));
        let hits = (0..10_000).filter(|_| plan.check(OpKind::Stop, host, None, &mut rng).is_some());
        let hits = hits.count();
        assert!((2_700..3_300).contains(&hits), "hits = {hits}");

        for (p, expected) in [(-1.0, false), (f64::NAN, false), (0.0, false), (7.0, true)] {
            let mut plan = FaultPlan::default();
            plan.add(FaultRule::always().with_probability(p));
            assert_eq!(check(&mut plan, OpKind::Stop, host).is_some(), expected, "p = {p}");
        }
    }

    #[test]
    fn remove_and_clear() {
        let mut plan = FaultPlan::default();
        let first = plan.add(FaultRule::always());
        let second = plan.add(FaultRule::always().on_op(OpKind::Ping));
        assert_eq!(plan.remove(first), Some(FaultRule::always()));
        assert_eq!(plan.remove(first), None);
        assert_eq!(plan.rules().len(), 1);
        assert_eq!(plan.rules()[0].0, second);
        plan.clear();
        assert!(check(&mut plan, OpKind::Ping, host_id(1)).is_none());
    }

    #[test]
    fn rules_read_from_toml() {
        #[derive(Deserialize)]
        struct File {
            faults: Vec<FaultRule>,
        }
        let host = host_id(9);
        let file: File = toml::from_str(&format!(
            r#"
            [[faults]]
            op = "migrate"
            probability = 0.1
            retryable = true
            [[faults]]
            host = "{host}"
            remaining = 3
            effect = "lose_reply"
            "#
        ))
        .unwrap();
        let expected_first =
            FaultRule::always().on_op(OpKind::Migrate).with_probability(0.1).retryable();
        assert_eq!(file.faults[0], expected_first);
        assert_eq!(file.faults[1], FaultRule::always().on_host(host).times(3).lose_reply());
    }
}
