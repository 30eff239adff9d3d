//! Network providers (ZStack's network service providers): code registered when the engine is
//! composed that serves guest networks beyond address management: a DHCP server's host
//! entries, DNS names, an SDN controller's ports, a firewall's rules.
//!
//! Addresses stay the core's (IPAM, `ipam.rs`): a provider hears of each NIC once it has its
//! address and before any host plugs it ([`nic_allocated`]), and of each NIC about to be deleted
//! with its address ([`nic_released`]). Providers are asked in registration order; the first
//! failure fails the operation with `PROVIDER_ERROR` and, for an allocation, frees the NIC again
//! (every provider hears `nic_released`, the ones that never heard of it included). With none
//! registered (the default), NICs are addresses only.
//!
//! [`nic_allocated`]: NetworkProvider::nic_allocated
//! [`nic_released`]: NetworkProvider::nic_released

use std::net::Ipv4Addr;
use std::sync::Arc;

use async_trait::async_trait;

use crate::error::{EngineError, EngineResult};
use crate::ids::{L3NetworkId, NicId, VmId};

/// A NIC, as providers see it.
#[derive(Clone, Copy, Debug)]
pub struct NicAt<'a> {
    pub vm: VmId,
    pub nic: NicId,
    pub l3: L3NetworkId,
    pub ip: Ipv4Addr,
    pub mac: &'a str,
}

/// A network provider.
#[async_trait]
pub trait NetworkProvider: Send + Sync {
    /// Names the provider in errors.
    fn name(&self) -> &'static str;

    /// `nic` has its address; no host uses it yet. Called again for a NIC it already heard of
    /// (a step run twice): idempotent. `Err(reason)` fails the operation with `PROVIDER_ERROR`.
    async fn nic_allocated(&self, nic: &NicAt<'_>) -> Result<(), String>;

    /// `nic` is about to be deleted and its address given back. Idempotent, also for a NIC it
    /// never heard of. `Err(reason)` keeps the NIC and fails the operation with
    /// `PROVIDER_ERROR`: it can be tried again.
    async fn nic_released(&self, nic: &NicAt<'_>) -> Result<(), String>;
}

/// The registered providers, in order; cheap to clone.
#[derive(Clone, Default)]
pub struct NetworkProviders {
    chain: Arc<[Arc<dyn NetworkProvider>]>,
}

impl NetworkProviders {
    /// `providers`, asked in this order.
    pub fn new(providers: Vec<Arc<dyn NetworkProvider>>) -> Self {
        Self { chain: providers.into() }
    }

    /// Whether none is registered.
    pub fn is_empty(&self) -> bool {
        self.chain.is_empty()
    }

    /// Tells every provider `nic` has its address; stops at the first failure.
    pub(crate) async fn allocated(&self, nic: &NicAt<'_>) -> EngineResult<()> {
        for p in self.chain.iter() {
            p.nic_allocated(nic).await.map_err(|reason| failed(p, "set up a NIC", reason))?;
        }
        Ok(())
    }

    /// Tells every provider `nic` goes, newest first; stops at the first failure.
    pub(crate) async fn released(&self, nic: &NicAt<'_>) -> EngineResult<()> {
        for p in self.chain.iter().rev() {
            p.nic_released(nic).await.map_err(|reason| failed(p, "release a NIC", reason))?;
        }
        Ok(())
    }
}

fn failed(p: &Arc<dyn NetworkProvider>, operation: &'static str, reason: String) -> EngineError {
    EngineError::Provider { provider: p.name(), operation, reason }
}

impl std::fmt::Debug for NetworkProviders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.chain.iter().map(|p| p.name())).finish()
    }
}
