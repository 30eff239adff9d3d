//! Cases that once failed, replayed as they were shrunk: proptest's regression files keep
//! only the random seed of a failure, which yields another case whenever the generators
//! change, so the cases worth keeping are written out here (see `machine::run_case`). Each
//! says what it caught.

use oxstack_engine::services::host::HostState;
use oxstack_hypervisor::OpKind;
use oxstack_model_tests::aux::{AuxKind, AuxNo, Parent};
use oxstack_model_tests::machine::{run_case, run_case_repeatedly, run_case_repeatedly_on};
use oxstack_model_tests::paths::{self, Path};
use oxstack_model_tests::reference::{HostNo, VmNo};
use oxstack_model_tests::tenants::Owner::*;
use oxstack_model_tests::transitions::Transition::{self, *};

fn vm(n: u32) -> VmNo {
    VmNo(n)
}

fn h(n: u32) -> HostNo {
    HostNo(n)
}

/// A create of the main image, the admin's (as every create was before tenants).
fn create(n: u32, size: usize, nics: usize, host: Option<u32>) -> Transition {
    CreateVm { vm: vm(n), size, nics, host: host.map(h), image: None, owner: Admin }
}

/// Engine bug (fixed in start.rs): starting a stopped VM elsewhere while the host it was
/// defined on was unreachable forgot that host; the VM then could never be started again.
#[test]
fn start_elsewhere_while_the_old_host_is_cut_off() {
    run_case(
        0,
        &[
            PartitionHost { host: h(2) },
            create(0, 0, 0, None),
            Stop { vm: vm(0), force: false },
            create(1, 0, 0, None),
            Stop { vm: vm(1), force: false },
            Start { vm: vm(0), host: None },
            Stop { vm: vm(0), force: false },
            HealHost { host: h(2) },
            PartitionHost { host: h(1) },
            Start { vm: vm(0), host: None },
        ],
        1,
    );
}

/// Engine bug (fixed in destroy.rs + host_tracker.rs): a VM destroyed while its host was
/// unreachable stayed defined (or running) on that host after it came back.
#[test]
fn destroy_while_the_host_is_down() {
    run_case(
        0,
        &[
            create(0, 2, 0, None),
            CreateBatch { first: vm(1), count: 5, size: 1, nics: 2, owner: Admin },
            CrashHost { host: h(2) },
            Destroy { vm: vm(5) },
        ],
        1,
    );
}

/// Deliberate sabotage to show the test works (free_nic did not return the address to IPAM;
/// reverted): shrank to these three steps.
#[test]
fn expunge_returns_the_address() {
    run_case(0, &[create(9, 0, 0, None), Destroy { vm: vm(9) }, Expunge { vm: vm(9) }], 1);
}

/// Engine bug (fixed in destroy.rs, recover_vm): a VM destroyed while its host was
/// partitioned, whose undefine on reconnect then failed, was recovered to Stopped while still
/// running there. Recover now finishes the pending undefine first and fails (the VM stays
/// Destroyed) if it cannot.
#[test]
fn recover_after_a_failed_undefine() {
    let trace = run_case(
        0,
        &[
            CreateBatch { first: vm(0), count: 4, size: 2, nics: 0, owner: Admin },
            Destroy { vm: vm(0) },
            InjectFault { op: OpKind::Destroy },
            create(4, 0, 0, None),
            RemoveHost { host: h(0) },
            CreateBatch { first: vm(5), count: 8, size: 1, nics: 1, owner: Admin },
            PartitionHost { host: h(1) },
            Destroy { vm: vm(5) },
            HealHost { host: h(1) },
            Recover { vm: vm(5) },
        ],
        1,
    );
    // The coverage report finds in it the deep paths it is kept for.
    let found = paths::found(&trace.events);
    for p in [Path::PartitionDestroyHeal, Path::ReconnectFaultThenRecover] {
        assert!(found.contains(&p), "{p:?} not found in {:?}", trace.events);
    }
}

/// Two nodes: a host added after another crashed (saved by proptest; what it caught was not
/// recorded).
#[test]
fn two_nodes_add_a_host_after_a_crash() {
    run_case(
        11133506992611388537,
        &[CrashHost { host: h(2) }, AddHost { host: h(3), cluster: None }],
        2,
    );
}

/// Two nodes: a long mix of placements, disabled hosts and migrations (saved by proptest; what
/// it caught was not recorded).
#[test]
fn two_nodes_placements_on_disabled_hosts() {
    run_case(
        14385038519581120951,
        &[
            CreateBatch { first: vm(0), count: 2, size: 2, nics: 1, owner: Admin },
            InjectFault { op: OpKind::Migrate },
            Migrate { vm: vm(1), to: Some(h(0)) },
            PingSweep,
            Destroy { vm: vm(0) },
            RemoveHost { host: h(2) },
            Pause { vm: vm(1) },
            create(2, 2, 2, None),
            Stop { vm: vm(1), force: false },
            Destroy { vm: vm(2) },
            create(3, 2, 1, Some(0)),
            create(4, 1, 2, Some(1)),
            Start { vm: vm(1), host: None },
            create(5, 1, 2, None),
            Stop { vm: vm(3), force: true },
            SetHostState { host: h(1), state: HostState::Disabled },
            Stop { vm: vm(1), force: false },
            SetHostState { host: h(0), state: HostState::Disabled },
            Start { vm: vm(1), host: Some(h(0)) },
            Stop { vm: vm(4), force: true },
            Migrate { vm: vm(5), to: Some(h(1)) },
            Migrate { vm: vm(5), to: Some(h(1)) },
            Pause { vm: vm(5) },
            create(6, 0, 0, Some(0)),
            AddHost { host: h(3), cluster: None },
            CreateBatch { first: vm(7), count: 3, size: 1, nics: 2, owner: Admin },
        ],
        2,
    );
}

/// Whether this run is CI's PostgreSQL pass (`OXSTACK_TEST_DB=postgres`).
fn on_postgres() -> bool {
    std::env::var("OXSTACK_TEST_DB").is_ok_and(|v| v == "postgres")
}

/// How many times a race is run (on the code before issue 17's fixes each of the races below
/// showed in 1 to 27 of 30 runs).
const RACE_RUNS: u64 = 30;

/// Issue 17 defect 1: creates naming a host that enters Maintenance at the same time were left
/// Running there (27 of 30 runs failed before the fix: "after a group: vm0 is Running on h0,
/// which the group put in Maintenance").
#[test]
fn creates_on_a_host_entering_maintenance() {
    let mut ops: Vec<Transition> = (0..6).map(|i| create(i, 0, 0, Some(0))).collect();
    ops.push(SetHostState { host: h(0), state: HostState::Maintenance });
    run_case_repeatedly(&[Group { ops }], RACE_RUNS);
}

/// Issue 17 defect 3: an L2 network deleted while L3 networks are created on it (4 of 30 runs
/// failed before the fix with 500 DATABASE_ERROR "FOREIGN KEY constraint failed"), and a
/// cluster deleted while hosts are added to it (1 of 30).
#[test]
fn parents_deleted_while_children_are_created() {
    let l2 = AuxNo(0);
    let mut ops = vec![DeleteAux { kind: AuxKind::L2, n: l2 }];
    ops.extend((1..6).map(|i| CreateAux {
        kind: AuxKind::L3,
        n: AuxNo(i),
        parent: Parent::Aux(l2),
    }));
    let make = CreateAux { kind: AuxKind::L2, n: l2, parent: Parent::Main };
    run_case_repeatedly(&[make, Group { ops }], RACE_RUNS);
    let cluster = AuxNo(0);
    let mut ops: Vec<Transition> =
        (3..6).map(|i| AddHost { host: h(i), cluster: Some(cluster) }).collect();
    ops.insert(1, DeleteAux { kind: AuxKind::Cluster, n: cluster });
    let make = CreateAux { kind: AuxKind::Cluster, n: cluster, parent: Parent::Main };
    run_case_repeatedly(&[make, Group { ops }], RACE_RUNS);
}

/// Issue 17 defect 5: overlapping IP ranges created at once on one L3 network were all
/// accepted (4 of 30 runs failed before the fix: "operation 0 (CreateIpRange { l3: a1,
/// range: 0 }) would answer CONFLICT but the engine answered success").
#[test]
fn overlapping_ranges_at_once() {
    let (l2, l3) = (AuxNo(0), AuxNo(1));
    let ops = (0..6).map(|i| CreateIpRange { l3, range: [0, 1, 6][i % 3] }).collect();
    let make = [
        CreateAux { kind: AuxKind::L2, n: l2, parent: Parent::Main },
        CreateAux { kind: AuxKind::L3, n: l3, parent: Parent::Aux(l2) },
    ];
    run_case_repeatedly(&[make[0].clone(), make[1].clone(), Group { ops }], RACE_RUNS);
}

/// Model bug (fixed in commute.rs): a reboot was taken to commute with its host entering
/// Maintenance, so the search tried one order only; but an evacuation that finds no room
/// stops the VM, and a reboot after that is refused. With the reboot done first the search
/// found no order ("operation 1 (Reboot { vm: vm1 }) would answer INVALID_STATE but the engine
/// answered success"; fresh case of seed 1 once the deep paths were weighted up).
#[test]
fn reboot_while_its_host_enters_maintenance() {
    let ops =
        vec![SetHostState { host: h(1), state: HostState::Maintenance }, Reboot { vm: vm(1) }];
    run_case_repeatedly(
        &[
            RemoveHost { host: h(0) },
            SetHostState { host: h(2), state: HostState::Disabled },
            create(1, 0, 0, None),
            Group { ops },
        ],
        RACE_RUNS,
    );
}

/// Model bug (fixed in linearize.rs, `may_move_capacity`): two nodes, the one running the
/// group lagging the other's creates (its index has h0 empty, the database full). The
/// migration chose h0 in that index, the destroy released h0 (the index saturating at zero),
/// then the database accepted the migration thanks to that release, leaving h0 at zero in the
/// index. The search took the migration's choice and reservation as one step, so no order
/// explained it ("its capacity index has h0 as Some(IndexEntry { cpus: 0, memory: 0, .. }),
/// the model Some(IndexEntry { cpus: 2, .. })"). It happens when the engine's database write
/// is slow (in about one group in seven with the CPU loaded): before the fix 5 of 5 runs of
/// this test failed on a lightly loaded machine, 4 of 5 with half as many cases. See
/// `tests/search.rs` for the interleaving run by hand.
#[test]
fn two_nodes_a_release_between_a_choice_and_its_reservation() {
    let ops = vec![
        Destroy { vm: vm(2) },
        CreateAux { kind: AuxKind::Image, n: AuxNo(0), parent: Parent::Main },
        SetHostState { host: h(1), state: HostState::Maintenance },
        Stop { vm: vm(3), force: false },
        Migrate { vm: vm(4), to: None },
    ];
    let batch = CreateBatch { first: vm(1), count: 6, size: 1, nics: 2, owner: Admin };
    // On PostgreSQL every run makes a database of its own (seconds each, 240 runs took over
    // 11 minutes of CI's PostgreSQL pass), and the race was seen on the SQLite file: 30 runs.
    let runs = if on_postgres() { RACE_RUNS } else { 8 * RACE_RUNS };
    run_case_repeatedly_on(&[create(0, 2, 1, Some(1)), batch, Group { ops }], runs, 2);
}

/// Engine bugs found by killing a node mid-operation (issue 23): a stop killed after it gave
/// back its host but before Stopped (fixed in power.rs, `unplace_vm_into`), and a start killed
/// after Starting but before its journal run (fixed in start.rs, `begin_run`), each left the VM
/// Unknown holding no host, which no sync settles. Before the fixes: "after the takeover (the
/// node died with its VM Stopping) host h2: engine has SnapHost { .. cpu_used: 0 .. }, model
/// SnapHost { .. cpu_used: 1 .. }", and "(.. with its VM Starting) vm2: engine has SnapVm {
/// state: Unknown, host: None, .. }, model SnapVm { state: Stopped, host: None, .. }".
#[test]
fn a_node_killed_mid_operation() {
    if on_postgres() {
        // The kill step counts the SQLite writer's writes (see `kill_run`); the SUT skips it.
        eprintln!("SKIPPED a_node_killed_mid_operation: a node is killed only on SQLite");
        return;
    }
    let stop = Stop { vm: vm(1), force: false };
    let kill = |during: Transition, writes| KillNode { node: 0, during: Box::new(during), writes };
    let trace = run_case(0, &[create(1, 0, 0, None), kill(stop, 2)], 2);
    assert!(trace.events.iter().any(|e| matches!(e, paths::Event::NodeKilled { .. })));
    let start = Start { vm: vm(2), host: None };
    let steps = [create(2, 0, 2, None), Stop { vm: vm(2), force: true }, kill(start, 1)];
    run_case(0, &steps, 2);
}

/// Model-test bug (fixed in sut.rs, `single`): a Maintenance evacuation that migrated a VM
/// into an injected Migrate failure and then failed to stop it (an injected Stop failure)
/// leaves the same rows as one that found no room and only failed to stop it; the SUT took the
/// model's outcome with the Migrate failure still pending, and a later migration that the
/// engine ran fine was then expected to fail: "Migrate { vm: vm3, to: None }: the engine
/// answered success () but the model expects HYPERVISOR_ERROR". The simulator's pending
/// failures now choose between such outcomes.
#[test]
fn an_evacuation_that_used_up_a_migrate_failure() {
    let steps = [
        create(0, 0, 2, Some(0)),
        create(1, 0, 2, None),
        AddHost { host: h(3), cluster: None },
        create(2, 2, 0, None),
        SetConfig { change: 2 },
        create(3, 0, 0, None),
        create(4, 2, 0, None),
        create(5, 1, 2, None),
        InjectFault { op: OpKind::Stop },
        InjectFault { op: OpKind::Migrate },
        Pause { vm: vm(0) },
        SetHostState { host: h(0), state: HostState::Maintenance },
        Migrate { vm: vm(3), to: None },
    ];
    run_case(10677227054199834498, &steps, 2);
}

/// Tenants (issue 19): a tenant's batch against its quota (tenant 2: 4 vCPUs, two VMs of the
/// middle size), then a group of another tenant's creates against its quota (tenant 1: 3 VMs,
/// one of them destroyed, still charged) with an expunge of that destroyed VM, another
/// tenant's create and the admin's. As many are created as the quota allows in some order of
/// the expunge's refund and the charges, every other refused QUOTA_EXCEEDED (or CONFLICT, when
/// the refund came between a refusal and the engine's reading of the usage), and the accounts'
/// usage is the sum of what their VMs hold.
#[test]
fn a_tenants_creates_at_once_against_its_quota() {
    let create =
        |n, owner| CreateVm { vm: vm(n), size: 0, nics: 1, host: None, image: None, owner };
    let mut ops: Vec<Transition> = (5..10).map(|n| create(n, Tenant1)).collect();
    ops.extend([create(10, Tenant2), create(11, Admin), Expunge { vm: vm(4) }]);
    let steps = [
        CreateBatch { first: vm(0), count: 3, size: 1, nics: 1, owner: Tenant2 },
        create(3, Tenant1),
        create(4, Tenant1),
        Destroy { vm: vm(4) },
        Group { ops },
    ];
    let trace = run_case(0, &steps, 1);
    assert!(trace.events.contains(&paths::Event::QuotaRefused { owner: Tenant2 }), "the batch");
    let refused = trace.tally.in_groups.get(&("create-as-tenant", "QUOTA_EXCEEDED".into()));
    assert!(refused.is_some_and(|n| *n >= 3), "the group: {:?}", trace.tally.in_groups);
    run_case_repeatedly(&steps, RACE_RUNS);
}
