//! Every global config the engine has (`oxstack_engine::config::DEFINITIONS`), and what the
//! model does with it: changed by a step and its effect observed afterwards, or not modelled,
//! with why. A config added to the engine fails [`tests`] until it is placed here, so none is
//! silently left out of the model test.

use oxstack_engine::config::ConfigName;

/// What the model does with one global config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Modelled {
    /// Changed by `SetConfig` steps (`transitions::CONFIG_CHANGES`), and what the model
    /// expects afterwards depends on it as described.
    Changed(&'static str),
    /// Not changed by any step, because its effect cannot be observed by the model as it is.
    NotModelled(&'static str),
}

/// The model's account of each global config.
pub const ACCOUNT: &[(ConfigName, Modelled)] = &[
    (
        ConfigName::SchedulerStrategy,
        Modelled::Changed("the model's scheduler picks the host Pack or Spread picks"),
    ),
    (
        ConfigName::VmDeletionPolicy,
        Modelled::Changed(
            "Destroy leaves the VM Destroyed (Delay, Never) or expunges it at once (Direct)",
        ),
    ),
    (
        ConfigName::HostPingIntervalSecs,
        Modelled::Changed(
            "each node runs the engine's tracker loop on a clock PassTime steps move (see \
             `tracker`): the model predicts the sweeps that fall due from the interval in force \
             and when the loop's sleep began (its last sweep, or the last config change the \
             node took, which restarts it), and the nodes' sweep counts and what the sweeps did \
             must match; steps set 1, 5, 30 and 60; 0 is refused",
        ),
    ),
    (
        ConfigName::HostSyncEveryPings,
        Modelled::Changed(
            "a node's n-th ping sweep reconciles every reachable host when n is a multiple of \
             it (0: never); the model counts the sweeps (cases start at 1, 2 or 0; steps set \
             0, 1 and 2), and a VM that died unnoticed stays as it was in the database until \
             a sweep that syncs",
        ),
    ),
    (
        ConfigName::HostPingParallelism,
        Modelled::NotModelled(
            "how many pings run at once: a sweep is one step, its order is not observable",
        ),
    ),
    (
        ConfigName::VmExpungePeriodSecs,
        Modelled::Changed(
            "AdvanceClock steps move the model clock and run one expunge sweep as of the new \
             time: under Delay, VMs destroyed at least the period earlier are expunged (see \
             `clock`); 0 is refused",
        ),
    ),
    (
        ConfigName::VmMigrationParallelism,
        Modelled::Changed(
            "after every step, the most migration calls the simulator had in flight at once \
             (each takes a moment) is at most the limit on each node; 0 is refused",
        ),
    ),
    (
        ConfigName::HypervisorCallTimeoutSecs,
        Modelled::NotModelled(
            "the simulator answers at once in the model, and the engine's timeouts run on the \
             real clock (at least 1 s): a step that timed out would wait that out, so the model \
             has no calls slower than the limit. Not tested elsewhere either",
        ),
    ),
    (
        ConfigName::ClusterHeartbeatIntervalSecs,
        Modelled::NotModelled(
            "no time passes in the model for heartbeats: the two-node test heartbeats every node every \
             nodes::HEARTBEAT_EVERY steps and before each ping sweep, standing for the interval \
             passing, and the model keeps each node's configs until then (nodes.rs); takeover \
             is not modelled (tests/three_nodes.rs)",
        ),
    ),
    (
        ConfigName::ClusterHeartbeatTimeoutSecs,
        Modelled::NotModelled(
            "no node dies in the model; takeover is tested in tests/three_nodes.rs",
        ),
    ),
    (
        ConfigName::ClusterForwardTimeoutSecs,
        Modelled::NotModelled(
            "forwarded requests are answered in the two-node API run; a timeout needs a node \
             that does not answer",
        ),
    ),
    (
        ConfigName::ClusterCacheFollowSecs,
        Modelled::NotModelled(
            "its effect is modelled at the default: over the bus the two-node test waits after \
             each step until every node's cache follower has taken in the other's events \
             (Engine::cache_followed) and then holds exact the scheduler caches of a node that \
             received one the follower reloads for; without a bus the model follows how each \
             node's caches lag (cache.rs, nodes.rs). Not changed by steps: another period only \
             changes how long that wait is, and no time passes in the model; 0 (off) would make \
             every step wait the follower's 5 s recheck",
        ),
    ),
    (
        ConfigName::JobRetentionSecs,
        Modelled::NotModelled(
            "how long finished jobs are kept: the model does not read jobs, and its cases run \
             for seconds against a minimum of 60 s; pruning is tested in \
             engine/src/services/jobs.rs",
        ),
    ),
    (
        ConfigName::AuditRetentionSecs,
        Modelled::NotModelled(
            "how long audit log entries are kept: the model does not read the audit log (its \
             runs over the API record their calls; nothing there checks them), and its cases \
             run for seconds against a minimum of a day; pruning is tested in \
             engine/src/services/audit.rs, recording in api/tests/api_audit.rs",
        ),
    ),
    (
        ConfigName::AuthSessionTtlSecs,
        Modelled::NotModelled(
            "how long a session stays valid: the model drives the engine, not the API, and \
             signs in nowhere; expiry is tested in engine/src/services/identity/tests.rs and \
             api/tests/api_auth.rs",
        ),
    ),
];

#[cfg(test)]
mod tests {
    use oxstack_engine::config::DEFINITIONS;

    use super::*;
    use crate::transitions::CONFIG_CHANGES;

    #[test]
    fn every_engine_config_is_accounted_for_once() {
        for def in DEFINITIONS {
            let n = ACCOUNT.iter().filter(|(name, _)| *name == def.name).count();
            assert_eq!(n, 1, "{} is in the model's account {n} times", def.name.as_str());
        }
        assert_eq!(ACCOUNT.len(), DEFINITIONS.len(), "the account names a config the engine lacks");
    }

    #[test]
    fn the_configs_steps_change_are_those_accounted_as_changed() {
        for (name, modelled) in ACCOUNT {
            let changed = CONFIG_CHANGES.iter().any(|(n, _)| *n == name.as_str());
            let said = matches!(modelled, Modelled::Changed(_));
            assert_eq!(
                changed,
                said,
                "{}: changed by steps {changed}, accounted {modelled:?}",
                name.as_str()
            );
        }
    }
}
