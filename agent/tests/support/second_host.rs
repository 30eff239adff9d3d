//! A second KVM "host" on this machine for the migration test: its own libvirtd (own host UUID
//! and hostname) in network, mount and UTS namespaces this test creates, reached over a veth pair
//! (10.99.0.1 here, 10.99.0.2 there). Everything is torn down when dropped.

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// This side's address on the veth pair.
pub const LOCAL_ADDR: &str = "10.99.0.1";
/// The second host's address.
pub const REMOTE_ADDR: &str = "10.99.0.2";
/// The second host's libvirt, as seen from here.
pub const REMOTE_URI: &str = "qemu+tcp://10.99.0.2/system";

/// The second host's libvirtd and namespaces.
pub struct SecondHost {
    netns: String,
    veth: String,
    libvirtd: Child,
}

fn sh(cmd: &[&str]) -> Result<(), String> {
    let out = Command::new(cmd[0]).args(&cmd[1..]).output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// `None` when the namespace tools are there; otherwise what is missing.
pub fn unavailable() -> Option<String> {
    ["ip", "unshare", "nsenter"]
        .into_iter()
        .find(|t| Command::new(t).arg("-V").output().is_err())
        .map(|t| format!("`{t}` is not installed"))
}

impl SecondHost {
    /// Creates the namespaces and starts the second libvirtd with its state under `state_dir`.
    pub fn start(state_dir: &Path) -> Result<Self, String> {
        let n = std::process::id() % 100_000;
        let (netns, veth, peer) = (format!("oxmig{n}"), format!("oxa{n}"), format!("oxb{n}"));
        sh(&["ip", "netns", "add", &netns])?;
        let inside = |args: &[&str]| {
            let mut all = vec!["ip", "netns", "exec", netns.as_str()];
            all.extend_from_slice(args);
            sh(&all)
        };
        let setup = sh(&["ip", "link", "add", &veth, "type", "veth", "peer", "name", &peer])
            .and_then(|_| sh(&["ip", "link", "set", &peer, "netns", &netns]))
            .and_then(|_| sh(&["ip", "addr", "add", &format!("{LOCAL_ADDR}/24"), "dev", &veth]))
            .and_then(|_| sh(&["ip", "link", "set", &veth, "up"]))
            .and_then(|_| {
                inside(&["ip", "addr", "add", &format!("{REMOTE_ADDR}/24"), "dev", &peer])
            })
            .and_then(|_| inside(&["ip", "link", "set", &peer, "up"]))
            .and_then(|_| inside(&["ip", "link", "set", "lo", "up"]));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/guest/second-host.sh");
        let spawned = setup.and_then(|_| {
            Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &netns,
                    "unshare",
                    "--mount",
                    "--uts",
                    "--propagation",
                    "private",
                    "sh",
                ])
                .arg(&script)
                .arg(state_dir)
                .args([REMOTE_ADDR, "0a5ec0de-0000-4000-8000-000000000002", "oxhost2"])
                .stdout(
                    std::fs::File::create(state_dir.join("libvirtd.out"))
                        .map_err(|e| e.to_string())?,
                )
                .stderr(
                    std::fs::File::create(state_dir.join("libvirtd.err"))
                        .map_err(|e| e.to_string())?,
                )
                .spawn()
                .map_err(|e| format!("starting the second libvirtd: {e}"))
        });
        let libvirtd = match spawned {
            Ok(child) => child,
            Err(e) => {
                let _ = sh(&["ip", "netns", "del", &netns]);
                let _ = sh(&["ip", "link", "del", &veth]);
                return Err(e);
            }
        };
        let host = Self { netns, veth, libvirtd };
        // The first start of a libvirtd probes QEMU (about 8 s).
        let deadline = Instant::now() + Duration::from_secs(90);
        while Instant::now() < deadline {
            let (ok, name) = super::kvm::virsh(REMOTE_URI, &["hostname"]);
            if ok && name == "oxhost2" {
                return Ok(host);
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        let err = std::fs::read_to_string(state_dir.join("libvirtd.err")).unwrap_or_default();
        let tail: Vec<&str> = err.lines().rev().take(10).collect();
        Err(format!(
            "the second libvirtd did not answer within 90 s; its stderr ends: {:?}",
            tail.into_iter().rev().collect::<Vec<_>>()
        ))
    }

    /// The PID of the second libvirtd (to enter its namespaces with `nsenter`).
    pub fn pid(&self) -> u32 {
        self.libvirtd.id()
    }

    /// The prefix that runs a command in the second host's namespaces.
    pub fn enter(&self) -> Vec<String> {
        let pid = self.pid().to_string();
        ["nsenter", "-t", &pid, "-m", "-u", "-n"].iter().map(|s| s.to_string()).collect()
    }
}

impl Drop for SecondHost {
    fn drop(&mut self) {
        let _ = self.libvirtd.kill();
        let _ = self.libvirtd.wait();
        let _ = sh(&["ip", "netns", "del", &self.netns]);
        let _ = sh(&["ip", "link", "del", &self.veth]);
    }
}
