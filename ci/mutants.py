#!/usr/bin/env python3
"""Mutation run of the model test (issue 23): plants one-line bugs in the engine and its database
crate (db/), one at a time, in a scratch git worktree with its own target directory, runs the model test on each with CI's
seed and case counts (fresh cases only: proptest's regression files are not replayed), and
prints a table: caught or not, the case that failed first, the length of the shortened witness.

Not part of ci/test.sh (each mutant is a release build and a model run: minutes each). Release
builds are incremental here, and a mutant's run stops once a test has printed its shortened
witness (the other test is not waited for), so the time column is build + run until caught.

    python3 ci/mutants.py [--only NAME ...] [--out FILE] [--keep]

Not planted, because no behaviour can tell them from the code (equivalent mutants): skipping the
check for a clashing range before the insert in `create_ip_range` (the conditional insert refuses
and the same refusal is built after it; the check only saves a write).

Environment: OXSTACK_MODEL_SEED (default 1), as ci/test.sh. A mutant whose text is no longer
found exactly once in its file is reported STALE (the code moved on; update the list).
"""

import argparse
import os
import re
import signal
import subprocess
import sys
import time

# (name, area, file, text, replacement, why it may go uncaught or None)
MUTANTS = [
    ("index-fit-cpu", "capacity", "engine/src/scheduler/index.rs",
     "self.cpu_used.saturating_add(cpus) <= self.cpu_total",
     "self.cpu_used.saturating_add(cpus) <= self.cpu_total + 1", None),
    ("reserve-cpu", "capacity", "db/src/hosts.rs",
     "cpu_used + ?1 <= cpu_total AND", "cpu_used + ?1 <= cpu_total + 1 AND", None),
    ("release-cpu", "capacity", "db/src/hosts.rs",
     "THEN cpu_used - ?1 ELSE 0 END", "THEN cpu_used - ?1 + 1 ELSE 0 END", None),
    ("reserve-host-state", "capacity", "db/src/hosts.rs",
     "AND state = 'Enabled' AND status = 'Connected'", "AND status = 'Connected'",
     "the index refuses first; only a race with a host state change reaches it"),
    ("ipam-capacity", "ipam", "engine/src/services/network/ipam.rs",
     "self.ranges.iter().map(|r| u64::from(r.end - r.start) + 1).sum()",
     "self.ranges.iter().map(|r| u64::from(r.end - r.start)).sum()", None),
    ("ipam-release", "ipam", "engine/src/services/network/ipam.rs",
     "pool.used.remove(&u32::from(ip));", "let _ = ip;", None),
    ("free-nic-keeps-address", "ipam", "engine/src/services/vm/allocate.rs",
     "            self.caches.ipam.release(l3, ip);\n        }\n        Ok(())",
     "            let _ = (l3, ip);\n        }\n        Ok(())", None),
    ("range-broadcast", "ipam", "engine/src/services/network/ip_range.rs",
     "(start == network || end == broadcast)", "(start == network)", None),
    ("range-gateway-inside", "ipam", "engine/src/services/network/ip_range.rs",
     "if (start..=end).contains(&gateway) {", "if false {", None),
    ("reboot-ends-paused", "state", "engine/src/services/vm/power.rs",
     "VmOp::Reboot, VmState::Rebooting, VmState::Running",
     "VmOp::Reboot, VmState::Rebooting, VmState::Paused", None),
    ("pause-ends-running", "state", "engine/src/services/vm/power.rs",
     "VmOp::Pause, VmState::Pausing, VmState::Paused",
     "VmOp::Pause, VmState::Pausing, VmState::Running", None),
    ("resume-ends-paused", "state", "engine/src/services/vm/power.rs",
     "VmOp::Resume, VmState::Resuming, VmState::Running",
     "VmOp::Resume, VmState::Resuming, VmState::Paused", None),
    ("stop-keeps-capacity", "state", "engine/src/services/vm/power.rs",
     "        self.unplace_vm_into(vm, (VmState::Stopping, VmState::Stopped), None).await?;",
     "        self.set_vm_state(vm, VmState::Stopping, VmState::Stopped).await?;", None),
    ("deletion-policy", "config", "engine/src/services/vm/destroy.rs",
     'if self.config.string(ConfigName::VmDeletionPolicy) == "Direct" {',
     'if self.config.string(ConfigName::VmDeletionPolicy) == "Delay" {', None),
    ("pack-strategy", "config", "engine/src/scheduler/index.rs",
     "Strategy::Pack => best.sort_by_key(|&(free, _)| free),",
     "Strategy::Pack => best.sort_by_key(|&(free, _)| std::cmp::Reverse(free)),",
     "it is in the per-cluster search, which runs only when the global walk passed "
     "MAX_GLOBAL_SCAN (64) unacceptable hosts; the model's clouds have at most 8 hosts. "
     "scheduler/index.rs's the_global_walk_agrees_with_the_per_cluster_search catches it"),
    ("migrate-last-host", "migration", "db/src/vm_instances/writes.rs",
     "SET host_uuid = ?1, last_host_uuid = ?1,", "SET host_uuid = ?1, last_host_uuid = ?4,", None),
    ("recover-keeps-defined", "recover", "engine/src/services/vm/destroy.rs",
     "        if let Some(h) = pending {", "        if let Some(h) = pending.filter(|_| false) {",
     None),
    ("recover-ends-running", "recover", "engine/src/services/vm/destroy.rs",
     "            self.set_vm_state(vm, state, VmState::Stopped).await?;\n            self.get_vm(vm).await\n        })\n        .await\n    }\n\n    /// Expunges",
     "            self.set_vm_state(vm, state, VmState::Running).await?;\n            self.get_vm(vm).await\n        })\n        .await\n    }\n\n    /// Expunges",
     None),
    ("sync-stopped-placed", "reconcile", "engine/src/services/host_sync.rs",
     "(VmState::Stopped, Some(PowerState::Stopped)) => !e.placed,",
     "(VmState::Stopped, Some(PowerState::Stopped)) => e.placed,",
     "for a Stopped VM not placed it only sends the sync the careful way, which finds nothing "
     "to correct; it changes what the sync does only for a VM left Stopped and placed, and no "
     "fresh case of seed 1 left one (stop, destroy and reconciliation unplace a VM in the write "
     "that sets its state). host_sync.rs's settled_vms_in_their_power_state_agree catches it"),
    ("range-insert-unchecked", "ipam", "db/src/ip_ranges.rs",
     "?9 WHERE NOT EXISTS (SELECT 1", "?9 WHERE 1 = 1 OR NOT EXISTS (SELECT 1",
     "the engine's check refuses a clashing range first; only two creates on different L3 "
     "networks of one L2 that both pass it before either inserts reach this one (the ranges "
     "theme's race, must-reach CrossL3RangeRace). "
     "db/src/ip_ranges/tests.rs's ranges_of_one_l2_network_that_share_an_address_or_a_gateway_clash "
     "catches it too"),
    ("takeover-jobs", "takeover", "db/src/jobs.rs",
     "WHERE state = 'Running' AND {}\",\n        orphaned(\"node_uuid\")",
     "WHERE state = 'Nothing' AND {}\",\n        orphaned(\"node_uuid\")", None),
    ("recover-migration-not-undone", "takeover", "engine/src/services/vm/orphans.rs",
     "MigrateCtx::restore(e, context)?;\n                migrate_workflow().undo_all(&mut ctx).await",
     "MigrateCtx::restore(e, context)?;\n                let _ = &mut ctx;\n                Vec::new()",
     None),
    ("config-not-applied-locally", "config", "engine/src/config/mod.rs",
     "self.values.write().unwrap_or_else(|e| e.into_inner()).insert(def.name, value.to_string());",
     "let _ = (def.name, value);", None),
    ("heartbeat-config-reload", "config", "engine/src/cluster/membership.rs",
     "        if !(alone && was_alone) {\n            let changed = self.config.reload",
     "        if false && !(alone && was_alone) {\n            let changed = self.config.reload",
     None),
    ("alone-keeps-stale-caches", "takeover", "engine/src/cluster/membership.rs",
     "        if alone && !was_alone {\n            self.caches.reload().await?;",
     "        if false && alone && !was_alone {\n            self.caches.reload().await?;",
     None),
    ("reload-before-refusing", "capacity", "engine/src/scheduler/capacity.rs",
     "if !self.reloaded && e.caches.may_lag() =>",
     "if false && !self.reloaded && e.caches.may_lag() =>", None),
    ("index-release-own", "capacity", "engine/src/scheduler/capacity.rs",
     "        if released {\n            self.caches.scheduler.index().release(host, cpus, memory);",
     "        if released {\n            let _ = (cpus, memory);", None),
    ("expunge-sweeper-policy", "config", "engine/src/services/vm/destroy.rs",
     'if self.config.string(ConfigName::VmDeletionPolicy) != "Delay" {',
     'if self.config.string(ConfigName::VmDeletionPolicy) == "Delay" {', None),
    ("expunge-period-ignored", "config", "engine/src/services/vm/destroy.rs",
     "let cutoff = now_ms - period.as_millis() as i64;", "let cutoff = now_ms;", None),
    ("sync-every-ignored", "config", "engine/src/services/host_tracker.rs",
     "if sync_every > 0 && sweep.is_multiple_of(sync_every) {", "if sync_every > 0 {",
None),
    ("migration-slots-one-more", "config", "engine/src/services/vm/migration_slots.rs",
     "if *running < limit().max(1) {", "if *running < limit().max(1) + 1 {", None),
    ("ping-interval-ignored", "config", "engine/src/services/host_tracker.rs",
     "let interval = self.config.secs(ConfigName::HostPingIntervalSecs);",
     "let interval = std::time::Duration::from_secs(10);", None),
    ("ping-sleep-not-restarted", "config", "engine/src/services/host_tracker.rs",
     "_ = config_changes.changed() => continue,",
     "_ = config_changes.changed(), if false => continue,", None),
]


def sh(cmd, cwd, env=None, log=None):
    return subprocess.run(cmd, cwd=cwd, env=env, shell=True, text=True,
                          stdout=log or subprocess.PIPE, stderr=subprocess.STDOUT)


TEST = "cargo test --release --locked -p oxstack-model-tests --test model"


def run_until_caught(tree, env, logpath):
    """Runs the model test; once one of its tests has printed a shortened witness the mutant is
    caught, and the other test (one node or two) is not waited for. Returns (exit code, log)."""
    with open(logpath, "a") as log:
        proc = subprocess.Popen(f"{TEST} -- --nocapture", cwd=tree, env=env, shell=True,
                                text=True, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        while proc.poll() is None:
            time.sleep(2)
            with open(logpath) as f:
                if "shortened it to" in f.read():
                    time.sleep(3)  # the rest of the panic message: the failure itself
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                    break
    with open(logpath) as f:
        out = f.read()
    return (1 if "shortened it to" in out else proc.returncode), out


def write_table(out, tree, seed, rows):
    """Writes the table of `rows`, mutated from the commit checked out in `tree`; returns how
    many mutants were caught."""
    head = subprocess.run("git rev-parse --short HEAD", shell=True, cwd=tree, text=True,
                          capture_output=True).stdout.strip()
    caught = sum(1 for r in rows if r[2] == "caught")
    with open(out, "w") as f:
        f.write(f"mutation run at {head}, seed {seed}: {caught} of {len(rows)} caught\n\n")
        f.write("| mutant | area | result | first failure, witness | build + run | note |\n"
                "|---|---|---|---|---|---|\n")
        for r in rows:
            f.write("| " + " | ".join(r) + " |\n")
    return caught


def plant(tree, path, text, replacement):
    full = os.path.join(tree, path)
    with open(full) as f:
        src = f.read()
    if src.count(text) != 1:
        return False
    with open(full, "w") as f:
        f.write(src.replace(text, replacement))
    return True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--out", default="mutants-result.md")
    ap.add_argument("--keep", action="store_true", help="keep the scratch worktree")
    args = ap.parse_args()
    repo = subprocess.run("git rev-parse --show-toplevel", shell=True, text=True,
                          capture_output=True, check=True).stdout.strip()
    tree = os.path.join(os.environ.get("TMPDIR", "/tmp"), "oxstack-mutants")
    if not os.path.isdir(tree):
        sh(f"git worktree add --detach {tree} HEAD", repo)
    else:
        sh("git checkout -q --detach HEAD && git reset -q --hard", tree)
        sh(f"git checkout -q --detach $(git -C {repo} rev-parse HEAD)", tree)
    seed = os.environ.get("OXSTACK_MODEL_SEED", "1")
    env = dict(os.environ, OXSTACK_SEED=seed, PROPTEST_CASES="2000",
               OXSTACK_MODEL_TWO_NODE_CASES="200", PROPTEST_DISABLE_FAILURE_PERSISTENCE="1",
               CARGO_TARGET_DIR=os.path.join(tree, "target"),
               # each mutant changes one line of the engine: reuse the rest of the last build
               CARGO_INCREMENTAL="1")
    env.pop("OXSTACK_TEST_DB", None)
    rows = []
    chosen = [m for m in MUTANTS if not args.only or m[0] in args.only]
    for name, area, path, text, replacement, why in chosen:
        sh("git checkout -q -- .", tree)
        if not plant(tree, path, text, replacement):
            rows.append((name, area, "STALE", "", "", "its text is not in the file exactly once"))
            continue
        logpath = os.path.join(tree, f"mutant-{name}.log")
        start = time.time()
        with open(logpath, "w") as log:
            built = sh(f"{TEST} --no-run", tree, env, log)
        build = f"{time.time() - start:.0f}"
        if built.returncode != 0:
            rows.append((name, area, "BUILD FAILED", "", f"{build} s", "the mutant does not compile"))
            print(" | ".join(rows[-1]), flush=True)
            continue
        start = time.time()
        code, out = run_until_caught(tree, env, logpath)
        took = f"{build} s + {time.time() - start:.0f} s"
        if code == 0:
            rows.append((name, area, "not caught", "", took, why or "UNEXPLAINED"))
        else:
            case = re.search(r"failed at case (\d+)", out)
            short = re.search(r"shortened it to (\d+)", out)
            rows.append((name, area, "caught", f"case {case.group(1) if case else '?'}, "
                         f"{short.group(1) if short else '?'} steps", took, ""))
        print(" | ".join(rows[-1]), flush=True)
        write_table(args.out, tree, seed, rows)  # so far, in case the run is cut short
    sh("git checkout -q -- .", tree)
    caught = write_table(args.out, tree, seed, rows)
    print(f"{caught} of {len(rows)} caught; table in {args.out}")
    if not args.keep:
        sh(f"git worktree remove --force {tree}", repo)
    return 0


if __name__ == "__main__":
    sys.exit(main())
