"""A verified fake Kubernetes API server: an in-memory ``twisted.web`` resource.

:class:`FakeKubeAPI` serves the REST paths of the types KubeEdge uses with the semantics
the client depends on, as a real kube-apiserver v1.2x shows them:

* one cluster-wide resourceVersion, bumped on every write and stamped on the object;
  lists carry it in ``metadata.resourceVersion``;
* ``Status`` errors: 404 NotFound, 409 AlreadyExists / Conflict (stale resourceVersion,
  failed preconditions), 410 Expired, 400 BadRequest, 405, 415, 422 Invalid with causes;
* create: ``generateName``, ``uid``, ``creationTimestamp``; update with optimistic
  concurrency; a no-op update does not bump the resourceVersion nor emit an event;
  the ``status`` subresource changes only the status and the main resource never does;
* merge, JSON and (simplified: merge keys for the common lists) strategic-merge patches;
* delete with preconditions; graceful deletion of a pod bound to a node
  (``deletionTimestamp``; gone once deleted with grace 0); finalizers hold an object
  until an update empties them;
* list with label selectors (``=``, ``==``, ``!=``, exists, ``!``, ``in``, ``notin``),
  field selectors (the fields Kubernetes supports per type; others are 400), ``limit``
  and ``continue``;
* watch: chunked JSON lines; no resourceVersion (or ``0``) starts with synthetic
  ``ADDED`` events; a resourceVersion replays later changes; one older than the last
  compaction gets 200 with an ``ERROR`` event (410 Expired) as the watch cache answers;
  objects entering or leaving a selector appear as ``ADDED``/``DELETED``;
  ``timeoutSeconds`` ends the stream on the fake's clock.

Knobs for tests: :meth:`FakeKubeAPI.compact`, :meth:`expire_watches`,
:meth:`end_watches`, :meth:`drop_connections`, :meth:`restart`, :attr:`down` (every
connection is cut), :meth:`fail_next` (queued error responses), :meth:`send_bookmarks`,
``authenticate(request) -> bool``; :attr:`requests` logs ``(method, uri)`` of every
request and :attr:`request_headers` their headers.

Not modelled: namespace existence and deletion, garbage collection, server-side apply,
deletecollection, a consistent snapshot for ``continue`` (pages read the current state).
``tests/cloud/k8s/test_fake_apiserver.py`` checks the fake against these semantics.
"""

import base64
import copy
import dataclasses
import datetime
import json
import random
import re
import uuid
from urllib.parse import unquote

from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

__all__ = ["FakeKubeAPI", "TYPES", "merge_patch", "json_patch", "strategic_merge_patch"]


@dataclasses.dataclass(frozen=True)
class _Type:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    status: bool = False          # has a status subresource
    custom: bool = False          # a CRD: no strategic merge patch
    generation: bool = False      # tracks metadata.generation
    fields: tuple = ()            # field selector labels beyond metadata.name/namespace

    @property
    def api_version(self):
        return "{}/{}".format(self.group, self.version) if self.group else self.version

    @property
    def qualified(self):
        """``pods`` / ``deployments.apps``: how Kubernetes names the resource in messages."""
        return "{}.{}".format(self.plural, self.group) if self.group else self.plural


_POD_FIELDS = ("spec.nodeName", "spec.restartPolicy", "spec.schedulerName",
               "spec.serviceAccountName", "status.phase", "status.podIP",
               "status.nominatedNodeName")

_TYPE_LIST = (
    _Type("", "v1", "pods", "Pod", True, status=True, fields=_POD_FIELDS),
    _Type("", "v1", "nodes", "Node", False, status=True, fields=("spec.unschedulable",)),
    _Type("", "v1", "configmaps", "ConfigMap", True),
    _Type("", "v1", "secrets", "Secret", True, fields=("type",)),
    _Type("", "v1", "services", "Service", True, status=True),
    _Type("", "v1", "endpoints", "Endpoints", True),
    _Type("", "v1", "events", "Event", True, fields=(
        "involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
        "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
        "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type")),
    _Type("", "v1", "namespaces", "Namespace", False, status=True, fields=("status.phase",)),
    _Type("", "v1", "serviceaccounts", "ServiceAccount", True),
    _Type("apps", "v1", "deployments", "Deployment", True, status=True, generation=True),
    _Type("apps", "v1", "replicasets", "ReplicaSet", True, status=True, generation=True,
          fields=("status.replicas",)),
    _Type("coordination.k8s.io", "v1", "leases", "Lease", True),
    _Type("devices.kubeedge.io", "v1alpha2", "devices", "Device", True, status=True,
          custom=True, generation=True),
    _Type("devices.kubeedge.io", "v1alpha2", "devicemodels", "DeviceModel", True,
          custom=True, generation=True),
    _Type("reliablesyncs.kubeedge.io", "v1alpha1", "objectsyncs", "ObjectSync", True,
          status=True, custom=True, generation=True),
    _Type("reliablesyncs.kubeedge.io", "v1alpha1", "clusterobjectsyncs", "ClusterObjectSync",
          False, status=True, custom=True, generation=True),
)

#: ``(group, version, plural)`` -> type.
TYPES = {(t.group, t.version, t.plural): t for t in _TYPE_LIST}
_BY_PLURAL = {t.plural: t for t in _TYPE_LIST}

_DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN = re.compile(r"^{0}(\.{0})*$".format(_DNS1123_LABEL))
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # k8s.io/apiserver/pkg/storage/names


class _APIError(Exception):
    def __init__(self, code, reason, message, details=None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details


def status(code, reason, message, details=None, success=False):
    """A ``v1 Status`` object."""
    obj = {"kind": "Status", "apiVersion": "v1", "metadata": {},
           "status": "Success" if success else "Failure", "code": code}
    if not success:
        obj["message"] = message
        obj["reason"] = reason
    if details:
        obj["details"] = details
    return obj


def _not_found(t, name):
    return _APIError(404, "NotFound", '{} "{}" not found'.format(t.qualified, name),
                     {"name": name, "group": t.group, "kind": t.plural})


def _conflict(t, name, why):
    return _APIError(409, "Conflict", 'Operation cannot be fulfilled on {} "{}": {}'.format(
        t.qualified, name, why), {"name": name, "group": t.group, "kind": t.plural})


_STALE = ("the object has been modified; please apply your changes to the latest version "
          "and try again")


def _invalid(t, name, causes):
    message = '{} "{}" is invalid: {}'.format(
        t.kind, name, ", ".join("{}: {}".format(c["field"], c["message"]) for c in causes))
    return _APIError(422, "Invalid", message, {
        "name": name, "group": t.group, "kind": t.kind, "causes": causes})


# -- selectors ------------------------------------------------------------------------------

_LABEL_KEY = r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?"
_LABEL_VALUE = r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?"


def _split_requirements(text):
    parts, depth, current = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return [p.strip() for p in parts if p.strip()]


def parse_label_selector(text):
    """A list of predicates over a labels dict; ``_APIError`` 400 for bad syntax."""
    predicates = []
    for req in _split_requirements(text or ""):
        m = re.fullmatch(r"({k})\s+(in|notin)\s+\(([^)]*)\)".format(k=_LABEL_KEY), req)
        if m:
            key, op = m.group(1), m.group(3)
            values = {v.strip() for v in m.group(4).split(",") if v.strip()}
            if op == "in":
                predicates.append(lambda labels, k=key, vs=values: labels.get(k) in vs)
            else:
                predicates.append(lambda labels, k=key, vs=values: labels.get(k) not in vs)
            continue
        m = re.fullmatch(r"({k})\s*(==|=|!=)\s*({v})".format(k=_LABEL_KEY, v=_LABEL_VALUE), req)
        if m:
            key, op, value = m.group(1), m.group(3), m.group(4)
            if op == "!=":
                predicates.append(lambda labels, k=key, v=value: labels.get(k) != v)
            else:
                predicates.append(lambda labels, k=key, v=value: labels.get(k) == v)
            continue
        m = re.fullmatch(r"(!?)\s*({k})".format(k=_LABEL_KEY), req)
        if m:
            key = m.group(2)
            if m.group(1):
                predicates.append(lambda labels, k=key: k not in labels)
            else:
                predicates.append(lambda labels, k=key: k in labels)
            continue
        raise _APIError(400, "BadRequest", "unable to parse requirement: {!r}".format(req))
    return predicates


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
    return str(node)


def parse_field_selector(text, t):
    """A list of predicates over an object; 400 for bad syntax or an unsupported field."""
    predicates = []
    for req in _split_requirements(text or ""):
        m = re.fullmatch(r"([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*)", req)
        if not m:
            raise _APIError(400, "BadRequest", "invalid selector: {!r}".format(text))
        field, op, value = m.group(1), m.group(2), m.group(3)
        if field not in ("metadata.name", "metadata.namespace") + t.fields:
            raise _APIError(400, "BadRequest", '"{}" is not a known field selector: only '
                            '"metadata.name", "metadata.namespace"'.format(field))
        if op == "!=":
            predicates.append(lambda obj, f=field, v=value: _field_value(obj, f) != v)
        else:
            predicates.append(lambda obj, f=field, v=value: _field_value(obj, f) == v)
    return predicates


# -- patches --------------------------------------------------------------------------------


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# patchMergeKey of the lists KubeEdge and kubectl patch most (k8s.io/api struct tags).
_MERGE_KEYS = {
    "containers": "name", "initContainers": "name", "ephemeralContainers": "name",
    "volumes": "name", "env": "name", "imagePullSecrets": "name", "volumeMounts": "mountPath",
    "ports": "containerPort", "conditions": "type", "addresses": "type",
    "containerStatuses": "name", "initContainerStatuses": "name", "ownerReferences": "uid",
}


def strategic_merge_patch(target, patch, field=None):
    """Strategic merge patch, simplified: dicts merge (``null`` deletes, ``$patch:
    replace``/``delete``), lists in :data:`_MERGE_KEYS` merge by key (``$patch: delete``
    items remove), other lists are replaced."""
    if isinstance(patch, dict):
        directive = patch.get("$patch")
        if directive == "replace":
            return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
        if directive == "delete":
            return None
        result = dict(target) if isinstance(target, dict) else {}
        for key, value in patch.items():
            if key.startswith("$"):
                continue
            if value is None:
                result.pop(key, None)
                continue
            merged = strategic_merge_patch(result.get(key), value, key)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        return result
    if isinstance(patch, list) and field in _MERGE_KEYS and isinstance(target, list):
        merge_key = _MERGE_KEYS[field]
        result = [copy.deepcopy(item) for item in target]
        for item in patch:
            if not isinstance(item, dict) or merge_key not in item:
                raise _APIError(400, "BadRequest", "{}: list item without merge key {}".format(
                    field, merge_key))
            index = next((i for i, old in enumerate(result)
                          if isinstance(old, dict) and old.get(merge_key) == item[merge_key]),
                         None)
            if item.get("$patch") == "delete":
                if index is not None:
                    del result[index]
            elif index is None:
                result.append({k: v for k, v in item.items() if k != "$patch"})
            else:
                result[index] = strategic_merge_patch(result[index], item, None)
        return result
    return copy.deepcopy(patch)


def _pointer(path):
    if path == "":
        return []
    if not path.startswith("/"):
        raise ValueError("JSON pointer {!r} does not start with /".format(path))
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc, parts):
    node = doc
    for part in parts[:-1]:
        if isinstance(node, list):
            node = node[int(part)]
        elif isinstance(node, dict):
            node = node[part]
        else:
            raise KeyError(part)
    return node


def _get(doc, parts):
    node = doc
    for part in parts:
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def _add(doc, parts, value):
    if not parts:
        return value
    parent = _parent(doc, parts)
    last = parts[-1]
    if isinstance(parent, list):
        index = len(parent) if last == "-" else int(last)
        if not 0 <= index <= len(parent):
            raise IndexError(last)
        parent.insert(index, value)
    else:
        parent[last] = value
    return doc


def _remove(doc, parts):
    parent = _parent(doc, parts)
    last = parts[-1]
    if isinstance(parent, list):
        return parent.pop(int(last))
    return parent.pop(last)


def json_patch(doc, operations):
    """RFC 6902 JSON patch; ``ValueError`` when an operation cannot be applied."""
    if not isinstance(operations, list):
        raise _APIError(400, "BadRequest", "a JSON patch must be a list of operations")
    doc = copy.deepcopy(doc)
    for op in operations:
        try:
            kind, parts = op["op"], _pointer(op["path"])
            if kind == "add":
                doc = _add(doc, parts, copy.deepcopy(op["value"]))
            elif kind == "remove":
                _remove(doc, parts)
            elif kind == "replace":
                _get(doc, parts)  # must exist
                if parts:
                    _remove(doc, parts)
                doc = _add(doc, parts, copy.deepcopy(op["value"]))
            elif kind in ("move", "copy"):
                source = _pointer(op["from"])
                value = _get(doc, source)
                if kind == "move":
                    _remove(doc, source)
                doc = _add(doc, parts, copy.deepcopy(value))
            elif kind == "test":
                if _get(doc, parts) != op["value"]:
                    raise ValueError("test failed at {}".format(op["path"]))
            else:
                raise ValueError("unknown op {!r}".format(kind))
        except (KeyError, IndexError, ValueError, TypeError) as e:
            raise ValueError("{}: {}".format(op, e)) from None
    return doc


_PATCHERS = {
    "application/merge-patch+json": merge_patch,
    "application/strategic-merge-patch+json": strategic_merge_patch,
    "application/json-patch+json": json_patch,
}


# -- watches --------------------------------------------------------------------------------


class _Watcher:
    """One open watch stream."""

    def __init__(self, api, request, t, namespace, labels, fields, bookmarks):
        self.api, self.request, self.type = api, request, t
        self.namespace, self.labels, self.fields = namespace, labels, fields
        self.bookmarks = bookmarks
        self.timer = None
        self.open = True

    def matches(self, obj):
        if obj is None:
            return False
        meta = obj.get("metadata") or {}
        if self.namespace is not None and meta.get("namespace") != self.namespace:
            return False
        labels = meta.get("labels") or {}
        return (all(p(labels) for p in self.labels) and all(p(obj) for p in self.fields))

    def send(self, etype, obj):
        if self.open:
            self.request.write(json.dumps({"type": etype, "object": obj}).encode() + b"\n")

    def offer(self, change):
        """Send what ``change`` looks like through this watch's selectors, if anything."""
        if change.type is not self.type:
            return
        old_in, new_in = self.matches(change.old), self.matches(change.new)
        if change.event == "DELETED":
            if old_in:
                self.send("DELETED", change.deleted)
        elif old_in and new_in:
            self.send("MODIFIED", change.new)
        elif new_in:
            self.send("ADDED", change.new)
        elif old_in:
            # Left the selection: the watch cache sends the previous state, new version.
            gone = copy.deepcopy(change.old)
            gone["metadata"]["resourceVersion"] = str(change.rv)
            self.send("DELETED", gone)

    def finish(self):
        if self.open:
            self.open = False
            self._stop_timer()
            self.request.finish()

    def abort(self):
        if self.open:
            self.open = False
            self._stop_timer()
            self.request.channel.transport.abortConnection()

    def _stop_timer(self):
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = None

    def lost(self, _):
        self.open = False
        self._stop_timer()
        self.api.watchers.discard(self)


@dataclasses.dataclass
class _Change:
    rv: int
    type: _Type
    event: str          # ADDED, MODIFIED, DELETED
    old: dict           # None for ADDED
    new: dict           # None for DELETED
    deleted: dict = None  # DELETED: the last state with the deletion's resourceVersion


# -- the server -----------------------------------------------------------------------------


class FakeKubeAPI(Resource):
    """An in-memory Kubernetes API; see the module docstring."""

    isLeaf = True

    def __init__(self, clock, authenticate=None, start_rv=1000, seed=0):
        """``clock`` stamps creationTimestamp and ends watches; ``authenticate(request)``
        returns whether to serve it (401 otherwise)."""
        super().__init__()
        self.clock = clock
        self.authenticate = authenticate
        self.rv = start_rv
        self.compacted_rv = start_rv
        self.store = {t: {} for t in _TYPE_LIST}
        self.history = []
        self.watchers = set()
        self.down = False
        self.requests = []
        self.request_headers = []
        self._failures = []
        self._random = random.Random(seed)

    # -- test controls ----------------------------------------------------------------

    def compact(self):
        """Forget the history: watches from any resourceVersion seen so far get 410."""
        self.history = []
        self.compacted_rv = self.rv

    def expire_watches(self):
        """Send every open watch an ``ERROR`` 410 Expired event and end it."""
        for w in list(self.watchers):
            w.send("ERROR", status(410, "Expired", "too old resource version: {} ({})".format(
                self.compacted_rv, self.rv)))
            w.finish()

    def end_watches(self):
        """End every open watch cleanly (as at ``timeoutSeconds``)."""
        for w in list(self.watchers):
            w.finish()

    def drop_connections(self):
        """Cut every open watch's connection (a crash, a network failure)."""
        for w in list(self.watchers):
            w.abort()

    def restart(self, keep_history=False):
        """A restart: watches cut; the new process's watch cache starts at the current
        resourceVersion, so older ones get 410 unless ``keep_history``. Objects stay
        (they are in storage)."""
        self.drop_connections()
        if not keep_history:
            self.compact()

    def send_bookmarks(self):
        """Send a ``BOOKMARK`` at the current resourceVersion to watches that allow them."""
        for w in list(self.watchers):
            if w.bookmarks:
                w.send("BOOKMARK", {"kind": w.type.kind, "apiVersion": w.type.api_version,
                                    "metadata": {"resourceVersion": str(self.rv)}})

    def fail_next(self, code, reason, message="injected failure", count=1, matching=""):
        """The next ``count`` requests (whose URI contains ``matching``) get this error
        ``Status`` instead of an answer."""
        for _ in range(count):
            self._failures.append((matching, (code, reason, message)))

    def objects(self, plural):
        """The stored objects of a type (copies), sorted by namespace and name."""
        store = self.store[_BY_PLURAL[plural]]
        return [copy.deepcopy(store[k]) for k in sorted(store)]

    def object(self, plural, name, namespace=None):
        """One stored object (a copy), or ``None``."""
        obj = self.store[_BY_PLURAL[plural]].get((namespace or "", name))
        return copy.deepcopy(obj)

    def put(self, plural, obj):
        """Create or replace ``obj`` directly, as another client would (a copy is kept)."""
        t = _BY_PLURAL[plural]
        meta = obj.setdefault("metadata", {})
        ns = meta.get("namespace", "default" if t.namespaced else None)
        old = self.store[t].get((ns or "", meta["name"]))
        if old is None:
            return self._create(t, ns, copy.deepcopy(obj))
        new = copy.deepcopy(obj)
        new["metadata"].pop("resourceVersion", None)
        return self._update(t, ns, meta["name"], new)

    def remove(self, plural, name, namespace=None):
        """Delete an object directly (no grace, finalizers ignored)."""
        t = _BY_PLURAL[plural]
        key = (namespace or "", name)
        if key not in self.store[t]:
            raise KeyError(key)
        return self._commit_delete(t, key)

    # -- HTTP -------------------------------------------------------------------------

    def render(self, request):
        """Serve one request (``isLeaf``: every path comes here)."""
        uri = request.uri.decode("ascii", "replace")
        self.requests.append((request.method.decode("ascii"), uri))
        self.request_headers.append(request.requestHeaders.copy())
        if self.down:
            request.channel.transport.abortConnection()
            return NOT_DONE_YET
        try:
            if self.authenticate is not None and not self.authenticate(request):
                raise _APIError(401, "Unauthorized", "Unauthorized")
            for index, (matching, failure) in enumerate(self._failures):
                if matching in uri:
                    del self._failures[index]
                    raise _APIError(*failure)
            return self._route(request)
        except _APIError as e:
            return self._reply(request, e.code,
                               status(e.code, e.reason, e.message, e.details))

    @staticmethod
    def _reply(request, code, obj):
        request.setResponseCode(code)
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(obj).encode()

    @staticmethod
    def _arg(request, name):
        values = request.args.get(name.encode())
        return values[0].decode("utf-8") if values else None

    @staticmethod
    def _body(request):
        raw = request.content.read() if request.content is not None else b""
        if not raw:
            return None
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise _APIError(400, "BadRequest", "the body is not JSON: {}".format(e)) from None

    def _route(self, request):
        segments = [unquote(s) for s in request.path.decode("ascii").split("/") if s]
        not_found = _APIError(404, "NotFound", "the server could not find the requested resource")
        if segments[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", segments[2:]
        elif len(segments) >= 3 and segments[0] == "apis":
            group, version, rest = segments[1], segments[2], segments[3:]
        else:
            raise not_found
        namespace = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            nested = TYPES.get((group, version, rest[2]))
            if nested is not None and nested.namespaced:
                namespace, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            raise not_found
        t = TYPES.get((group, version, rest[0]))
        if t is None:
            raise not_found
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if (t.namespaced and namespace is None and name is not None) or \
                (not t.namespaced and namespace is not None):
            raise not_found
        method = request.method.decode("ascii")
        if name is None:
            if method == "GET":
                if self._arg(request, "watch") in ("true", "1"):
                    return self._watch(request, t, namespace)
                return self._reply(request, 200, self._list(request, t, namespace))
            if method == "POST" and (namespace is not None or not t.namespaced):
                self._check_json(request)
                obj = self._create(t, namespace, self._body(request))
                return self._reply(request, 201, obj)
        elif sub is None:
            if method == "GET":
                return self._reply(request, 200, self._get(t, namespace, name))
            if method == "PUT":
                self._check_json(request)
                return self._reply(request, 200, self._update(t, namespace, name,
                                                              self._body(request)))
            if method == "PATCH":
                return self._reply(request, 200, self._patch(request, t, namespace, name))
            if method == "DELETE":
                return self._reply(request, 200, self._delete(request, t, namespace, name))
        elif sub == "status" and t.status:
            if method == "GET":
                return self._reply(request, 200, self._get(t, namespace, name))
            if method == "PUT":
                self._check_json(request)
                return self._reply(request, 200, self._update(
                    t, namespace, name, self._body(request), subresource="status"))
            if method == "PATCH":
                return self._reply(request, 200, self._patch(
                    request, t, namespace, name, subresource="status"))
        elif sub == "binding" and t.plural == "pods":
            if method == "POST":
                self._check_json(request)
                return self._reply(request, 201, self._bind(t, namespace, name,
                                                            self._body(request)))
        elif sub == "scale" and t.plural in ("deployments", "replicasets"):
            if method == "GET":
                return self._reply(request, 200, self._scale(t, self._get(t, namespace, name)))
            if method == "PUT":
                self._check_json(request)
                return self._reply(request, 200, self._put_scale(t, namespace, name,
                                                                 self._body(request)))
        else:
            raise not_found
        raise _APIError(405, "MethodNotAllowed",
                        "the server does not allow this method on the requested resource")

    @staticmethod
    def _check_json(request):
        content_type = (request.getHeader(b"content-type") or b"").split(b";")[0].strip()
        if content_type != b"application/json":
            raise _APIError(415, "UnsupportedMediaType",
                            "the body of the request was in an unknown format - accepted "
                            "media types include: application/json")

    # -- verbs ----------------------------------------------------------------------------

    def _now(self, offset=0):
        stamp = datetime.datetime.fromtimestamp(self.clock.seconds() + offset,
                                                datetime.timezone.utc)
        return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")

    def _get(self, t, namespace, name):
        obj = self.store[t].get((namespace or "", name))
        if obj is None:
            raise _not_found(t, name)
        return self._typed(t, obj)

    @staticmethod
    def _typed(t, obj):
        out = copy.deepcopy(obj)
        out["kind"], out["apiVersion"] = t.kind, t.api_version
        return out

    def _list(self, request, t, namespace):
        labels = parse_label_selector(self._arg(request, "labelSelector"))
        fields = parse_field_selector(self._arg(request, "fieldSelector"), t)
        limit = self._arg(request, "limit")
        token = self._arg(request, "continue")
        list_rv, start = self.rv, None
        if token:
            try:
                decoded = json.loads(base64.urlsafe_b64decode(token.encode()))
                list_rv, start = int(decoded["rv"]), tuple(decoded["start"])
            except (ValueError, KeyError, TypeError):
                raise _APIError(400, "BadRequest", "continue key is not valid") from None
            if list_rv < self.compacted_rv:
                raise _APIError(410, "Expired", "The provided continue parameter is too old "
                                "to display a consistent list result. You can start a new list "
                                "without the continue parameter.")
        matcher = _Watcher(self, None, t, namespace, labels, fields, False)
        items = []
        for key in sorted(self.store[t]):
            if start is not None and key <= start:
                continue
            obj = self.store[t][key]
            if matcher.matches(obj):
                item = copy.deepcopy(obj)
                item.pop("kind", None)  # list items carry no kind/apiVersion
                item.pop("apiVersion", None)
                items.append((key, item))
        meta = {"resourceVersion": str(list_rv)}
        if limit:
            try:
                limit = int(limit)
            except ValueError:
                raise _APIError(400, "BadRequest", "limit must be an integer") from None
            if 0 < limit < len(items):
                last_key = items[limit - 1][0]
                meta["continue"] = base64.urlsafe_b64encode(json.dumps(
                    {"rv": list_rv, "start": list(last_key)}).encode()).decode()
                meta["remainingItemCount"] = len(items) - limit
                items = items[:limit]
        return {"kind": t.kind + "List", "apiVersion": t.api_version, "metadata": meta,
                "items": [item for _, item in items]}

    def _check_type(self, t, obj):
        if not isinstance(obj, dict):
            raise _APIError(400, "BadRequest", "the body must be a JSON object")
        kind, api_version = obj.get("kind"), obj.get("apiVersion")
        if (kind and kind != t.kind) or (api_version and api_version != t.api_version):
            raise _APIError(400, "BadRequest", "the API version in the data ({}) does not "
                            "match the expected API version ({}) or kind {} is not {}".format(
                                api_version, t.api_version, kind, t.kind))
        meta = obj.get("metadata")
        if meta is None:
            obj["metadata"] = meta = {}
        if not isinstance(meta, dict):
            raise _APIError(400, "BadRequest", "metadata must be an object")
        return meta

    def _check_namespace(self, t, meta, namespace):
        if not t.namespaced:
            meta.pop("namespace", None)
            return
        if meta.get("namespace") and meta["namespace"] != namespace:
            raise _APIError(400, "BadRequest", "the namespace of the provided object does not "
                            "match the namespace sent on the request")
        meta["namespace"] = namespace

    def _create(self, t, namespace, obj):
        meta = self._check_type(t, obj)
        self._check_namespace(t, meta, namespace)
        if meta.get("resourceVersion"):
            raise _APIError(400, "BadRequest",
                            "resourceVersion should not be set on objects to be created")
        if not meta.get("name"):
            prefix = meta.get("generateName")
            if not prefix:
                raise _invalid(t, "", [{
                    "reason": "FieldValueRequired", "field": "metadata.name",
                    "message": "Required value: name or generateName is required"}])
            meta["name"] = prefix + "".join(self._random.choice(_GENERATE_ALPHABET)
                                            for _ in range(5))
        name = meta["name"]
        if len(name) > 253 or not _DNS1123_SUBDOMAIN.match(name):
            raise _invalid(t, name, [{
                "reason": "FieldValueInvalid", "field": "metadata.name",
                "message": "Invalid value: {!r}: a lowercase RFC 1123 subdomain must consist "
                           "of lower case alphanumeric characters, '-' or '.'".format(name)}])
        key = (meta.get("namespace") or "", name)
        if key in self.store[t]:
            raise _APIError(409, "AlreadyExists", '{} "{}" already exists'.format(
                t.qualified, name), {"name": name, "group": t.group, "kind": t.plural})
        for transient in ("deletionTimestamp", "deletionGracePeriodSeconds"):
            meta.pop(transient, None)
        meta["uid"] = str(uuid.UUID(int=self._random.getrandbits(128), version=4))
        meta["creationTimestamp"] = self._now()
        if t.generation:
            meta["generation"] = 1
        if t.plural == "pods":
            obj.setdefault("status", {}).setdefault("phase", "Pending")
        obj["kind"], obj["apiVersion"] = t.kind, t.api_version
        return self._commit(t, key, None, obj)

    def _update(self, t, namespace, name, obj, subresource=None, check_rv=True):
        meta = self._check_type(t, obj)
        if meta.get("name") != name:
            raise _APIError(400, "BadRequest", "the name of the object ({}) does not match the "
                            "name on the URL ({})".format(meta.get("name"), name))
        self._check_namespace(t, meta, namespace)
        key = (namespace or "", name)
        old = self.store[t].get(key)
        if old is None:
            raise _not_found(t, name)
        rv = meta.get("resourceVersion")
        if check_rv and rv and rv != old["metadata"]["resourceVersion"]:
            raise _conflict(t, name, _STALE)
        if meta.get("uid") and meta["uid"] != old["metadata"]["uid"]:
            raise _conflict(t, name, "Precondition failed: UID in precondition: {}, UID in "
                            "object meta: {}".format(old["metadata"]["uid"], meta["uid"]))
        new = copy.deepcopy(obj)
        if subresource == "status":
            # Only the status changes through /status (registry status strategies).
            status_value = new.get("status")
            new = copy.deepcopy(old)
            if status_value is None:
                new.pop("status", None)
            else:
                new["status"] = status_value
        else:
            if t.status:
                # The main resource never changes the status.
                if "status" in old:
                    new["status"] = copy.deepcopy(old["status"])
                else:
                    new.pop("status", None)
            new_meta = new["metadata"]
            for kept in ("uid", "creationTimestamp", "deletionTimestamp",
                         "deletionGracePeriodSeconds", "generation"):
                if kept in old["metadata"]:
                    new_meta[kept] = old["metadata"][kept]
                else:
                    new_meta.pop(kept, None)
            if t.generation and new.get("spec") != old.get("spec"):
                new_meta["generation"] = old["metadata"].get("generation", 0) + 1
        new["kind"], new["apiVersion"] = t.kind, t.api_version
        new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        if new == old:
            return self._typed(t, old)  # a no-op: no new version, no event
        result = self._commit(t, key, old, new)
        if new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers") \
                and self._graceful_hold(t, new) is None:
            self._commit_delete(t, key)
        return result

    def _patch(self, request, t, namespace, name, subresource=None):
        content_type = (request.getHeader(b"content-type") or b"").split(b";")[0].strip()
        patcher = _PATCHERS.get(content_type.decode("ascii", "replace"))
        if patcher is None or (t.custom and patcher is strategic_merge_patch):
            raise _APIError(415, "UnsupportedMediaType",
                            "the body of the request was in an unknown format - accepted media "
                            "types include: application/json-patch+json, "
                            "application/merge-patch+json" +
                            ("" if t.custom else ", application/strategic-merge-patch+json"))
        patch = self._body(request)
        current = self._get(t, namespace, name)
        try:
            patched = patcher(current, patch)
        except ValueError as e:
            raise _APIError(422, "Invalid", "the patch cannot be applied: {}".format(e)) \
                from None
        if not isinstance(patched, dict) or not isinstance(patched.get("metadata"), dict):
            raise _APIError(422, "Invalid", "the patch removed the object's metadata")
        meta = patched["metadata"]
        if meta.get("name") != name:
            raise _invalid(t, name, [{"reason": "FieldValueInvalid", "field": "metadata.name",
                                      "message": "field is immutable"}])
        if meta.get("resourceVersion") != current["metadata"]["resourceVersion"] and \
                meta.get("resourceVersion"):
            raise _conflict(t, name, _STALE)
        return self._update(t, namespace, name, patched, subresource)

    def _graceful_hold(self, t, obj):
        """For a pod bound to a node: the grace seconds its deletion waits, else None."""
        if t.plural != "pods" or not (obj.get("spec") or {}).get("nodeName"):
            return None
        return obj["metadata"].get("deletionGracePeriodSeconds") or None

    def _delete(self, request, t, namespace, name):
        options = self._body(request) or {}
        key = (namespace or "", name)
        old = self.store[t].get(key)
        if old is None:
            raise _not_found(t, name)
        pre = options.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != old["metadata"]["uid"]:
            raise _conflict(t, name, "Precondition failed: UID in precondition: {}, UID in "
                            "object meta: {}".format(pre["uid"], old["metadata"]["uid"]))
        if pre.get("resourceVersion") and pre["resourceVersion"] != \
                old["metadata"]["resourceVersion"]:
            raise _conflict(t, name, "Precondition failed: ResourceVersion in precondition: "
                            "{}, ResourceVersion in object meta: {}".format(
                                pre["resourceVersion"], old["metadata"]["resourceVersion"]))
        policy = options.get("propagationPolicy")
        if policy is not None and policy not in ("Orphan", "Background", "Foreground"):
            raise _APIError(422, "Invalid", "propagationPolicy: Unsupported value: {!r}".format(
                policy))
        grace = options.get("gracePeriodSeconds")
        if grace is not None and (not isinstance(grace, int) or grace < 0):
            raise _APIError(422, "Invalid", "gracePeriodSeconds: must be >= 0")
        if t.plural == "pods" and (old.get("spec") or {}).get("nodeName"):
            if grace is None:
                grace = (old.get("spec") or {}).get("terminationGracePeriodSeconds", 30)
            if grace > 0:
                current = old["metadata"].get("deletionGracePeriodSeconds")
                if current is not None and current <= grace:
                    return self._typed(t, old)
                new = copy.deepcopy(old)
                new["metadata"]["deletionTimestamp"] = self._now(grace)
                new["metadata"]["deletionGracePeriodSeconds"] = grace
                return self._commit(t, key, old, new)
        if old["metadata"].get("finalizers"):
            if old["metadata"].get("deletionTimestamp"):
                return self._typed(t, old)
            new = copy.deepcopy(old)
            new["metadata"]["deletionTimestamp"] = self._now()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            return self._commit(t, key, old, new)
        return self._commit_delete(t, key)

    def _bind(self, t, namespace, name, binding):
        if not isinstance(binding, dict) or not (binding.get("target") or {}).get("name"):
            raise _APIError(400, "BadRequest", "a Binding needs target.name")
        pod = self._get(t, namespace, name)
        node = (pod.get("spec") or {}).get("nodeName")
        if node:
            raise _conflict(t, name, "pod {} is already assigned to node {!r}".format(
                name, node))
        new = copy.deepcopy(self.store[t][(namespace, name)])
        new.setdefault("spec", {})["nodeName"] = binding["target"]["name"]
        self._commit(t, (namespace, name), self.store[t][(namespace, name)], new)
        return status(201, None, None, success=True)

    @staticmethod
    def _scale(t, obj):
        meta = obj["metadata"]
        return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                                  "creationTimestamp") if k in meta},
                "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 1)},
                "status": {"replicas": (obj.get("status") or {}).get("replicas", 0)}}

    def _put_scale(self, t, namespace, name, scale):
        if not isinstance(scale, dict):
            raise _APIError(400, "BadRequest", "the body must be a Scale")
        current = self._get(t, namespace, name)
        rv = (scale.get("metadata") or {}).get("resourceVersion")
        if rv and rv != current["metadata"]["resourceVersion"]:
            raise _conflict(t, name, _STALE)
        replicas = (scale.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or replicas < 0:
            raise _invalid(t, name, [{"reason": "FieldValueInvalid", "field": "spec.replicas",
                                      "message": "must be greater than or equal to 0"}])
        current.setdefault("spec", {})["replicas"] = replicas
        return self._scale(t, self._update(t, namespace, name, current))

    # -- storage and watch fan-out ------------------------------------------------------

    def _commit(self, t, key, old, new):
        self.rv += 1
        new["metadata"]["resourceVersion"] = str(self.rv)
        self.store[t][key] = new
        change = _Change(self.rv, t, "ADDED" if old is None else "MODIFIED",
                         copy.deepcopy(old), copy.deepcopy(new))
        self._publish(change)
        return self._typed(t, new)

    def _commit_delete(self, t, key):
        old = self.store[t].pop(key)
        self.rv += 1
        deleted = copy.deepcopy(old)
        deleted["metadata"]["resourceVersion"] = str(self.rv)
        self._publish(_Change(self.rv, t, "DELETED", copy.deepcopy(old), None, deleted))
        return self._typed(t, old)

    def _publish(self, change):
        self.history.append(change)
        for w in list(self.watchers):
            w.offer(change)

    def _watch(self, request, t, namespace):
        labels = parse_label_selector(self._arg(request, "labelSelector"))
        fields = parse_field_selector(self._arg(request, "fieldSelector"), t)
        bookmarks = self._arg(request, "allowWatchBookmarks") == "true"
        rv = self._arg(request, "resourceVersion")
        if rv not in (None, "", "0"):
            try:
                rv = int(rv)
            except ValueError:
                raise _APIError(400, "BadRequest", "invalid resource version: {!r}".format(
                    rv)) from None
        timeout = self._arg(request, "timeoutSeconds")
        w = _Watcher(self, request, t, namespace, labels, fields, bookmarks)
        request.setResponseCode(200)
        request.setHeader(b"content-type", b"application/json")
        request.write(b"")  # headers out now, as the real server flushes them
        if isinstance(rv, int) and rv < self.compacted_rv:
            w.send("ERROR", status(410, "Expired", "too old resource version: {} ({})".format(
                rv, self.compacted_rv)))
            request.finish()
            return NOT_DONE_YET
        if isinstance(rv, int):
            for change in self.history:
                if change.rv > rv:
                    w.offer(change)
        else:
            for key in sorted(self.store[t]):
                obj = self.store[t][key]
                if w.matches(obj):
                    w.send("ADDED", self._typed(t, obj))
        self.watchers.add(w)
        request.notifyFinish().addBoth(w.lost)
        if timeout:
            w.timer = self.clock.callLater(int(timeout), w.finish)
        return NOT_DONE_YET


class FakeCluster:
    """A :class:`FakeKubeAPI` on a ``Clock``, reached through ``treq.testing.StubTreq``.

    ``client(**kwargs)`` builds a :class:`~kubeedge_tw.cloud.k8s.client.KubeClient` on
    it (rate limiting off unless ``qps`` is given). Data the server writes after a
    request was answered (watch events) reaches the client on :meth:`flush`.

    The client side runs on ``clock``, the server on ``server_clock`` (timestamps, watch
    ``timeoutSeconds``), so a test can check that the client left no delayed call.
    """

    SERVER = "https://k8s.test:6443"

    def __init__(self, **api_kwargs):
        """A fresh clock, fake API server and StubTreq."""
        from treq.testing import StubTreq
        from twisted.internet.task import Clock

        self.clock = Clock()
        self.server_clock = Clock()
        self.api = FakeKubeAPI(self.server_clock, **api_kwargs)
        self.stub = StubTreq(self.api)

    def client(self, **kwargs):
        """A KubeClient talking to the fake."""
        from kubeedge_tw.cloud.k8s.client import KubeClient

        kwargs.setdefault("qps", None)
        return KubeClient(self.stub, self.SERVER, self.clock, **kwargs)

    def flush(self):
        """Move pending bytes between the fake server and the client."""
        self.stub.flush()
