//! For the KVM tests: whether they can run, the tiny BIOS guest they boot, and `virsh`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// `None` when the KVM tests can run here; otherwise why not (they then say SKIPPED).
pub fn unavailable() -> Option<String> {
    if !Path::new("/dev/kvm").exists() {
        return Some("/dev/kvm does not exist".into());
    }
    for tool in ["as", "ld", "virsh", "qemu-img"] {
        if Command::new(tool).arg("--version").output().is_err() {
            return Some(format!("`{tool}` is not installed (ci/kvm.sh installs it)"));
        }
    }
    None
}

/// Assembles `tests/guest/boot.S` into a 1 MiB raw disk image in `dir`: a boot sector that
/// prints [`MARKER`] on COM1, then `heartbeat NNNN` lines forever.
pub fn guest_image(dir: &Path) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/guest/boot.S");
    let (object, flat, image) = (dir.join("boot.o"), dir.join("boot.bin"), dir.join("boot.img"));
    run("as", &["--32", "-o", &s(&object), &s(&source)]);
    run(
        "ld",
        &[
            "-m",
            "elf_i386",
            "-Ttext",
            "0x7c00",
            "--oformat",
            "binary",
            "-e",
            "_start",
            "-o",
            &s(&flat),
            &s(&object),
        ],
    );
    let mut sector = std::fs::read(&flat).expect("boot sector");
    assert_eq!(sector.len(), 512, "the boot sector is one sector");
    assert_eq!(&sector[510..], &[0x55, 0xaa], "boot signature");
    sector.resize(1 << 20, 0);
    std::fs::write(&image, sector).expect("guest image");
    image
}

/// What the guest prints first.
pub const MARKER: &str = "OXSTACK-GUEST-UP";

fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn run(tool: &str, args: &[&str]) -> String {
    let out = Command::new(tool).args(args).output().unwrap_or_else(|e| panic!("{tool}: {e}"));
    assert!(out.status.success(), "{tool} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `virsh -c URI args`; returns (success, stdout + stderr).
pub fn virsh(uri: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new("virsh").arg("-c").arg(uri).args(args).output().expect("virsh runs");
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text.trim().to_string())
}

/// The domain's state as virsh prints it (`running`, `paused`, `shut off`), or the error.
pub fn domstate(uri: &str, vm: &str) -> String {
    virsh(uri, &["domstate", vm]).1
}

/// The console log's text ("" while it does not exist).
pub fn console(log: &Path) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}

/// How many heartbeat lines the console log holds.
pub fn heartbeats(log: &Path) -> usize {
    console(log).matches("heartbeat ").count()
}

/// Waits until the console log holds more heartbeats than `after` (the guest really runs).
pub async fn heartbeat_after(log: &Path, after: usize) -> bool {
    super::eventually(Duration::from_secs(30), || async { (heartbeats(log) > after).then_some(()) })
        .await
        .is_some()
}

/// Destroys and expunges a VM through the API, then checks that libvirt at `uri` has no domain
/// for it and that no file of it is left in the agent's data directory.
pub async fn destroy_and_expunge(api: &super::Api, uri: &str, vm: &str, data_dir: &Path) {
    use reqwest::Method;
    let path = format!("/v1/vm-instances/{vm}");
    let (status, body) = api.call(Method::DELETE, &format!("{path}?wait=true"), None).await;
    assert!(status < 300, "destroy: {body}");
    let (status, body) = api.call(Method::POST, &format!("{path}/expunge?wait=true"), None).await;
    assert!(status < 300, "expunge: {body}");
    let (exists, out) = virsh(uri, &["dominfo", vm]);
    assert!(!exists, "no domain is left at {uri}: {out}");
    assert!(!data_dir.join(vm).exists(), "no disk file is left");
}
