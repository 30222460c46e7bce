"""Reading a v1.Pod into what edged runs, with every problem turned into a readable reason.

The cloud's API server validates pods, but an edge must not trust that (an old or foreign
cloud, a hand-written row in the edge database): :func:`parse_pod` never raises for a bad
spec. A problem that concerns the whole pod (no containers, an unsupported volume type, init
containers) becomes :attr:`PodSpec.error`; one that concerns a container (an image name
Docker cannot parse, an invalid quantity, hostPort != containerPort) becomes that
container's :attr:`ContainerSpec.error`. Each is a ``(reason, message)`` pair shown as the
container's ``waiting`` state, with kubelet's reasons where kubelet has one
(``InvalidImageName``, ``CreateContainerConfigError``).
"""

import hashlib
import json
import re
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, Decimal, InvalidOperation

__all__ = [
    "PodSpec", "ContainerSpec", "Mount", "parse_pod", "parse_image_reference",
    "default_pull_policy", "parse_quantity", "memory_bytes", "millicores", "container_hash",
    "PodIdentityError", "SUPPORTED_VOLUME_TYPES", "INVALID_IMAGE_NAME", "CONFIG_ERROR",
    "ALWAYS", "ON_FAILURE", "NEVER",
]

#: Container waiting reasons (kubelet's words).
INVALID_IMAGE_NAME = "InvalidImageName"
CONFIG_ERROR = "CreateContainerConfigError"

ALWAYS, ON_FAILURE, NEVER = "Always", "OnFailure", "Never"
RESTART_POLICIES = (ALWAYS, ON_FAILURE, NEVER)
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
DEFAULT_GRACE_PERIOD = 30

#: Volume sources edged can set up, and what each projected volume may hold.
SUPPORTED_VOLUME_TYPES = ("configMap", "secret", "emptyDir", "hostPath", "downwardAPI",
                          "projected")
PROJECTED_SOURCES = ("configMap", "secret", "downwardAPI", "serviceAccountToken")
HOST_PATH_TYPES = ("", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket",
                   "CharDevice", "BlockDevice")
#: Every other volume source Kubernetes knows, named in the error for a clear message.
_KNOWN_VOLUME_KEYS = SUPPORTED_VOLUME_TYPES + (
    "persistentVolumeClaim", "nfs", "iscsi", "glusterfs", "rbd", "cephfs", "cinder", "fc",
    "flexVolume", "flocker", "azureFile", "azureDisk", "vsphereVolume", "quobyte",
    "photonPersistentDisk", "portworxVolume", "scaleIO", "storageos", "csi", "ephemeral",
    "gcePersistentDisk", "awsElasticBlockStore", "gitRepo")

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class PodIdentityError(ValueError):
    """The content is not a pod edged can even name (not an object, no name)."""


# -- quantities ----------------------------------------------------------------------------------

_QUANTITY = re.compile(
    r"^(?P<num>[+-]?(?:\d+(?:\.\d*)?|\.\d+))"
    r"(?:(?P<exp>[eE][+-]?\d+)|(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E))?$")
_SUFFIXES = {
    "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40, "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60,
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "k": Decimal("1e3"),
    "M": Decimal("1e6"), "G": Decimal("1e9"), "T": Decimal("1e12"), "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}


def parse_quantity(value):
    """A Kubernetes quantity (``128Mi``, ``0.5``, ``500m``, ``1e3``, or a number) as a
    ``Decimal``; ``ValueError`` with a reason for anything else or a negative value."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError("must be a quantity such as 128Mi or 500m, got {!r}".format(value))
    text = str(value).strip()
    match = _QUANTITY.match(text)
    if not match:
        raise ValueError("{!r} is not a quantity (e.g. 128Mi, 1G, 500m, 0.5)".format(text))
    try:
        number = Decimal(match.group("num"))
        if match.group("exp"):
            number = number * (Decimal(10) ** int(match.group("exp")[1:]))
        elif match.group("suffix"):
            number = number * _SUFFIXES[match.group("suffix")]
    except (InvalidOperation, OverflowError):
        raise ValueError("{!r} is out of range".format(text)) from None
    if number < 0:
        raise ValueError("{!r} must not be negative".format(text))
    return number


def memory_bytes(value):
    """A memory quantity in whole bytes (rounded up)."""
    return int(parse_quantity(value).to_integral_value(rounding=ROUND_CEILING))


def millicores(value):
    """A CPU quantity in millicores (rounded up)."""
    return int((parse_quantity(value) * 1000).to_integral_value(rounding=ROUND_CEILING))


# -- image references ----------------------------------------------------------------------------

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = re.compile(r"^{a}(?:{s}{a})*$".format(a=_ALNUM, s=_SEPARATOR))
_DOMAIN = re.compile(r"^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
                     r"(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*(?::[0-9]+)?$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST = re.compile(r"^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$")


def parse_image_reference(reference):
    """Split an image reference into ``(name, tag, digest)`` by Docker's grammar
    (distribution/reference); ``ValueError`` saying what is wrong otherwise."""
    if not isinstance(reference, str) or not reference.strip():
        raise ValueError("image name is empty")
    if reference != reference.strip() or any(c.isspace() for c in reference):
        raise ValueError("image name {!r} contains white space".format(reference))
    rest, digest = reference, ""
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not _DIGEST.match(digest):
            raise ValueError("invalid digest {!r} in image name {!r}".format(digest, reference))
    name, tag = rest, ""
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        name, tag = rest[:colon], rest[colon + 1:]
        if not _TAG.match(tag):
            raise ValueError("invalid tag {!r} in image name {!r}".format(tag, reference))
    if not name or len(name) > 255:
        raise ValueError("invalid image name {!r}".format(reference))
    components = name.split("/")
    first = components[0]
    if len(components) > 1 and ("." in first or ":" in first or first == "localhost"
                                 or first != first.lower()):
        if not _DOMAIN.match(first):
            raise ValueError("invalid registry host {!r} in image name {!r}".format(
                first, reference))
        components = components[1:]
    for part in components:
        if not _PATH_COMPONENT.match(part):
            raise ValueError("invalid reference format: repository name {!r} in {!r} must be "
                             "lowercase letters, digits and separators".format(part, reference))
    return name, tag, digest


def default_pull_policy(reference):
    """Kubernetes' default: ``Always`` for ``:latest`` or no tag, else ``IfNotPresent``."""
    _, tag, digest = parse_image_reference(reference)
    if digest:
        return "IfNotPresent"
    return "Always" if tag in ("", "latest") else "IfNotPresent"


# -- spec values ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Mount:
    """One volumeMount."""

    volume: str
    path: str
    read_only: bool = False
    sub_path: str = ""


@dataclass
class ContainerSpec:
    """One container of a pod, as edged will run it."""

    name: str
    raw: dict
    image: str = ""
    pull_policy: str = "IfNotPresent"
    hash: str = ""
    mounts: list = field(default_factory=list)
    liveness: dict = None
    readiness: dict = None
    mem_limit: int = None
    nano_cpus: int = None
    cpu_shares: int = None
    privileged: bool = False
    ports: dict = field(default_factory=dict)
    #: ``(reason, message)`` when this container cannot be run as specified.
    error: tuple = None


@dataclass
class PodSpec:
    """A pod, as edged will run it."""

    namespace: str
    name: str
    uid: str
    restart_policy: str = ALWAYS
    grace_period: int = DEFAULT_GRACE_PERIOD
    containers: list = field(default_factory=list)
    volumes: dict = field(default_factory=dict)
    #: ``(reason, message)`` when the pod as a whole cannot be run.
    error: tuple = None

    def container(self, name):
        """The :class:`ContainerSpec` called ``name``, or None."""
        for spec in self.containers:
            if spec.name == name:
                return spec
        return None


def container_hash(container):
    """A stable hash of a container's spec: a change means the container is recreated."""
    text = json.dumps(container, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _synthetic_uid(namespace, name):
    return "nouid-" + hashlib.sha256("{}/{}".format(namespace, name).encode()).hexdigest()[:16]


def parse_pod(pod):
    """A :class:`PodSpec` for the v1.Pod dict ``pod``; raises only
    :class:`PodIdentityError` when the pod has no usable name."""
    if not isinstance(pod, dict):
        raise PodIdentityError("pod content must be an object, got {}".format(
            type(pod).__name__))
    meta = pod.get("metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) \
            or not meta.get("name"):
        raise PodIdentityError("pod has no metadata.name")
    namespace = meta.get("namespace") or "default"
    if not isinstance(namespace, str):
        raise PodIdentityError("pod {} has a bad metadata.namespace".format(meta["name"]))
    uid = meta.get("uid") if isinstance(meta.get("uid"), str) and meta.get("uid") else \
        _synthetic_uid(namespace, meta["name"])
    result = PodSpec(namespace=namespace, name=meta["name"], uid=uid)
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        result.error = (CONFIG_ERROR, "pod has no spec")
        return result
    problems = []
    policy = spec.get("restartPolicy") or ALWAYS
    if policy not in RESTART_POLICIES:
        problems.append("spec.restartPolicy: must be Always, OnFailure or Never, got {!r}"
                        .format(policy))
    else:
        result.restart_policy = policy
    grace = spec.get("terminationGracePeriodSeconds")
    if grace is not None:
        if isinstance(grace, bool) or not isinstance(grace, int) or grace < 0:
            problems.append("spec.terminationGracePeriodSeconds: must be a non-negative "
                            "integer, got {!r}".format(grace))
        else:
            result.grace_period = grace
    if spec.get("initContainers"):
        problems.append("spec.initContainers: init containers are not supported by this edge")
    problems.extend(_parse_volumes(spec.get("volumes"), result))
    containers = spec.get("containers")
    if not isinstance(containers, list) or not containers:
        problems.append("spec.containers: at least one container is required")
        containers = []
    seen = set()
    for index, container in enumerate(containers):
        where = "spec.containers[{}]".format(index)
        if not isinstance(container, dict):
            problems.append("{}: must be an object".format(where))
            continue
        name = container.get("name")
        if not isinstance(name, str) or not _DNS_LABEL.match(name):
            problems.append("{}.name: must be a DNS label (lowercase letters, digits, '-'), "
                            "got {!r}".format(where, name))
            continue
        if name in seen:
            problems.append("{}.name: duplicate container name {!r}".format(where, name))
            continue
        seen.add(name)
        result.containers.append(_parse_container(container, where, result))
    if problems:
        result.error = (CONFIG_ERROR, "; ".join(problems))
    return result


def _parse_volumes(volumes, result):
    """Fill ``result.volumes``; return the problems found."""
    if volumes is None:
        return []
    if not isinstance(volumes, list):
        return ["spec.volumes: must be a list"]
    problems = []
    for index, volume in enumerate(volumes):
        where = "spec.volumes[{}]".format(index)
        if not isinstance(volume, dict) or not isinstance(volume.get("name"), str) \
                or not volume.get("name"):
            problems.append("{}: must be an object with a name".format(where))
            continue
        name = volume["name"]
        sources = [k for k in volume if k != "name" and volume[k] is not None]
        if len(sources) != 1:
            problems.append("volume {!r}: must have exactly one source, got {}".format(
                name, ", ".join(sources) or "none"))
            continue
        kind = sources[0]
        if kind not in SUPPORTED_VOLUME_TYPES:
            problems.append("volume {!r}: unsupported volume type {} (this edge supports {})"
                            .format(name, kind if kind in _KNOWN_VOLUME_KEYS else repr(kind),
                                    ", ".join(SUPPORTED_VOLUME_TYPES)))
            continue
        source = volume[kind]
        if not isinstance(source, dict):
            problems.append("volume {!r}: {} must be an object".format(name, kind))
            continue
        problem = _check_volume_source(kind, source)
        if problem:
            problems.append("volume {!r}: {}".format(name, problem))
            continue
        result.volumes[name] = (kind, source)
    return problems


def _check_mode(value, what):
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0o777:
        return "{} must be a file mode between 0 and 0777 (511), got {!r}".format(what, value)
    return ""


def _check_items(items):
    if items is None:
        return ""
    if not isinstance(items, list):
        return "items must be a list"
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("key"), str) \
                or not isinstance(item.get("path"), str) or not item["path"]:
            return "each item needs a key and a path"
        if item["path"].startswith("/") or ".." in item["path"].split("/"):
            return "item path {!r} must be relative and must not contain '..'".format(
                item["path"])
        problem = _check_mode(item.get("mode"), "item mode")
        if problem:
            return problem
    return ""


def _check_volume_source(kind, source):
    """A message for a malformed volume source of a supported type, or ""."""
    if kind == "configMap":
        if not isinstance(source.get("name"), str) or not source.get("name"):
            return "configMap.name is required"
        return _check_items(source.get("items")) or _check_mode(source.get("defaultMode"),
                                                                "defaultMode")
    if kind == "secret":
        if not isinstance(source.get("secretName"), str) or not source.get("secretName"):
            return "secret.secretName is required"
        return _check_items(source.get("items")) or _check_mode(source.get("defaultMode"),
                                                                "defaultMode")
    if kind == "hostPath":
        path = source.get("path")
        if not isinstance(path, str) or not path.startswith("/"):
            return "hostPath.path must be an absolute path"
        if (source.get("type") or "") not in HOST_PATH_TYPES:
            return "hostPath.type {!r} is not one of {}".format(
                source.get("type"), ", ".join(t for t in HOST_PATH_TYPES if t))
        return ""
    if kind == "emptyDir":
        medium = source.get("medium") or ""
        if medium not in ("", "Memory"):
            return "emptyDir.medium must be \"\" or Memory, got {!r}".format(medium)
        return ""
    if kind == "downwardAPI":
        return _check_downward_items(source.get("items"))
    if kind == "projected":
        sources = source.get("sources")
        if not isinstance(sources, list):
            return "projected.sources must be a list"
        for entry in sources:
            keys = [k for k in (entry or {}) if entry[k] is not None] \
                if isinstance(entry, dict) else []
            if len(keys) != 1 or keys[0] not in PROJECTED_SOURCES:
                return "projected source {} is not supported (this edge supports {})".format(
                    ", ".join(keys) or "{}", ", ".join(PROJECTED_SOURCES))
            sub = entry[keys[0]]
            if not isinstance(sub, dict):
                return "projected {} must be an object".format(keys[0])
            if keys[0] in ("configMap", "secret"):
                if not isinstance(sub.get("name"), str) or not sub.get("name"):
                    return "projected {}.name is required".format(keys[0])
                problem = _check_items(sub.get("items"))
            elif keys[0] == "downwardAPI":
                problem = _check_downward_items(sub.get("items"))
            else:
                problem = ""
            if problem:
                return problem
        return _check_mode(source.get("defaultMode"), "defaultMode")
    return ""


def _check_downward_items(items):
    if items is None:
        return ""
    if not isinstance(items, list):
        return "downwardAPI items must be a list"
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("path"), str):
            return "each downwardAPI item needs a path"
        if not isinstance(item.get("fieldRef"), dict) and \
                not isinstance(item.get("resourceFieldRef"), dict):
            return "downwardAPI item {!r} needs a fieldRef or resourceFieldRef".format(
                item.get("path"))
    return ""


def _parse_container(container, where, pod):
    """A :class:`ContainerSpec`; its ``error`` holds the first problem found."""
    spec = ContainerSpec(name=container["name"], raw=container,
                         hash=container_hash(container))
    image = container.get("image")
    try:
        parse_image_reference(image)
    except ValueError as e:
        spec.error = (INVALID_IMAGE_NAME, "Failed to apply default image tag {!r}: couldn't "
                      "parse image reference {!r}: {}".format(image, image, e))
        return spec
    spec.image = image
    policy = container.get("imagePullPolicy") or default_pull_policy(image)
    if policy not in PULL_POLICIES:
        spec.error = (CONFIG_ERROR, "{}.imagePullPolicy: must be Always, IfNotPresent or "
                      "Never, got {!r}".format(where, policy))
        return spec
    spec.pull_policy = policy
    problems = []
    for key in ("command", "args"):
        value = container.get(key)
        if value is not None and (not isinstance(value, list)
                                  or not all(isinstance(v, str) for v in value)):
            problems.append("{}.{}: must be a list of strings".format(where, key))
    problems.extend(_parse_resources(container.get("resources"), where, spec))
    problems.extend(_parse_ports(container.get("ports"), where, spec))
    problems.extend(_parse_mounts(container.get("volumeMounts"), where, spec, pod))
    for kind in ("livenessProbe", "readinessProbe"):
        probe = container.get(kind)
        if probe is None:
            continue
        problem = _check_probe(probe)
        if problem:
            problems.append("{}.{}: {}".format(where, kind, problem))
        elif kind == "livenessProbe":
            spec.liveness = probe
        else:
            spec.readiness = probe
    security = container.get("securityContext")
    if isinstance(security, dict):
        spec.privileged = bool(security.get("privileged"))
    env = container.get("env")
    if env is not None and (not isinstance(env, list)
                            or not all(isinstance(e, dict) and isinstance(e.get("name"), str)
                                       for e in env)):
        problems.append("{}.env: must be a list of objects with a name".format(where))
    env_from = container.get("envFrom")
    if env_from is not None and not isinstance(env_from, list):
        problems.append("{}.envFrom: must be a list".format(where))
    if problems:
        spec.error = (CONFIG_ERROR, "; ".join(problems))
    return spec


def _parse_resources(resources, where, spec):
    if resources is None:
        return []
    if not isinstance(resources, dict):
        return ["{}.resources: must be an object".format(where)]
    problems, values = [], {}
    for section in ("limits", "requests"):
        entries = resources.get(section) or {}
        if not isinstance(entries, dict):
            problems.append("{}.resources.{}: must be an object".format(where, section))
            continue
        for resource, quantity in entries.items():
            try:
                if resource == "cpu":
                    values[(section, resource)] = millicores(quantity)
                elif resource in ("memory", "ephemeral-storage"):
                    values[(section, resource)] = memory_bytes(quantity)
                else:
                    parse_quantity(quantity)
            except ValueError as e:
                problems.append("invalid {}.resources.{}.{}: {}".format(
                    where, section, resource, e))
    for resource in ("cpu", "memory"):
        limit, request = values.get(("limits", resource)), values.get(("requests", resource))
        if limit is not None and request is not None and request > limit:
            problems.append("{}.resources.requests.{}: must be less than or equal to the {} "
                            "limit".format(where, resource, resource))
    if problems:
        return problems
    memory = values.get(("limits", "memory"))
    if memory is not None:
        if memory == 0:
            memory = None
        spec.mem_limit = memory
    cpu_limit = values.get(("limits", "cpu"))
    if cpu_limit:
        spec.nano_cpus = cpu_limit * 1000000
    cpu_request = values.get(("requests", "cpu"), cpu_limit)
    if cpu_request:
        # kubelet's MilliCPUToShares, minimum 2.
        spec.cpu_shares = max(2, cpu_request * 1024 // 1000)
    return []


def _parse_ports(ports, where, spec):
    if ports is None:
        return []
    if not isinstance(ports, list):
        return ["{}.ports: must be a list".format(where)]
    problems = []
    for index, port in enumerate(ports):
        here = "{}.ports[{}]".format(where, index)
        if not isinstance(port, dict):
            problems.append("{}: must be an object".format(here))
            continue
        number = port.get("containerPort")
        if isinstance(number, bool) or not isinstance(number, int) or not 0 < number < 65536:
            problems.append("{}.containerPort: must be a port number, got {!r}".format(
                here, number))
            continue
        host = port.get("hostPort")
        if host not in (None, 0) and host != number:
            # Pods share the node's network (reference 5, Networking): a container can
            # only be reached on the port it listens on.
            problems.append("{}.hostPort: must equal containerPort ({}) with host "
                            "networking, got {!r}".format(here, number, host))
            continue
        if isinstance(port.get("name"), str) and port["name"]:
            spec.ports[port["name"]] = number
    return problems


def _parse_mounts(mounts, where, spec, pod):
    if mounts is None:
        return []
    if not isinstance(mounts, list):
        return ["{}.volumeMounts: must be a list".format(where)]
    problems = []
    for index, mount in enumerate(mounts):
        here = "{}.volumeMounts[{}]".format(where, index)
        if not isinstance(mount, dict):
            problems.append("{}: must be an object".format(here))
            continue
        name, path = mount.get("name"), mount.get("mountPath")
        if not isinstance(path, str) or not path.startswith("/"):
            problems.append("{}.mountPath: must be an absolute path, got {!r}".format(
                here, path))
            continue
        sub_path = mount.get("subPath") or ""
        if not isinstance(sub_path, str) or sub_path.startswith("/") \
                or ".." in sub_path.split("/"):
            problems.append("{}.subPath: must be a relative path without '..'".format(here))
            continue
        if name not in pod.volumes:
            # A volume that failed its own check is reported at pod level already.
            problems.append("{}: no usable volume named {!r}".format(here, name))
            continue
        spec.mounts.append(Mount(volume=name, path=path,
                                 read_only=bool(mount.get("readOnly")), sub_path=sub_path))
    return problems


def _check_probe(probe):
    if not isinstance(probe, dict):
        return "must be an object"
    handlers = [k for k in ("exec", "httpGet", "tcpSocket", "grpc") if probe.get(k) is not None]
    if len(handlers) != 1:
        return "must have exactly one of exec, httpGet, tcpSocket"
    handler = handlers[0]
    if handler == "grpc":
        return "grpc probes are not supported by this edge"
    body = probe[handler]
    if not isinstance(body, dict):
        return "{} must be an object".format(handler)
    if handler == "exec":
        command = body.get("command")
        if not isinstance(command, list) or not command \
                or not all(isinstance(c, str) for c in command):
            return "exec.command must be a non-empty list of strings"
    elif body.get("port") in (None, "", 0):
        return "{}.port is required".format(handler)
    for key, minimum in (("initialDelaySeconds", 0), ("timeoutSeconds", 1),
                         ("periodSeconds", 1), ("successThreshold", 1),
                         ("failureThreshold", 1)):
        value = probe.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < minimum):
            return "{} must be an integer >= {}, got {!r}".format(key, minimum, value)
    return ""
