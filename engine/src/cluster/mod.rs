//! Many management nodes sharing one cloud: who owns which resource.
//!
//! So far this holds the consistent-hash ring ([`HashRing`]) that maps a resource's uuid to the
//! node that owns it. Membership (nodes registering and heartbeating in the database, death
//! detection, takeover) is not built yet; until it is, a node runs alone and owns everything.

mod ring;

pub use ring::{HashRing, VNODES};
