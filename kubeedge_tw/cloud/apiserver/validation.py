"""Validation of API objects, with kube-apiserver's field paths and messages.

Two layers:

* :func:`typecheck` walks an object against a small structural schema and raises a 400
  ``BadRequest`` for a JSON value of the wrong type (a string where a list of containers
  belongs), as kube-apiserver's decoder does; everything after it can rely on the types.
* ``validate_*`` functions return lists of :class:`~.errors.Cause` (empty when valid); the
  caller turns a non-empty list into a 422 ``Invalid`` naming every bad field, e.g.
  ``spec.containers[0].image: Required value``.

Rules and wording follow ``k8s.io/apimachinery/pkg/util/validation`` and
``pkg/apis/core/validation``.
"""

import base64
import binascii
import re

from kubeedge_tw.cloud.apiserver import errors
from kubeedge_tw.cloud.apiserver.errors import (
    field_duplicate, field_forbidden, field_invalid, field_not_supported, field_required)
from kubeedge_tw.cloud.apiserver.selectors import SelectorError, selector_from_label_selector

__all__ = [
    "typecheck", "INTSTR", "ANY", "validate_object_meta", "dns1123_label", "dns1123_subdomain",
    "path_segment_name", "validate_pod_spec", "validate_pod_template", "validate_labels",
    "validate_label_selector", "validate_data_keys", "validate_service",
    "DNS1123_LABEL_MESSAGE", "DNS1123_SUBDOMAIN_MESSAGE",
]

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_IANA_SVC_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")

DNS1123_LABEL_MESSAGE = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
    "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
DNS1123_SUBDOMAIN_MESSAGE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' "
    "or '.', and must start and end with an alphanumeric character (e.g. 'example.com', "
    "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*"
    "[a-z0-9])?)*')")
_QUALIFIED_NAME_MESSAGE = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start "
    "and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', "
    "regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
_LABEL_VALUE_MESSAGE = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' "
    "or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
    "'my_value',  or '12345', regex used for validation is "
    "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")
_CONFIG_KEY_MESSAGE = (
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. "
    "'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is "
    "'[-._a-zA-Z0-9]+')")

# -- structural type check ---------------------------------------------------------------------

#: Schema marker: an int or a string (Kubernetes' IntOrString).
INTSTR = "intstr"
#: Schema marker: any JSON value.
ANY = "any"

_JSON_NAMES = {dict: "object", list: "array", str: "string", bool: "bool", int: "number",
               float: "number", type(None): "null"}


def _json_name(value):
    return _JSON_NAMES.get(type(value), type(value).__name__)


def _type_error(kind, path, value, expected):
    return errors.bad_request(
        "json: cannot unmarshal {} into Go struct field {}.{} of type {}".format(
            _json_name(value), kind, path, expected))


def typecheck(value, schema, kind, path=""):
    """Raise a 400 :class:`~.errors.APIError` where ``value`` does not have the JSON types
    ``schema`` describes. Schema nodes: ``str``, ``int``, ``bool``, ``float`` (any
    number), ``dict`` (any object), :data:`INTSTR`, :data:`ANY`, a dict of field schemas
    (an object, unknown fields unchecked), ``[node]`` (an array of node) and
    ``("map", node)`` (an object whose values are node). ``null`` is accepted everywhere,
    as Go's decoder does."""
    if value is None or schema is ANY:
        return
    if schema is str:
        if not isinstance(value, str):
            raise _type_error(kind, path, value, "string")
    elif schema is bool:
        if not isinstance(value, bool):
            raise _type_error(kind, path, value, "bool")
    elif schema is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _type_error(kind, path, value, "int")
    elif schema is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _type_error(kind, path, value, "float64")
    elif schema is dict:
        if not isinstance(value, dict):
            raise _type_error(kind, path, value, "object")
    elif schema == INTSTR:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise _type_error(kind, path, value, "intstr.IntOrString")
    elif isinstance(schema, tuple) and schema[0] == "map":
        if not isinstance(value, dict):
            raise _type_error(kind, path, value, "map")
        for key, item in value.items():
            typecheck(item, schema[1], kind, "{}[{}]".format(path, key))
    elif isinstance(schema, list):
        if not isinstance(value, list):
            raise _type_error(kind, path, value, "array")
        for index, item in enumerate(value):
            typecheck(item, schema[0], kind, "{}[{}]".format(path, index))
    elif isinstance(schema, dict):
        if not isinstance(value, dict):
            raise _type_error(kind, path, value, "object")
        for key, sub in schema.items():
            if key in value:
                typecheck(value[key], sub, kind, "{}.{}".format(path, key) if path else key)
    else:  # pragma: no cover - a bad schema is a programming error
        raise AssertionError("unknown schema node {!r}".format(schema))


# -- names, labels, metadata -------------------------------------------------------------------


def dns1123_label(value):
    """Problems with ``value`` as a DNS-1123 label (namespaces, services, containers)."""
    problems = []
    if len(value) > 63:
        problems.append("must be no more than 63 characters")
    if not _DNS1123_LABEL.match(value):
        problems.append(DNS1123_LABEL_MESSAGE)
    return problems


def dns1123_subdomain(value):
    """Problems with ``value`` as a DNS-1123 subdomain (most object names)."""
    problems = []
    if len(value) > 253:
        problems.append("must be no more than 253 characters")
    if not _DNS1123_SUBDOMAIN.match(value):
        problems.append(DNS1123_SUBDOMAIN_MESSAGE)
    return problems


def path_segment_name(value):
    """Problems with ``value`` as a name that only has to be a URL path segment (events,
    custom resources)."""
    if value in (".", ".."):
        return ['may not be "{}"'.format(value)]
    for bad in ("/", "%"):
        if bad in value:
            return ["may not contain '{}'".format(bad)]
    return []


def _qualified_name(key):
    problems = []
    prefix, slash, name = key.rpartition("/")
    if slash:
        if not prefix:
            problems.append("prefix part must be non-empty")
        else:
            problems.extend("prefix part " + p for p in dns1123_subdomain(prefix))
    if not name:
        problems.append("name part must be non-empty")
    else:
        if len(name) > 63:
            problems.append("name part must be no more than 63 characters")
        if not _QUALIFIED_NAME.match(name):
            problems.append(_QUALIFIED_NAME_MESSAGE)
    return problems


def validate_labels(labels, field):
    """Causes for bad label keys (qualified names) and values."""
    causes = []
    for key, value in (labels or {}).items():
        for problem in _qualified_name(key):
            causes.append(field_invalid(field, key, problem))
        if len(value) > 63:
            causes.append(field_invalid("{}[{}]".format(field, key), value,
                                        "must be no more than 63 characters"))
        if not _LABEL_VALUE.match(value):
            causes.append(field_invalid("{}[{}]".format(field, key), value,
                                        _LABEL_VALUE_MESSAGE))
    return causes


def validate_annotations(annotations, field):
    """Causes for bad annotation keys and an oversized total (256 KiB)."""
    causes = []
    total = 0
    for key, value in (annotations or {}).items():
        for problem in _qualified_name(key.lower()):
            causes.append(field_invalid(field, key, problem))
        total += len(key) + len(value)
    if total > 256 * 1024:
        causes.append(_too_long(field, 256 * 1024))
    return causes


def _too_long(field, limit):
    """``field: Too long: must have at most N bytes``."""
    return errors.Cause(field, "FieldValueTooLong",
                        "Too long: must have at most {} bytes".format(limit))


METADATA_SCHEMA = {
    "name": str, "generateName": str, "namespace": str, "uid": str, "resourceVersion": str,
    "labels": ("map", str), "annotations": ("map", str), "finalizers": [str],
    "ownerReferences": [{"apiVersion": str, "kind": str, "name": str, "uid": str,
                         "controller": bool, "blockOwnerDeletion": bool}],
    "deletionGracePeriodSeconds": int, "generation": int,
}


def validate_object_meta(meta, namespaced, name_check=dns1123_subdomain):
    """Causes for ``metadata``: a valid name (or generateName), namespace presence,
    labels, annotations, owner references and finalizers."""
    causes = []
    name = meta.get("name") or ""
    if not name:
        if meta.get("generateName"):
            for problem in name_check(meta["generateName"].rstrip("-") or "x"):
                causes.append(field_invalid("metadata.generateName", meta["generateName"],
                                            problem))
        else:
            causes.append(field_required("metadata.name", "name or generateName is required"))
    else:
        for problem in name_check(name):
            causes.append(field_invalid("metadata.name", name, problem))
    if namespaced and not meta.get("namespace"):
        causes.append(field_required("metadata.namespace"))
    if not namespaced and meta.get("namespace"):
        causes.append(field_forbidden("metadata.namespace", "not allowed on this type"))
    causes.extend(validate_labels(meta.get("labels"), "metadata.labels"))
    causes.extend(validate_annotations(meta.get("annotations"), "metadata.annotations"))
    for index, ref in enumerate(meta.get("ownerReferences") or []):
        path = "metadata.ownerReferences[{}]".format(index)
        for key in ("apiVersion", "kind", "name", "uid"):
            if not ref.get(key):
                causes.append(field_required("{}.{}".format(path, key)))
    seen = set()
    for index, finalizer in enumerate(meta.get("finalizers") or []):
        if finalizer in seen:
            causes.append(field_duplicate("metadata.finalizers[{}]".format(index), finalizer))
        seen.add(finalizer)
        problems = _qualified_name(finalizer)
        if problems:
            causes.append(field_invalid("metadata.finalizers[{}]".format(index), finalizer,
                                        problems[0]))
    return causes


def validate_label_selector(selector, field, required=True):
    """Causes for a ``metav1.LabelSelector``: present (when required), known operators,
    valid keys and values, and not empty when required (it would select everything)."""
    if selector is None:
        return [field_required(field)] if required else []
    causes = []
    try:
        selector_from_label_selector(selector)
    except SelectorError as e:
        causes.append(field_invalid(field + ".matchExpressions", selector.get(
            "matchExpressions"), str(e)))
    causes.extend(validate_labels(selector.get("matchLabels"), field + ".matchLabels"))
    for index, expr in enumerate(selector.get("matchExpressions") or []):
        path = "{}.matchExpressions[{}]".format(field, index)
        op = expr.get("operator")
        values = expr.get("values") or []
        if op in ("In", "NotIn") and not values:
            causes.append(field_required(path + ".values",
                                         "must be specified when `operator` is 'In' or "
                                         "'NotIn'"))
        if op in ("Exists", "DoesNotExist") and values:
            causes.append(field_forbidden(path + ".values",
                                          "may not be specified when `operator` is 'Exists' "
                                          "or 'DoesNotExist'"))
    if required and not selector.get("matchLabels") and not selector.get("matchExpressions"):
        causes.append(field_invalid(field, selector, "empty selector is invalid for "
                                    "deployment"))
    return causes


# -- pods ----------------------------------------------------------------------------------

_PROTOCOLS = ("SCTP", "TCP", "UDP")
_RESTART_POLICIES = ("Always", "Never", "OnFailure")
_PULL_POLICIES = ("Always", "IfNotPresent", "Never")
_DNS_POLICIES = ("ClusterFirst", "ClusterFirstWithHostNet", "Default", "None")

CONTAINER_SCHEMA = {
    "name": str, "image": str, "command": [str], "args": [str], "workingDir": str,
    "ports": [{"name": str, "containerPort": int, "hostPort": int, "protocol": str,
               "hostIP": str}],
    "env": [{"name": str, "value": str, "valueFrom": dict}],
    "envFrom": [dict], "resources": {"limits": ("map", INTSTR), "requests": ("map", INTSTR)},
    "volumeMounts": [{"name": str, "mountPath": str, "readOnly": bool, "subPath": str}],
    "imagePullPolicy": str, "livenessProbe": dict, "readinessProbe": dict,
    "startupProbe": dict, "securityContext": dict, "stdin": bool, "tty": bool,
    "terminationMessagePath": str, "terminationMessagePolicy": str,
}

POD_SPEC_SCHEMA = {
    "containers": [CONTAINER_SCHEMA], "initContainers": [CONTAINER_SCHEMA],
    "volumes": [{"name": str}], "restartPolicy": str, "terminationGracePeriodSeconds": int,
    "activeDeadlineSeconds": int, "dnsPolicy": str, "nodeSelector": ("map", str),
    "serviceAccountName": str, "serviceAccount": str, "nodeName": str, "hostNetwork": bool,
    "hostPID": bool, "hostIPC": bool, "securityContext": dict,
    "imagePullSecrets": [{"name": str}], "hostname": str, "subdomain": str, "affinity": dict,
    "schedulerName": str, "tolerations": [{"key": str, "operator": str, "value": str,
                                          "effect": str, "tolerationSeconds": int}],
    "priority": int, "priorityClassName": str, "readinessGates": [{"conditionType": str}],
    "enableServiceLinks": bool,
}

POD_STATUS_SCHEMA = {
    "phase": str, "conditions": [{"type": str, "status": str, "reason": str,
                                  "message": str}],
    "message": str, "reason": str, "hostIP": str, "podIP": str, "podIPs": [{"ip": str}],
    "containerStatuses": [{"name": str, "ready": bool, "restartCount": int,
                           "image": str, "state": dict, "lastState": dict}],
    "initContainerStatuses": [{"name": str, "ready": bool, "restartCount": int,
                               "state": dict, "lastState": dict}],
    "nominatedNodeName": str, "qosClass": str, "startTime": str,
}


def _validate_container(container, path, names, causes):
    name = container.get("name") or ""
    if not name:
        causes.append(field_required(path + ".name"))
    else:
        for problem in dns1123_label(name):
            causes.append(field_invalid(path + ".name", name, problem))
        if name in names:
            causes.append(field_duplicate(path + ".name", name))
        names.add(name)
    if not container.get("image"):
        causes.append(field_required(path + ".image"))
    policy = container.get("imagePullPolicy")
    if policy and policy not in _PULL_POLICIES:
        causes.append(field_not_supported(path + ".imagePullPolicy", policy, _PULL_POLICIES))
    port_names = set()
    for index, port in enumerate(container.get("ports") or []):
        ppath = "{}.ports[{}]".format(path, index)
        if "containerPort" not in port or port.get("containerPort") is None:
            causes.append(field_required(ppath + ".containerPort"))
        else:
            number = port["containerPort"]
            if not 1 <= number <= 65535:
                causes.append(field_invalid(ppath + ".containerPort", number,
                                            "must be between 1 and 65535, inclusive"))
        host_port = port.get("hostPort")
        if host_port is not None and not 0 <= host_port <= 65535:
            causes.append(field_invalid(ppath + ".hostPort", host_port,
                                        "must be between 1 and 65535, inclusive"))
        protocol = port.get("protocol")
        if protocol is not None and protocol not in _PROTOCOLS:
            causes.append(field_not_supported(ppath + ".protocol", protocol, _PROTOCOLS))
        port_name = port.get("name")
        if port_name:
            if (len(port_name) > 15 or not _IANA_SVC_NAME.match(port_name)
                    or "--" in port_name or not re.search("[a-z]", port_name)):
                causes.append(field_invalid(ppath + ".name", port_name,
                                            "must be no more than 15 characters, contain only "
                                            "lowercase alphanumeric characters or '-', contain "
                                            "at least one letter and not start or end with '-'"))
            elif port_name in port_names:
                causes.append(field_duplicate(ppath + ".name", port_name))
            port_names.add(port_name)
    for index, env in enumerate(container.get("env") or []):
        if not env.get("name"):
            causes.append(field_required("{}.env[{}].name".format(path, index)))


def validate_pod_spec(spec, path="spec", restart_policies=_RESTART_POLICIES):
    """Causes for a ``PodSpec`` at ``path``: containers (at least one, each with a unique
    DNS-1123 name and an image, valid ports), volumes, restart and DNS policies."""
    causes = []
    if not isinstance(spec, dict):
        return [field_required(path)]
    containers = spec.get("containers") or []
    if not containers:
        causes.append(field_required(path + ".containers"))
    names = set()
    for index, container in enumerate(spec.get("initContainers") or []):
        _validate_container(container, "{}.initContainers[{}]".format(path, index), names,
                            causes)
    for index, container in enumerate(containers):
        _validate_container(container, "{}.containers[{}]".format(path, index), names, causes)
    volumes = set()
    for index, volume in enumerate(spec.get("volumes") or []):
        vpath = "{}.volumes[{}].name".format(path, index)
        name = volume.get("name") or ""
        if not name:
            causes.append(field_required(vpath))
        elif dns1123_label(name):
            causes.append(field_invalid(vpath, name, dns1123_label(name)[0]))
        elif name in volumes:
            causes.append(field_duplicate(vpath, name))
        volumes.add(name)
    for container_list in ("initContainers", "containers"):
        for cindex, container in enumerate(spec.get(container_list) or []):
            for mindex, mount in enumerate(container.get("volumeMounts") or []):
                mpath = "{}.{}[{}].volumeMounts[{}]".format(path, container_list, cindex,
                                                             mindex)
                if not mount.get("name"):
                    causes.append(field_required(mpath + ".name"))
                elif mount["name"] not in volumes:
                    causes.append(errors.Cause(mpath + ".name", "FieldValueNotFound",
                                               "Not found: {}".format(
                                                   errors.go_value(mount["name"]))))
                if not mount.get("mountPath"):
                    causes.append(field_required(mpath + ".mountPath"))
    policy = spec.get("restartPolicy")
    if policy is not None and policy not in restart_policies:
        causes.append(field_not_supported(path + ".restartPolicy", policy, restart_policies))
    dns = spec.get("dnsPolicy")
    if dns is not None and dns not in _DNS_POLICIES:
        causes.append(field_not_supported(path + ".dnsPolicy", dns, _DNS_POLICIES))
    grace = spec.get("terminationGracePeriodSeconds")
    if grace is not None and grace < 0:
        causes.append(field_invalid(path + ".terminationGracePeriodSeconds", grace,
                                    "must be greater than or equal to 0"))
    node = spec.get("nodeName")
    if node:
        for problem in dns1123_subdomain(node):
            causes.append(field_invalid(path + ".nodeName", node, problem))
    causes.extend(validate_labels(spec.get("nodeSelector"), path + ".nodeSelector"))
    return causes


def validate_pod_template(template, selector, path, restart_policies=("Always",)):
    """Causes for a workload's ``spec.template``: labels valid and matched by
    ``selector`` (a metav1.LabelSelector), and a valid pod spec."""
    if not isinstance(template, dict):
        return [field_required(path)]
    causes = []
    labels = (template.get("metadata") or {}).get("labels") or {}
    causes.extend(validate_labels(labels, path + ".metadata.labels"))
    try:
        parsed = selector_from_label_selector(selector) if selector is not None else None
    except SelectorError:
        parsed = None
    if parsed is not None and not parsed.empty() and not parsed.matches(labels):
        causes.append(field_invalid(path + ".metadata.labels", labels,
                                    "`selector` does not match template `labels`"))
    causes.extend(validate_pod_spec(template.get("spec"), path + ".spec",
                                    restart_policies=restart_policies))
    return causes


# -- config maps, secrets, services ----------------------------------------------------------


def validate_data_keys(obj, fields=("data", "binaryData")):
    """Causes for ConfigMap/Secret data keys (``[-._a-zA-Z0-9]+``, unique across
    ``data`` and ``binaryData``)."""
    causes = []
    seen = set()
    for field in fields:
        for key in (obj.get(field) or {}):
            path = "{}[{}]".format(field, key)
            if not key or len(key) > 253 or not _CONFIG_KEY.match(key):
                causes.append(field_invalid(path, key, _CONFIG_KEY_MESSAGE))
            elif key in (".", "..") or key.startswith(".."):
                causes.append(field_invalid(path, key, "must not start with '..'"))
            if key in seen:
                causes.append(field_invalid(path, key, "duplicate of key present in " +
                                            fields[0]))
            seen.add(key)
    return causes


def check_base64_values(obj, field, kind):
    """Raise 400 for a ``data`` value that is not base64, as kube-apiserver's decoder
    does for ``[]byte`` fields."""
    for key, value in (obj.get(field) or {}).items():
        try:
            base64.b64decode(value.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError, ValueError):
            raise errors.bad_request(
                "{}.{}[{}]: illegal base64 data in {!r}".format(kind, field, key, value[:20]))


_SERVICE_TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")


def validate_service(service):
    """Causes for a Service: type, ports (number, protocol, targetPort, unique names)."""
    spec = service.get("spec") or {}
    causes = []
    kind = spec.get("type", "ClusterIP")
    if kind not in _SERVICE_TYPES:
        causes.append(field_not_supported("spec.type", kind, _SERVICE_TYPES))
    ports = spec.get("ports") or []
    if not ports and kind != "ExternalName" and spec.get("clusterIP") != "None":
        causes.append(field_required("spec.ports"))
    if kind == "ExternalName" and not spec.get("externalName"):
        causes.append(field_required("spec.externalName"))
    names = set()
    for index, port in enumerate(ports):
        path = "spec.ports[{}]".format(index)
        number = port.get("port")
        if number is None:
            causes.append(field_required(path + ".port"))
        elif not 1 <= number <= 65535:
            causes.append(field_invalid(path + ".port", number,
                                        "must be between 1 and 65535, inclusive"))
        protocol = port.get("protocol", "TCP")
        if protocol not in _PROTOCOLS:
            causes.append(field_not_supported(path + ".protocol", protocol, _PROTOCOLS))
        target = port.get("targetPort")
        if isinstance(target, int) and not 1 <= target <= 65535:
            causes.append(field_invalid(path + ".targetPort", target,
                                        "must be between 1 and 65535, inclusive"))
        name = port.get("name") or ""
        if len(ports) > 1 and not name:
            causes.append(field_required(path + ".name"))
        if name:
            if name in names:
                causes.append(field_duplicate(path + ".name", name))
            names.add(name)
            for problem in dns1123_label(name):
                causes.append(field_invalid(path + ".name", name, problem))
        node_port = port.get("nodePort")
        if node_port is not None and not 0 <= node_port <= 65535:
            causes.append(field_invalid(path + ".nodePort", node_port,
                                        "must be between 1 and 65535, inclusive"))
    causes.extend(validate_labels(spec.get("selector"), "spec.selector"))
    return causes
