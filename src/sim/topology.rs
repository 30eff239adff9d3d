//! The simulated cloud's resource tree: the standard cloud of `oxstack-testkit` with one zone,
//! clusters of `--hosts-per-cluster` hosts of 32 cpus and 128 GiB, storage sized for `--vms`,
//! and one /8 network. The hosts are registered by the caller, which times them.

use oxstack_testkit::{CloudSpec, GIB};

use super::SimArgs;

/// Size of the image every VM boots (its root volume).
const IMAGE_BYTES: u64 = GIB;

/// The cloud `oxstack sim` runs on, hosts not yet registered.
pub fn spec(args: &SimArgs) -> CloudSpec {
    let n_clusters = args.hosts.div_ceil(args.hosts_per_cluster);
    // Every VM's root volume must fit: give each cluster its own storage with room to spare.
    let per_cluster_bytes = (u64::from(args.vms) / u64::from(n_clusters) + 1) * IMAGE_BYTES * 2;
    CloudSpec::new()
        .clusters(1, n_clusters)
        .storage_bytes(per_cluster_bytes)
        .image_bytes(IMAGE_BYTES)
        .hosts(0, args.hosts_per_cluster)
        .register_concurrency(args.concurrency)
}
