//! Checks: the engine's invariants, agreement between the database and the simulator, leaks,
//! VM states, and unexpected internal errors.

use std::collections::{BTreeMap, HashMap, HashSet};

use oxstack_db::scans;
use oxstack_engine::ids::{HostId, VmId};
use oxstack_engine::services::vm::VmState;
use oxstack_engine::Engine;
use oxstack_hypervisor::PowerState;
use oxstack_simulator::SimCloud;
use serde::Serialize;

use crate::env::Env;
use crate::error::{ScenarioError, ScenarioResult};
use crate::spec::Checks;
use crate::stats::Stats;

/// Violations listed in a check's detail before "... and N more".
const SHOWN: usize = 5;

/// The result of one check.
#[derive(Clone, Debug, Serialize)]
pub struct CheckOutcome {
    /// `<when>: <check>`, e.g. `final: no_leaks`.
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

/// What the checks look at.
pub struct CheckCtx<'a> {
    pub engine: &'a Engine,
    pub sim: &'a SimCloud,
    pub env: &'a Env,
    pub stats: &'a Stats,
    /// VMs that should exist: successful creates minus expunges.
    pub expected_vms: i64,
    /// Every VM a create succeeded for (to tell a stray from a leak).
    pub created: &'a HashSet<VmId>,
}

/// A VM row as the checks need it.
struct VmRow {
    id: VmId,
    state: VmState,
    host: Option<HostId>,
}

/// What the simulator holds that the database disagrees with.
#[derive(Default)]
struct SimScan {
    violations: Vec<String>,
    strays: Vec<String>,
    unknown_to_db: Vec<String>,
}

fn db_err(what: &str, e: impl Into<oxstack_engine::EngineError>) -> ScenarioError {
    ScenarioError::engine(format!("check {what}"), e.into())
}

/// Runs `checks`; names are prefixed with `when`.
pub async fn run(
    ctx: &CheckCtx<'_>,
    checks: &Checks,
    when: &str,
) -> ScenarioResult<Vec<CheckOutcome>> {
    let mut out = Vec::new();
    let mut push = |name: &str, problems: Vec<String>, ok_detail: String| {
        out.push(CheckOutcome {
            name: format!("{when}: {name}"),
            passed: problems.is_empty(),
            detail: if problems.is_empty() { ok_detail } else { summarize(&problems) },
        });
    };
    if checks.invariants {
        let mut v = ctx.engine.invariant_violations().await.map_err(|e| db_err("invariants", e))?;
        if let Err(e) = ctx.sim.audit() {
            v.push(format!("simulator bookkeeping: {e}"));
        }
        push("invariants", v, "engine invariants and simulator audit hold".into());
    }
    let rows = vm_rows(ctx.engine).await?;
    let need_scan = checks.consistent || checks.no_leaks;
    let scan = if need_scan { Some(consistency(ctx, &rows).await?) } else { None };
    if let (true, Some(scan)) = (checks.consistent, &scan) {
        let mut v = scan.violations.clone();
        if scan.strays.len() as u64 > checks.max_strays {
            v.push(format!(
                "{} stray VMs (at most {} allowed): {}",
                scan.strays.len(),
                checks.max_strays,
                summarize(&scan.strays)
            ));
        }
        push(
            "consistent",
            v,
            format!("database and simulator agree ({} strays)", scan.strays.len()),
        );
    }
    if let (true, Some(scan)) = (checks.no_leaks, &scan) {
        let v = leaks(ctx, rows.len() as i64, &scan.unknown_to_db).await?;
        push(
            "no_leaks",
            v,
            format!("{} VMs, each with its volume and NICs; nothing left over", rows.len()),
        );
    }
    if checks.no_transitional {
        let v: Vec<String> = rows
            .iter()
            .filter(|r| r.state.is_transitional())
            .map(|r| format!("vm {} is {}", r.id, r.state))
            .collect();
        push("no_transitional", v, "no VM mid-operation".into());
    }
    if let Some(allowed) = checks.allowed_states() {
        let mut bad: BTreeMap<String, u64> = BTreeMap::new();
        for r in rows.iter().filter(|r| !allowed.contains(&r.state)) {
            *bad.entry(r.state.to_string()).or_default() += 1;
        }
        let names: Vec<&str> = allowed.iter().map(|s| s.as_str()).collect();
        let v =
            bad.iter().map(|(s, n)| format!("{n} VMs are {s}, not {}", names.join("/"))).collect();
        push("vm_states", v, format!("every VM is {}", names.join(" or ")));
    }
    if let Some(min) = checks.min_vms {
        let v = if (rows.len() as u64) < min {
            vec![format!("{} VMs exist, at least {min} expected", rows.len())]
        } else {
            Vec::new()
        };
        push("min_vms", v, format!("{} VMs (at least {min})", rows.len()));
    }
    if checks.no_internal_errors {
        let n = ctx.stats.internal_failures();
        let v = if n > 0 {
            vec![format!(
                "{n} operations failed with INTERNAL, DATABASE_ERROR or UNAVAILABLE; first: {}",
                ctx.stats.first_internal().unwrap_or("?")
            )]
        } else {
            Vec::new()
        };
        push("no_internal_errors", v, "no operation failed with an internal error".into());
    }
    Ok(out)
}

fn summarize(problems: &[String]) -> String {
    let mut s: Vec<String> = problems.iter().take(SHOWN).cloned().collect();
    if problems.len() > SHOWN {
        s.push(format!("... and {} more", problems.len() - SHOWN));
    }
    s.join("; ")
}

async fn vm_rows(engine: &Engine) -> ScenarioResult<Vec<VmRow>> {
    let mut raw = scans::vm_states_and_hosts(&engine.db).await.map_err(|e| db_err("vm rows", e))?;
    raw.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let bad = |m: String| db_err("vm rows", oxstack_engine::EngineError::Internal(m));
    raw.into_iter()
        .map(|(id, state, host)| {
            Ok(VmRow {
                id: id.parse().map_err(|e| bad(format!("bad vm uuid {id}: {e}")))?,
                state: state.parse().map_err(bad)?,
                host: host
                    .map(|h| h.parse().map_err(|e| bad(format!("bad host uuid {h}: {e}"))))
                    .transpose()?,
            })
        })
        .collect()
}

/// Hosts the database has Connected.
async fn connected_hosts(engine: &Engine) -> ScenarioResult<std::collections::HashSet<HostId>> {
    let raw = scans::connected_hosts(&engine.db).await.map_err(|e| db_err("hosts", e))?;
    Ok(raw.into_iter().filter_map(|h| h.parse().ok()).collect())
}

/// Compares every VM row with the simulator, and every simulated VM with the database.
async fn consistency(ctx: &CheckCtx<'_>, rows: &[VmRow]) -> ScenarioResult<SimScan> {
    let connected = connected_hosts(ctx.engine).await?;
    let mut scan = SimScan::default();
    let by_id: HashMap<VmId, &VmRow> = rows.iter().map(|r| (r.id, r)).collect();
    for r in rows {
        let in_sim = ctx.sim.vm(r.id);
        match r.state {
            VmState::Running | VmState::Paused => {
                let want = if r.state == VmState::Running {
                    PowerState::Running
                } else {
                    PowerState::Paused
                };
                match (r.host, in_sim) {
                    (None, _) => scan
                        .violations
                        .push(format!("vm {} is {} but holds no host", r.id, r.state)),
                    (Some(h), _) if !connected.contains(&h) => {}
                    (Some(h), None) => scan.violations.push(format!(
                        "vm {} is {} on host {h} but the simulator does not have it",
                        r.id, r.state
                    )),
                    (Some(h), Some(v)) if v.host != h => scan.violations.push(format!(
                        "vm {} is {} on host {h} but the simulator has it on {}",
                        r.id, r.state, v.host
                    )),
                    (Some(h), Some(v)) if v.state != want => scan.violations.push(format!(
                        "vm {} is {} on host {h} but the simulator has it {:?}",
                        r.id, r.state, v.state
                    )),
                    _ => {}
                }
            }
            VmState::Stopped => {
                if let Some(h) = r.host {
                    scan.violations.push(format!("stopped vm {} still holds host {h}", r.id));
                }
                if let Some(v) =
                    in_sim.filter(|v| v.state != PowerState::Stopped && connected.contains(&v.host))
                {
                    scan.violations.push(format!(
                        "vm {} is Stopped but the simulator has it {:?} on host {}",
                        r.id, v.state, v.host
                    ));
                }
            }
            _ => {}
        }
    }
    for h in &ctx.env.hosts {
        for report in ctx.sim.host_vms(*h) {
            match by_id.get(&report.vm).map(|r| r.state) {
                None if ctx.created.contains(&report.vm) => scan.strays.push(format!(
                    "host {h} still has vm {} ({:?}), which the database has expunged",
                    report.vm, report.state
                )),
                None => scan.unknown_to_db.push(format!(
                    "host {h} has vm {} ({:?}) that no successful create made",
                    report.vm, report.state
                )),
                Some(VmState::Destroyed) => scan.strays.push(format!(
                    "host {h} still has vm {} ({:?}), which the database has Destroyed",
                    report.vm, report.state
                )),
                Some(_) => {}
            }
        }
    }
    Ok(scan)
}

async fn leaks(
    ctx: &CheckCtx<'_>,
    vms: i64,
    unknown_to_db: &[String],
) -> ScenarioResult<Vec<String>> {
    let (volumes, nics) = scans::volume_and_nic_counts(&ctx.engine.db)
        .await
        .map_err(|e| db_err("volumes and NICs", e))?;
    let mut v = Vec::new();
    if vms != ctx.expected_vms {
        v.push(format!(
            "{vms} VM rows but {} expected (successful creates minus expunges): failed operations left VMs behind or removed them",
            ctx.expected_vms
        ));
    }
    if volumes != vms {
        v.push(format!("{volumes} volumes for {vms} VMs (one root volume each)"));
    }
    let want_nics = vms * ctx.env.nics_per_vm() as i64;
    if nics != want_nics {
        v.push(format!("{nics} NICs for {vms} VMs ({want_nics} expected)"));
    }
    v.extend(unknown_to_db.iter().cloned());
    Ok(v)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use oxstack_engine::EngineOptions;
    use oxstack_hypervisor::Hypervisor;
    use oxstack_simulator::SimConfig;

    use super::*;
    use crate::spec::Scenario;

    const TINY: &str = "name = \"tiny\"\n[topology]\nhosts_per_cluster = 2\n";

    #[test]
    fn checks_catch_a_vm_that_died_behind_the_engine_and_a_leaked_row() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let s = Scenario::parse(TINY, "tiny").unwrap();
            let sim = Arc::new(SimCloud::new(SimConfig::with_seed(1)));
            let hv: Arc<dyn Hypervisor> = sim.clone();
            let opts = EngineOptions { background_tasks: false, ..EngineOptions::default() };
            let engine = Engine::start(opts, hv).await.unwrap();
            let mut stats = Stats::default();
            let env =
                crate::env::build(&engine, &s, &crate::observer::Silent, &mut stats).await.unwrap();
            let vm = engine.vms.create_vm(env.create_request(0)).await.unwrap().uuid;
            let created = HashSet::from([vm]);
            let ctx = CheckCtx {
                engine: &engine,
                sim: &sim,
                env: &env,
                stats: &stats,
                expected_vms: 1,
                created: &created,
            };
            let all = Checks::default();
            let failed = |o: Vec<CheckOutcome>| -> Vec<String> {
                o.into_iter()
                    .filter(|c| !c.passed)
                    .map(|c| format!("{}: {}", c.name, c.detail))
                    .collect()
            };
            assert!(failed(run(&ctx, &all, "t").await.unwrap()).is_empty());

            sim.kill_vm(vm).unwrap();
            let f = failed(run(&ctx, &all, "t").await.unwrap());
            assert_eq!(f.len(), 1, "{f:?}");
            assert!(f[0].starts_with("t: consistent") && f[0].contains("Stopped"), "{f:?}");

            let ctx = CheckCtx { expected_vms: 2, ..ctx };
            let f = failed(
                run(&ctx, &Checks { consistent: false, ..Checks::default() }, "t").await.unwrap(),
            );
            assert!(f.len() == 1 && f[0].contains("2 expected"), "{f:?}");
        });
    }
}
