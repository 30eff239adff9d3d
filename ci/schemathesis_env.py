#!/usr/bin/env python3
"""Builds a small cloud through the API of a running `oxstack serve` (zone, simulator cluster,
hosts, storages, image, offerings, networks, VMs in several states) and writes a schemathesis
configuration whose dictionaries feed the UUIDs of these resources into the generated requests,
so that operations hit real resources as well as missing ones.

Usage: schemathesis_env.py BASE_URL STATIC_CONFIG CONFIG_OUT ADMIN_PASSWORD_FILE TOKEN_DIR

CONFIG_OUT is STATIC_CONFIG (the checked-in ci/schemathesis.toml) followed by the dictionaries.
It signs in as the node's first admin (whose password is in ADMIN_PASSWORD_FILE), makes a
tenant account (with quotas) and an `admin` user of it (who runs the account's users and
otherwise does what a member does), who makes a member of its account, a private image, a
private L3 network (on the admin's L2 network) with an IP range, and VMs of its own with them,
and writes each one's session token to TOKEN_DIR/admin and TOKEN_DIR/tenant (mode 0600) for the
two runs. The users' dictionary holds the tenant's member and the node's first admin (neither
run may delete the user it is signed in as: 409; the first admin is another account's user to
the tenant: 404).
The resources of both are in the dictionaries: the tenant's run hits its own, the shared ones
(a shared image or network it may use but not change: 403) and the admin's VMs, jobs and its
account's private image (404 to it); the admin's run hits the tenant's too.
"""

import json
import os
import sys
import time
import urllib.error
import urllib.request


TOKEN = None


def call(base, method, path, body=None, expect=(200, 201, 202, 204)):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    if TOKEN:
        req.add_header("Authorization", f"Bearer {TOKEN}")
    if method in ("POST", "PUT", "PATCH") or data is not None:
        # Every write says it is JSON, also with no body (the API answers 415 otherwise).
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            status, text = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read()
    if status not in expect:
        sys.exit(f"schemathesis_env: {method} {path} -> {status}: {text[:500]!r}")
    return json.loads(text) if text else None


def build(base):
    post = lambda path, body: call(base, "POST", path, body)
    ids = {}
    zone = post("/v1/zones", {"name": "z1", "description": "fuzzed"})["uuid"]
    cluster = post("/v1/clusters", {"zone_uuid": zone, "name": "c1", "hypervisor_type": "simulator"})["uuid"]
    hosts = [
        post("/v1/hosts", {"cluster_uuid": cluster, "name": f"h{i}", "management_ip": f"10.99.0.{i + 1}",
                           "cpus": 64, "memory_bytes": 256 << 30})["uuid"]
        for i in range(3)
    ]
    ps = post("/v1/primary-storages", {"zone_uuid": zone, "name": "ps1", "url": "/ps", "total_bytes": 1 << 50})["uuid"]
    post(f"/v1/clusters/{cluster}/primary-storages/{ps}", None)
    bs = post("/v1/backup-storages", {"zone_uuid": zone, "name": "bs1", "url": "/bs", "total_bytes": 1 << 50})["uuid"]
    image = post("/v1/images", {"backup_storage_uuid": bs, "name": "img", "format": "qcow2",
                                "size_bytes": 1 << 30, "url": "http://images/img.qcow2"})["uuid"]
    small = post("/v1/instance-offerings", {"name": "small", "cpus": 1, "memory_bytes": 1 << 30})["uuid"]
    large = post("/v1/instance-offerings", {"name": "large", "cpus": 4, "memory_bytes": 8 << 30})["uuid"]
    l2 = post("/v1/l2-networks", {"zone_uuid": zone, "name": "l2", "physical_interface": "eth0", "vlan": 10})["uuid"]
    post(f"/v1/clusters/{cluster}/l2-networks/{l2}", None)
    l3 = post("/v1/l3-networks", {"l2_network_uuid": l2, "name": "l3"})["uuid"]
    ip_range = post(f"/v1/l3-networks/{l3}/ip-ranges", {"name": "r1", "start_ip": "10.20.0.2", "end_ip": "10.20.255.254",
                                                       "netmask": "255.255.0.0", "gateway": "10.20.0.1"})["uuid"]
    # The admin account's own image, which no tenant sees.
    private = post("/v1/images", {"backup_storage_uuid": bs, "name": "admins", "format": "qcow2",
                                  "size_bytes": 1 << 30, "url": "http://images/admins.qcow2", "shared": False})
    assert private["shared"] is False, private
    vm = lambda name: post("/v1/vm-instances?wait=true", {"name": name, "instance_offering_uuid": small,
                                                          "image_uuid": image, "l3_network_uuids": [l3]})["uuid"]
    vms = [vm(f"vm{i}") for i in range(6)]
    post(f"/v1/vm-instances/{vms[1]}/stop?wait=true", {"mode": "force"})
    post(f"/v1/vm-instances/{vms[2]}/pause?wait=true", None)
    call(base, "DELETE", f"/v1/vm-instances/{vms[3]}?wait=true")
    jobs = [j["uuid"] for j in call(base, "GET", "/v1/jobs?limit=10")["items"]]
    ids.update(zones=[zone], clusters=[cluster], hosts=hosts, primary_storages=[ps], backup_storages=[bs],
               images=[image, private["uuid"]], offerings=[small, large], l2_networks=[l2], l3_networks=[l3],
               ip_ranges=[ip_range], vms=vms, jobs=jobs)
    return ids


# Path prefix of each collection -> the dictionary of its UUIDs.
COLLECTIONS = {
    "zones": "zones", "clusters": "clusters", "hosts": "hosts", "primary-storages": "primary_storages",
    "backup-storages": "backup_storages", "images": "images", "instance-offerings": "offerings",
    "l2-networks": "l2_networks", "l3-networks": "l3_networks", "ip-ranges": "ip_ranges",
    "vm-instances": "vms", "jobs": "jobs", "users": "users",
}
# Body and query fields that name a resource -> the dictionary of its UUIDs.
FIELDS = {
    "zone_uuid": "zones", "cluster_uuid": "clusters", "host_uuid": "hosts",
    "backup_storage_uuid": "backup_storages", "image_uuid": "images",
    "instance_offering_uuid": "offerings", "l2_network_uuid": "l2_networks",
    "l3_network_uuid": "l3_networks",
}


def toml_list(values):
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


def config(ids):
    lines = ["# Written by ci/schemathesis_env.py for one run: the UUIDs of the built environment.", ""]
    for name, values in ids.items():
        lines += [f"[dictionaries.{name}]", f"values = {toml_list(values)}", ""]
    lines.append("[parameters]")
    for field, dictionary in FIELDS.items():
        for location in ("body", "query"):
            lines.append(f'"{location}.{field}" = {{ dictionary = "{dictionary}", probability = 0.85 }}')
    lines.append(f'"body.l3_network_uuids[*]" = {{ dictionary = "l3_networks", probability = 0.85 }}')
    lines.append('"path.ps_uuid" = { dictionary = "primary_storages", probability = 0.7 }')
    lines.append('"path.l2_uuid" = { dictionary = "l2_networks", probability = 0.7 }')
    lines.append("")
    for prefix, dictionary in COLLECTIONS.items():
        lines += ["[[operations]]", f'include-path-regex = "^/v1/{prefix}/\\\\{{uuid\\\\}}"',
                  f'parameters = {{ "path.uuid" = {{ dictionary = "{dictionary}", probability = 0.7 }} }}', ""]
    return "\n".join(lines)


def sign_in(base, name, password):
    return call(base, "POST", "/v1/sessions", {"name": name, "password": password})["token"]


def write_token(directory, name, token):
    path = os.path.join(directory, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token)


def main():
    global TOKEN
    base, static, out, password_file, token_dir = sys.argv[1:6]
    with open(password_file) as f:
        admin_password = f.read().strip()
    TOKEN = sign_in(base, "admin", admin_password)
    write_token(token_dir, "admin", TOKEN)
    ids = build(base)
    tenant = call(base, "POST", "/v1/accounts", {"name": "fuzzed-tenant", "quotas": {"max_vms": 40}})["uuid"]
    tenant_password = "the fuzzed tenant admin's password"
    call(base, "POST", "/v1/users", {"name": "tenant-admin", "password": tenant_password, "role": "admin",
                                     "account_uuid": tenant})
    first_admin = call(base, "GET", "/v1/users?name=admin")["items"][0]["uuid"]
    TOKEN = sign_in(base, "tenant-admin", tenant_password)
    write_token(token_dir, "tenant", TOKEN)
    member = call(base, "POST", "/v1/users", {"name": "member", "password": tenant_password, "role": "member"})
    assert member["account_uuid"] == tenant, member
    ids["users"] = [member["uuid"], first_admin]
    # The tenant's own image and L3 network (with a range), used by its VMs, so that neither
    # run can delete them (409); a range in a subnet of its own, apart from the admin's.
    image = call(base, "POST", "/v1/images", {
        "backup_storage_uuid": ids["backup_storages"][0], "name": "tenant-img", "format": "qcow2",
        "size_bytes": 1 << 30, "url": "http://images/tenant.qcow2"})
    l3 = call(base, "POST", "/v1/l3-networks", {"l2_network_uuid": ids["l2_networks"][0], "name": "tenant-l3"})
    assert (image["shared"], l3["shared"]) == (False, False), (image, l3)
    ip_range = call(base, "POST", f"/v1/l3-networks/{l3['uuid']}/ip-ranges", {
        "name": "tenant-r1", "start_ip": "10.30.0.2", "end_ip": "10.30.0.250", "netmask": "255.255.0.0",
        "gateway": "10.30.0.1"})["uuid"]
    ids["images"].append(image["uuid"])
    ids["l3_networks"].append(l3["uuid"])
    ids["ip_ranges"].append(ip_range)
    for i, (vm_image, l3s) in enumerate([(image["uuid"], [l3["uuid"]]), (ids["images"][0], ids["l3_networks"])]):
        ids["vms"].append(call(base, "POST", "/v1/vm-instances?wait=true", {
            "name": f"tenant-vm{i}", "instance_offering_uuid": ids["offerings"][0],
            "image_uuid": vm_image, "l3_network_uuids": l3s})["uuid"])
    with open(static) as f:
        text = f.read()
    with open(out, "w") as f:
        f.write(text + "\n" + config(ids))
    print(f"schemathesis_env: built {sum(len(v) for v in ids.values())} resources; config in {out}")


if __name__ == "__main__":
    main()
