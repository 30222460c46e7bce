"""The beehive message envelope (KubeEdge ``model.Message``) and its JSON codec.

One type serves three purposes, as in KubeEdge: the value modules hand each other on the
in-process bus, the frame that crosses the cloud/edge websocket, and the request/reply pair
of a synchronous call. The JSON layout is reference 2.1::

    {"header": {"msg_id", "parent_msg_id", "timestamp", "sync", "resourceversion"},
     "route":  {"source", "group", "operation", "resource"},
     "content": <any JSON>}

Encoding emits the v1.2+ form (empty ``parent_msg_id``/``sync``/``group``/``resourceversion``
omitted, as KubeEdge v1.2+ does), or with ``legacy=True`` the v0.3-v1.1 form where
``parent_msg_id``, ``sync`` and ``group`` are always present. Decoding is lenient the way
reference 8 asks: any of the optional keys may be missing or null, frames may be text or
binary, and :meth:`Message.content_object` turns content that is a JSON string or base64 of
JSON into the object it carries. Anything that is not a message raises
:class:`MessageError` with a reason meant for the sender.
"""

import base64
import binascii
import json
import time
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from kubeedge_tw.common import names

__all__ = [
    "Message", "MessageError", "new_message", "new_response", "new_error",
    "encode", "decode", "new_msg_id", "now_ms",
]


class MessageError(ValueError):
    """A frame or value that is not a valid KubeEdge message; ``reason`` says why."""

    def __init__(self, reason, msg_id=""):
        super().__init__(reason)
        self.reason = reason
        #: The ``msg_id`` of the bad message when one could be read, so that the sender can
        #: be answered with an ``error`` reply; else "".
        self.msg_id = msg_id


def new_msg_id():
    """A fresh UUIDv4 message id, as KubeEdge's ``uuid.New().String()``."""
    return str(uuid.uuid4())


def now_ms(clock=None):
    """Milliseconds since the epoch, from ``clock.seconds()`` when a clock is given.

    The timestamp is data carried in the header, never used for scheduling, so the wall
    clock is an acceptable default; tests pass a ``Clock`` for determinism.
    """
    seconds = clock.seconds() if clock is not None else time.time()
    return int(seconds * 1000)


@dataclass(frozen=True)
class Message:
    """One beehive message. Frozen: derive changed copies with :meth:`replace`."""

    msg_id: str = ""
    parent_msg_id: str = ""
    timestamp: int = 0
    sync: bool = False
    #: Kubernetes resourceVersion of the object in ``content`` (v1.2+ ``header.resourceversion``).
    resource_version: str = ""
    source: str = ""
    group: str = ""
    operation: str = ""
    resource: str = ""
    content: Any = field(default=None, compare=True)

    def replace(self, **changes):
        """A copy of this message with the given fields changed."""
        return replace(self, **changes)

    @property
    def is_response(self):
        """True for a reply (``response`` or ``error``) to an earlier message."""
        return self.operation in (names.OP_RESPONSE, names.OP_ERROR)

    @property
    def is_empty(self):
        """True for the zero-value message a v1.15 edge sends while shutting down
        (reference 2.12): no id and no route. Receivers ignore it."""
        return not self.msg_id and not (self.source or self.group or self.operation
                                         or self.resource)

    def content_object(self):
        """The content as the JSON value it carries.

        KubeEdge peers send content as a nested JSON value, as a string holding JSON (the
        twin's ``membership/detail`` get, node patches) or, for Go ``[]byte`` contents, as
        base64 of JSON (reference 2.1). Objects and arrays come back as they are; a string
        that is JSON text, or base64 of JSON text, comes back decoded; any other string
        (``"ping"``, ``"OK"``) comes back unchanged.
        """
        content = self.content
        if isinstance(content, (bytes, bytearray)):
            try:
                content = bytes(content).decode("utf-8")
            except UnicodeDecodeError:
                return bytes(content)
        if not isinstance(content, str):
            return content
        stripped = content.strip()
        if stripped[:1] in ("{", "[", '"') or stripped in ("null", "true", "false"):
            try:
                return json.loads(stripped)
            except ValueError:
                return content
        decoded = _maybe_base64_json(stripped)
        return content if decoded is _NOT_DECODED else decoded

    def describe(self):
        """A short human-readable label for log lines: ``op resource (msg id)``."""
        return "{} {} (msg {})".format(self.operation or "-", self.resource or "-",
                                       self.msg_id or "-")


_NOT_DECODED = object()


def _maybe_base64_json(text):
    """Decode ``text`` as (url-safe or standard) base64 of a JSON object or array."""
    if len(text) < 4:
        return _NOT_DECODED
    for decoder in (base64.b64decode, base64.urlsafe_b64decode):
        try:
            raw = decoder(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError):
            continue
        try:
            value = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            continue
        if isinstance(value, (dict, list)):
            return value
    return _NOT_DECODED


def new_message(source, group, operation, resource, content=None, *, sync=False,
                parent_msg_id="", resource_version="", clock=None):
    """A new message with a fresh id and the current timestamp (``clock`` if given)."""
    return Message(msg_id=new_msg_id(), parent_msg_id=parent_msg_id,
                   timestamp=now_ms(clock), sync=sync, resource_version=resource_version,
                   source=source, group=group, operation=operation, resource=resource,
                   content=content)


def new_response(request, content, *, source=None, clock=None):
    """The reply to ``request``, built as KubeEdge's ``NewRespByMessage``.

    New id, ``parent_msg_id`` = the request's id, the request's source/group/resource,
    operation ``response``. ``source`` overrides the copied source where a module answers
    under its own name.
    """
    return Message(msg_id=new_msg_id(), parent_msg_id=request.msg_id,
                   timestamp=now_ms(clock), source=request.source if source is None else source,
                   group=request.group, operation=names.OP_RESPONSE, resource=request.resource,
                   content=content)


def new_error(request, reason, *, source=None, clock=None):
    """An ``error`` reply to ``request`` carrying ``reason`` as string content.

    Unlike KubeEdge's early helper (which copied the request's *parent* id, reference 2.1),
    ``parent_msg_id`` is the request's own id so the sender can correlate it.
    """
    return new_response(request, str(reason), source=source, clock=clock).replace(
        operation=names.OP_ERROR)


# -- codec ----------------------------------------------------------------------------------

def to_dict(message, legacy=False):
    """The message as the JSON-ready dict Go would marshal, keys in Go's order."""
    header = {"msg_id": message.msg_id}
    if legacy or message.parent_msg_id:
        header["parent_msg_id"] = message.parent_msg_id
    header["timestamp"] = message.timestamp
    if legacy or message.sync:
        header["sync"] = message.sync
    if message.resource_version and not legacy:
        header["resourceversion"] = message.resource_version
    route = {}
    if message.source:
        route["source"] = message.source
    if legacy or message.group:
        route["group"] = message.group
    if message.operation:
        route["operation"] = message.operation
    if message.resource:
        route["resource"] = message.resource
    content = message.content
    if isinstance(content, (bytes, bytearray)):
        # Go marshals []byte as base64; receivers coerce it back (content_object).
        content = base64.b64encode(bytes(content)).decode("ascii")
    return {"header": header, "route": route, "content": content}


def encode(message, legacy=False):
    """The message as one websocket payload: compact JSON and a final LF, like Go's
    ``json.Encoder`` (reference 2.12). ``legacy`` emits the v0.3-v1.1 key set."""
    try:
        text = json.dumps(to_dict(message, legacy), separators=(",", ":"),
                          ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise MessageError("content of {} is not JSON-serialisable: {}".format(
            message.describe(), e), message.msg_id) from None
    return (text + "\n").encode("utf-8")


def _field(mapping, key, kind, where, default, msg_id=""):
    """Read an optional typed field; None/missing gives ``default``."""
    value = mapping.get(key)
    if value is None:
        return default
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise MessageError("{}.{} must be a number, got {!r}".format(where, key, value),
                               msg_id)
        return int(value)
    if not isinstance(value, kind):
        raise MessageError("{}.{} must be a {}, got {!r}".format(
            where, key, "string" if kind is str else "boolean", value), msg_id)
    return value


def from_dict(data):
    """Build a message from a decoded JSON value, leniently (see module docstring)."""
    if not isinstance(data, dict):
        raise MessageError("a message must be a JSON object, got {}".format(
            type(data).__name__))
    header = data.get("header")
    if header is None:
        raise MessageError("message has no header")
    if not isinstance(header, dict):
        raise MessageError("header must be an object")
    msg_id = header.get("msg_id")
    msg_id = msg_id if isinstance(msg_id, str) else ""
    route = data.get("route")
    if route is None:
        route = {}
    if not isinstance(route, dict):
        raise MessageError("route must be an object", msg_id)
    try:
        return Message(
            msg_id=_field(header, "msg_id", str, "header", ""),
            parent_msg_id=_field(header, "parent_msg_id", str, "header", "", msg_id),
            timestamp=_field(header, "timestamp", int, "header", 0, msg_id),
            sync=_field(header, "sync", bool, "header", False, msg_id),
            resource_version=_field(header, "resourceversion", str, "header", "", msg_id),
            source=_field(route, "source", str, "route", "", msg_id),
            group=_field(route, "group", str, "route", "", msg_id),
            operation=_field(route, "operation", str, "route", "", msg_id),
            resource=_field(route, "resource", str, "route", "", msg_id),
            content=data.get("content"),
        )
    except MessageError as e:
        if not e.msg_id:
            e.msg_id = msg_id
        raise


def decode(payload):
    """Decode one websocket payload (text or binary, ``str`` or ``bytes``) into a message.

    Raises :class:`MessageError` naming the problem; never anything else.
    """
    if isinstance(payload, (bytes, bytearray, memoryview)):
        try:
            payload = bytes(payload).decode("utf-8")
        except UnicodeDecodeError as e:
            raise MessageError("frame is not UTF-8 text (byte {})".format(e.start)) from None
    if not isinstance(payload, str):
        raise MessageError("frame must be text or bytes, got {}".format(
            type(payload).__name__))
    if not payload.strip():
        raise MessageError("empty frame")
    try:
        data = json.loads(payload)
    except RecursionError:
        raise MessageError("frame nests too deeply") from None
    except ValueError as e:
        raise MessageError("frame is not JSON: {}".format(e)) from None
    return from_dict(data)
