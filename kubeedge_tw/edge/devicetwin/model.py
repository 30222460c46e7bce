"""DeviceTwin's values, the JSON payloads of reference 4.2, and their validation.

The classes mirror KubeEdge's ``dttype`` (``Device``, ``MsgAttr``, ``MsgTwin``,
``TwinValue``, ``TwinVersion``); ``to_json`` emits exactly the keys Go's ``encoding/json``
would (``omitempty`` included) in Go's field order, so mappers written against KubeEdge
read the same documents.

Requests are parsed with :func:`parse_object`, :func:`parse_twin_update`,
:func:`parse_device` and friends, which raise :class:`PayloadError` (code 400) with a reason
the mapper can read instead of anything else. The key and value patterns and the value
types are KubeEdge's (``dtcommon.ValidateTwinKey``/``ValidateTwinValue``/``ValidateValue``).
"""

import json
import re
import uuid
from dataclasses import dataclass, field, replace

__all__ = [
    "PayloadError", "Version", "TwinValue", "Twin", "Attr", "Device", "ValuePatch",
    "TwinPatch", "AttrPatch", "parse_object", "parse_base", "parse_twin_update",
    "parse_device", "parse_device_list", "parse_attributes", "validate_value",
    "valid_twin_key", "valid_twin_value", "device_id_error", "dumps", "new_event_id",
    "error_result", "TYPE_DELETED", "DEFAULT_TYPE", "DEVICE_STATES",
    "BAD_REQUEST", "NOT_FOUND", "CONFLICT", "INTERNAL_ERROR",
]

#: Error codes of a result payload (KubeEdge ``dtcommon``).
BAD_REQUEST, NOT_FOUND, CONFLICT, INTERNAL_ERROR = 400, 404, 409, 500

TYPE_DELETED = "deleted"
DEFAULT_TYPE = "string"
#: The states a mapper may report on ``.../state/update``.
DEVICE_STATES = ("online", "offline", "unknown")

# KubeEdge's patterns; Go's ``$`` is end of text, so fullmatch here.
_KEY_RE = re.compile(r"[a-zA-Z0-9_.,:/@#-]{1,128}")
_VALUE_RE = re.compile(r"[a-zA-Z0-9_.,:/@#-]{1,512}")
_INT_RE = re.compile(r"[+-]?[0-9]+")
_FLOAT_RE = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[+-]?(?:inf|infinity|nan)",
                       re.IGNORECASE)

# KubeEdge's error texts for the three request checks (dttype.ErrorUpdate/Key/Value).
ERROR_NO_TWIN = "Update twin error, key:twin does not exist"
ERROR_KEY = ("The key of twin must only include upper or lowercase letters, number, english, "
             "and special letter - _ . , : / @ # and the length of key should be less than "
             "128 bytes")
ERROR_VALUE = ("The value of twin must only include upper or lowercase letters, number, "
               "english, and special letter - _ . , : / @ # and the length of value should "
               "be less than 512 bytes")


class PayloadError(ValueError):
    """A request that cannot be carried out; ``code`` and ``reason`` go into the error
    result, ``event_id`` is the request's when it could be read."""

    def __init__(self, reason, code=BAD_REQUEST, event_id=""):
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.event_id = event_id


def dumps(value):
    """Compact JSON as Go's ``json.Marshal`` writes it (UTF-8, no spaces)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def new_event_id():
    """A fresh event id (KubeEdge ``BuildBaseMessage``: a UUID)."""
    return str(uuid.uuid4())


def error_result(event_id, code, reason, timestamp):
    """The error payload of a ``.../result`` topic: base + ``code`` + ``reason``."""
    return {"event_id": event_id or "", "timestamp": timestamp, "code": code,
            "reason": reason}


def valid_twin_key(key):
    """Whether ``key`` is a valid twin (or attribute) name."""
    return isinstance(key, str) and _KEY_RE.fullmatch(key) is not None


def valid_twin_value(value):
    """Whether the non-empty ``value`` has only allowed characters and <= 512 of them."""
    return _VALUE_RE.fullmatch(value) is not None


def validate_value(value_type, value):
    """None when ``value`` suits ``value_type``, else the reason (KubeEdge
    ``ValidateValue``: string/bytes any, int/integer a 64-bit integer, float/double a
    float, boolean ``true``/``false``, deleted any, anything else refused)."""
    if value_type in ("", "string", "bytes", TYPE_DELETED):
        return None
    if value_type in ("int", "integer"):
        if _INT_RE.fullmatch(value) and -2**63 <= int(value) < 2**63:
            return None
        return "the value is not int or integer"
    if value_type in ("float", "double"):
        return None if _FLOAT_RE.fullmatch(value) else "the value is not float"
    if value_type == "boolean":
        return None if value in ("true", "false") else "the bool value must be true or false"
    return "the value type is not allowed {}".format(value_type)


def device_id_error(device_id):
    """Why ``device_id`` cannot name a device, or None. Ids become MQTT topic levels, so
    ``/``, ``+``, ``#`` and U+0000 are refused."""
    if not isinstance(device_id, str) or not device_id:
        return "device id must be a non-empty string"
    if any(c in device_id for c in "/+#\x00"):
        return "device id {!r} contains '/', '+', '#' or U+0000".format(device_id)
    return None


# -- values --------------------------------------------------------------------------------

@dataclass
class Version:
    """A ``{cloud, edge}`` version pair (KubeEdge ``TwinVersion``)."""

    cloud: int = 0
    edge: int = 0

    def to_json(self):
        """``{"cloud": .., "edge": ..}``."""
        return {"cloud": self.cloud, "edge": self.edge}

    def copy(self):
        """A new equal pair."""
        return Version(self.cloud, self.edge)


@dataclass
class TwinValue:
    """A desired (``expected``) or reported (``actual``) value and its timestamp; a
    ``timestamp`` of None means no ``metadata`` object."""

    value: str = None
    timestamp: int = None

    def to_json(self):
        """``{"value": .., "metadata": {"timestamp": ..}}`` with Go's omitempty."""
        out = {}
        if self.value is not None:
            out["value"] = self.value
        if self.timestamp is not None:
            out["metadata"] = {"timestamp": self.timestamp} if self.timestamp else {}
        return out


@dataclass
class Twin:
    """One twin property of a device (KubeEdge ``MsgTwin`` plus its row's description)."""

    expected: TwinValue = None
    actual: TwinValue = None
    optional: bool = True
    attr_type: str = DEFAULT_TYPE
    expected_version: Version = None
    actual_version: Version = None
    description: str = ""

    @property
    def deleted(self):
        """A tombstone: metadata type ``deleted``, no values, versions kept."""
        return self.attr_type == TYPE_DELETED

    def copy(self):
        """A deep copy (values and versions are new objects)."""
        return replace(
            self,
            expected=replace(self.expected) if self.expected is not None else None,
            actual=replace(self.actual) if self.actual is not None else None,
            expected_version=self.expected_version.copy() if self.expected_version else None,
            actual_version=self.actual_version.copy() if self.actual_version else None)

    def to_json(self, versions=True):
        """The ``MsgTwin`` document; ``versions=False`` strips both versions."""
        out = {}
        if self.expected is not None:
            out["expected"] = self.expected.to_json()
        if self.actual is not None:
            out["actual"] = self.actual.to_json()
        out["optional"] = self.optional
        out["metadata"] = {"type": self.attr_type} if self.attr_type else {}
        if versions:
            if self.expected_version is not None:
                out["expected_version"] = self.expected_version.to_json()
            if self.actual_version is not None:
                out["actual_version"] = self.actual_version.to_json()
        return out


@dataclass
class Attr:
    """A device attribute (KubeEdge ``MsgAttr`` plus its row's description)."""

    value: str = ""
    optional: bool = True
    attr_type: str = DEFAULT_TYPE
    description: str = ""

    def copy(self):
        """An equal, independent attribute."""
        return replace(self)

    def to_json(self):
        """The ``MsgAttr`` document."""
        return {"value": self.value, "optional": self.optional,
                "metadata": {"type": self.attr_type} if self.attr_type else {}}


@dataclass
class Device:
    """A device of this node, with its attributes and twins."""

    id: str
    name: str = ""
    description: str = ""
    state: str = ""
    last_online: str = ""
    attributes: dict = field(default_factory=dict)
    twins: dict = field(default_factory=dict)

    def summary_json(self):
        """The device as membership get/detail results list it: no twins (Go omitempty)."""
        out = {"id": self.id}
        for key, value in (("name", self.name), ("description", self.description),
                           ("state", self.state), ("last_online", self.last_online)):
            if value:
                out[key] = value
        if self.attributes:
            out["attributes"] = {k: a.to_json() for k, a in self.attributes.items()}
        return out


# -- requests --------------------------------------------------------------------------------

@dataclass
class ValuePatch:
    """``expected``/``actual`` in a request: ``value`` None when null or missing."""

    value: str = None


@dataclass
class TwinPatch:
    """One twin of a twin update or sync request, as sent."""

    expected: ValuePatch = None
    actual: ValuePatch = None
    optional: bool = None
    #: ``metadata.type``; None when there is no ``metadata`` object (or no ``type`` in it).
    attr_type: str = None
    has_metadata: bool = False
    expected_version: Version = None
    actual_version: Version = None

    def to_json(self):
        """The patch as the ``MsgTwin`` it came as (for republishing membership)."""
        out = {}
        for name in ("expected", "actual"):
            patch = getattr(self, name)
            if patch is not None:
                out[name] = {"value": patch.value} if patch.value is not None else {}
        if self.optional is not None:
            out["optional"] = self.optional
        if self.has_metadata:
            out["metadata"] = {"type": self.attr_type} if self.attr_type else {}
        for name in ("expected_version", "actual_version"):
            version = getattr(self, name)
            if version is not None:
                out[name] = version.to_json()
        return out


@dataclass
class AttrPatch:
    """One attribute of a device or attribute update, as sent."""

    value: str = ""
    optional: bool = None
    attr_type: str = None
    has_metadata: bool = False


def parse_object(payload, what="payload"):
    """Decode a JSON object from text or bytes; :class:`PayloadError` otherwise."""
    if isinstance(payload, (bytes, bytearray, memoryview)):
        try:
            payload = bytes(payload).decode("utf-8")
        except UnicodeDecodeError as e:
            raise PayloadError("{} is not UTF-8 text (byte {})".format(what, e.start)) from None
    if isinstance(payload, dict):
        return payload
    if not isinstance(payload, str):
        raise PayloadError("{} must be a JSON object".format(what))
    try:
        value = json.loads(payload)
    except RecursionError:
        raise PayloadError("{} nests too deeply".format(what)) from None
    except ValueError as e:
        raise PayloadError("{} is not JSON: {}".format(what, e)) from None
    if not isinstance(value, dict):
        raise PayloadError("{} must be a JSON object, got {}".format(
            what, _json_kind(value)))
    return value


def _json_kind(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _typed(mapping, key, kinds, what, where, event_id=""):
    value = mapping.get(key)
    if value is None:
        return None
    if kinds is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, kinds)
    if not ok:
        raise PayloadError("{}{} must be {}, got {}".format(
            where, key, what, _json_kind(value)), event_id=event_id)
    return value


def parse_base(obj):
    """``(event_id, timestamp)`` of a request (``""`` and None when missing)."""
    event_id = obj.get("event_id")
    event_id = event_id if isinstance(event_id, str) else ""
    _typed(obj, "event_id", str, "a string", "", event_id)
    timestamp = _typed(obj, "timestamp", int, "an integer", "", event_id)
    return event_id, timestamp


def _parse_version(obj, key, where, event_id):
    value = _typed(obj, key, dict, "an object", where, event_id)
    if value is None:
        return None
    inner = where + key + "."
    cloud = _typed(value, "cloud", int, "an integer", inner, event_id) or 0
    edge = _typed(value, "edge", int, "an integer", inner, event_id) or 0
    return Version(cloud, edge)


def _parse_value(obj, key, where, event_id):
    value = _typed(obj, key, dict, "an object", where, event_id)
    if value is None:
        return None
    inner = where + key + "."
    text = _typed(value, "value", str, "a string", inner, event_id)
    _typed(value, "metadata", dict, "an object", inner, event_id)
    if text and not valid_twin_value(text):
        raise PayloadError(ERROR_VALUE, event_id=event_id)
    return ValuePatch(text)


def _parse_metadata(obj, where, event_id):
    metadata = _typed(obj, "metadata", dict, "an object", where, event_id)
    if metadata is None:
        return None, False
    attr_type = _typed(metadata, "type", str, "a string", where + "metadata.", event_id)
    return attr_type, True


def parse_twin_patch(name, value, event_id=""):
    """One ``twin`` entry of a request; None for JSON null (a deletion)."""
    if value is None:
        return None
    where = "twin.{}.".format(name)
    if not isinstance(value, dict):
        raise PayloadError("twin.{} must be an object or null, got {}".format(
            name, _json_kind(value)), event_id=event_id)
    attr_type, has_metadata = _parse_metadata(value, where, event_id)
    return TwinPatch(
        expected=_parse_value(value, "expected", where, event_id),
        actual=_parse_value(value, "actual", where, event_id),
        optional=_typed(value, "optional", bool, "a boolean", where, event_id),
        attr_type=attr_type, has_metadata=has_metadata,
        expected_version=_parse_version(value, "expected_version", where, event_id),
        actual_version=_parse_version(value, "actual_version", where, event_id))


def parse_twins(twins, event_id=""):
    """A ``twin`` map -> ``{name: TwinPatch or None}``, keys checked."""
    if not isinstance(twins, dict):
        raise PayloadError("twin must be an object, got {}".format(_json_kind(twins)),
                           event_id=event_id)
    patches = {}
    for name, value in twins.items():
        if not valid_twin_key(name):
            raise PayloadError(ERROR_KEY, event_id=event_id)
        patches[name] = parse_twin_patch(name, value, event_id)
    return patches


def parse_twin_update(obj):
    """A twin update or sync request -> ``(event_id, {name: TwinPatch or None})``.

    The ``twin`` key is mandatory (KubeEdge ``UnmarshalDeviceTwinUpdate``)."""
    event_id, _ = parse_base(obj)
    twins = obj.get("twin")
    if twins is None:
        raise PayloadError(ERROR_NO_TWIN, event_id=event_id)
    return event_id, parse_twins(twins, event_id)


def parse_attributes(attrs, where="attributes", event_id=""):
    """An ``attributes`` map -> ``{name: AttrPatch or None}``."""
    if attrs is None:
        return {}
    if not isinstance(attrs, dict):
        raise PayloadError("{} must be an object, got {}".format(where, _json_kind(attrs)),
                           event_id=event_id)
    patches = {}
    for name, value in attrs.items():
        if not valid_twin_key(name):
            raise PayloadError("{}: invalid attribute name {!r}".format(where, name[:128]),
                               event_id=event_id)
        if value is None:
            patches[name] = None
            continue
        inner = "{}.{}.".format(where, name)
        if not isinstance(value, dict):
            raise PayloadError("{}.{} must be an object or null".format(where, name),
                               event_id=event_id)
        attr_type, has_metadata = _parse_metadata(value, inner, event_id)
        patches[name] = AttrPatch(
            value=_typed(value, "value", str, "a string", inner, event_id) or "",
            optional=_typed(value, "optional", bool, "a boolean", inner, event_id),
            attr_type=attr_type, has_metadata=has_metadata)
    return patches


@dataclass
class DeviceSpec:
    """A device as the cloud sends it in membership updates and details."""

    id: str
    name: str = ""
    description: str = ""
    state: str = ""
    last_online: str = ""
    attributes: dict = field(default_factory=dict)
    twins: dict = field(default_factory=dict)
    #: The device object as received, for republishing on ``membership/updated``.
    raw: dict = field(default_factory=dict)


def parse_device(obj, where="device"):
    """A ``Device`` object from the cloud -> :class:`DeviceSpec`."""
    if not isinstance(obj, dict):
        raise PayloadError("{} must be an object".format(where))
    device_id = obj.get("id")
    error = device_id_error(device_id)
    if error is not None:
        raise PayloadError("{}: {}".format(where, error))
    texts = {}
    for key in ("name", "description", "state", "last_online"):
        texts[key] = _typed(obj, key, str, "a string", where + ".", "") or ""
    twins = obj.get("twin")
    return DeviceSpec(id=device_id, attributes=parse_attributes(
        obj.get("attributes"), where + ".attributes"),
        twins=parse_twins(twins) if twins is not None else {}, raw=obj, **texts)


def parse_device_list(obj, key):
    """The list ``obj[key]`` of devices (missing or null = empty)."""
    devices = obj.get(key)
    if devices is None:
        return []
    if not isinstance(devices, list):
        raise PayloadError("{} must be an array".format(key))
    return [parse_device(d, "{}[{}]".format(key, i)) for i, d in enumerate(devices)]


def membership_device_json(spec):
    """A device of a membership update as published on ``membership/updated``: as the
    cloud sent it, versions stripped and deleted twins nulled (KubeEdge
    ``MarshalMembershipUpdate``)."""
    out = {k: v for k, v in spec.raw.items() if k != "twin"}
    if spec.twins:
        twins = {}
        for name, patch in spec.twins.items():
            if patch is None or patch.attr_type == TYPE_DELETED:
                twins[name] = None
                continue
            doc = patch.to_json()
            doc.pop("expected_version", None)
            doc.pop("actual_version", None)
            twins[name] = doc
        out["twin"] = twins
    return out
