//! The KVM backend: real QEMU/KVM VMs on this machine through libvirt.
//!
//! Each VM is a persistent libvirt domain named by its UUID; its disks (qcow2 over the image as
//! backing file) and serial console log live in `{data_dir}/{vm uuid}/`. libvirt calls block, so
//! every one runs in `tokio::task::spawn_blocking`; the libvirt connection is opened once and
//! reopened when it breaks. Operators can inspect everything with `virsh`.

mod disks;
mod domain_xml;
mod lifecycle;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use oxstack_hypervisor::wire::{AgentCommand, AgentReply};
use oxstack_hypervisor::{HostId, HypervisorError, HypervisorResult, VmId};
use virt::connect::Connect;

pub use domain_xml::{console_log_path, domain_xml, vm_dir, volume_path};

/// How the KVM backend is set up.
#[derive(Clone, Debug)]
pub struct KvmConfig {
    /// libvirt URI of this host's daemon, e.g. `qemu:///system`.
    pub libvirt_uri: String,
    /// Where VM disks and console logs are kept.
    pub data_dir: PathBuf,
    /// The only directory whose files are used as images (backing files of root volumes).
    pub image_dir: PathBuf,
    /// libvirt URI other agents migrate VMs to (e.g. `qemu+tcp://10.99.0.2/system`); reported at
    /// connect. `None`: this host cannot receive migrations.
    pub migration_uri: Option<String>,
    /// How long a graceful stop waits for the guest to power off before forcing it.
    pub stop_timeout: Duration,
    /// The data directory is the same storage on every host (shared primary storage), so live
    /// migration moves memory only. libvirt cannot tell that a local path is shared and refuses
    /// such a migration as unsafe unless told.
    pub shared_storage: bool,
}

/// This machine's libvirt, as a backend.
pub struct KvmHost {
    config: KvmConfig,
    conn: Mutex<Option<Arc<Connect>>>,
}

impl KvmHost {
    /// A backend over `config.libvirt_uri`; the connection is opened on first use.
    pub fn new(config: KvmConfig) -> Self {
        virt::error::clear_error_callback();
        Self { config, conn: Mutex::new(None) }
    }

    /// The configuration this backend runs with.
    pub fn config(&self) -> &KvmConfig {
        &self.config
    }

    fn connection(&self) -> Result<Arc<Connect>, virt::error::Error> {
        let mut held = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = held.as_ref() {
            if c.is_alive().unwrap_or(false) {
                return Ok(c.clone());
            }
        }
        let c = Arc::new(Connect::open(Some(&self.config.libvirt_uri))?);
        *held = Some(c.clone());
        Ok(c)
    }

    /// Runs one command.
    pub async fn run(
        self: &Arc<Self>,
        host: HostId,
        cmd: AgentCommand,
    ) -> HypervisorResult<AgentReply> {
        let op = cmd.kind().as_str();
        let vm = cmd.vm();
        let me = self.clone();
        tokio::task::spawn_blocking(move || {
            let conn = me.connection().map_err(|e| HypervisorError::HostUnreachable {
                host,
                reason: format!("libvirt at {}: {}", me.config.libvirt_uri, e.message()),
            })?;
            lifecycle::run(&me.config, &conn, host, cmd)
        })
        .await
        .map_err(|e| failed(host, vm, op, format!("the libvirt call panicked: {e}"), false))?
    }
}

/// An `OperationFailed` error.
pub(crate) fn failed(
    host: HostId,
    vm: Option<VmId>,
    op: &str,
    reason: impl Into<String>,
    retryable: bool,
) -> HypervisorError {
    HypervisorError::OperationFailed {
        host,
        vm,
        op: op.to_string(),
        reason: reason.into(),
        retryable,
    }
}
