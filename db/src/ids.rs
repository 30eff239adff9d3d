//! Typed identifiers of the rows: every resource the engine keeps in the database has one.
//!
//! Declared here, below the engine, so the typed query modules take and return them; the engine
//! re-exports them as `oxstack_engine::ids`. Host, VM and volume IDs come from
//! `oxstack-hypervisor`, which declares them with the same macro because they cross the
//! hypervisor contract.

use oxstack_hypervisor::typed_id;

pub use oxstack_hypervisor::{HostId, VmId, VolumeId};

typed_id!(
    /// A zone: the top of the resource tree.
    ZoneId
);
typed_id!(
    /// A cluster of hosts of one hypervisor type.
    ClusterId
);
typed_id!(
    /// Primary storage: where volumes live.
    PrimaryStorageId
);
typed_id!(
    /// Backup storage: where images live.
    BackupStorageId
);
typed_id!(
    /// An image a root volume is cloned from.
    ImageId
);
typed_id!(
    /// An instance offering: a VM size (cpus, memory).
    InstanceOfferingId
);
typed_id!(
    /// An L2 network (a bridge or VLAN on the hosts).
    L2NetworkId
);
typed_id!(
    /// An L3 network (subnet with IP ranges) on an L2 network.
    L3NetworkId
);
typed_id!(
    /// A contiguous range of IPs of an L3 network.
    IpRangeId
);
typed_id!(
    /// A VM's network interface.
    NicId
);
typed_id!(
    /// An asynchronous API job.
    JobId
);
typed_id!(
    /// An account: who owns resources (the admin account, or a tenant).
    AccountId
);
typed_id!(
    /// A user of an account, who signs in.
    UserId
);
typed_id!(
    /// A signed-in session of a user (a bearer token with an expiry).
    SessionId
);
typed_id!(
    /// An API key of a user (a bearer token without expiry).
    ApiKeyId
);
