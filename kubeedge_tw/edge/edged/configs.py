"""ConfigMaps and Secrets for pods: fetching them through MetaManager, caching them, and
turning them (and the downward API) into environment variables and file contents.

Edged asks MetaManager with a sync ``query`` on ``<ns>/configmap/<name>`` or
``<ns>/secret/<name>`` (reference 3.1). The answer comes in several shapes, all handled by
:func:`objects_from_reply`: KubeEdge's list of JSON strings (empty when not found), a bare
object or cloudcore's ``{"Object", "Err"}`` wrapper when the cloud answered, or a
Kubernetes ``Status`` (404 means not found). The cloud pushes later ``update``/``delete``
of those objects, which :class:`ObjectCache` applies.
"""

import base64
import binascii
import json
import re
from decimal import ROUND_CEILING

from kubeedge_tw.common import names
from kubeedge_tw.edge.edged.spec import parse_quantity

__all__ = [
    "QueryFailed", "ConfigError", "objects_from_reply", "objects_from_content",
    "ObjectCache", "object_data", "resolve_env", "expand", "field_value",
    "resource_field_value",
]

_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_FIELD_INDEX = re.compile(r"^metadata\.(labels|annotations)\['([^']*)'\]$")


class QueryFailed(Exception):
    """MetaManager (or the cloud behind it) could not say whether the object exists;
    try again later."""


class ConfigError(Exception):
    """A container's configuration refers to something missing (``configmap "x" not
    found``); the message is shown in the pod status."""


def objects_from_content(content):
    """The objects a query answer carries, as a list of dicts ([] for "not found").

    Accepts a list of JSON strings or objects, a JSON string of either, a bare object,
    the ``{"Object": ..., "Err": ...}`` wrapper, and ``Status`` objects (404 / NotFound
    means none; any other failure raises :class:`QueryFailed`)."""
    if content is None or content == "" or content == []:
        return []
    if isinstance(content, (bytes, bytearray)):
        content = bytes(content).decode("utf-8", errors="replace")
    if isinstance(content, str):
        try:
            content = json.loads(content)
        except ValueError:
            raise QueryFailed("unexpected answer {!r}".format(content[:200])) from None
        if isinstance(content, str):
            raise QueryFailed("unexpected answer {!r}".format(content[:200]))
        return objects_from_content(content)
    if isinstance(content, list):
        result = []
        for item in content:
            result.extend(objects_from_content(item))
        return result
    if isinstance(content, dict):
        if "Object" in content and set(content) <= {"Object", "Err"}:
            if content.get("Err"):
                raise QueryFailed(str(content["Err"]))
            return objects_from_content(content.get("Object"))
        if content.get("kind") == "Status":
            if content.get("code") == 404 or content.get("reason") == "NotFound":
                return []
            if content.get("status") == "Success":
                return []
            raise QueryFailed(content.get("message") or "query failed: {}".format(
                json.dumps(content)[:200]))
        return [content]
    raise QueryFailed("unexpected answer of type {}".format(type(content).__name__))


def objects_from_reply(reply):
    """:func:`objects_from_content` of a reply message; an ``error`` reply raises
    :class:`QueryFailed` with its content."""
    if reply.operation == names.OP_ERROR:
        raise QueryFailed(str(reply.content_object() or "error reply"))
    return objects_from_content(reply.content_object())


class ObjectCache:
    """ConfigMaps and Secrets edged has fetched, kept current by the cloud's pushes.

    ``query(resource)`` returns a Deferred firing with the list of objects found
    (:func:`objects_from_reply` of MetaManager's answer)."""

    def __init__(self, query):
        self._query = query
        self._objects = {}

    @staticmethod
    def key(namespace, rtype, name):
        """The edge resource string of an object."""
        return "{}/{}/{}".format(namespace, rtype, name)

    async def get(self, namespace, rtype, name):
        """The object, from the cache or MetaManager; None when it does not exist.
        Raises :class:`QueryFailed` when that cannot be known now."""
        key = self.key(namespace, rtype, name)
        if key in self._objects:
            return self._objects[key]
        found = await self._query(key)
        for obj in found:
            meta = obj.get("metadata") if isinstance(obj, dict) else None
            if isinstance(meta, dict) and meta.get("name") not in (None, name):
                continue
            self._objects[key] = obj
            return obj
        return None

    def cached(self, key):
        """Whether ``key`` is cached."""
        return key in self._objects

    def put(self, key, obj):
        """Store a pushed object."""
        self._objects[key] = obj

    def remove(self, key):
        """Forget a deleted object."""
        self._objects.pop(key, None)

    def forget_unused(self, used):
        """Drop cached objects whose keys are not in ``used``."""
        for key in [k for k in self._objects if k not in used]:
            del self._objects[key]


def object_data(rtype, obj):
    """``{key: bytes}`` of a ConfigMap (``data`` + ``binaryData``) or a Secret (``data``
    base64-decoded + ``stringData``)."""
    result = {}
    if not isinstance(obj, dict):
        return result
    if rtype == names.RES_CONFIGMAP:
        for key, value in (obj.get("data") or {}).items():
            result[key] = str(value).encode("utf-8")
        for key, value in (obj.get("binaryData") or {}).items():
            result[key] = _b64(value)
    else:
        for key, value in (obj.get("data") or {}).items():
            result[key] = _b64(value)
        for key, value in (obj.get("stringData") or {}).items():
            result[key] = str(value).encode("utf-8")
    return result


def _b64(value):
    try:
        return base64.b64decode(str(value), validate=False)
    except (binascii.Error, ValueError):
        return str(value).encode("utf-8")


def expand(text, mapping):
    """Kubernetes' ``$(VAR)`` expansion: defined names are replaced, others stay as
    written, ``$$`` is a literal ``$``."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c == "$" and i + 1 < n:
            nxt = text[i + 1]
            if nxt == "$":
                out.append("$")
                i += 2
                continue
            if nxt == "(":
                end = text.find(")", i + 2)
                if end != -1:
                    name = text[i + 2:end]
                    out.append(mapping[name] if name in mapping else text[i:end + 1])
                    i = end + 1
                    continue
        out.append(c)
        i += 1
    return "".join(out)


def field_value(pod, path, node_ip, node_name):
    """The downward API value of ``path`` (``metadata.name``, ``status.podIP`` ...)."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace") or "default",
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName") or node_name,
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.hostIP": node_ip,
        "status.podIP": node_ip,
        "status.podIPs": node_ip,
        "status.hostIPs": node_ip,
    }
    if path in simple:
        return str(simple[path])
    match = _FIELD_INDEX.match(path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    if path in ("metadata.labels", "metadata.annotations"):
        values = meta.get(path.split(".")[1]) or {}
        return "\n".join('{}="{}"'.format(k, values[k]) for k in sorted(values))
    raise ConfigError("unsupported fieldRef.fieldPath {!r}".format(path))


def resource_field_value(container, ref, allocatable):
    """The downward API value of a ``resourceFieldRef`` (limits/requests of cpu/memory;
    an unset limit is the node's allocatable, as kubelet does)."""
    resource = ref.get("resource", "")
    section, _, kind = resource.partition(".")
    if section not in ("limits", "requests") or kind not in ("cpu", "memory"):
        raise ConfigError("unsupported resourceFieldRef.resource {!r}".format(resource))
    resources = (container.get("resources") or {}).get(section) or {}
    if kind in resources:
        value = parse_quantity(resources[kind])
    elif section == "limits":
        value = parse_quantity(allocatable.get(kind, "0"))
    else:
        value = parse_quantity("0")
    try:
        divisor = parse_quantity(ref.get("divisor") or "1")
    except ValueError as e:
        raise ConfigError("resourceFieldRef.divisor: {}".format(e)) from None
    if divisor == 0:
        raise ConfigError("resourceFieldRef.divisor must not be 0")
    return str(int((value / divisor).to_integral_value(rounding=ROUND_CEILING)))


async def _lookup_data(lookup, namespace, rtype, name, optional, what):
    obj = await lookup(namespace, rtype, name)
    if obj is None:
        if optional:
            return None
        raise ConfigError('{} "{}" not found'.format(what, name))
    return object_data(rtype, obj)


async def resolve_env(pod, container, lookup, node_ip, node_name, allocatable):
    """The environment of ``container`` as ``[(name, value)]``: ``envFrom`` first, then
    ``env`` (later names win, ``$(VAR)`` expanded), as kubelet builds it.

    ``lookup(namespace, type, name)`` returns the object or None (it may raise
    :class:`QueryFailed`). A missing, non-optional object or key raises
    :class:`ConfigError`."""
    namespace = (pod.get("metadata") or {}).get("namespace") or "default"
    values = {}
    order = []

    def define(name, value):
        if name not in values:
            order.append(name)
        values[name] = value

    for source in container.get("envFrom") or ():
        if not isinstance(source, dict):
            continue
        prefix = source.get("prefix") or ""
        for key, rtype, what, name_key in (
                ("configMapRef", names.RES_CONFIGMAP, "configmap", "name"),
                ("secretRef", names.RES_SECRET, "secret", "name")):
            ref = source.get(key)
            if not isinstance(ref, dict):
                continue
            data = await _lookup_data(lookup, namespace, rtype, ref.get(name_key, ""),
                                      bool(ref.get("optional")), what)
            for data_key in sorted(data or {}):
                env_name = prefix + data_key
                if _ENV_NAME.match(env_name):
                    define(env_name, data[data_key].decode("utf-8", errors="replace"))
    for entry in container.get("env") or ():
        name = entry.get("name")
        if "value" in entry and entry.get("valueFrom") is None:
            define(name, expand(str(entry.get("value") or ""), values))
            continue
        source = entry.get("valueFrom")
        if not isinstance(source, dict):
            define(name, "")
            continue
        if isinstance(source.get("configMapKeyRef"), dict) or \
                isinstance(source.get("secretKeyRef"), dict):
            is_cm = isinstance(source.get("configMapKeyRef"), dict)
            ref = source["configMapKeyRef" if is_cm else "secretKeyRef"]
            rtype = names.RES_CONFIGMAP if is_cm else names.RES_SECRET
            what = "configmap" if is_cm else "secret"
            optional = bool(ref.get("optional"))
            data = await _lookup_data(lookup, namespace, rtype, ref.get("name", ""),
                                      optional, what)
            key = ref.get("key", "")
            if data is None or key not in data:
                if optional:
                    continue
                raise ConfigError("couldn't find key {} in {} {}/{}".format(
                    key, "ConfigMap" if is_cm else "Secret", namespace, ref.get("name", "")))
            define(name, data[key].decode("utf-8", errors="replace"))
        elif isinstance(source.get("fieldRef"), dict):
            define(name, field_value(pod, source["fieldRef"].get("fieldPath", ""), node_ip,
                                     node_name))
        elif isinstance(source.get("resourceFieldRef"), dict):
            define(name, resource_field_value(container, source["resourceFieldRef"],
                                              allocatable))
        else:
            raise ConfigError("env {!r}: unsupported valueFrom".format(name))
    return [(name, values[name]) for name in order]
