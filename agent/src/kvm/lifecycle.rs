//! Each command as libvirt calls (blocking; run from `spawn_blocking` by `KvmHost::run`).

use std::time::{Duration, Instant};

use oxstack_hypervisor::wire::{AgentCommand, AgentReply};
use oxstack_hypervisor::{
    migration_uri, HostFacts, HostId, HypervisorError, HypervisorResult, PowerState, StopMode,
    VmId, VmSpec, VmStateReport, VolumeId, VolumeSpec,
};
use virt::connect::Connect;
use virt::domain::{Domain, DomainState};
use virt::error::ErrorNumber;
use virt::sys;

use super::disks::create_volume;
use super::domain_xml::{disk_xml, domain_xml, vm_dir, volume_path};
use super::{failed, KvmConfig};

/// Runs one command against libvirt.
pub(super) fn run(
    config: &KvmConfig,
    conn: &Connect,
    host: HostId,
    cmd: AgentCommand,
) -> HypervisorResult<AgentReply> {
    let ctx = Ctx { config, conn, host, op: cmd.kind().as_str() };
    use AgentCommand as C;
    match cmd {
        C::Connect { .. } => {
            return Ok(AgentReply::Connected {
                facts: ctx.facts()?,
                migration_uri: config.migration_uri.clone(),
            })
        }
        C::VmStates => return Ok(AgentReply::VmStates { vms: ctx.vm_states()? }),
        C::Ping => {
            conn.lib_version().map_err(|e| ctx.lv(None, e))?;
        }
        C::Disconnect => {}
        C::CreateVm { spec } => ctx.create(&spec)?,
        C::StartVm { vm } => ctx.start(vm)?,
        C::StopVm { vm, mode } => ctx.stop(vm, mode)?,
        C::RebootVm { vm } => {
            let dom = ctx.running(vm, &[DomainState::Running])?;
            // A hard reset: it needs nothing of the guest (a graceful reboot needs an ACPI-aware OS).
            dom.reset().map_err(|e| ctx.lv(Some(vm), e))?;
        }
        C::PauseVm { vm } => {
            let dom = ctx.running(vm, &[DomainState::Running])?;
            dom.suspend().map_err(|e| ctx.lv(Some(vm), e))?;
        }
        C::ResumeVm { vm } => {
            let dom = ctx.running(vm, &[DomainState::Paused])?;
            dom.resume().map_err(|e| ctx.lv(Some(vm), e))?;
        }
        C::MigrateVm { vm, to_migration_uri, .. } => ctx.migrate(vm, to_migration_uri)?,
        C::DestroyVm { vm } => ctx.destroy(vm)?,
        C::AttachVolume { vm, volume } => ctx.attach(vm, &volume)?,
        C::DetachVolume { vm, volume } => ctx.detach(vm, volume)?,
        C::RotateToken { .. } => return Err(crate::backend::not_for_backends(host)),
    }
    Ok(AgentReply::Done)
}

/// What every call needs to do its work and to name its errors.
struct Ctx<'a> {
    config: &'a KvmConfig,
    conn: &'a Connect,
    host: HostId,
    op: &'static str,
}

fn power_state(state: Option<DomainState>) -> PowerState {
    match state {
        Some(DomainState::Running | DomainState::Blocked | DomainState::Shutdown) => {
            PowerState::Running
        }
        Some(DomainState::Paused | DomainState::PMSuspended) => PowerState::Paused,
        _ => PowerState::Stopped,
    }
}

impl Ctx<'_> {
    /// A libvirt error as a hypervisor error.
    fn lv(&self, vm: Option<VmId>, e: virt::error::Error) -> HypervisorError {
        let retryable = matches!(
            e.code().known(),
            Some(ErrorNumber::SystemError | ErrorNumber::NoConnect | ErrorNumber::OperationTimeout)
        );
        failed(self.host, vm, self.op, format!("libvirt: {}", e.message()), retryable)
    }

    fn facts(&self) -> HypervisorResult<HostFacts> {
        let node = self.conn.node_info().map_err(|e| self.lv(None, e))?;
        let lib = self.conn.lib_version().map_err(|e| self.lv(None, e))?;
        let qemu = self.conn.hyp_version().map_err(|e| self.lv(None, e))?;
        let version = |v: u32| format!("{}.{}.{}", v / 1_000_000, v / 1000 % 1000, v % 1000);
        let mut capabilities = vec!["kvm".to_string(), "volume_hotplug".to_string()];
        if self.config.migration_uri.is_some() {
            capabilities.push("live_migration".to_string());
        }
        Ok(HostFacts {
            cpus: node.cpus,
            memory_bytes: node.memory * 1024,
            hypervisor_version: format!("QEMU {} (libvirt {})", version(qemu), version(lib)),
            capabilities,
        })
    }

    fn vm_states(&self) -> HypervisorResult<Vec<VmStateReport>> {
        let domains = self.conn.list_all_domains(0).map_err(|e| self.lv(None, e))?;
        let mut vms = Vec::with_capacity(domains.len());
        for dom in domains {
            // Domains not named by a UUID are not ours.
            let Ok(vm) = dom.name().unwrap_or_default().parse::<VmId>() else { continue };
            let (state, _) = dom.state().map_err(|e| self.lv(Some(vm), e))?;
            vms.push(VmStateReport { vm, state: power_state(state.known()) });
        }
        Ok(vms)
    }

    /// The VM's domain, or `None` when libvirt does not have it.
    fn lookup(&self, vm: VmId) -> HypervisorResult<Option<Domain>> {
        match self.conn.lookup_domain_by_name(&vm.to_string()) {
            Ok(d) => Ok(Some(d)),
            Err(e) if e.code().known() == Some(ErrorNumber::NoDomain) => Ok(None),
            Err(e) => Err(self.lv(Some(vm), e)),
        }
    }

    fn domain(&self, vm: VmId) -> HypervisorResult<Domain> {
        self.lookup(vm)?.ok_or(HypervisorError::VmNotFound { host: self.host, vm })
    }

    fn state(&self, vm: VmId, dom: &Domain) -> HypervisorResult<Option<DomainState>> {
        Ok(dom.state().map_err(|e| self.lv(Some(vm), e))?.0.known())
    }

    /// The VM's domain, refused unless it is in one of `allowed`.
    fn running(&self, vm: VmId, allowed: &[DomainState]) -> HypervisorResult<Domain> {
        let dom = self.domain(vm)?;
        let state = self.state(vm, &dom)?;
        if !state.is_some_and(|s| allowed.contains(&s)) {
            return Err(HypervisorError::InvalidVmState {
                host: self.host,
                vm,
                op: self.op.to_string(),
                state: power_state(state).to_string(),
            });
        }
        Ok(dom)
    }

    fn create(&self, spec: &VmSpec) -> HypervisorResult<()> {
        let vm = spec.vm;
        if let Some(dom) = self.lookup(vm)? {
            // A retried create: start it if a first attempt defined it but did not start it.
            if !dom.is_active().map_err(|e| self.lv(Some(vm), e))? {
                dom.create().map_err(|e| self.lv(Some(vm), e))?;
            }
            return Ok(());
        }
        let data = &self.config.data_dir;
        let xml = domain_xml(data, spec)
            .ok_or_else(|| failed(self.host, Some(vm), self.op, "too many volumes", false))?;
        let made = (|| {
            for volume in std::iter::once(&spec.root_volume).chain(&spec.data_volumes) {
                create_volume(
                    &volume_path(data, vm, volume.volume),
                    volume,
                    &self.config.image_dir,
                )
                .map_err(|e| failed(self.host, Some(vm), self.op, e.to_string(), false))?;
            }
            let dom = self.conn.define_domain_xml(&xml).map_err(|e| self.lv(Some(vm), e))?;
            if let Err(e) = dom.create() {
                let err = self.lv(Some(vm), e);
                let _ = dom.undefine();
                return Err(err);
            }
            Ok(())
        })();
        if made.is_err() {
            let _ = std::fs::remove_dir_all(vm_dir(data, vm));
        }
        made
    }

    fn start(&self, vm: VmId) -> HypervisorResult<()> {
        let dom = self.domain(vm)?;
        match self.state(vm, &dom)? {
            Some(DomainState::Running | DomainState::Blocked) => Ok(()),
            Some(DomainState::Paused) => Err(HypervisorError::InvalidVmState {
                host: self.host,
                vm,
                op: self.op.to_string(),
                state: PowerState::Paused.to_string(),
            }),
            _ => dom.create().map(|_| ()).map_err(|e| self.lv(Some(vm), e)),
        }
    }

    fn stop(&self, vm: VmId, mode: StopMode) -> HypervisorResult<()> {
        let dom = self.domain(vm)?;
        if !dom.is_active().map_err(|e| self.lv(Some(vm), e))? {
            return Ok(());
        }
        if mode == StopMode::Graceful && dom.shutdown().is_ok() {
            let deadline = Instant::now() + self.config.stop_timeout;
            while Instant::now() < deadline {
                if !dom.is_active().map_err(|e| self.lv(Some(vm), e))? {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            tracing::info!(%vm, "guest did not power off after ACPI shutdown; forcing it off");
        }
        match dom.destroy() {
            Ok(()) => Ok(()),
            // It powered off between the check and the destroy.
            Err(_) if !dom.is_active().unwrap_or(true) => Ok(()),
            Err(e) => Err(self.lv(Some(vm), e)),
        }
    }

    fn migrate(&self, vm: VmId, to_uri: Option<String>) -> HypervisorResult<()> {
        let dom = self.running(vm, &[DomainState::Running])?;
        let Some(to_uri) = to_uri else {
            return Err(failed(
                self.host,
                Some(vm),
                self.op,
                "the destination host accepts no migrations (its agent has no --migration-uri)",
                false,
            ));
        };
        // The engine checked the URI against the destination's address; this agent still opens
        // nothing but plain libvirt over TCP or TLS.
        let target = migration_uri::parse(&to_uri).map_err(|e| {
            let reason = format!("the destination's migration URI is refused: {e}");
            failed(self.host, Some(vm), self.op, reason, false)
        })?;
        let dest = Connect::open(Some(&to_uri)).map_err(|e| {
            failed(
                self.host,
                Some(vm),
                self.op,
                format!("cannot reach the destination's libvirt at {to_uri}: {}", e.message()),
                true,
            )
        })?;
        // The data stream goes to the destination's address, not to whatever its hostname
        // resolves to.
        let data_uri = format!("tcp://{}", target.host);
        let mut flags = sys::VIR_MIGRATE_LIVE
            | sys::VIR_MIGRATE_PERSIST_DEST
            | sys::VIR_MIGRATE_UNDEFINE_SOURCE;
        if self.config.shared_storage {
            flags |= sys::VIR_MIGRATE_UNSAFE;
        }
        let moved = dom.migrate(&dest, flags, None, Some(&data_uri), 0);
        drop(moved.map_err(|e| self.lv(Some(vm), e))?);
        Ok(())
    }

    fn destroy(&self, vm: VmId) -> HypervisorResult<()> {
        if let Some(dom) = self.lookup(vm)? {
            if dom.is_active().map_err(|e| self.lv(Some(vm), e))? {
                dom.destroy().map_err(|e| self.lv(Some(vm), e))?;
            }
            dom.undefine_flags(sys::VIR_DOMAIN_UNDEFINE_MANAGED_SAVE)
                .map_err(|e| self.lv(Some(vm), e))?;
        }
        match std::fs::remove_dir_all(vm_dir(&self.config.data_dir, vm)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(failed(
                self.host,
                Some(vm),
                self.op,
                format!("cannot remove the VM's files: {e}"),
                true,
            )),
            _ => Ok(()),
        }
    }

    /// Flags that change the running domain (if it runs) and its persistent definition.
    fn device_flags(&self, vm: VmId, dom: &Domain) -> HypervisorResult<u32> {
        let live = dom.is_active().map_err(|e| self.lv(Some(vm), e))?;
        Ok(sys::VIR_DOMAIN_AFFECT_CONFIG | if live { sys::VIR_DOMAIN_AFFECT_LIVE } else { 0 })
    }

    fn attach(&self, vm: VmId, volume: &VolumeSpec) -> HypervisorResult<()> {
        let dom = self.domain(vm)?;
        let data = &self.config.data_dir;
        let path = volume_path(data, vm, volume.volume);
        let xml = dom.xml_desc(0).map_err(|e| self.lv(Some(vm), e))?;
        if xml.contains(&format!("'{}'", path.display())) {
            return Ok(()); // attached already (a retried call)
        }
        let disk = disk_xml(data, vm, volume)
            .ok_or_else(|| failed(self.host, Some(vm), self.op, "no free disk slot", false))?;
        create_volume(&path, volume, &self.config.image_dir)
            .map_err(|e| failed(self.host, Some(vm), self.op, e.to_string(), false))?;
        let flags = self.device_flags(vm, &dom)?;
        dom.attach_device_flags(&disk, flags).map_err(|e| self.lv(Some(vm), e))
    }

    fn detach(&self, vm: VmId, volume: VolumeId) -> HypervisorResult<()> {
        let dom = self.domain(vm)?;
        let path = volume_path(&self.config.data_dir, vm, volume);
        let xml = dom.xml_desc(0).map_err(|e| self.lv(Some(vm), e))?;
        let Some(disk) = disk_element(&xml, &path.to_string_lossy()) else {
            return Ok(()); // not attached (a retried call)
        };
        let flags = self.device_flags(vm, &dom)?;
        dom.detach_device_flags(disk, flags).map_err(|e| self.lv(Some(vm), e))
    }
}

/// The `<disk>...</disk>` element of a domain XML whose source is `path`.
fn disk_element<'x>(xml: &'x str, path: &str) -> Option<&'x str> {
    let source = xml.find(&format!("file='{path}'"))?;
    let start = xml[..source].rfind("<disk ")?;
    let end = source + xml[source..].find("</disk>")? + "</disk>".len();
    Some(&xml[start..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_disk_element_of_a_source_file() {
        let xml = "<devices><disk type='file' device='disk'><source file='/a/x.qcow2'/><target dev='vda'/></disk>\
                   <disk type='file' device='disk'><source file='/a/y.qcow2'/><target dev='sdb'/></disk></devices>";
        let y = disk_element(xml, "/a/y.qcow2").unwrap();
        assert!(
            y.starts_with("<disk ")
                && y.ends_with("</disk>")
                && y.contains("sdb")
                && !y.contains("vda")
        );
        assert_eq!(disk_element(xml, "/a/z.qcow2"), None);
    }

    #[test]
    fn libvirt_states_map_to_power_states() {
        assert_eq!(power_state(Some(DomainState::Running)), PowerState::Running);
        assert_eq!(power_state(Some(DomainState::Paused)), PowerState::Paused);
        assert_eq!(power_state(Some(DomainState::Shutoff)), PowerState::Stopped);
        assert_eq!(power_state(Some(DomainState::Crashed)), PowerState::Stopped);
        assert_eq!(power_state(None), PowerState::Stopped);
    }
}
