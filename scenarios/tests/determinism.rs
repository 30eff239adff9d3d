//! Same seed + same code => same operations, same faults, same final state digest; another seed
//! gives another digest. Runs the replayable CI random walk (one operation at a time).

mod common;

use common::{assert_passed, env_seed, run_ci};

#[test]
fn same_seed_same_digest_other_seed_other_digest() {
    let seed = env_seed().unwrap_or(1);
    let test = "determinism same_seed_same_digest_other_seed_other_digest";
    let first = run_ci("random-walk.toml", Some(seed), test);
    assert_passed(&first);
    assert!(
        first.deterministic,
        "the walk must be on the replayable path: {:?}",
        first.nondeterministic
    );
    let second = run_ci("random-walk.toml", Some(seed), test);
    let counts = |r: &oxstack_scenarios::RunReport| -> Vec<(String, u64, u64)> {
        r.ops.iter().map(|o| (o.op.clone(), o.ok, o.failed)).collect()
    };
    assert_eq!(
        counts(&first),
        counts(&second),
        "same seed, same operations and outcomes\n{}",
        first.replay_line()
    );
    assert_eq!(first.vm_states, second.vm_states);
    assert_eq!(first.simulated_secs, second.simulated_secs, "same simulated time");
    assert_eq!(first.digest, second.digest, "same seed, same digest\n{}", first.replay_line());

    let other = run_ci("random-walk.toml", Some(seed.wrapping_add(1)), test);
    assert_passed(&other);
    assert_ne!(first.digest, other.digest, "another seed must give another state");
    println!(
        "seed {seed}: digest {} (twice); seed {}: digest {}",
        first.digest, other.seed, other.digest
    );
}
