"""Decoding the Kubernetes protobuf bodies kubectl's typed commands send.

``kubectl create namespace|configmap|secret|serviceaccount|deployment|service`` go through
client-go's typed clientset, which writes ``application/vnd.kubernetes.protobuf``: the
magic ``k8s\\x00`` and a ``runtime.Unknown`` (``typeMeta`` = 1, ``raw`` = 2) whose ``raw``
is the object in the wire format of ``k8s.io/api``'s ``generated.proto``. This module
turns those bytes into the same JSON-shaped dict a JSON body would give, for the kinds in
:data:`KINDS`, with the field numbers of ``generated.proto`` (checked against kubectl
1.32's own request bodies).

Go's gogo-protobuf writes every non-pointer field, zero values included; JSON would have
left them out (``omitempty``), so zero values of non-pointer fields are dropped. A field
this module does not know is skipped when it carries a zero value and refused otherwise
(:class:`ProtobufError`, answered 415): a body is never decoded with parts silently lost.
Status is not decoded (create and update ignore it for these kinds).
"""

import base64

__all__ = ["ProtobufError", "decode_object", "KINDS", "MAGIC"]

#: The 4-byte prefix of Kubernetes protobuf bodies.
MAGIC = b"k8s\x00"


class ProtobufError(ValueError):
    """A protobuf body that cannot be decoded (completely); the message says where."""


class F:
    """One field of a message schema: JSON name, kind, sub-schema, whether Go has a
    pointer there (a zero value then means something and is kept)."""

    __slots__ = ("name", "kind", "sub", "pointer")

    def __init__(self, name, kind, sub=None, pointer=False):
        self.name = name
        self.kind = kind
        self.sub = sub
        self.pointer = pointer


# -- wire format ------------------------------------------------------------------------------


def _varint(data, pos):
    result, shift = 0, 0
    while True:
        if pos >= len(data):
            raise ProtobufError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 70:
            raise ProtobufError("varint too long")


def _fields(data):
    """``(number, wire_type, value)``: ints for varints, bytes for the rest."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise ProtobufError("truncated field {}".format(number))
            value, pos = data[pos:pos + length], pos + length
        elif wire == 1:
            value, pos = data[pos:pos + 8], pos + 8
        elif wire == 5:
            value, pos = data[pos:pos + 4], pos + 4
        else:
            raise ProtobufError("unsupported wire type {} for field {}".format(wire, number))
        yield number, wire, value


def _signed(value):
    """A varint as Go's int64/int32 (two's complement)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _text(value, path):
    try:
        return value.decode("utf-8")
    except (UnicodeDecodeError, AttributeError):
        raise ProtobufError("{}: not a UTF-8 string".format(path)) from None


def _scalar(kind, wire, value, path):
    if kind == "string":
        if wire != 2:
            raise ProtobufError("{}: expected a string".format(path))
        return _text(value, path)
    if kind == "bytes":
        if wire != 2:
            raise ProtobufError("{}: expected bytes".format(path))
        return base64.b64encode(value).decode("ascii")
    if kind in ("int", "bool"):
        if wire != 0:
            raise ProtobufError("{}: expected a varint".format(path))
        return bool(value) if kind == "bool" else _signed(value)
    raise AssertionError(kind)


def _zero(wire, value):
    return value in (0, b"")


def _decode(data, schema, path):
    result = {}
    for number, wire, value in _fields(data):
        field = schema.get(number)
        if field is None:
            if _zero(wire, value):
                continue
            raise ProtobufError("{}: field {} is not understood by this server".format(
                path or "object", number))
        where = "{}.{}".format(path, field.name) if path else field.name
        kind = field.kind
        if kind == "ignore":
            continue
        if kind in ("string", "bytes", "int", "bool"):
            decoded = _scalar(kind, wire, value, where)
            if decoded in ("", 0, False) and not field.pointer:
                continue
            result[field.name] = decoded
        elif kind == "message":
            decoded = _decode(value, field.sub, where)
            if decoded or field.pointer:
                result[field.name] = decoded
        elif kind == "intstr":
            parts = {n: v for n, _, v in _fields(value)}
            if parts.get(1, 0) == 1:
                result[field.name] = _text(parts.get(3, b""), where)
            else:
                result[field.name] = _signed(parts.get(2, 0))
        elif kind == "quantity":
            result[field.name] = _text(dict((n, v) for n, _, v in _fields(value)).get(
                1, b""), where)
        elif kind.startswith("map:"):
            value_kind = kind[4:]
            entry = {n: (w, v) for n, w, v in _fields(value)}
            key = _text(entry.get(1, (2, b""))[1], where)
            entry_wire, entry_value = entry.get(2, (2, b""))
            if value_kind == "quantity":
                item = _text(dict((n, v) for n, _, v in _fields(entry_value)).get(1, b""),
                             where)
            else:
                item = _scalar(value_kind, entry_wire, entry_value, where)
            result.setdefault(field.name, {})[key] = item
        elif kind == "repeated:string":
            result.setdefault(field.name, []).append(_text(value, where))
        elif kind == "repeated:message":
            result.setdefault(field.name, []).append(
                _decode(value, field.sub, "{}[{}]".format(where, len(result.get(
                    field.name, [])))))
        else:  # pragma: no cover - a schema error
            raise AssertionError(kind)
    return result


# -- schemas (k8s.io/api and apimachinery generated.proto field numbers) -----------------------

OWNER_REFERENCE = {1: F("kind", "string"), 3: F("name", "string"), 4: F("uid", "string"),
                   5: F("apiVersion", "string"), 6: F("controller", "bool", pointer=True),
                   7: F("blockOwnerDeletion", "bool", pointer=True)}
OBJECT_META = {
    1: F("name", "string"), 2: F("generateName", "string"), 3: F("namespace", "string"),
    4: F("selfLink", "ignore"), 5: F("uid", "string"), 6: F("resourceVersion", "string"),
    7: F("generation", "int"), 8: F("creationTimestamp", "ignore"),
    9: F("deletionTimestamp", "ignore"), 10: F("deletionGracePeriodSeconds", "ignore"),
    11: F("labels", "map:string"), 12: F("annotations", "map:string"),
    13: F("ownerReferences", "repeated:message", OWNER_REFERENCE),
    14: F("finalizers", "repeated:string"), 17: F("managedFields", "ignore"),
}
LABEL_SELECTOR = {
    1: F("matchLabels", "map:string"),
    2: F("matchExpressions", "repeated:message", {
        1: F("key", "string"), 2: F("operator", "string"), 3: F("values", "repeated:string")}),
}
CONTAINER = {
    1: F("name", "string"), 2: F("image", "string"), 3: F("command", "repeated:string"),
    4: F("args", "repeated:string"), 5: F("workingDir", "string"),
    6: F("ports", "repeated:message", {
        1: F("name", "string"), 2: F("hostPort", "int"), 3: F("containerPort", "int"),
        4: F("protocol", "string"), 5: F("hostIP", "string")}),
    7: F("env", "repeated:message", {1: F("name", "string"), 2: F("value", "string")}),
    8: F("resources", "message", {1: F("limits", "map:quantity"),
                                  2: F("requests", "map:quantity")}),
    9: F("volumeMounts", "repeated:message", {
        1: F("name", "string"), 2: F("readOnly", "bool"), 3: F("mountPath", "string"),
        4: F("subPath", "string")}),
    13: F("terminationMessagePath", "string"), 14: F("imagePullPolicy", "string"),
    16: F("stdin", "bool"), 17: F("stdinOnce", "bool"), 18: F("tty", "bool"),
    20: F("terminationMessagePolicy", "string"),
}
POD_SPEC = {
    2: F("containers", "repeated:message", CONTAINER), 3: F("restartPolicy", "string"),
    4: F("terminationGracePeriodSeconds", "int", pointer=True),
    5: F("activeDeadlineSeconds", "int", pointer=True), 6: F("dnsPolicy", "string"),
    7: F("nodeSelector", "map:string"), 8: F("serviceAccountName", "string"),
    9: F("serviceAccount", "string"), 10: F("nodeName", "string"),
    11: F("hostNetwork", "bool"), 12: F("hostPID", "bool"), 13: F("hostIPC", "bool"),
    15: F("imagePullSecrets", "repeated:message", {1: F("name", "string")}),
    16: F("hostname", "string"), 17: F("subdomain", "string"),
    19: F("schedulerName", "string"), 20: F("initContainers", "repeated:message", CONTAINER),
    24: F("priorityClassName", "string"),
}
POD_TEMPLATE = {1: F("metadata", "message", OBJECT_META), 2: F("spec", "message", POD_SPEC)}
DEPLOYMENT = {
    1: F("metadata", "message", OBJECT_META),
    2: F("spec", "message", {
        1: F("replicas", "int", pointer=True),
        2: F("selector", "message", LABEL_SELECTOR, pointer=True),
        3: F("template", "message", POD_TEMPLATE),
        4: F("strategy", "message", {1: F("type", "string"), 2: F("rollingUpdate", "message", {
            1: F("maxUnavailable", "intstr"), 2: F("maxSurge", "intstr")}, pointer=True)}),
        5: F("minReadySeconds", "int"), 6: F("revisionHistoryLimit", "int", pointer=True),
        7: F("paused", "bool"), 9: F("progressDeadlineSeconds", "int", pointer=True)}),
    3: F("status", "ignore"),
}
SERVICE = {
    1: F("metadata", "message", OBJECT_META),
    2: F("spec", "message", {
        1: F("ports", "repeated:message", {
            1: F("name", "string"), 2: F("protocol", "string"), 3: F("port", "int"),
            4: F("targetPort", "intstr"), 5: F("nodePort", "int"),
            6: F("appProtocol", "string", pointer=True)}),
        2: F("selector", "map:string"), 3: F("clusterIP", "string"), 4: F("type", "string"),
        5: F("externalIPs", "repeated:string"), 7: F("sessionAffinity", "string"),
        8: F("loadBalancerIP", "string"), 10: F("externalName", "string"),
        11: F("externalTrafficPolicy", "string"), 12: F("healthCheckNodePort", "int"),
        13: F("publishNotReadyAddresses", "bool"), 18: F("clusterIPs", "repeated:string")}),
    3: F("status", "ignore"),
}

#: ``(apiVersion, kind)`` -> schema of the kinds decoded.
KINDS = {
    ("v1", "Namespace"): {1: F("metadata", "message", OBJECT_META),
                          2: F("spec", "message", {1: F("finalizers", "repeated:string")}),
                          3: F("status", "ignore")},
    ("v1", "ConfigMap"): {1: F("metadata", "message", OBJECT_META),
                          2: F("data", "map:string"), 3: F("binaryData", "map:bytes"),
                          4: F("immutable", "bool", pointer=True)},
    ("v1", "Secret"): {1: F("metadata", "message", OBJECT_META), 2: F("data", "map:bytes"),
                       3: F("type", "string"), 4: F("stringData", "map:string"),
                       5: F("immutable", "bool", pointer=True)},
    ("v1", "ServiceAccount"): {
        1: F("metadata", "message", OBJECT_META),
        2: F("secrets", "repeated:message", {1: F("kind", "string"),
                                             2: F("namespace", "string"),
                                             3: F("name", "string")}),
        3: F("imagePullSecrets", "repeated:message", {1: F("name", "string")}),
        4: F("automountServiceAccountToken", "bool", pointer=True)},
    ("v1", "Service"): SERVICE,
    ("apps/v1", "Deployment"): DEPLOYMENT,
}


def decode_object(data):
    """The JSON-shaped dict of a Kubernetes protobuf body (``kind`` and ``apiVersion``
    set); :class:`ProtobufError` for anything else or anything not fully understood."""
    if not data.startswith(MAGIC):
        raise ProtobufError("not a Kubernetes protobuf body (no k8s\\x00 prefix)")
    envelope = {number: value for number, _, value in _fields(data[len(MAGIC):])}
    type_meta = {number: value for number, _, value in _fields(envelope.get(1, b""))}
    api_version = _text(type_meta.get(1, b""), "apiVersion")
    kind = _text(type_meta.get(2, b""), "kind")
    encoding = envelope.get(3, b"")
    if encoding:
        raise ProtobufError("content encoding {!r} is not supported".format(encoding))
    schema = KINDS.get((api_version, kind))
    if schema is None:
        raise ProtobufError("protobuf bodies of {} {} are not decoded by this server".format(
            api_version or "?", kind or "?"))
    obj = _decode(envelope.get(2, b""), schema, "")
    obj["kind"] = kind
    obj["apiVersion"] = api_version
    return obj
