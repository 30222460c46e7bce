"""The verbs of the Kubernetes API over the :class:`~.store.Store`: get, list, create,
update, patch, delete (with graceful pod deletion, finalizers and propagation), the
``status``/``scale``/``binding`` subresources, and CRD registration.

Each write is a ``*_txn`` function run by the store inside one sqlite transaction, so the
check (does it exist, is the resourceVersion current, does the namespace exist) and the
write are atomic: optimistic concurrency needs no locks. These functions only use their
arguments (never the reactor or the registry), so they can run on the pool's thread.
:class:`APIServer` is the reactor-side facade: it captures the time from the injected
clock and a snapshot of what the txn functions need, and returns Deferreds.

kube-apiserver behaviours reproduced here, by name:

* create: ``generateName`` + 5 random characters, ``uid``, ``creationTimestamp``, the
  kind's defaulting, validation (422 with field causes), ``AlreadyExists`` (409), objects
  in a missing namespace are 404 ``namespaces "x" not found``;
* update: 409 ``Conflict`` on a stale ``metadata.resourceVersion``, no write (and no new
  resourceVersion) when nothing changed, status only through ``/status``;
* delete: a scheduled, running pod is deleted gracefully (``deletionTimestamp`` +
  ``deletionGracePeriodSeconds``, kept until deleted again with grace 0); objects with
  finalizers stay until the last finalizer is removed; ``propagationPolicy`` ``Orphan``
  removes the owner reference from dependents, ``Background`` and ``Foreground`` delete
  dependents (those whose ``ownerReferences`` name the object's uid) in the same
  transaction — a stand-in for the garbage collector of the control-plane issue;
  deleting a namespace deletes everything in it; a CRD takes its custom objects with it.
"""

import base64
import binascii
import copy
import json
import random

from twisted.internet import defer
from twisted.logger import Logger

from kubeedge_tw.cloud.apiserver import errors
from kubeedge_tw.cloud.apiserver.patch import (
    PatchError, json_patch, merge_patch, strategic_merge_patch)
from kubeedge_tw.cloud.apiserver.resources import custom_resource_types, storage_key
from kubeedge_tw.cloud.apiserver.selectors import label_selector_string
from kubeedge_tw.cloud.apiserver.store import DryRun
from kubeedge_tw.cloud.apiserver.tables import format_time

__all__ = [
    "APIServer", "DeleteOptions", "PATCH_TYPES", "INITIAL_NAMESPACES", "PROTECTED_NAMESPACES",
    "get_txn", "list_txn", "create_txn", "update_txn", "patch_txn", "delete_txn",
    "bind_txn", "decode_continue",
]

#: Namespaces that exist from the first start (kube-apiserver's system namespaces).
INITIAL_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
#: Namespaces that cannot be deleted.
PROTECTED_NAMESPACES = ("default", "kube-system", "kube-public")

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
#: The PATCH content types served.
PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH)

_CRD_KEY = storage_key("apiextensions.k8s.io", "customresourcedefinitions")
_NAMESPACE_KEY = "/namespaces"
# generateName suffix alphabet (k8s.io/apiserver/pkg/storage/names): no vowels, no
# look-alike characters, so generated names never spell words.
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def _conflict_modified(rtype, name):
    return errors.conflict(rtype.plural, name, "the object has been modified; please apply "
                           "your changes to the latest version and try again", rtype.group)


def _not_found(rtype, name):
    return errors.not_found(rtype.plural, name, rtype.group)


class DeleteOptions:
    """What a DELETE asks for: grace period, propagation policy, preconditions, dry run."""

    __slots__ = ("grace", "policy", "uid", "resource_version", "dry_run")

    def __init__(self, grace=None, policy=None, uid=None, resource_version=None,
                 dry_run=False):
        """Options from the body and query; ``grace`` None means the object's default."""
        self.grace = grace
        self.policy = policy
        self.uid = uid
        self.resource_version = resource_version
        self.dry_run = dry_run

    @classmethod
    def parse(cls, body, query):
        """From a ``DeleteOptions`` body (may be None) and query parameters; 400 on bad
        values."""
        body = body or {}
        if not isinstance(body, dict):
            raise errors.bad_request("DeleteOptions must be a JSON object")
        grace = body.get("gracePeriodSeconds")
        if "gracePeriodSeconds" in query:
            try:
                grace = int(query["gracePeriodSeconds"])
            except ValueError:
                raise errors.bad_request("gracePeriodSeconds must be an integer")
        if grace is not None and (isinstance(grace, bool) or not isinstance(grace, int)):
            raise errors.bad_request("gracePeriodSeconds must be an integer")
        policy = query.get("propagationPolicy") or body.get("propagationPolicy")
        orphan = body.get("orphanDependents")
        if query.get("orphanDependents") is not None:
            orphan = query["orphanDependents"] == "true"
        if policy is None and orphan is not None:
            policy = "Orphan" if orphan else "Background"
        if policy not in (None, "Orphan", "Background", "Foreground"):
            raise errors.invalid("DeleteOptions", "", [errors.field_not_supported(
                "propagationPolicy", policy, ("Background", "Foreground", "Orphan"))])
        pre = body.get("preconditions") or {}
        dry_run = body.get("dryRun") or query.get("dryRun")
        return cls(grace, policy, pre.get("uid"), pre.get("resourceVersion"), bool(dry_run))


# -- helpers shared by the txn functions ---------------------------------------------------------


def _meta(obj):
    meta = obj.get("metadata")
    if meta is None:
        meta = obj["metadata"] = {}
    return meta


def _check_type(rtype, obj, name=None):
    """400 unless ``obj`` is an object of this kind (kind/apiVersion filled in when
    missing, as kube-apiserver does for a body without them)."""
    if not isinstance(obj, dict):
        raise errors.bad_request("the request body must be a JSON object")
    kind = obj.get("kind")
    api_version = obj.get("apiVersion")
    if kind and kind != rtype.kind:
        raise errors.bad_request("the kind in the data ({}) does not match the expected kind "
                                 "({})".format(kind, rtype.kind))
    if api_version and api_version.split("/")[0] != (rtype.api_version.split("/")[0]):
        raise errors.bad_request("the API version in the data ({}) does not match the "
                                 "expected API version ({})".format(api_version,
                                                                    rtype.api_version))
    obj["kind"] = rtype.kind
    obj["apiVersion"] = rtype.api_version
    meta = obj.get("metadata")
    if meta is not None and not isinstance(meta, dict):
        raise errors.bad_request("json: cannot unmarshal {} into Go struct field {}.metadata of "
                                 "type v1.ObjectMeta".format(type(meta).__name__, rtype.kind))
    if name is not None and (meta or {}).get("name") not in (None, "", name):
        raise errors.bad_request("the name of the object ({}) does not match the name on the "
                                 "URL ({})".format(meta["name"], name))


def _guarded(function, *args):
    """Run a strategy hook; a malformed object that gets past the type check and makes it
    trip becomes a 400, never a 500."""
    try:
        return function(*args)
    except errors.APIError:
        raise
    except (TypeError, AttributeError, KeyError, ValueError, IndexError) as e:
        raise errors.bad_request("the object is malformed: {}: {}".format(
            type(e).__name__, e)) from None


def _validate(rtype, obj, old=None):
    strategy = rtype.strategy
    causes = _guarded(strategy.validate, obj, rtype.namespaced)
    if old is not None:
        causes = causes + _guarded(strategy.validate_update, obj, old)
    if causes:
        raise errors.invalid(rtype.kind, _meta(obj).get("name") or "", causes, rtype.group)


_DEVICE_GROUP = "devices.kubeedge.io"


def _device_references(txn, rtype, obj, namespace, device_admission=True):
    """What KubeEdge's admission webhook checks for a Device: its DeviceModel and its
    node exist, and every twin it declares is a property of the model (422 otherwise).
    ``device_admission`` False skips it, as a cluster without the webhook does."""
    if not device_admission or rtype.group != _DEVICE_GROUP or rtype.plural != "devices":
        return
    spec = obj.get("spec") or {}
    causes = []
    model_name = (spec.get("deviceModelRef") or {}).get("name")
    model = None
    if not model_name:
        causes.append(errors.Cause("spec.deviceModelRef.name", "FieldValueRequired",
                                   "Required value"))
    else:
        text = txn.get_json(storage_key(_DEVICE_GROUP, "devicemodels"), namespace, model_name)
        if text is None:
            causes.append(errors.Cause("spec.deviceModelRef.name", "FieldValueNotFound",
                                       'Not found: DeviceModel "{}"'.format(model_name)))
        else:
            model = json.loads(text)
    try:
        node = spec["nodeSelector"]["nodeSelectorTerms"][0]["matchExpressions"][0]["values"][0]
    except (KeyError, IndexError, TypeError):
        node = None
    if node and txn.get_json(storage_key("", "nodes"), "", node) is None:
        causes.append(errors.Cause(
            "spec.nodeSelector.nodeSelectorTerms[0].matchExpressions[0].values[0]",
            "FieldValueNotFound", 'Not found: node "{}"'.format(node)))
    if model is not None:
        properties = {p.get("name") for p in (model.get("spec") or {}).get("properties") or ()
                      if isinstance(p, dict)}
        for i, twin in enumerate((obj.get("status") or {}).get("twins") or ()):
            name = (twin or {}).get("propertyName")
            if name not in properties:
                causes.append(errors.Cause(
                    "status.twins[{}].propertyName".format(i), "FieldValueNotSupported",
                    'Unsupported value: "{}": not a property of DeviceModel "{}"'.format(
                        name, model_name)))
    if causes:
        raise errors.invalid("Device", (obj.get("metadata") or {}).get("name") or "", causes,
                             _DEVICE_GROUP)


def _require_namespace(txn, rtype, namespace, creating=False, name=""):
    if not rtype.namespaced:
        return
    ns = txn.get(_NAMESPACE_KEY, "", namespace)
    if ns is None:
        raise errors.namespace_not_found(namespace)
    if creating and (ns.get("metadata") or {}).get("deletionTimestamp"):
        raise errors.forbidden(
            '{} "{}" is forbidden: unable to create new content in namespace {} because it '
            "is being terminated".format(rtype.plural, name, namespace), name, rtype.plural,
            rtype.group)


def _storage_ns(rtype, namespace):
    return namespace if rtype.namespaced else ""


def _generate_name(txn, rtype, namespace, prefix, rng):
    for _ in range(16):
        name = prefix + "".join(rng.choice(_ALPHABET) for _ in range(5))
        if txn.get_json(rtype.key, namespace, name) is None:
            return name
    raise errors.APIError(409, "AlreadyExists", "could not generate a unique name from "
                          "generateName {!r}".format(prefix))


# -- reads ---------------------------------------------------------------------------------------


def get_txn(txn, rtype, namespace, name):
    """The stored JSON (bytes) of one object, or 404."""
    text = txn.get_json(rtype.key, _storage_ns(rtype, namespace), name)
    if text is None:
        raise _not_found(rtype, name)
    return text


def _label_prefilter(label_selector):
    for key, op, values in label_selector.requirements:
        if op == "=" and len(values) == 1:
            return json.dumps({key: next(iter(values))}, separators=(",", ":"),
                              ensure_ascii=False)[1:-1].encode("utf-8")
    return None


def _field_prefilter(rtype, field_selector):
    for field, op, value in field_selector.requirements:
        if op == "=" and value and field not in ("metadata.namespace",):
            path = rtype.field_aliases.get(field, field)
            return json.dumps({path.rsplit(".", 1)[-1]: value}, separators=(",", ":"),
                              ensure_ascii=False)[1:-1].encode("utf-8")
    return None


def list_txn(txn, rtype, namespace, label_selector, field_selector, limit=None,
             after=None, parse=False):
    """``(rv, items, next_key)``: the objects of ``rtype`` (in ``namespace`` or all) that
    match both selectors, in key order, at most ``limit`` of them starting after the key
    ``after``; ``next_key`` is where a continuation starts (None at the end). Items are
    ``(json_bytes, obj)``, ``obj`` parsed only when ``parse`` is set (objects parsed to
    apply selectors are not kept: a big list stays small in memory)."""
    rv = txn.stored_rv()
    ns = namespace if rtype.namespaced and namespace else None
    field_ns = field_selector.exact("metadata.namespace")
    if rtype.namespaced and ns is None and field_ns is not None:
        ns = field_ns
    filtering = not label_selector.empty() or not field_selector.empty()
    exact_name = field_selector.exact("metadata.name")
    start = tuple(after) if after is not None else None

    def candidates():
        if exact_name is not None and (ns is not None or not rtype.namespaced):
            text = txn.get_json(rtype.key, ns or "", exact_name)
            key = (ns or "", exact_name)
            if text is not None and (start is None or key > start):
                yield key, text
            return
        contains = None
        if filtering:
            contains = _label_prefilter(label_selector) or _field_prefilter(rtype,
                                                                            field_selector)
        chunk = None if limit is None else max(limit + 1, 256)
        cursor = start
        while True:
            rows = txn.scan(rtype.key, ns, after=cursor, limit=chunk, contains=contains)
            yield from rows
            if chunk is None or len(rows) < chunk:
                return
            cursor = rows[-1][0]

    items = []
    next_key = None
    for key, text in candidates():
        obj = None
        if filtering:
            obj = json.loads(text)
            if not label_selector.matches((obj.get("metadata") or {}).get("labels")):
                continue
            if not field_selector.matches(lambda f, o=obj: rtype.field(o, f)):
                continue
            if not parse:
                obj = None
        elif parse:
            obj = json.loads(text)
        if limit is not None and len(items) >= limit:
            next_key = items[-1][2]
            break
        items.append((text, obj, key))
    return rv, [(text, obj) for text, obj, _ in items], next_key


def encode_continue(rv, key):
    """The opaque ``continue`` token for a list that stopped before ``key``."""
    raw = json.dumps({"rv": rv, "start": list(key)}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_continue(token):
    """The key after which a continued list starts; 400 for a token we did not make."""
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        start = data["start"]
        if not (isinstance(start, list) and len(start) == 2 and
                all(isinstance(s, str) for s in start)):
            raise ValueError(start)
        return tuple(start)
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError):
        raise errors.bad_request("continue key is not valid: {!r}".format(token[:64])) from None


# -- create --------------------------------------------------------------------------------------


def create_txn(txn, rtype, namespace, obj, now, rng, dry_run=False, device_admission=True):
    """Create ``obj`` (already a dict) in ``namespace``; returns the stored object."""
    _check_type(rtype, obj)
    _guarded(rtype.strategy.typecheck, obj, rtype.kind)
    meta = _meta(obj)
    if rtype.namespaced:
        if meta.get("namespace") and namespace and meta["namespace"] != namespace:
            raise errors.bad_request("the namespace of the provided object does not match the "
                                     "namespace sent on the request")
        meta["namespace"] = namespace or meta.get("namespace") or ""
    else:
        meta.pop("namespace", None)
    ns = _storage_ns(rtype, meta.get("namespace", ""))
    for field in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds",
                  "selfLink"):
        meta.pop(field, None)
    meta["uid"] = txn.new_uid()
    meta["creationTimestamp"] = format_time(now)
    _guarded(rtype.strategy.prepare_for_create, obj)
    generated = not meta.get("name") and bool(meta.get("generateName"))
    _guarded(rtype.strategy.default, obj)
    _validate(rtype, obj)
    _require_namespace(txn, rtype, ns, creating=True, name=meta.get("name", ""))
    _device_references(txn, rtype, obj, ns, device_admission)
    if generated:
        meta["name"] = _generate_name(txn, rtype, ns, meta["generateName"], rng)
        if rtype.key == _NAMESPACE_KEY:
            meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
    name = meta["name"]
    if txn.get_json(rtype.key, ns, name) is not None:
        raise errors.already_exists(rtype.plural, name, rtype.group)
    rtype.strategy.on_create(txn, rtype, obj)
    txn.put(rtype.key, ns, name, obj)
    rtype.strategy.after_create(txn, rtype, obj)
    if dry_run:
        obj["metadata"].pop("resourceVersion", None)  # nothing was stored
        raise DryRun(obj)
    return obj


# -- update and patch ----------------------------------------------------------------------------


def _apply_update(txn, rtype, namespace, name, current, new, subresource, now, dry_run,
                  keep_status_metadata=True, device_admission=True):
    """Store ``new`` as the next version of ``current`` with kube-apiserver's update
    rules; returns the stored object (``current`` when nothing changed)."""
    _check_type(rtype, new, name)
    _guarded(rtype.strategy.typecheck, new, rtype.kind)
    meta = _meta(new)
    old_meta = current["metadata"]
    if meta.get("uid") and meta["uid"] != old_meta.get("uid"):
        raise errors.conflict(rtype.plural, name, "Precondition failed: UID in precondition: "
                              "{}, UID in object meta: {}".format(meta["uid"], old_meta.get("uid")),
                              rtype.group)
    sent_rv = meta.get("resourceVersion")
    if sent_rv and sent_rv != old_meta.get("resourceVersion"):
        raise _conflict_modified(rtype, name)
    if subresource == "status":
        result = copy.deepcopy(current)
        if "status" in new:
            result["status"] = new["status"]
        else:
            result.pop("status", None)
        new = result
        meta = new["metadata"]
    else:
        meta["name"] = name
        if rtype.namespaced:
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        for field in ("uid", "creationTimestamp", "deletionTimestamp",
                      "deletionGracePeriodSeconds", "generation"):
            if field in old_meta:
                meta[field] = old_meta[field]
            else:
                meta.pop(field, None)
        _guarded(rtype.strategy.prepare_for_update, new, current)
    meta["resourceVersion"] = old_meta.get("resourceVersion")
    _guarded(rtype.strategy.default, new)
    _validate(rtype, new, current)
    if new == current:
        return current
    ns = _storage_ns(rtype, namespace)
    _device_references(txn, rtype, new, ns, device_admission)
    if meta.get("deletionTimestamp") and not meta.get("finalizers") and (
            rtype.key != "/pods" or not meta.get("deletionGracePeriodSeconds")):
        # The last finalizer is gone: the deletion completes (kube-apiserver's
        # "finalizers removed from an object being deleted" path).
        result = txn.remove(rtype.key, ns, name, new)
    else:
        result = txn.put(rtype.key, ns, name, new, prev=current)
    if dry_run:
        # Nothing was stored: the object keeps its resourceVersion.
        result["metadata"]["resourceVersion"] = old_meta.get("resourceVersion")
        raise DryRun(result)
    return result


def _current(txn, rtype, namespace, name):
    current = txn.get(rtype.key, _storage_ns(rtype, namespace), name)
    if current is None:
        _require_namespace(txn, rtype, namespace)
        raise _not_found(rtype, name)
    return current


def update_txn(txn, rtype, namespace, name, obj, now, subresource=None, dry_run=False,
               device_admission=True):
    """PUT: replace the object (or its status) if ``metadata.resourceVersion`` is current
    or empty; 404 when missing, 409 when stale."""
    current = _current(txn, rtype, namespace, name)
    return _apply_update(txn, rtype, namespace, name, current, obj, subresource, now, dry_run,
                         device_admission=device_admission)


def apply_patch(rtype, current, patch_type, patch):
    """The object ``current`` with ``patch`` applied; 422 when the patch does not apply,
    415 for a format the type does not support."""
    try:
        if patch_type == JSON_PATCH:
            return json_patch(current, patch)
        if patch_type == MERGE_PATCH:
            if not isinstance(patch, dict):
                raise PatchError("a merge patch must be a JSON object")
            return merge_patch(current, patch)
        if patch_type == STRATEGIC_MERGE_PATCH:
            if rtype.patch_meta is None:
                raise errors.unsupported_media_type(patch_type, (JSON_PATCH, MERGE_PATCH))
            return strategic_merge_patch(current, patch, rtype.patch_meta)
    except PatchError as e:
        raise errors.APIError(422, "Invalid", str(e)) from None
    raise errors.unsupported_media_type(patch_type, PATCH_TYPES)


def patch_txn(txn, rtype, namespace, name, patch_type, patch, now, subresource=None,
              dry_run=False, device_admission=True):
    """PATCH: apply the patch to the current object and store the result with the update
    rules (a ``metadata.resourceVersion`` in the patch is a precondition)."""
    current = _current(txn, rtype, namespace, name)
    patched = apply_patch(rtype, current, patch_type, patch)
    if not isinstance(patched, dict):
        raise errors.APIError(422, "Invalid", "the patch does not produce an object")
    if (patched.get("metadata") or {}).get("name") not in (None, name):
        raise errors.bad_request("metadata.name: Invalid value: {}: field is immutable".format(
            errors.go_value(patched["metadata"]["name"])))
    return _apply_update(txn, rtype, namespace, name, current, patched, subresource, now,
                         dry_run, device_admission=device_admission)


# -- scale and binding ----------------------------------------------------------------------------


def _scale_paths(rtype):
    if rtype.scale_paths is not None:
        return (rtype.scale_paths.get("specReplicasPath", ".spec.replicas"),
                rtype.scale_paths.get("statusReplicasPath", ".status.replicas"),
                rtype.scale_paths.get("labelSelectorPath"))
    return ".spec.replicas", ".status.replicas", None


def _path_get(obj, path):
    node = obj
    for part in path.lstrip(".").split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def _path_set(obj, path, value):
    parts = path.lstrip(".").split(".")
    node = obj
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def to_scale(rtype, obj):
    """The ``autoscaling/v1 Scale`` view of a scalable object."""
    spec_path, status_path, selector_path = _scale_paths(rtype)
    meta = obj.get("metadata") or {}
    if selector_path:
        selector = _path_get(obj, selector_path) or ""
    else:
        selector = label_selector_string((obj.get("spec") or {}).get("selector"))
        if selector == "<none>":
            selector = ""
    scale = {
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                          "creationTimestamp") if k in meta},
        "spec": {"replicas": _path_get(obj, spec_path) or 0},
        "status": {"replicas": _path_get(obj, status_path) or 0},
    }
    if selector:
        scale["status"]["selector"] = selector
    return scale


def scale_txn(txn, rtype, namespace, name, now, scale=None, patch_type=None, patch=None,
              dry_run=False):
    """GET (no ``scale``/``patch``), PUT (``scale``) or PATCH the ``scale`` subresource;
    returns the Scale after the change."""
    current = _current(txn, rtype, namespace, name)
    view = to_scale(rtype, current)
    if scale is None and patch is None:
        return view
    if patch is not None:
        if patch_type == STRATEGIC_MERGE_PATCH:
            patch_type = MERGE_PATCH
        scale = apply_patch(rtype, view, patch_type, patch)
    if not isinstance(scale, dict):
        raise errors.bad_request("the request body must be a Scale object")
    sent_rv = (scale.get("metadata") or {}).get("resourceVersion")
    if sent_rv and sent_rv != current["metadata"].get("resourceVersion"):
        raise _conflict_modified(rtype, name)
    replicas = (scale.get("spec") or {}).get("replicas", 0)
    if isinstance(replicas, bool) or not isinstance(replicas, int):
        raise errors.bad_request("json: cannot unmarshal {} into Go struct field "
                                 "ScaleSpec.spec.replicas of type int32".format(
                                     type(replicas).__name__))
    if replicas < 0:
        raise errors.invalid("Scale", name, [errors.field_invalid(
            "spec.replicas", replicas, "must be greater than or equal to 0")], "autoscaling")
    new = copy.deepcopy(current)
    _path_set(new, _scale_paths(rtype)[0], replicas)
    new["metadata"].pop("resourceVersion", None)
    stored = _apply_update(txn, rtype, namespace, name, current, new, None, now, dry_run)
    return to_scale(rtype, stored)


def bind_txn(txn, rtype, namespace, name, binding, now, dry_run=False):
    """``pods/binding``: set ``spec.nodeName`` of an unbound pod and mark it scheduled
    (kube-apiserver's BindingREST); 409 when it is already bound."""
    if not isinstance(binding, dict):
        raise errors.bad_request("the request body must be a Binding object")
    target = binding.get("target") or {}
    node = target.get("name") if isinstance(target, dict) else None
    if not node or not isinstance(node, str):
        raise errors.invalid("Binding", name, [errors.field_required("target.name")])
    current = _current(txn, rtype, namespace, name)
    if current["metadata"].get("deletionTimestamp"):
        raise errors.conflict("pods/binding", name, "pod {} is being deleted, cannot be "
                              "assigned to a host".format(name))
    spec = current.get("spec") or {}
    if spec.get("nodeName"):
        raise errors.conflict("pods/binding", name, "pod {} is already assigned to node "
                              '"{}"'.format(name, spec["nodeName"]))
    new = copy.deepcopy(current)
    new["spec"]["nodeName"] = node
    status = new.setdefault("status", {})
    conditions = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
    conditions.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                       "lastTransitionTime": format_time(now)})
    status["conditions"] = conditions
    stored = txn.put(rtype.key, namespace, name, new, prev=current)
    if dry_run:
        raise DryRun(stored)
    return stored


# -- delete --------------------------------------------------------------------------------------


class _Kinds:
    """What the delete txn functions need to know about every resource type: storage key
    -> (namespaced, kind, plural, group). A snapshot taken in the reactor thread."""

    def __init__(self, registry):
        self.by_key = {}
        for rtype in registry.types():
            self.by_key.setdefault(rtype.key, rtype)

    def namespaced_keys(self):
        """Storage keys of the namespaced resources."""
        return sorted(k for k, t in self.by_key.items() if t.namespaced)


def _dependents(txn, kinds, owner_uid, namespace):
    """``(rtype, namespace, name, obj)`` of objects whose ownerReferences name
    ``owner_uid``: in ``namespace`` for a namespaced owner."""
    found = []
    for key in kinds.namespaced_keys():
        for (ns, name), text in txn.scan(key, namespace, contains=owner_uid):
            obj = json.loads(text)
            refs = (obj.get("metadata") or {}).get("ownerReferences") or []
            if any(ref.get("uid") == owner_uid for ref in refs):
                found.append((kinds.by_key[key], ns, name, obj))
    return found


def _delete_object(txn, kinds, rtype, ns, name, current, options, now, depth=0):
    """Delete one stored object with graceful/finalizer/propagation rules; returns
    ``(object, gone)``."""
    meta = current["metadata"]
    if rtype.key == "/pods":
        spec, status = current.get("spec") or {}, current.get("status") or {}
        grace = options.grace
        if grace is None:
            grace = spec.get("terminationGracePeriodSeconds", 30)
        if grace is None or grace < 0:
            grace = 1 if grace is not None else 30
        if not spec.get("nodeName") or status.get("phase") in ("Succeeded", "Failed"):
            # Never scheduled or already finished: nothing on a node to stop.
            grace = 0
        if grace > 0:
            previous = meta.get("deletionGracePeriodSeconds")
            if meta.get("deletionTimestamp") and previous is not None and previous <= grace:
                return current, False
            new = copy.deepcopy(current)
            new["metadata"]["deletionTimestamp"] = format_time(now + grace)
            new["metadata"]["deletionGracePeriodSeconds"] = grace
            return txn.put(rtype.key, ns, name, new, prev=current), False
    uid = meta.get("uid")
    if options.policy == "Orphan" and uid:
        for dtype, dns, dname, dobj in _dependents(txn, kinds, uid, ns or None):
            new = copy.deepcopy(dobj)
            new["metadata"]["ownerReferences"] = [
                r for r in new["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
            if not new["metadata"]["ownerReferences"]:
                del new["metadata"]["ownerReferences"]
            txn.put(dtype.key, dns, dname, new, prev=dobj)
    if meta.get("finalizers"):
        # Kept until the last finalizer is removed (then the update completes it).
        new = copy.deepcopy(current)
        new["metadata"].setdefault("deletionTimestamp", format_time(now))
        new["metadata"]["deletionGracePeriodSeconds"] = 0
        if new == current:
            return current, False
        return txn.put(rtype.key, ns, name, new, prev=current), False
    cascade = options.policy != "Orphan" and uid and depth < 16 and rtype.namespaced
    dependents = _dependents(txn, kinds, uid, ns) if cascade else []
    if options.policy == "Foreground":
        for dtype, dns, dname, dobj in dependents:
            _delete_object(txn, kinds, dtype, dns, dname, dobj,
                           DeleteOptions(grace=0, policy="Foreground"), now, depth + 1)
    deleted = txn.remove(rtype.key, ns, name, current)
    if options.policy != "Foreground":
        for dtype, dns, dname, dobj in dependents:
            if txn.get_json(dtype.key, dns, dname) is not None:
                _delete_object(txn, kinds, dtype, dns, dname, dobj,
                               DeleteOptions(grace=0, policy="Background"), now, depth + 1)
    return deleted, True


def _delete_namespace_contents(txn, kinds, namespace, now):
    for key in kinds.namespaced_keys():
        for (ns, name), text in txn.scan(key, namespace):
            if txn.get_json(key, ns, name) is None:
                continue  # went with its owner
            obj = json.loads(text)
            txn.remove(key, ns, name, obj)


def _delete_crd_objects(txn, crd):
    spec = crd.get("spec") or {}
    key = storage_key(spec.get("group", ""), (spec.get("names") or {}).get("plural", ""))
    for (ns, name), text in txn.scan(key):
        txn.remove(key, ns, name, json.loads(text))


def delete_txn(txn, kinds, rtype, namespace, name, options, now):
    """DELETE one object; returns ``(object, gone)`` (``gone`` False while a grace
    period or finalizers keep it)."""
    ns = _storage_ns(rtype, namespace)
    current = _current(txn, rtype, namespace, name)
    meta = current["metadata"]
    if options.uid and options.uid != meta.get("uid"):
        raise errors.conflict(rtype.plural, name, "Precondition failed: UID in precondition: "
                              "{}, UID in object meta: {}".format(options.uid, meta.get("uid")),
                              rtype.group)
    if options.resource_version and options.resource_version != meta.get("resourceVersion"):
        raise errors.conflict(rtype.plural, name, "Precondition failed: ResourceVersion in "
                              "precondition: {}, ResourceVersion in object meta: {}".format(
                                  options.resource_version, meta.get("resourceVersion")),
                              rtype.group)
    if rtype.key == _NAMESPACE_KEY:
        if name in PROTECTED_NAMESPACES:
            raise errors.forbidden('namespaces "{}" is forbidden: this namespace may not be '
                                   "deleted".format(name), name, "namespaces")
        _delete_namespace_contents(txn, kinds, name, now)
        result = txn.remove(rtype.key, "", name, current), True
    elif rtype.key == _CRD_KEY:
        _delete_crd_objects(txn, current)
        result = txn.remove(rtype.key, "", name, current), True
    else:
        result = _delete_object(txn, kinds, rtype, ns, name, current, options, now)
    if options.dry_run:
        raise DryRun(result)
    return result


def delete_collection_txn(txn, kinds, rtype, namespace, label_selector, field_selector,
                          options, now):
    """DELETE on a collection: delete every matching object; returns the deleted (or
    terminating) objects."""
    _, items, _ = list_txn(txn, rtype, namespace, label_selector, field_selector, parse=True)
    results = []
    for _, obj in items:
        meta = obj["metadata"]
        if txn.get_json(rtype.key, _storage_ns(rtype, meta.get("namespace", "")),
                        meta["name"]) is None:
            continue
        if rtype.key == _NAMESPACE_KEY and meta["name"] in PROTECTED_NAMESPACES:
            continue
        result, _ = delete_txn(txn, kinds, rtype, meta.get("namespace", ""), meta["name"],
                               DeleteOptions(options.grace, options.policy), now)
        results.append(result)
    if options.dry_run:
        raise DryRun(results)
    return results


# -- bootstrap -----------------------------------------------------------------------------------


def bootstrap_txn(txn, registry_types, crds, now):
    """Create the initial namespaces and the shipped CRDs when missing (a CRD whose spec
    differs from the shipped one is updated); returns the stored CRD objects."""
    by_key = {t.key: t for t in registry_types}
    namespaces = by_key[_NAMESPACE_KEY]
    for name in INITIAL_NAMESPACES:
        if txn.get_json(_NAMESPACE_KEY, "", name) is None:
            create_txn(txn, namespaces, "", {"metadata": {"name": name}}, now, random)
    crd_type = by_key[_CRD_KEY]
    for crd in crds:
        crd = copy.deepcopy(crd)
        name = crd["metadata"]["name"]
        current = txn.get(_CRD_KEY, "", name)
        if current is None:
            create_txn(txn, crd_type, "", crd, now, random)
        elif current.get("spec", {}).get("versions") != crd["spec"].get("versions") or \
                current.get("spec", {}).get("names", {}).get("kind") != crd["spec"]["names"][
                    "kind"]:
            new = copy.deepcopy(current)
            new["spec"] = crd["spec"]
            new["metadata"].pop("resourceVersion", None)
            _apply_update(txn, crd_type, "", name, current, new, None, now, False)
    return [json.loads(text) for _, text in txn.scan(_CRD_KEY)]


# -- the reactor-side facade ---------------------------------------------------------------------


class APIServer:
    """The verbs for the HTTP layer: each returns a Deferred; the time comes from
    ``clock`` and the storage is ``store``. Keeps ``registry`` in step with the stored
    CRDs. ``device_admission`` (on by default) refuses Devices as KubeEdge's admission
    webhook does (:func:`_device_references`); off, the server stores them as a cluster
    without the webhook would."""

    log = Logger()

    def __init__(self, store, registry, clock, rng=None, device_admission=True):
        """Serve ``registry``'s types from ``store``."""
        self.store = store
        self.registry = registry
        self.clock = clock
        self.rng = rng or random.Random()
        self.device_admission = device_admission
        store.subscribe(self._on_change)

    def now(self):
        """The current time in epoch seconds, from the injected clock."""
        return self.clock.seconds()

    @defer.inlineCallbacks
    def bootstrap(self, crds=()):
        """Register stored CRDs and create what the first start needs (namespaces and
        ``crds``)."""
        stored = yield self.store.write(
            lambda txn: bootstrap_txn(txn, self.registry.types(), crds, self.now()))
        for crd in stored:
            self._register_crd(crd)

    def stop(self):
        """Stop following the store."""
        self.store.unsubscribe(self._on_change)

    def _on_change(self, change):
        if change.resource != _CRD_KEY:
            return
        if change.type == "DELETED":
            self.registry.remove_crd(change.name)
            self.log.info("apiserver stopped serving {crd}", crd=change.name,
                          log_event="apiserver_crd_removed")
        else:
            self._register_crd(change.obj)

    def _register_crd(self, crd):
        name = (crd.get("metadata") or {}).get("name")
        self.registry.remove_crd(name)
        for rtype in custom_resource_types(crd):
            self.registry.add(rtype)

    # -- verbs ---------------------------------------------------------------------------

    def get(self, rtype, namespace, name):
        """The stored JSON (bytes) of an object."""
        return self.store.read(get_txn, rtype, namespace, name)

    def list(self, rtype, namespace, label_selector, field_selector, limit=None, after=None,
             parse=False):
        """``(rv, [(text, obj)], next_key)``; see :func:`list_txn`."""
        return self.store.read(list_txn, rtype, namespace, label_selector, field_selector,
                               limit, after, parse)

    def create(self, rtype, namespace, obj, dry_run=False):
        """Create ``obj``; the stored object."""
        now = self.now()
        return self.store.write(lambda txn: create_txn(txn, rtype, namespace, obj, now,
                                                       self.rng, dry_run,
                                                       self.device_admission))

    def update(self, rtype, namespace, name, obj, subresource=None, dry_run=False):
        """Replace an object (or its status); the stored object."""
        now = self.now()
        return self.store.write(lambda txn: update_txn(txn, rtype, namespace, name, obj, now,
                                                       subresource, dry_run,
                                                       self.device_admission))

    def patch(self, rtype, namespace, name, patch_type, patch, subresource=None,
              dry_run=False):
        """Patch an object (or its status); the stored object."""
        now = self.now()
        return self.store.write(lambda txn: patch_txn(txn, rtype, namespace, name, patch_type,
                                                      patch, now, subresource, dry_run,
                                                      self.device_admission))

    def delete(self, rtype, namespace, name, options):
        """Delete an object; ``(object, gone)``."""
        now = self.now()
        kinds = _Kinds(self.registry)
        return self.store.write(lambda txn: delete_txn(txn, kinds, rtype, namespace, name,
                                                       options, now))

    def delete_collection(self, rtype, namespace, label_selector, field_selector, options):
        """Delete every matching object; the deleted objects."""
        now = self.now()
        kinds = _Kinds(self.registry)
        return self.store.write(lambda txn: delete_collection_txn(
            txn, kinds, rtype, namespace, label_selector, field_selector, options, now))

    def scale(self, rtype, namespace, name, scale=None, patch_type=None, patch=None,
              dry_run=False):
        """Read (no ``scale``/``patch``) or change the scale subresource; the Scale."""
        now = self.now()
        if scale is None and patch is None:
            return self.store.read(lambda txn: scale_txn(txn, rtype, namespace, name, now))
        return self.store.write(lambda txn: scale_txn(txn, rtype, namespace, name, now, scale,
                                                      patch_type, patch, dry_run))

    def bind(self, rtype, namespace, name, binding, dry_run=False):
        """Bind a pod to a node; the stored pod."""
        now = self.now()
        return self.store.write(lambda txn: bind_txn(txn, rtype, namespace, name, binding,
                                                     now, dry_run))
