"""Server-side table printing (``Accept: application/json;as=Table;v=v1;g=meta.k8s.io``).

``kubectl get`` asks the server for a ``meta.k8s.io/v1 Table`` and prints its columns: the
server decides what ``kubectl get nodes`` shows. The columns and cell rules here are
ported from kube-apiserver's printers (``pkg/printers/internalversion/printers.go``):
a node's STATUS is ``Ready``/``NotReady``/``Unknown`` from its Ready condition plus
``SchedulingDisabled``, ROLES come from ``node-role.kubernetes.io/<role>`` labels, a pod's
STATUS follows container states and ``Terminating``, AGE is ``duration.HumanDuration``.
Like kube-apiserver, every column is always sent, ``priority: 1`` ones being what
``-o wide`` adds.

A table definition is a :class:`TableSpec`: column definitions and a row function
``row(obj, now) -> cells`` (``now`` in epoch seconds, from the server's clock).
"""

import datetime
import json

from kubeedge_tw.cloud.apiserver.selectors import label_selector_string

__all__ = [
    "Column", "TableSpec", "human_duration", "age", "parse_time", "format_time",
    "TABLES", "default_table", "custom_resource_table", "build_table", "format_labels",
]


def parse_time(text):
    """Epoch seconds of an RFC 3339 timestamp, or None for a missing/garbled one."""
    if not text or not isinstance(text, str):
        return None
    try:
        value = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    return value.timestamp()


def format_time(seconds):
    """RFC 3339 ``YYYY-MM-DDTHH:MM:SSZ`` (what ``metav1.Time`` marshals to)."""
    return datetime.datetime.fromtimestamp(int(seconds), datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def human_duration(seconds):
    """``k8s.io/apimachinery/pkg/util/duration.HumanDuration``: ``45s``, ``5m10s``,
    ``3h``, ``2d4h``, ``3y``."""
    seconds = int(seconds) if seconds >= 0 else -int(-seconds)
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 60 * 2:
        return "{}s".format(seconds)
    minutes = seconds // 60
    if minutes < 10:
        rest = seconds % 60
        return "{}m".format(minutes) if rest == 0 else "{}m{}s".format(minutes, rest)
    if minutes < 60 * 3:
        return "{}m".format(minutes)
    hours = seconds // 3600
    if hours < 8:
        rest = minutes % 60
        return "{}h".format(hours) if rest == 0 else "{}h{}m".format(hours, rest)
    if hours < 48:
        return "{}h".format(hours)
    if hours < 24 * 8:
        rest = hours % 24
        return "{}d".format(hours // 24) if rest == 0 else "{}d{}h".format(hours // 24, rest)
    if hours < 24 * 365 * 2:
        return "{}d".format(hours // 24)
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        years = hours // 24 // 365
        return "{}y".format(years) if days == 0 else "{}y{}d".format(years, days)
    return "{}y".format(hours // 24 // 365)


def age(timestamp, now):
    """``translateTimestampSince``: ``<unknown>`` without a timestamp."""
    when = parse_time(timestamp)
    if when is None:
        return "<unknown>"
    return human_duration(now - when)


class Column:
    """One ``columnDefinitions`` entry."""

    __slots__ = ("name", "type", "format", "description", "priority")

    def __init__(self, name, type_="string", description="", priority=0, format_=""):
        """Describe a column; ``priority`` 1 columns are shown with ``-o wide``."""
        self.name = name
        self.type = type_
        self.format = format_
        self.description = description
        self.priority = priority

    def to_dict(self):
        """The column as JSON."""
        return {"name": self.name, "type": self.type, "format": self.format,
                "description": self.description, "priority": self.priority}


class TableSpec:
    """Columns plus ``row(obj, now) -> list of cells``."""

    def __init__(self, columns, row):
        """Pair the column definitions with the function filling them."""
        self.columns = list(columns)
        self.row = row

    def column_definitions(self):
        """The ``columnDefinitions`` list."""
        return [c.to_dict() for c in self.columns]


def _name_column():
    return Column("Name", format_="name",
                  description="Name must be unique within a namespace.")


def _age_column():
    return Column("Age", description="CreationTimestamp is a timestamp representing the "
                                     "server time when this object was created.")


def _meta(obj):
    return obj.get("metadata") or {}


def _spec(obj):
    return obj.get("spec") or {}


def _status(obj):
    return obj.get("status") or {}


def format_labels(labels):
    """``labels.FormatLabels``: ``a=b,c=d`` sorted, ``<none>`` when empty."""
    if not labels:
        return "<none>"
    return ",".join("{}={}".format(k, v) for k, v in sorted(labels.items()))


def _containers_and_images(containers):
    names = ",".join(c.get("name", "") for c in containers or [])
    images = ",".join(c.get("image", "") for c in containers or [])
    return names, images


# -- pods ---------------------------------------------------------------------------------------


def _pod_row(pod, now):
    meta, spec, status = _meta(pod), _spec(pod), _status(pod)
    restarts = 0
    last_restart = None
    containers = spec.get("containers") or []
    init_containers = spec.get("initContainers") or []
    total = len(containers)
    ready = 0
    phase = status.get("phase") or ""
    reason = status.get("reason") or phase
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and \
                condition.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    def note_restart(container_status):
        nonlocal last_restart
        terminated = ((container_status.get("lastState") or {}).get("terminated") or {})
        finished = parse_time(terminated.get("finishedAt"))
        if finished is not None and (last_restart is None or finished > last_restart):
            last_restart = finished

    initializing = False
    init_statuses = status.get("initContainerStatuses") or []
    for index, cs in enumerate(init_statuses):
        restarts += int(cs.get("restartCount") or 0)
        note_restart(cs)
        state = cs.get("state") or {}
        terminated, waiting = state.get("terminated"), state.get("waiting")
        if terminated is not None and terminated.get("exitCode", 0) == 0:
            continue
        if terminated is not None:
            if not terminated.get("reason"):
                if terminated.get("signal"):
                    reason = "Init:Signal:{}".format(terminated["signal"])
                else:
                    reason = "Init:ExitCode:{}".format(terminated.get("exitCode", 0))
            else:
                reason = "Init:" + terminated["reason"]
        elif waiting is not None and waiting.get("reason") and \
                waiting["reason"] != "PodInitializing":
            reason = "Init:" + waiting["reason"]
        else:
            reason = "Init:{}/{}".format(index, len(init_containers))
        initializing = True
        break
    initialized = any(c.get("type") == "Initialized" and c.get("status") == "True"
                      for c in status.get("conditions") or [])
    if not initializing or initialized:
        restarts = 0
        last_restart = None
        has_running = False
        for cs in reversed(status.get("containerStatuses") or []):
            restarts += int(cs.get("restartCount") or 0)
            note_restart(cs)
            state = cs.get("state") or {}
            waiting, terminated = state.get("waiting"), state.get("terminated")
            if waiting is not None and waiting.get("reason"):
                reason = waiting["reason"]
            elif terminated is not None and terminated.get("reason"):
                reason = terminated["reason"]
            elif terminated is not None:
                if terminated.get("signal"):
                    reason = "Signal:{}".format(terminated["signal"])
                else:
                    reason = "ExitCode:{}".format(terminated.get("exitCode", 0))
            elif cs.get("ready") and state.get("running") is not None:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            pod_ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                            for c in status.get("conditions") or [])
            reason = "Running" if pod_ready else "NotReady"
    if meta.get("deletionTimestamp") and status.get("reason") == "NodeLost":
        reason = "Unknown"
    elif meta.get("deletionTimestamp") and phase not in ("Succeeded", "Failed"):
        reason = "Terminating"
    restarts_text = str(restarts)
    if restarts and last_restart is not None:
        restarts_text = "{} ({} ago)".format(restarts, human_duration(now - last_restart))
    pod_ips = status.get("podIPs") or []
    ip = (pod_ips[0].get("ip") if pod_ips else status.get("podIP")) or "<none>"
    gates = spec.get("readinessGates") or []
    if gates:
        conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
        true = sum(1 for g in gates if conditions.get(g.get("conditionType")) == "True")
        gates_text = "{}/{}".format(true, len(gates))
    else:
        gates_text = "<none>"
    return [meta.get("name", ""), "{}/{}".format(ready, total), reason, restarts_text,
            age(meta.get("creationTimestamp"), now), ip, spec.get("nodeName") or "<none>",
            status.get("nominatedNodeName") or "<none>", gates_text]


POD_TABLE = TableSpec([
    _name_column(),
    Column("Ready", description="The aggregate readiness state of this pod for accepting "
                                "traffic."),
    Column("Status", description="The aggregate status of the containers in this pod."),
    Column("Restarts", description="The number of times the containers in this pod have "
                                   "been restarted and when the last container in this pod "
                                   "has restarted."),
    _age_column(),
    Column("IP", priority=1, description="podIP address allocated to the pod."),
    Column("Node", priority=1, description="NodeName is a request to schedule this pod onto "
                                           "a specific node."),
    Column("Nominated Node", priority=1, description="nominatedNodeName is set only when "
                                                     "this pod preempts other pods on the "
                                                     "node."),
    Column("Readiness Gates", priority=1, description="If specified, all readiness gates "
                                                      "will be evaluated for pod readiness."),
], _pod_row)

# -- nodes -------------------------------------------------------------------------------------

_ROLE_PREFIX = "node-role.kubernetes.io/"


def node_roles(node):
    """``findNodeRoles``: sorted roles from ``node-role.kubernetes.io/<role>`` label keys
    and the ``kubernetes.io/role`` label value."""
    roles = set()
    for key, value in (_meta(node).get("labels") or {}).items():
        if key.startswith(_ROLE_PREFIX) and key[len(_ROLE_PREFIX):]:
            roles.add(key[len(_ROLE_PREFIX):])
        elif key == "kubernetes.io/role" and value:
            roles.add(value)
    return sorted(roles)


def node_status_text(node):
    """``Ready``, ``NotReady`` or ``Unknown``, plus ``,SchedulingDisabled``."""
    parts = []
    for condition in _status(node).get("conditions") or []:
        if condition.get("type") == "Ready":
            parts.append("Ready" if condition.get("status") == "True" else "NotReady")
            break
    if not parts:
        parts.append("Unknown")
    if _spec(node).get("unschedulable"):
        parts.append("SchedulingDisabled")
    return ",".join(parts)


def _node_address(node, kind):
    for address in _status(node).get("addresses") or []:
        if address.get("type") == kind:
            return address.get("address") or "<none>"
    return "<none>"


def _node_row(node, now):
    meta, status = _meta(node), _status(node)
    info = status.get("nodeInfo") or {}
    return [meta.get("name", ""), node_status_text(node), ",".join(node_roles(node)) or "<none>",
            age(meta.get("creationTimestamp"), now), info.get("kubeletVersion", ""),
            _node_address(node, "InternalIP"), _node_address(node, "ExternalIP"),
            info.get("osImage") or "<unknown>", info.get("kernelVersion") or "<unknown>",
            info.get("containerRuntimeVersion") or "<unknown>"]


NODE_TABLE = TableSpec([
    _name_column(),
    Column("Status", description="The status of the node"),
    Column("Roles", description="The roles of the node"),
    _age_column(),
    Column("Version", description="Kubelet Version reported by the node."),
    Column("Internal-IP", priority=1, description="List of addresses reachable to the node."),
    Column("External-IP", priority=1, description="List of addresses reachable to the node."),
    Column("OS-Image", priority=1, description="OS Image reported by the node."),
    Column("Kernel-Version", priority=1, description="Kernel Version reported by the node."),
    Column("Container-Runtime", priority=1, description="ContainerRuntime Version reported "
                                                        "by the node."),
], _node_row)

# -- workloads ---------------------------------------------------------------------------------


def _deployment_row(deployment, now):
    meta, spec, status = _meta(deployment), _spec(deployment), _status(deployment)
    desired = spec.get("replicas", 1)
    names, images = _containers_and_images(((spec.get("template") or {}).get("spec") or {})
                                           .get("containers"))
    return [meta.get("name", ""), "{}/{}".format(status.get("readyReplicas", 0), desired),
            status.get("updatedReplicas", 0), status.get("availableReplicas", 0),
            age(meta.get("creationTimestamp"), now), names, images,
            label_selector_string(spec.get("selector"))]


DEPLOYMENT_TABLE = TableSpec([
    _name_column(),
    Column("Ready", description="Number of the pod with ready state"),
    Column("Up-to-date", description="Total number of non-terminated pods targeted by this "
                                     "deployment that have the desired template spec."),
    Column("Available", description="Total number of available pods (ready for at least "
                                    "minReadySeconds) targeted by this deployment."),
    _age_column(),
    Column("Containers", priority=1, description="Names of each container in the template."),
    Column("Images", priority=1, description="Images referenced by each container in the "
                                             "template."),
    Column("Selector", priority=1, description="Label selector for pods."),
], _deployment_row)


def _replicaset_row(rs, now):
    meta, spec, status = _meta(rs), _spec(rs), _status(rs)
    names, images = _containers_and_images(((spec.get("template") or {}).get("spec") or {})
                                           .get("containers"))
    return [meta.get("name", ""), spec.get("replicas", 1), status.get("replicas", 0),
            status.get("readyReplicas", 0), age(meta.get("creationTimestamp"), now), names,
            images, label_selector_string(spec.get("selector"))]


REPLICASET_TABLE = TableSpec([
    _name_column(),
    Column("Desired", "integer", "Replicas is the number of desired replicas."),
    Column("Current", "integer", "Replicas is the most recently observed number of "
                                 "replicas."),
    Column("Ready", "integer", "The number of ready replicas for this replica set."),
    _age_column(),
    Column("Containers", priority=1, description="Names of each container in the template."),
    Column("Images", priority=1, description="Images referenced by each container in the "
                                             "template."),
    Column("Selector", priority=1, description="Selector is a label query over pods."),
], _replicaset_row)

# -- services and config -----------------------------------------------------------------------


def _service_ports(ports):
    texts = []
    for port in ports or []:
        protocol = port.get("protocol", "TCP")
        if port.get("nodePort"):
            texts.append("{}:{}/{}".format(port.get("port"), port["nodePort"], protocol))
        else:
            texts.append("{}/{}".format(port.get("port"), protocol))
    return ",".join(texts) or "<none>"


def _service_external_ip(service):
    spec = service.get("spec") or {}
    kind = spec.get("type", "ClusterIP")
    external = spec.get("externalIPs") or []
    if kind in ("ClusterIP", "NodePort"):
        return ",".join(external) or "<none>"
    if kind == "ExternalName":
        return spec.get("externalName") or "<none>"
    ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    addresses = [i.get("ip") or i.get("hostname") for i in ingress] + external
    return ",".join(a for a in addresses if a) or "<pending>"


def _service_row(service, now):
    meta, spec = _meta(service), _spec(service)
    cluster_ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP")
                                             else [])
    return [meta.get("name", ""), spec.get("type", "ClusterIP"),
            cluster_ips[0] if cluster_ips else "<none>", _service_external_ip(service),
            _service_ports(spec.get("ports")), age(meta.get("creationTimestamp"), now),
            format_labels(spec.get("selector"))]


SERVICE_TABLE = TableSpec([
    _name_column(),
    Column("Type", description="type determines how the Service is exposed."),
    Column("Cluster-IP", description="clusterIP is the IP address of the service."),
    Column("External-IP", description="externalIPs is a list of IP addresses for which "
                                      "nodes in the cluster will also accept traffic."),
    Column("Port(s)", description="The list of ports that are exposed by this service."),
    _age_column(),
    Column("Selector", priority=1, description="Route service traffic to pods with label "
                                               "keys and values matching this selector."),
], _service_row)


def _endpoints_text(endpoints):
    items = []
    for subset in endpoints.get("subsets") or []:
        ports = subset.get("ports") or [{}]
        for address in subset.get("addresses") or []:
            for port in ports:
                if port.get("port") is not None:
                    items.append("{}:{}".format(address.get("ip"), port["port"]))
                else:
                    items.append(address.get("ip", ""))
    if not items:
        return "<none>"
    if len(items) > 3:
        return ",".join(items[:3]) + " + {} more...".format(len(items) - 3)
    return ",".join(items)


ENDPOINTS_TABLE = TableSpec([
    _name_column(), Column("Endpoints", description="Endpoints of the service."),
    _age_column(),
], lambda obj, now: [_meta(obj).get("name", ""), _endpoints_text(obj),
                     age(_meta(obj).get("creationTimestamp"), now)])

CONFIGMAP_TABLE = TableSpec([
    _name_column(), Column("Data", "string", "Data contains the configuration data."),
    _age_column(),
], lambda obj, now: [_meta(obj).get("name", ""),
                     len(obj.get("data") or {}) + len(obj.get("binaryData") or {}),
                     age(_meta(obj).get("creationTimestamp"), now)])

SECRET_TABLE = TableSpec([
    _name_column(), Column("Type", description="The type of the secret"),
    Column("Data", description="The number of data entries in the secret"), _age_column(),
], lambda obj, now: [_meta(obj).get("name", ""), obj.get("type", "Opaque"),
                     len(obj.get("data") or {}), age(_meta(obj).get("creationTimestamp"), now)])

SERVICEACCOUNT_TABLE = TableSpec([
    _name_column(), Column("Secrets", description="Secrets is a list of the secrets in the "
                                                  "same namespace."), _age_column(),
], lambda obj, now: [_meta(obj).get("name", ""), len(obj.get("secrets") or []),
                     age(_meta(obj).get("creationTimestamp"), now)])

NAMESPACE_TABLE = TableSpec([
    _name_column(), Column("Status", description="The status of the namespace"),
    _age_column(),
], lambda obj, now: [_meta(obj).get("name", ""), _status(obj).get("phase", "Active"),
                     age(_meta(obj).get("creationTimestamp"), now)])

LEASE_TABLE = TableSpec([
    _name_column(), Column("Holder", description="The holder of the lease"), _age_column(),
], lambda obj, now: [_meta(obj).get("name", ""), _spec(obj).get("holderIdentity") or "",
                     age(_meta(obj).get("creationTimestamp"), now)])


def _event_row(event, now):
    meta = _meta(event)
    first = age(event.get("firstTimestamp"), now) if event.get("firstTimestamp") else \
        age(event.get("eventTime"), now)
    last = age(event.get("lastTimestamp"), now) if event.get("lastTimestamp") else first
    count = event.get("count") or 0
    series = event.get("series")
    if series:
        last = age(series.get("lastObservedTime"), now)
        count = series.get("count", count)
    elif count == 0:
        count = 1
    involved = event.get("involvedObject") or {}
    kind = (involved.get("kind") or "").lower()
    target = "{}/{}".format(kind, involved["name"]) if involved.get("name") else kind
    source = event.get("source") or {}
    if source.get("component"):
        source_text = source["component"] + (", " + source["host"] if source.get("host")
                                             else "")
    elif event.get("reportingComponent"):
        source_text = event["reportingComponent"]
        if event.get("reportingInstance"):
            source_text += ", " + event["reportingInstance"]
    else:
        source_text = ""
    return [last, event.get("type", ""), event.get("reason", ""), target,
            involved.get("fieldPath", ""), source_text,
            (event.get("message") or "").strip(), first, count, meta.get("name", "")]


EVENT_TABLE = TableSpec([
    Column("Last Seen", description="The last time this event was seen"),
    Column("Type", description="Type of this event (Normal, Warning)"),
    Column("Reason", description="Short, machine understandable string that gives the "
                                 "reason for the transition into the object's current "
                                 "status."),
    Column("Object", description="The object that this event is about."),
    Column("Subobject", priority=1, description="The sub-object this event is about."),
    Column("Source", priority=1, description="The component reporting this event."),
    Column("Message", description="A human-readable description of the status of this "
                                  "operation."),
    Column("First Seen", priority=1, description="The first time this event was seen"),
    Column("Count", priority=1, description="The number of times this event has occurred."),
    Column("Name", priority=1, format_="name", description="Name of the event."),
], _event_row)


def default_table():
    """kube-apiserver's default table: Name and Created At."""
    return TableSpec([
        _name_column(),
        Column("Created At", "date", "CreationTimestamp is a timestamp representing the "
                                     "server time when this object was created."),
    ], lambda obj, now: [_meta(obj).get("name", ""), _meta(obj).get("creationTimestamp", "")])


def _json_path(obj, path):
    """The value at a simple CRD ``jsonPath`` (``.spec.a.b``, ``.items[0].x``); None when
    absent or not understood."""
    if not path.startswith("."):
        return None
    node = obj
    for part in path[1:].split("."):
        index = None
        if part.endswith("]") and "[" in part:
            part, _, rest = part.partition("[")
            rest = rest[:-1]
            if not rest.isdigit():
                return None
            index = int(rest)
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
        if index is not None:
            if not isinstance(node, list) or index >= len(node):
                return None
            node = node[index]
    return node


def custom_resource_table(printer_columns):
    """The table for a custom resource version: Name plus the CRD's
    ``additionalPrinterColumns`` (Age when there are none); ``date`` cells are printed as
    ages, as the apiextensions table convertor does."""
    columns = [_name_column()]
    paths = []
    specs = list(printer_columns or []) or [
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}]
    for column in specs:
        columns.append(Column(column.get("name", ""), column.get("type", "string"),
                              column.get("description", ""), column.get("priority", 0),
                              column.get("format", "")))
        paths.append((column.get("jsonPath", ""), column.get("type", "string")))

    def row(obj, now):
        cells = [_meta(obj).get("name", "")]
        for path, kind in paths:
            value = _json_path(obj, path)
            if value is None:
                cells.append(None)
            elif kind == "date":
                cells.append(age(value, now))
            elif isinstance(value, (dict, list)):
                cells.append(json.dumps(value, separators=(",", ":")))
            else:
                cells.append(value)
        return cells

    return TableSpec(columns, row)


def build_table(spec, objects, now, resource_version="", continue_token="",
                include_object="Metadata", api_version="meta.k8s.io/v1", headers=True):
    """A ``Table`` of ``objects`` (dicts) with ``spec``'s columns; each row carries the
    object's metadata as a ``PartialObjectMetadata`` (``includeObject=Metadata``, the
    default), the whole object (``Object``) or nothing (``None``)."""
    rows = []
    for obj in objects:
        row = {"cells": spec.row(obj, now)}
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
            row["object"] = {"kind": "PartialObjectMetadata",
                             "apiVersion": "meta.k8s.io/v1",
                             "metadata": obj.get("metadata") or {}}
        rows.append(row)
    table = {"kind": "Table", "apiVersion": api_version,
             "metadata": {"resourceVersion": resource_version}, "rows": rows}
    if continue_token:
        table["metadata"]["continue"] = continue_token
    table["columnDefinitions"] = spec.column_definitions() if headers else None
    return table


#: Built-in tables by ``group/plural`` storage key.
TABLES = {
    "/pods": POD_TABLE, "/nodes": NODE_TABLE, "/services": SERVICE_TABLE,
    "/endpoints": ENDPOINTS_TABLE, "/configmaps": CONFIGMAP_TABLE, "/secrets": SECRET_TABLE,
    "/serviceaccounts": SERVICEACCOUNT_TABLE, "/namespaces": NAMESPACE_TABLE,
    "/events": EVENT_TABLE, "apps/deployments": DEPLOYMENT_TABLE,
    "apps/replicasets": REPLICASET_TABLE, "coordination.k8s.io/leases": LEASE_TABLE,
}
