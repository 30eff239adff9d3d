//! libvirt domain XML generated from a `VmSpec`, and where a VM's files live.
//!
//! A KVM domain named by the VM's UUID, with its vCPUs and memory, the root volume as a virtio
//! disk and data volumes on a virtio-scsi controller (all qcow2; SCSI disks hot-unplug without
//! the guest's help, which a PCI virtio disk needs), the first serial port written to a console log file (appended to, so it survives
//! restarts and migration on shared storage), and no graphics.

use std::path::{Path, PathBuf};

use oxstack_hypervisor::{VmId, VmSpec, VolumeId, VolumeSpec};

/// The directory holding one VM's disks and console log.
pub fn vm_dir(data_dir: &Path, vm: VmId) -> PathBuf {
    data_dir.join(vm.to_string())
}

/// The file the VM's first serial port (COM1) is written to.
pub fn console_log_path(data_dir: &Path, vm: VmId) -> PathBuf {
    vm_dir(data_dir, vm).join("console.log")
}

/// The qcow2 file of one volume of a VM.
pub fn volume_path(data_dir: &Path, vm: VmId, volume: VolumeId) -> PathBuf {
    vm_dir(data_dir, vm).join(format!("{volume}.qcow2"))
}

/// The guest device name and bus of the disk at `index`: 0 (the root volume) is `vda` on
/// virtio, data volumes `sdb` ... `sdz` on SCSI.
pub fn target_dev(index: u32) -> Option<(String, &'static str)> {
    let letter = char::from_u32(u32::from(b'a') + index).filter(|c| c.is_ascii_lowercase())?;
    Some(if index == 0 {
        (format!("vd{letter}"), "virtio")
    } else {
        (format!("sd{letter}"), "scsi")
    })
}

/// Escapes text for an XML attribute or element.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\'', "&apos;")
        .replace('"', "&quot;")
}

/// The `<disk>` element of a volume (also what hot-plug attaches and detaches).
pub fn disk_xml(data_dir: &Path, vm: VmId, volume: &VolumeSpec) -> Option<String> {
    let (dev, bus) = target_dev(volume.device_index)?;
    let path = volume_path(data_dir, vm, volume.volume);
    Some(format!(
        "<disk type='file' device='disk'>\
           <driver name='qemu' type='qcow2' cache='none'/>\
           <source file='{}'/>\
           <target dev='{dev}' bus='{bus}'/>\
           <serial>{}</serial>\
         </disk>",
        escape(&path.to_string_lossy()),
        // The guest sees the volume UUID (without dashes, at most 20 characters) as the serial.
        &volume.volume.as_uuid().simple().to_string()[..20],
    ))
}

/// The full domain definition of a VM.
pub fn domain_xml(data_dir: &Path, spec: &VmSpec) -> Option<String> {
    let mut disks = disk_xml(data_dir, spec.vm, &spec.root_volume)?;
    for volume in &spec.data_volumes {
        disks.push_str(&disk_xml(data_dir, spec.vm, volume)?);
    }
    let console = escape(&console_log_path(data_dir, spec.vm).to_string_lossy());
    Some(format!(
        "<domain type='kvm'>\
           <name>{vm}</name>\
           <uuid>{vm}</uuid>\
           <title>{title}</title>\
           <memory unit='b'>{memory}</memory>\
           <vcpu>{cpus}</vcpu>\
           <os><type arch='x86_64'>hvm</type><boot dev='hd'/></os>\
           <features><acpi/></features>\
           <on_poweroff>destroy</on_poweroff>\
           <on_reboot>restart</on_reboot>\
           <on_crash>destroy</on_crash>\
           <devices>\
             <controller type='scsi' model='virtio-scsi'/>\
             {disks}\
             <serial type='file'><source path='{console}' append='on'/><target port='0'/></serial>\
             <video><model type='none'/></video>\
             <memballoon model='none'/>\
           </devices>\
         </domain>",
        vm = spec.vm,
        title = escape(&spec.name),
        memory = spec.memory_bytes,
        cpus = spec.cpus,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> VmSpec {
        VmSpec {
            vm: VmId::new_random(),
            name: "web <1> & 'two'".into(),
            cpus: 2,
            memory_bytes: 64 << 20,
            root_volume: VolumeSpec {
                volume: VolumeId::new_random(),
                size_bytes: 1 << 30,
                format: "qcow2".into(),
                backing_image_url: Some("file:///images/boot.img".into()),
                device_index: 0,
            },
            data_volumes: vec![VolumeSpec {
                volume: VolumeId::new_random(),
                size_bytes: 1 << 30,
                format: "qcow2".into(),
                backing_image_url: None,
                device_index: 1,
            }],
            nics: Vec::new(),
        }
    }

    #[test]
    fn the_domain_has_the_specs_resources_disks_and_console() {
        let s = spec();
        let xml = domain_xml(Path::new("/data"), &s).unwrap();
        assert!(xml.starts_with("<domain type='kvm'>"));
        assert!(xml.contains(&format!("<name>{}</name>", s.vm)));
        assert!(xml.contains("<memory unit='b'>67108864</memory>"));
        assert!(xml.contains("<vcpu>2</vcpu>"));
        assert!(xml.contains("<title>web &lt;1&gt; &amp; &apos;two&apos;</title>"));
        assert!(xml.contains(&format!("/data/{}/{}.qcow2", s.vm, s.root_volume.volume)));
        assert!(xml.contains("<target dev='vda' bus='virtio'/>"));
        assert!(xml.contains("<target dev='sdb' bus='scsi'/>"));
        assert!(xml.contains(&format!("<source path='/data/{}/console.log' append='on'/>", s.vm)));
        assert!(xml.contains("<model type='none'/>"));
    }

    #[test]
    fn device_names_stop_at_z() {
        assert_eq!(target_dev(0), Some(("vda".to_string(), "virtio")));
        assert_eq!(target_dev(1), Some(("sdb".to_string(), "scsi")));
        assert_eq!(target_dev(25), Some(("sdz".to_string(), "scsi")));
        assert_eq!(target_dev(26), None);
    }
}
