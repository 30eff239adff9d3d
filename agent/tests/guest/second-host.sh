#!/bin/sh
# Runs a second libvirtd as a second "host" for the migration test, and execs it (so the caller
# holds its PID): its own network namespace NETNS (made by the caller), and private mount and UTS
# namespaces in which STATE_DIR's subdirectories replace libvirt's config, runtime, state, log and
# cache directories, the config carrying its own host_uuid and a TCP listener on LISTEN_ADDR.
# Usage: second-host.sh STATE_DIR LISTEN_ADDR HOST_UUID HOSTNAME   (run inside `ip netns exec`
# and `unshare --mount --uts --propagation private`).
set -eu
state=$1 addr=$2 uuid=$3 name=$4
for d in etc run lib log cache; do mkdir -p "$state/$d"; done
cp -a /etc/libvirt/. "$state/etc/"
cat >>"$state/etc/libvirtd.conf" <<CONF
# second test host
listen_tcp = 1
listen_tls = 0
auth_tcp = "none"
listen_addr = "$addr"
host_uuid = "$uuid"
CONF
# No virtlogd in this namespace: QEMU writes its own log file.
echo 'stdio_handler = "file"' >>"$state/etc/qemu.conf"
mount --bind "$state/etc" /etc/libvirt
mount --bind "$state/run" /run/libvirt
mount --bind "$state/lib" /var/lib/libvirt
mount --bind "$state/log" /var/log/libvirt
mount --bind "$state/cache" /var/cache/libvirt
hostname "$name"
exec libvirtd --listen -f /etc/libvirt/libvirtd.conf
