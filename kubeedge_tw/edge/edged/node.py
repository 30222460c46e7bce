"""The Node this edge registers and the v1.NodeStatus it reports (reference 5, 2.11).

:func:`_thd_node_facts` reads the machine (``/proc``, ``/etc/os-release``, the interface
address) on edged's pool; :func:`node_status` and :func:`node_object` turn the facts,
the runtime's answer and the image filesystem's usage into KubeEdge's shapes: capacity
and allocatable (memory minus 100 Mi, pods 110), addresses InternalIP + Hostname,
nodeInfo, ``daemonEndpoints.kubeletEndpoint.Port`` 10350, and the conditions Ready
(``EdgeReady``/``EdgeNotReady``), MemoryPressure, DiskPressure and PIDPressure.
"""

import fcntl
import os
import socket
import struct
from dataclasses import dataclass

__all__ = ["NodeFacts", "_thd_node_facts", "node_status", "node_object", "kubelet_version",
           "interface_address", "go_arch", "EDGE_ROLE_LABEL", "AGENT_ROLE_LABEL",
           "MAX_PODS", "KUBELET_PORT"]

EDGE_ROLE_LABEL = "node-role.kubernetes.io/edge"
AGENT_ROLE_LABEL = "node-role.kubernetes.io/agent"
MAX_PODS = 110
KUBELET_PORT = 10350
#: Memory kept back from pods (KubeEdge edged's reservation) and the eviction signals
#: kubelet defaults to: memory.available < 100Mi, nodefs.available < 10 %.
MEMORY_RESERVE = 100 * 1024 * 1024
MEMORY_PRESSURE_BELOW = 100 * 1024 * 1024
DISK_PRESSURE_PERCENT = 90.0
_SIOCGIFADDR = 0x8915
_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
         "armv7l": "arm", "armv6l": "arm", "armv8l": "arm", "i386": "386", "i686": "386",
         "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64", "mips64": "mips64le"}


@dataclass(frozen=True)
class NodeFacts:
    """What the machine says about itself."""

    cpus: int
    memory_total: int
    memory_available: int
    kernel: str
    os_image: str
    arch: str
    machine_id: str
    system_uuid: str
    boot_id: str
    ip: str


def go_arch(machine):
    """Go's GOARCH name for ``uname -m`` (what Kubernetes reports)."""
    return _ARCH.get(machine, machine)


def interface_address(name):
    """The IPv4 address of network interface ``name``, or "" when it has none."""
    if not name:
        return ""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            packed = fcntl.ioctl(s.fileno(), _SIOCGIFADDR,
                                 struct.pack("256s", name[:15].encode("utf-8")))
    except OSError:
        return ""
    return socket.inet_ntoa(packed[20:24])


def _read(path, default=""):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return default


def _meminfo():
    values = {}
    for line in _read("/proc/meminfo").splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            values[key] = int(parts[0]) * 1024
    return values


def _os_image():
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip('"')
    return "Linux"


def _thd_node_facts(interface_name="eth0", node_ip="", memory_fallback=7852396000):
    """Read the machine's facts (a blocking function: run it on the pool)."""
    memory = _meminfo()
    total = memory.get("MemTotal") or memory_fallback
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return NodeFacts(
        cpus=cpus, memory_total=total,
        memory_available=memory.get("MemAvailable", total),
        kernel=os.uname().release, os_image=_os_image(), arch=go_arch(os.uname().machine),
        machine_id=_read("/etc/machine-id"),
        system_uuid=_read("/sys/class/dmi/id/product_uuid"),
        boot_id=_read("/proc/sys/kernel/random/boot_id"),
        ip=node_ip or interface_address(interface_name) or "127.0.0.1")


def kubelet_version(configured=""):
    """The kubelet version edged reports: ``modules.edged.version`` or
    ``v1.26.15-kubeedge-tw-<version>``."""
    if configured:
        return configured
    from kubeedge_tw import __version__
    return "v1.26.15-kubeedge-tw-{}".format(__version__)


def _condition(kind, ok_status, now, previous, reason, message):
    before = previous.get(kind)
    since = before["lastTransitionTime"] if before and before.get("status") == ok_status \
        and before.get("lastTransitionTime") else now
    return {"type": kind, "status": ok_status, "lastHeartbeatTime": now,
            "lastTransitionTime": since, "reason": reason, "message": message}


def _ki(value):
    return "{}Ki".format(max(0, value) // 1024)


def node_status(facts, node_name, now, *, runtime_version=None, runtime_error="",
                fs_usage=None, version="", previous_conditions=(), max_pods=MAX_PODS):
    """The v1.NodeStatus for ``facts``; ``runtime_version`` None means the runtime did
    not answer (``runtime_error`` says why): the node is NotReady."""
    previous = {c.get("type"): c for c in previous_conditions or () if isinstance(c, dict)}
    capacity = {"cpu": str(facts.cpus), "memory": _ki(facts.memory_total),
                "pods": str(max_pods)}
    allocatable = {"cpu": str(facts.cpus), "memory": _ki(facts.memory_total - MEMORY_RESERVE),
                   "pods": str(max_pods)}
    if fs_usage is not None and fs_usage.capacity:
        capacity["ephemeral-storage"] = _ki(fs_usage.capacity)
        allocatable["ephemeral-storage"] = _ki(fs_usage.capacity)
    if runtime_version is not None:
        ready = _condition("Ready", "True", now, previous, "EdgeReady",
                           "edge is posting ready status")
    else:
        ready = _condition("Ready", "False", now, previous, "EdgeNotReady",
                           "container runtime is down: {}".format(runtime_error or
                                                                  "no answer"))
    if facts.memory_available < MEMORY_PRESSURE_BELOW:
        memory = _condition("MemoryPressure", "True", now, previous,
                            "KubeletHasInsufficientMemory",
                            "kubelet has insufficient memory available")
    else:
        memory = _condition("MemoryPressure", "False", now, previous,
                            "KubeletHasSufficientMemory",
                            "kubelet has sufficient memory available")
    if fs_usage is not None and fs_usage.used_percent > DISK_PRESSURE_PERCENT:
        disk = _condition("DiskPressure", "True", now, previous, "KubeletHasDiskPressure",
                          "kubelet has disk pressure")
    else:
        disk = _condition("DiskPressure", "False", now, previous, "KubeletHasNoDiskPressure",
                          "kubelet has no disk pressure")
    pid = _condition("PIDPressure", "False", now, previous, "KubeletHasSufficientPID",
                     "kubelet has sufficient PID available")
    return {
        "capacity": capacity,
        "allocatable": allocatable,
        "phase": "Running",
        "conditions": [ready, memory, disk, pid],
        "addresses": [{"type": "InternalIP", "address": facts.ip},
                      {"type": "Hostname", "address": node_name}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": KUBELET_PORT}},
        "nodeInfo": {
            "machineID": facts.machine_id,
            "systemUUID": facts.system_uuid,
            "bootID": facts.boot_id,
            "kernelVersion": facts.kernel,
            "osImage": facts.os_image,
            "containerRuntimeVersion": "docker://{}".format(runtime_version or "unknown"),
            "kubeletVersion": kubelet_version(version),
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": facts.arch,
        },
    }


def node_object(node_name, status, arch):
    """The v1.Node edged registers (v1.15 edgecore's shape: no kind/apiVersion)."""
    return {
        "metadata": {
            "name": node_name,
            "labels": {
                "kubernetes.io/hostname": node_name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": arch,
                "beta.kubernetes.io/os": "linux",
                "beta.kubernetes.io/arch": arch,
                EDGE_ROLE_LABEL: "",
                AGENT_ROLE_LABEL: "",
            },
        },
        "spec": {},
        "status": status,
    }
