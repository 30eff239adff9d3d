#!/usr/bin/env bash
# KVM test support, sourced by ci/test.sh (or run: `ci/kvm.sh install|start|stop`).
#   kvm_install  installs QEMU, libvirt (daemon, clients, headers for the `virt` crate),
#                pkg-config and binutils when missing. Must run before the workspace is built.
#   kvm_start    lets libvirt's QEMU use /dev/kvm (QEMU runs as root), starts virtlogd and libvirtd
#                unless they already run, and waits until libvirt answers.
#   kvm_stop     stops the daemons kvm_start started, by PID.
# The KVM tests (agent/tests/kvm_*.rs) run whenever /dev/kvm exists and say SKIPPED otherwise.

kvm_packages="qemu-system-x86 libvirt-daemon-system libvirt-clients libvirt-dev pkg-config binutils"
kvm_started_pids=()

kvm_install() {
  local missing=()
  for p in $kvm_packages; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    echo "kvm: packages already installed"
    return 0
  fi
  echo "kvm: installing ${missing[*]}"
  apt-get update -qq
  # The preinstalled qemu-utils 10.x (backports) conflicts with bookworm's qemu-system 7.2.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --allow-downgrades \
    qemu-utils/bookworm "${missing[@]}" >/dev/null
}

kvm_start() {
  if [ ! -e /dev/kvm ]; then
    echo "kvm: no /dev/kvm; the KVM tests will skip"
    return 0
  fi
  local conf=/etc/libvirt/qemu.conf
  if ! grep -q '^# oxstack-ci' "$conf"; then
    # QEMU as root so it can open /dev/kvm (root-only here) and the tests' files.
    printf '# oxstack-ci\nuser = "root"\ngroup = "root"\ndynamic_ownership = 0\nsecurity_driver = "none"\n' >>"$conf"
  fi
  mkdir -p /run/libvirt /var/log/libvirt
  if ! pgrep -x virtlogd >/dev/null; then
    virtlogd -d -p /run/oxstack-virtlogd.pid
    kvm_started_pids+=("$(cat /run/oxstack-virtlogd.pid)")
  fi
  if ! pgrep -x libvirtd >/dev/null; then
    libvirtd -d -p /run/oxstack-libvirtd.pid
    kvm_started_pids+=("$(cat /run/oxstack-libvirtd.pid)")
  fi
  # The first start probes QEMU's capabilities (about 8 s).
  for _ in $(seq 1 60); do
    virsh -c qemu:///system version >/dev/null 2>&1 && { echo "kvm: libvirt is up"; return 0; }
    sleep 1
  done
  echo "kvm: libvirtd did not answer within 60 s" >&2
  return 1
}

kvm_stop() {
  local pid
  for pid in "${kvm_started_pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  kvm_started_pids=()
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  case "${1:-}" in
    install) kvm_install ;;
    start) kvm_start; echo "started: ${kvm_started_pids[*]:-none}" ;;
    stop) for f in /run/oxstack-libvirtd.pid /run/oxstack-virtlogd.pid; do
            [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
          done ;;
    *) echo "usage: ci/kvm.sh install|start|stop" >&2; exit 2 ;;
  esac
fi
