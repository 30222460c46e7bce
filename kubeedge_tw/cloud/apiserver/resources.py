"""The registry of resource types the embedded API server serves, storage-agnostic.

A :class:`ResourceType` says everything the HTTP layer and the verbs need about one
``group/version/plural``: kind, scope, short names, subresources, which fields a field
selector may use, how a strategic merge patch merges its lists (:data:`patch meta
<kubeedge_tw.cloud.apiserver.patch>`), its table, and its :class:`Strategy` — defaulting,
validation and the create/update rules kube-apiserver applies to that kind (a pod starts
``Pending``; a Deployment's status cannot be set through the main resource; ...).

:func:`builtin_types` lists the built-in kinds; :func:`custom_resource_types` turns a
``CustomResourceDefinition`` into the types it serves. A :class:`Registry` holds them; the
server's verbs and the controllers of later issues look types up in it and may add their
own, so nothing is registered at import time.
"""

import base64
import copy
import ipaddress
import random

from kubeedge_tw.cloud.apiserver import errors, tables, validation
from kubeedge_tw.cloud.apiserver.errors import field_forbidden, field_invalid, field_required
from kubeedge_tw.cloud.apiserver.selectors import label_selector_string

__all__ = [
    "ResourceType", "Strategy", "Registry", "builtin_types", "custom_resource_types",
    "storage_key", "pod_qos_class", "COMMON_FIELDS",
]

#: Field selectors every resource supports.
COMMON_FIELDS = ("metadata.name", "metadata.namespace")


def storage_key(group, plural):
    """The storage key of a resource: ``group/plural`` (``/pods``, ``apps/deployments``)."""
    return "{}/{}".format(group, plural)


def _field_value(obj, path):
    node = obj
    for part in path.split("."):
        if not isinstance(node, dict):
            return ""
        node = node.get(part)
    if node is None:
        return ""
    if isinstance(node, bool):
        return "true" if node else "false"
    if isinstance(node, (dict, list)):
        return ""
    return str(node)


class ResourceType:
    """One served ``group/version/plural``; see the module docstring."""

    def __init__(self, group, version, kind, plural, namespaced=True, singular=None,
                 short_names=(), categories=(), subresources=(), patch_meta=None,
                 table=None, fields=(), strategy=None, field_aliases=None, crd_name=None,
                 scale_paths=None):
        """Describe a resource; ``patch_meta`` None means strategic merge patch is not
        supported (custom resources), ``fields`` are the extra field-selector fields."""
        self.group = group
        self.version = version
        self.kind = kind
        self.plural = plural
        self.singular = singular or kind.lower()
        self.namespaced = namespaced
        self.short_names = tuple(short_names)
        self.categories = tuple(categories)
        self.subresources = frozenset(subresources)
        self.patch_meta = patch_meta
        self.table = table or tables.default_table()
        self.fields = tuple(COMMON_FIELDS) + tuple(fields)
        self.field_aliases = dict(field_aliases or {})
        self.strategy = strategy or Strategy()
        self.crd_name = crd_name
        self.scale_paths = scale_paths

    @property
    def key(self):
        """The storage key (shared by every version of the resource)."""
        return storage_key(self.group, self.plural)

    @property
    def api_version(self):
        """``v1`` or ``group/version``."""
        return "{}/{}".format(self.group, self.version) if self.group else self.version

    @property
    def list_kind(self):
        """``PodList`` etc."""
        return self.kind + "List"

    def field(self, obj, name):
        """The string value of a field-selector field of ``obj`` (``""`` when absent)."""
        return _field_value(obj, self.field_aliases.get(name, name))

    def supports_field(self, name):
        """Whether field selectors may use ``name`` on this resource."""
        return name in self.fields

    def __repr__(self):
        return "ResourceType({}/{} {})".format(self.group or "core", self.version, self.plural)


class Strategy:
    """Create/update rules of a kind. The base class is what a plain kind needs: validate
    metadata, keep everything as sent."""

    #: Structural schema for :func:`validation.typecheck` of the fields outside metadata.
    schema = {}
    #: How ``metadata.name`` is validated.
    name_check = staticmethod(validation.dns1123_subdomain)
    #: Whether a status sent on create is kept (nodes, events) or reset.
    keep_status_on_create = True
    #: Whether the main resource ignores status changes (the kind has a status subresource).
    status_subresource = False
    #: Whether ``metadata.generation`` counts spec changes.
    tracks_generation = False

    def typecheck(self, obj, kind):
        """Raise 400 for wrongly-typed known fields."""
        validation.typecheck(obj.get("metadata"), validation.METADATA_SCHEMA, kind, "metadata")
        validation.typecheck(obj, self.schema, kind)

    def prepare_for_create(self, obj):
        """Reset what a client may not set on create."""
        if not self.keep_status_on_create and "status" in obj:
            obj["status"] = {}
        if self.tracks_generation:
            obj["metadata"]["generation"] = 1

    def prepare_for_update(self, new, old):
        """Carry over what an update of the main resource may not change."""
        if self.status_subresource:
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            else:
                new.pop("status", None)
        if self.tracks_generation:
            generation = old["metadata"].get("generation", 1)
            if _without(new, "metadata", "status") != _without(old, "metadata", "status"):
                generation += 1
            new["metadata"]["generation"] = generation

    def default(self, obj):
        """Fill in defaults (in place)."""

    def validate(self, obj, namespaced):
        """Causes for an invalid object (empty when valid)."""
        return validation.validate_object_meta(obj.get("metadata") or {}, namespaced,
                                               self.name_check)

    def validate_update(self, new, old):
        """Causes for a forbidden change from ``old`` to ``new``."""
        return []

    def on_create(self, txn, rtype, obj):
        """Hook run inside the storage transaction before a create is stored (allocate
        cluster IPs, ...). May raise :class:`~.errors.APIError`."""

    def after_create(self, txn, rtype, obj):
        """Hook run inside the storage transaction after a create was stored (create a
        namespace's default service account, ...)."""


def _without(obj, *keys):
    return {k: v for k, v in obj.items() if k not in keys}


# -- pods ---------------------------------------------------------------------------------------


def _pull_policy(image):
    last = image.rsplit("/", 1)[-1]
    if "@" in last:
        return "IfNotPresent"
    tag = last.rpartition(":")[2] if ":" in last else ""
    return "Always" if tag in ("", "latest") else "IfNotPresent"


def _default_container(container):
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    if container.get("image") and not container.get("imagePullPolicy"):
        container["imagePullPolicy"] = _pull_policy(container["image"])
    if container.get("resources") is None:
        container["resources"] = {}
    for port in container.get("ports") or []:
        port.setdefault("protocol", "TCP")
    for probe_name in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = container.get(probe_name)
        if isinstance(probe, dict):
            probe.setdefault("timeoutSeconds", 1)
            probe.setdefault("periodSeconds", 10)
            probe.setdefault("successThreshold", 1)
            probe.setdefault("failureThreshold", 3)


def default_pod_spec(spec, template=False):
    """SetDefaults_PodSpec and friends: restart/DNS policy, grace period, scheduler, pull
    policy from the image tag; a pod (not a template) also gets the default service
    account, priority and the not-ready/unreachable tolerations admission adds."""
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for container in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        _default_container(container)
    if template:
        return
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    spec.setdefault("priority", 0)
    account = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
    spec["serviceAccountName"] = account
    spec["serviceAccount"] = account
    tolerations = spec.setdefault("tolerations", [])
    for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
        if not any(t.get("key") == key and t.get("effect") in (None, "", "NoExecute")
                   for t in tolerations):
            tolerations.append({"key": key, "operator": "Exists", "effect": "NoExecute",
                                "tolerationSeconds": 300})


def pod_qos_class(spec):
    """``BestEffort``, ``Burstable`` or ``Guaranteed`` from the containers' resources."""
    containers = spec.get("containers") or []
    any_set = False
    guaranteed = bool(containers)
    for container in containers:
        resources = container.get("resources") or {}
        limits = resources.get("limits") or {}
        requests = resources.get("requests") or {}
        if limits or requests:
            any_set = True
        for resource in ("cpu", "memory"):
            limit = limits.get(resource)
            request = requests.get(resource, limit)
            if limit is None or str(request) != str(limit):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


_POD_MUTABLE_MESSAGE = (
    "pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only "
    "additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be "
    "set to 1 if it was previously negative)")


def _pod_spec_fixed_part(spec):
    spec = copy.deepcopy(spec or {})
    for name in ("containers", "initContainers"):
        for container in spec.get(name) or []:
            container.pop("image", None)
    for name in ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds"):
        spec.pop(name, None)
    return spec


class PodStrategy(Strategy):
    """Pods: start Pending with a QoS class, status only through ``pods/status``, spec
    immutable but for images, deadline and tolerations."""

    schema = {"spec": validation.POD_SPEC_SCHEMA, "status": validation.POD_STATUS_SCHEMA}
    keep_status_on_create = False
    status_subresource = True

    def prepare_for_create(self, obj):
        super().prepare_for_create(obj)
        obj["status"] = {"phase": "Pending"}

    def default(self, obj):
        spec = obj.setdefault("spec", {})
        default_pod_spec(spec)
        status = obj.setdefault("status", {})
        status.setdefault("phase", "Pending")
        status["qosClass"] = pod_qos_class(spec)

    def validate(self, obj, namespaced):
        causes = super().validate(obj, namespaced)
        causes.extend(validation.validate_pod_spec(obj.get("spec")))
        return causes

    def validate_update(self, new, old):
        if _pod_spec_fixed_part(new.get("spec")) != _pod_spec_fixed_part(old.get("spec")):
            return [field_forbidden("spec", _POD_MUTABLE_MESSAGE)]
        return []


# -- workloads ----------------------------------------------------------------------------------


class WorkloadStrategy(Strategy):
    """Deployments and ReplicaSets: status through the subresource, generation counting,
    an immutable selector that must match the template's labels."""

    schema = {"spec": {"replicas": int, "selector": {"matchLabels": ("map", str),
                                                     "matchExpressions": [dict]},
                       "template": {"metadata": validation.METADATA_SCHEMA,
                                    "spec": validation.POD_SPEC_SCHEMA},
                       "minReadySeconds": int, "revisionHistoryLimit": int,
                       "progressDeadlineSeconds": int, "paused": bool,
                       "strategy": {"type": str, "rollingUpdate": {
                           "maxSurge": validation.INTSTR,
                           "maxUnavailable": validation.INTSTR}}},
              "status": {"replicas": int, "readyReplicas": int, "availableReplicas": int,
                         "updatedReplicas": int, "observedGeneration": int,
                         "conditions": [dict]}}
    keep_status_on_create = False
    status_subresource = True
    tracks_generation = True
    deployment = True

    def default(self, obj):
        spec = obj.setdefault("spec", {})
        if spec.get("replicas") is None:
            spec["replicas"] = 1
        spec.setdefault("revisionHistoryLimit", 10)
        if self.deployment:
            spec.setdefault("progressDeadlineSeconds", 600)
            strategy = spec.setdefault("strategy", {})
            strategy.setdefault("type", "RollingUpdate")
            if strategy["type"] == "RollingUpdate":
                rolling = strategy.setdefault("rollingUpdate", {})
                rolling.setdefault("maxUnavailable", "25%")
                rolling.setdefault("maxSurge", "25%")
        template = spec.get("template")
        if isinstance(template, dict):
            template.setdefault("metadata", {})
            default_pod_spec(template.setdefault("spec", {}), template=True)

    def validate(self, obj, namespaced):
        causes = super().validate(obj, namespaced)
        spec = obj.get("spec") or {}
        replicas = spec.get("replicas")
        if replicas is not None and replicas < 0:
            causes.append(field_invalid("spec.replicas", replicas,
                                        "must be greater than or equal to 0"))
        causes.extend(validation.validate_label_selector(spec.get("selector"), "spec.selector"))
        if spec.get("template") is None:
            causes.append(field_required("spec.template"))
        else:
            causes.extend(validation.validate_pod_template(
                spec.get("template"), spec.get("selector"), "spec.template"))
        if self.deployment:
            kind = (spec.get("strategy") or {}).get("type")
            if kind not in (None, "RollingUpdate", "Recreate"):
                causes.append(errors.field_not_supported("spec.strategy.type", kind,
                                                         ("Recreate", "RollingUpdate")))
        return causes

    def validate_update(self, new, old):
        new_selector = (new.get("spec") or {}).get("selector")
        if new_selector != (old.get("spec") or {}).get("selector"):
            return [field_invalid("spec.selector", label_selector_string(new_selector),
                                  "field is immutable")]
        return []


class ReplicaSetStrategy(WorkloadStrategy):
    """ReplicaSets: as Deployments, without a rollout strategy."""

    deployment = False


# -- services -------------------------------------------------------------------------------

#: kube-apiserver's default service CIDR.
SERVICE_CIDR = ipaddress.ip_network("10.96.0.0/12")
NODE_PORT_RANGE = (30000, 32767)


class ServiceStrategy(Strategy):
    """Services: defaults, a cluster IP from 10.96.0.0/12 and node ports from
    30000-32767 allocated in the storage transaction, both kept across updates."""

    schema = {"spec": {"ports": [{"name": str, "port": int, "targetPort": validation.INTSTR,
                                  "nodePort": int, "protocol": str}],
                       "selector": ("map", str), "type": str, "clusterIP": str,
                       "clusterIPs": [str], "externalIPs": [str], "externalName": str}}
    name_check = staticmethod(validation.dns1123_label)
    keep_status_on_create = False
    status_subresource = True

    def default(self, obj):
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            if port.get("targetPort") is None and port.get("port") is not None:
                port["targetPort"] = port["port"]
        if spec["type"] != "ExternalName":
            spec.setdefault("ipFamilies", ["IPv4"])
            spec.setdefault("ipFamilyPolicy", "SingleStack")
            spec.setdefault("internalTrafficPolicy", "Cluster")
        if spec["type"] in ("NodePort", "LoadBalancer"):
            spec.setdefault("externalTrafficPolicy", "Cluster")
        obj.setdefault("status", {}).setdefault("loadBalancer", {})

    def validate(self, obj, namespaced):
        causes = super().validate(obj, namespaced)
        causes.extend(validation.validate_service(obj))
        ip = (obj.get("spec") or {}).get("clusterIP")
        if ip and ip != "None":
            try:
                ipaddress.ip_address(ip)
            except ValueError:
                causes.append(field_invalid("spec.clusterIP", ip,
                                            "must be a valid IP address, (e.g. 10.9.8.7 or "
                                            "2001:db8::ffff)"))
        return causes

    def prepare_for_update(self, new, old):
        super().prepare_for_update(new, old)
        new_spec, old_spec = new.setdefault("spec", {}), old.get("spec") or {}
        for field in ("clusterIP", "clusterIPs"):
            if not new_spec.get(field) and old_spec.get(field):
                new_spec[field] = copy.deepcopy(old_spec[field])
        old_ports = {(p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
                     for p in old_spec.get("ports") or []}
        for port in new_spec.get("ports") or []:
            if not port.get("nodePort"):
                previous = old_ports.get((port.get("port"), port.get("protocol", "TCP")))
                if previous and new_spec.get("type") in ("NodePort", "LoadBalancer"):
                    port["nodePort"] = previous

    def validate_update(self, new, old):
        old_ip = (old.get("spec") or {}).get("clusterIP")
        new_ip = (new.get("spec") or {}).get("clusterIP")
        if old_ip and new_ip != old_ip and (new.get("spec") or {}).get("type") != \
                "ExternalName":
            return [field_invalid("spec.clusterIP", new_ip, "field is immutable")]
        return []

    def on_create(self, txn, rtype, obj):
        spec = obj["spec"]
        if spec["type"] == "ExternalName":
            return
        used_ips, used_ports = set(), set()
        for _, text in txn.scan(rtype.key):
            other = txn.decode(text).get("spec") or {}
            used_ips.add(other.get("clusterIP"))
            used_ports.update(p.get("nodePort") for p in other.get("ports") or [])
        ip = spec.get("clusterIP")
        if not ip:
            ip = _allocate(lambda: str(SERVICE_CIDR[random.randrange(10, SERVICE_CIDR
                                                                     .num_addresses - 1)]),
                           used_ips, "no cluster IP left in {}".format(SERVICE_CIDR))
            spec["clusterIP"] = ip
        elif ip != "None" and ip in used_ips:
            raise errors.invalid(rtype.kind, obj["metadata"]["name"], [field_invalid(
                "spec.clusterIP", ip, "provided IP is already allocated")])
        spec["clusterIPs"] = [ip]
        if spec["type"] in ("NodePort", "LoadBalancer"):
            for port in spec.get("ports") or []:
                if not port.get("nodePort"):
                    port["nodePort"] = _allocate(
                        lambda: random.randint(*NODE_PORT_RANGE), used_ports,
                        "no node port left in {}-{}".format(*NODE_PORT_RANGE))
                    used_ports.add(port["nodePort"])


def _allocate(pick, used, message):
    for _ in range(1000):
        value = pick()
        if value not in used:
            return value
    raise errors.internal_error(message)


# -- config and the rest ---------------------------------------------------------------------


class ConfigMapStrategy(Strategy):
    """ConfigMaps: valid data keys, string values."""

    schema = {"data": ("map", str), "binaryData": ("map", str), "immutable": bool}

    def validate(self, obj, namespaced):
        causes = super().validate(obj, namespaced)
        causes.extend(validation.validate_data_keys(obj))
        return causes

    def validate_update(self, new, old):
        if old.get("immutable") and (new.get("data") != old.get("data") or
                                     new.get("binaryData") != old.get("binaryData")):
            return [field_forbidden("data", "field is immutable when `immutable` is set")]
        return []


class SecretStrategy(Strategy):
    """Secrets: ``stringData`` folded into base64 ``data``, type ``Opaque`` by default."""

    schema = {"data": ("map", str), "stringData": ("map", str), "type": str,
              "immutable": bool}

    def typecheck(self, obj, kind):
        super().typecheck(obj, kind)
        validation.check_base64_values(obj, "data", kind)

    def default(self, obj):
        obj.setdefault("type", "Opaque")
        string_data = obj.pop("stringData", None)
        if string_data:
            data = obj.setdefault("data", {}) or {}
            obj["data"] = data
            for key, value in string_data.items():
                data[key] = base64.b64encode(value.encode("utf-8")).decode("ascii")

    def validate(self, obj, namespaced):
        causes = super().validate(obj, namespaced)
        causes.extend(validation.validate_data_keys(obj, ("data",)))
        return causes

    def validate_update(self, new, old):
        causes = []
        if new.get("type") != old.get("type"):
            causes.append(field_invalid("type", new.get("type"), "field is immutable"))
        if old.get("immutable") and new.get("data") != old.get("data"):
            causes.append(field_forbidden("data", "field is immutable when `immutable` is set"))
        return causes


class NamespaceStrategy(Strategy):
    """Namespaces: DNS-1123 label names, ``Active`` phase, the ``kubernetes`` finalizer,
    the ``kubernetes.io/metadata.name`` label, and a ``default`` service account."""

    name_check = staticmethod(validation.dns1123_label)
    keep_status_on_create = False
    status_subresource = True

    def default(self, obj):
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        obj.setdefault("status", {}).setdefault("phase", "Active")
        labels = obj["metadata"].setdefault("labels", {})
        if obj["metadata"].get("name"):
            labels["kubernetes.io/metadata.name"] = obj["metadata"]["name"]

    def after_create(self, txn, rtype, obj):
        name = obj["metadata"]["name"]
        key = ("/serviceaccounts", name, "default")
        if txn.get(*key) is None:
            txn.put(*key, {
                "kind": "ServiceAccount", "apiVersion": "v1",
                "metadata": {"name": "default", "namespace": name,
                             "uid": txn.new_uid(),
                             "creationTimestamp": obj["metadata"]["creationTimestamp"]}})


class NodeStrategy(Strategy):
    """Nodes: everything, status included, may be set on create (kube-apiserver's node
    strategy); later status changes go through ``nodes/status``."""

    schema = {"spec": {"unschedulable": bool, "podCIDR": str, "taints": [dict]},
              "status": {"conditions": [{"type": str, "status": str}],
                         "addresses": [{"type": str, "address": str}],
                         "nodeInfo": ("map", str)}}
    status_subresource = True


class EventStrategy(Strategy):
    """Events: any path-segment name; the involved object is required."""

    name_check = staticmethod(validation.path_segment_name)
    schema = {"involvedObject": {"kind": str, "name": str, "namespace": str, "uid": str},
              "count": int, "reason": str, "message": str, "type": str}

    def validate(self, obj, namespaced):
        causes = super().validate(obj, namespaced)
        involved = obj.get("involvedObject")
        if not isinstance(involved, dict):
            causes.append(field_required("involvedObject"))
        return causes


class LeaseStrategy(Strategy):
    """Leases: ``spec.holderIdentity`` and durations typed."""

    schema = {"spec": {"holderIdentity": str, "leaseDurationSeconds": int,
                       "leaseTransitions": int, "acquireTime": str, "renewTime": str}}


class CRDStrategy(Strategy):
    """CustomResourceDefinitions: ``<plural>.<group>`` names, one storage version,
    defaults and an ``Established`` status set by the server."""

    schema = {"spec": {"group": str, "scope": str,
                       "names": {"plural": str, "singular": str, "kind": str,
                                 "listKind": str, "shortNames": [str], "categories": [str]},
                       "versions": [{"name": str, "served": bool, "storage": bool,
                                     "subresources": dict,
                                     "additionalPrinterColumns": [dict]}]}}
    keep_status_on_create = False
    status_subresource = True
    tracks_generation = True

    def default(self, obj):
        spec = obj.setdefault("spec", {})
        names = spec.setdefault("names", {})
        if names.get("kind"):
            names.setdefault("singular", names["kind"].lower())
            names.setdefault("listKind", names["kind"] + "List")
        spec.setdefault("conversion", {"strategy": "None"})
        spec.setdefault("scope", "Namespaced")
        status = obj.setdefault("status", {})
        status["acceptedNames"] = copy.deepcopy(names)
        status["storedVersions"] = [v["name"] for v in spec.get("versions") or []
                                    if v.get("storage")]
        timestamp = obj["metadata"].get("creationTimestamp", "")
        status["conditions"] = [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
             "message": "no conflicts found", "lastTransitionTime": timestamp},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
             "message": "the initial names have been accepted",
             "lastTransitionTime": timestamp}]

    def prepare_for_update(self, new, old):
        super().prepare_for_update(new, old)
        new.pop("status", None)

    def validate(self, obj, namespaced):
        causes = super().validate(obj, namespaced)
        spec = obj.get("spec") or {}
        names = spec.get("names") or {}
        group = spec.get("group") or ""
        if not group:
            causes.append(field_required("spec.group"))
        elif "." not in group:
            causes.append(field_invalid("spec.group", group,
                                        "should be a domain with at least one dot"))
        for field in ("plural", "kind"):
            if not names.get(field):
                causes.append(field_required("spec.names." + field))
        plural = names.get("plural") or ""
        if plural and validation.dns1123_label(plural):
            causes.append(field_invalid("spec.names.plural", plural,
                                        validation.dns1123_label(plural)[0]))
        expected = "{}.{}".format(plural, group)
        name = obj["metadata"].get("name")
        if plural and group and name != expected:
            causes.append(field_invalid("metadata.name", name,
                                        'must be spec.names.plural+"."+spec.group'))
        if spec.get("scope") not in ("Namespaced", "Cluster"):
            causes.append(errors.field_not_supported("spec.scope", spec.get("scope"),
                                                     ("Cluster", "Namespaced")))
        versions = spec.get("versions") or []
        if not versions:
            causes.append(field_required("spec.versions"))
        elif sum(1 for v in versions if v.get("storage")) != 1:
            causes.append(field_invalid("spec.versions", [v.get("name") for v in versions],
                                        "must have exactly one version marked as storage "
                                        "version"))
        for index, version in enumerate(versions):
            if not version.get("name") or validation.dns1123_label(version["name"]):
                causes.append(field_invalid("spec.versions[{}].name".format(index),
                                            version.get("name"), "must be a DNS-1123 label"))
        return causes

    def validate_update(self, new, old):
        causes = []
        for field in ("group", "scope"):
            if (new.get("spec") or {}).get(field) != (old.get("spec") or {}).get(field):
                causes.append(field_invalid("spec." + field, (new.get("spec") or {}).get(field),
                                            "field is immutable"))
        return causes


class CustomResourceStrategy(Strategy):
    """Custom resources: DNS-1123 subdomain names, generation counting; with a status
    subresource the status is reset on create and kept by main-resource updates."""

    tracks_generation = True

    def __init__(self, status_subresource):
        """``status_subresource`` from the CRD version's ``subresources.status``."""
        self.status_subresource = status_subresource
        self.keep_status_on_create = not status_subresource

    def prepare_for_create(self, obj):
        super().prepare_for_create(obj)
        if self.status_subresource:
            obj.pop("status", None)


# -- patch meta ---------------------------------------------------------------------------------

_OBJECT_META = {("metadata", "finalizers"): "", ("metadata", "ownerReferences"): "uid"}


def _pod_spec_meta(prefix):
    meta = {}
    for containers in ("containers", "initContainers", "ephemeralContainers"):
        meta[prefix + (containers,)] = "name"
        meta[prefix + (containers, "ports")] = "containerPort"
        meta[prefix + (containers, "env")] = "name"
        meta[prefix + (containers, "volumeMounts")] = "mountPath"
        meta[prefix + (containers, "volumeDevices")] = "devicePath"
    meta[prefix + ("volumes",)] = "name"
    meta[prefix + ("imagePullSecrets",)] = "name"
    meta[prefix + ("hostAliases",)] = "ip"
    return meta


def _patch_meta(*parts):
    meta = dict(_OBJECT_META)
    for part in parts:
        meta.update(part)
    return meta


_CONDITIONS = {("status", "conditions"): "type"}
POD_PATCH_META = _patch_meta(_pod_spec_meta(("spec",)), _CONDITIONS, {
    ("status", "podIPs"): "ip", ("status", "hostIPs"): "ip"})
WORKLOAD_PATCH_META = _patch_meta(_pod_spec_meta(("spec", "template", "spec")), _CONDITIONS, {
    ("spec", "template", "metadata", "finalizers"): ""})
NODE_PATCH_META = _patch_meta(_CONDITIONS, {("status", "addresses"): "type",
                                            ("spec", "podCIDRs"): ""})
SERVICE_PATCH_META = _patch_meta(_CONDITIONS, {("spec", "ports"): "port"})
PLAIN_PATCH_META = _patch_meta()

# -- the built-in types ---------------------------------------------------------------------


def builtin_types():
    """A fresh list of the built-in :class:`ResourceType` objects."""
    t = tables.TABLES
    core = [
        ResourceType("", "v1", "Namespace", "namespaces", namespaced=False, short_names=["ns"],
                     subresources=["status"], patch_meta=_patch_meta(_CONDITIONS),
                     table=t["/namespaces"], fields=["status.phase"],
                     strategy=NamespaceStrategy()),
        ResourceType("", "v1", "Node", "nodes", namespaced=False, short_names=["no"],
                     subresources=["status"], patch_meta=NODE_PATCH_META, table=t["/nodes"],
                     fields=["spec.unschedulable"], strategy=NodeStrategy()),
        ResourceType("", "v1", "Pod", "pods", short_names=["po"], categories=["all"],
                     subresources=["status", "binding"], patch_meta=POD_PATCH_META,
                     table=t["/pods"], fields=[
                         "spec.nodeName", "spec.restartPolicy", "spec.schedulerName",
                         "spec.serviceAccountName", "spec.hostNetwork", "status.phase",
                         "status.podIP", "status.nominatedNodeName"],
                     strategy=PodStrategy()),
        ResourceType("", "v1", "ConfigMap", "configmaps", short_names=["cm"],
                     patch_meta=PLAIN_PATCH_META, table=t["/configmaps"],
                     strategy=ConfigMapStrategy()),
        ResourceType("", "v1", "Secret", "secrets", patch_meta=PLAIN_PATCH_META,
                     table=t["/secrets"], fields=["type"], strategy=SecretStrategy()),
        ResourceType("", "v1", "Service", "services", short_names=["svc"], categories=["all"],
                     subresources=["status"], patch_meta=SERVICE_PATCH_META,
                     table=t["/services"], strategy=ServiceStrategy()),
        ResourceType("", "v1", "Endpoints", "endpoints", singular="endpoints",
                     short_names=["ep"], patch_meta=PLAIN_PATCH_META, table=t["/endpoints"]),
        ResourceType("", "v1", "Event", "events", short_names=["ev"],
                     patch_meta=PLAIN_PATCH_META, table=t["/events"], fields=[
                         "involvedObject.kind", "involvedObject.namespace",
                         "involvedObject.name", "involvedObject.uid",
                         "involvedObject.apiVersion", "involvedObject.resourceVersion",
                         "involvedObject.fieldPath", "reason", "reportingComponent",
                         "source", "type"],
                     field_aliases={"source": "source.component"}, strategy=EventStrategy()),
        ResourceType("", "v1", "ServiceAccount", "serviceaccounts", short_names=["sa"],
                     patch_meta=_patch_meta({("secrets",): "name"}),
                     table=t["/serviceaccounts"]),
    ]
    apps = [
        ResourceType("apps", "v1", "Deployment", "deployments", short_names=["deploy"],
                     categories=["all"], subresources=["status", "scale"],
                     patch_meta=WORKLOAD_PATCH_META, table=t["apps/deployments"],
                     strategy=WorkloadStrategy()),
        ResourceType("apps", "v1", "ReplicaSet", "replicasets", short_names=["rs"],
                     categories=["all"], subresources=["status", "scale"],
                     patch_meta=WORKLOAD_PATCH_META, table=t["apps/replicasets"],
                     fields=["status.replicas"], strategy=ReplicaSetStrategy()),
    ]
    others = [
        ResourceType("coordination.k8s.io", "v1", "Lease", "leases",
                     patch_meta=PLAIN_PATCH_META, table=t["coordination.k8s.io/leases"],
                     strategy=LeaseStrategy()),
        ResourceType("apiextensions.k8s.io", "v1", "CustomResourceDefinition",
                     "customresourcedefinitions", namespaced=False, short_names=["crd", "crds"],
                     categories=["api-extensions"], subresources=["status"],
                     patch_meta=PLAIN_PATCH_META, strategy=CRDStrategy()),
    ]
    return core + apps + others


def custom_resource_types(crd):
    """The :class:`ResourceType` of every served version of a CRD object."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    result = []
    for version in spec.get("versions") or []:
        if not version.get("served", True):
            continue
        subresources = version.get("subresources") or {}
        served_subresources = []
        if "status" in subresources:
            served_subresources.append("status")
        scale_paths = None
        if "scale" in subresources:
            served_subresources.append("scale")
            scale_paths = subresources["scale"] or {}
        result.append(ResourceType(
            spec.get("group", ""), version.get("name", ""), names.get("kind", ""),
            names.get("plural", ""), namespaced=spec.get("scope", "Namespaced") == "Namespaced",
            singular=names.get("singular"), short_names=names.get("shortNames") or (),
            categories=names.get("categories") or (), subresources=served_subresources,
            patch_meta=None,
            table=tables.custom_resource_table(version.get("additionalPrinterColumns")),
            strategy=CustomResourceStrategy("status" in subresources),
            crd_name=(crd.get("metadata") or {}).get("name"), scale_paths=scale_paths))
    return result


class Registry:
    """The served resource types, by ``(group, version, plural)``; groups keep the order
    in which their first type was added (core first), as discovery lists them."""

    def __init__(self, types=()):
        """Start with ``types`` (e.g. :func:`builtin_types`)."""
        self._types = {}
        self._groups = {}
        for rtype in types:
            self.add(rtype)

    def add(self, rtype):
        """Serve ``rtype`` (replacing a type with the same group/version/plural)."""
        self._types[(rtype.group, rtype.version, rtype.plural)] = rtype
        versions = self._groups.setdefault(rtype.group, [])
        if rtype.version not in versions:
            versions.append(rtype.version)

    def remove_crd(self, crd_name):
        """Stop serving every type that came from the CRD called ``crd_name``."""
        for key, rtype in list(self._types.items()):
            if rtype.crd_name == crd_name:
                del self._types[key]
        self._groups = {}
        for rtype in self._types.values():
            versions = self._groups.setdefault(rtype.group, [])
            if rtype.version not in versions:
                versions.append(rtype.version)

    def get(self, group, version, plural):
        """The type, or None."""
        return self._types.get((group, version, plural))

    def by_kind(self, group, kind):
        """The first served type of ``group`` with ``kind``, or None."""
        for rtype in self._types.values():
            if rtype.group == group and rtype.kind == kind:
                return rtype
        return None

    def types(self):
        """Every served type."""
        return list(self._types.values())

    def groups(self):
        """``[(group, [versions])]`` in discovery order."""
        return [(group, list(versions)) for group, versions in self._groups.items()
                if versions]

    def resources(self, group, version):
        """The types of one group/version."""
        return [t for (g, v, _), t in self._types.items() if g == group and v == version]

    def namespaced_keys(self):
        """Storage keys of every namespaced resource (namespace deletion empties them)."""
        return sorted({t.key for t in self._types.values() if t.namespaced})

    def all_keys(self):
        """Storage keys of every resource."""
        return sorted({t.key for t in self._types.values()})
