"""The three PATCH formats kube-apiserver accepts, on plain JSON values.

* :func:`merge_patch`: JSON merge patch, RFC 7386 (``application/merge-patch+json``);
* :func:`json_patch`: JSON patch, RFC 6902 (``application/json-patch+json``);
* :func:`strategic_merge_patch`: Kubernetes' strategic merge patch
  (``application/strategic-merge-patch+json``, ``k8s.io/apimachinery/pkg/util/strategicpatch``):
  a merge patch in which some lists are merged element by element by a merge key
  (containers by ``name``, conditions by ``type``, ...) or as sets (finalizers), with the
  ``$patch`` (``replace``/``delete``/``merge``), ``$retainKeys``,
  ``$setElementOrder/<list>`` and ``$deleteFromPrimitiveList/<list>`` directives that
  kubectl's client-side apply emits.

Which lists merge how is a :data:`PatchMeta`: a mapping from a field path (the field names
from the object's root, list elements adding no component) to the merge key, ``""`` for a
list of primitives merged as a set. Lists not in it are replaced, as for a Kubernetes field
without ``patchStrategy``.

None of these functions modify their inputs. Malformed patches raise :class:`PatchError`.
"""

import copy

__all__ = ["PatchError", "merge_patch", "json_patch", "strategic_merge_patch"]


class PatchError(ValueError):
    """A patch that is malformed or cannot be applied to the object; the message says
    where."""


def merge_patch(target, patch):
    """Apply an RFC 7386 JSON merge patch to ``target`` and return the result."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# -- RFC 6902 ---------------------------------------------------------------------------------


def _pointer(path):
    """Split a JSON pointer into unescaped reference tokens."""
    if not isinstance(path, str):
        raise PatchError("path must be a string, got {!r}".format(path))
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError("invalid JSON pointer {!r}: must start with '/'".format(path))
    return [t.replace("~1", "/").replace("~0", "~") for t in path[1:].split("/")]


def _list_index(container, token, path, allow_end=False):
    if token == "-" and allow_end:
        return len(container)
    if not token.isdigit() or (token != "0" and token.startswith("0")):
        raise PatchError("invalid array index {!r} in path {!r}".format(token, path))
    index = int(token)
    limit = len(container) if allow_end else len(container) - 1
    if index > limit:
        raise PatchError("array index {} out of bounds in path {!r}".format(index, path))
    return index


def _parent(doc, tokens, path):
    """The container holding the last token of ``tokens``."""
    node = doc
    for token in tokens[:-1]:
        if isinstance(node, dict):
            if token not in node:
                raise PatchError("path {!r} does not exist".format(path))
            node = node[token]
        elif isinstance(node, list):
            node = node[_list_index(node, token, path)]
        else:
            raise PatchError("path {!r} does not exist".format(path))
    return node


def _get(doc, path):
    tokens = _pointer(path)
    if not tokens:
        return doc
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError("path {!r} does not exist".format(path))
        return parent[last]
    if isinstance(parent, list):
        return parent[_list_index(parent, last, path)]
    raise PatchError("path {!r} does not exist".format(path))


def _remove(doc, path):
    tokens = _pointer(path)
    if not tokens:
        raise PatchError("cannot remove the whole document")
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError("unable to remove nonexistent key: {} (path {!r})".format(last, path))
        return parent.pop(last)
    if isinstance(parent, list):
        return parent.pop(_list_index(parent, last, path))
    raise PatchError("path {!r} does not exist".format(path))


def _add(doc, path, value):
    tokens = _pointer(path)
    if not tokens:
        return value
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_list_index(parent, last, path, allow_end=True), value)
    else:
        raise PatchError("path {!r} does not exist".format(path))
    return doc


def _replace(doc, path, value):
    tokens = _pointer(path)
    if not tokens:
        return value
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError("replace operation does not apply: doc is missing key: {}"
                             .format(path))
        parent[last] = value
    elif isinstance(parent, list):
        parent[_list_index(parent, last, path)] = value
    else:
        raise PatchError("path {!r} does not exist".format(path))
    return doc


def json_patch(target, operations):
    """Apply an RFC 6902 JSON patch (a list of operations) and return the result."""
    if not isinstance(operations, list):
        raise PatchError("a JSON patch must be a list of operations")
    doc = copy.deepcopy(target)
    for number, op in enumerate(operations):
        if not isinstance(op, dict) or "op" not in op:
            raise PatchError("operation {} is not an object with an 'op'".format(number))
        kind = op["op"]
        if "path" not in op:
            raise PatchError("operation {} ({}) has no 'path'".format(number, kind))
        path = op["path"]
        if kind in ("add", "replace", "test") and "value" not in op:
            raise PatchError("operation {} ({}) has no 'value'".format(number, kind))
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(op["value"]))
        elif kind == "remove":
            _remove(doc, path)
        elif kind == "replace":
            doc = _replace(doc, path, copy.deepcopy(op["value"]))
        elif kind in ("move", "copy"):
            if "from" not in op:
                raise PatchError("operation {} ({}) has no 'from'".format(number, kind))
            if kind == "move":
                if path.startswith(op["from"] + "/"):
                    raise PatchError("cannot move {!r} into its own child {!r}"
                                     .format(op["from"], path))
                value = _remove(doc, op["from"])
            else:
                value = copy.deepcopy(_get(doc, op["from"]))
            doc = _add(doc, path, value)
        elif kind == "test":
            if _get(doc, path) != op["value"]:
                raise PatchError("testing value {} failed".format(path))
        else:
            raise PatchError("unexpected operation {!r}".format(kind))
    return doc


# -- strategic merge patch --------------------------------------------------------------------

_DIRECTIVE = "$patch"
_RETAIN_KEYS = "$retainKeys"
_SET_ORDER = "$setElementOrder/"
_DELETE_PRIMITIVE = "$deleteFromPrimitiveList/"


def strategic_merge_patch(target, patch, meta):
    """Apply a strategic merge patch to the object ``target`` using ``meta`` (a mapping
    ``path tuple -> merge key``, ``""`` for sets of primitives) and return the result."""
    if not isinstance(patch, dict):
        raise PatchError("a strategic merge patch must be a JSON object")
    result = _smp_map(copy.deepcopy(target) if isinstance(target, dict) else {}, patch, (),
                      meta)
    if result is None:
        raise PatchError("a $patch: delete at the top level deletes the whole object")
    return result


def _smp_map(original, patch, path, meta):
    """Merge ``patch`` into the map ``original`` (owned, may be modified)."""
    directive = patch.get(_DIRECTIVE)
    if directive is not None:
        if directive == "replace":
            return {k: copy.deepcopy(v) for k, v in patch.items() if k != _DIRECTIVE}
        if directive == "delete":
            return None
        if directive != "merge":
            raise PatchError("unknown patch directive {!r} at {}".format(
                directive, _show(path)))
    retain = patch.get(_RETAIN_KEYS)
    orders = {}
    for key, value in patch.items():
        if key in (_DIRECTIVE, _RETAIN_KEYS):
            continue
        if key.startswith(_SET_ORDER):
            orders[key[len(_SET_ORDER):]] = value
            continue
        if key.startswith(_DELETE_PRIMITIVE):
            field = key[len(_DELETE_PRIMITIVE):]
            if not isinstance(value, list):
                raise PatchError("{} must be a list at {}".format(key, _show(path)))
            current = original.get(field)
            if isinstance(current, list):
                original[field] = [item for item in current if item not in value]
            continue
        if value is None:
            original.pop(key, None)
            continue
        child = path + (key,)
        current = original.get(key)
        if isinstance(value, dict):
            merged = _smp_map(current if isinstance(current, dict) else {}, value, child, meta)
            if merged is None:
                original.pop(key, None)
            else:
                original[key] = merged
        elif isinstance(value, list) and child in meta:
            original[key] = _smp_list(current if isinstance(current, list) else [], value,
                                      child, meta)
        else:
            original[key] = copy.deepcopy(value)
    for field, order in orders.items():
        if isinstance(original.get(field), list) and isinstance(order, list):
            original[field] = _apply_order(original[field], order, meta.get(path + (field,)))
    if retain is not None:
        if not isinstance(retain, list):
            raise PatchError("$retainKeys must be a list at {}".format(_show(path)))
        for key in list(original):
            if key not in retain:
                del original[key]
    return original


def _smp_list(original, patch, path, meta):
    """Merge the list ``patch`` into ``original`` by the merge key for ``path``."""
    key = meta[path]
    if key == "":
        # A set of primitives: union, original order first ($patch directives in maps
        # do not apply to primitives).
        result = list(original)
        for item in patch:
            if isinstance(item, dict) and item.get(_DIRECTIVE) == "replace":
                return [i for i in patch if not isinstance(i, dict)]
            if item not in result:
                result.append(copy.deepcopy(item))
        return result
    for item in patch:
        if isinstance(item, dict) and item.get(_DIRECTIVE) == "replace":
            return [copy.deepcopy(i) for i in patch
                    if not (isinstance(i, dict) and _DIRECTIVE in i)]
    result = [copy.deepcopy(i) for i in original]
    for item in patch:
        if not isinstance(item, dict):
            raise PatchError("list {} is merged by {!r}: its items must be objects".format(
                _show(path), key))
        if key not in item:
            raise PatchError("map: {} does not contain declared merge key: {}".format(
                {k: v for k, v in item.items() if k != _DIRECTIVE}, key))
        index = next((n for n, existing in enumerate(result)
                      if isinstance(existing, dict) and existing.get(key) == item[key]), None)
        if item.get(_DIRECTIVE) == "delete":
            if index is not None:
                del result[index]
            continue
        if index is None:
            merged = _smp_map({}, item, path, meta)
            if merged is not None:
                result.append(merged)
        else:
            merged = _smp_map(result[index], item, path, meta)
            if merged is None:
                del result[index]
            else:
                result[index] = merged
    return result


def _apply_order(items, order, key):
    """Reorder ``items`` as ``$setElementOrder`` says; items it does not name keep their
    relative order after the named ones."""
    if key is None:
        return items

    def ident(item):
        if key == "":
            return item
        return item.get(key) if isinstance(item, dict) else None

    wanted = [o.get(key) if isinstance(o, dict) and key != "" else o for o in order]
    positions = {}
    for number, value in enumerate(wanted):
        try:
            positions.setdefault(value, number)
        except TypeError:
            continue
    named, rest = [], []
    for item in items:
        try:
            position = positions.get(ident(item))
        except TypeError:
            position = None
        (named if position is not None else rest).append((position, item))
    named.sort(key=lambda pair: pair[0])
    return [item for _, item in named] + [item for _, item in rest]


def _show(path):
    return ".".join(path) or "the top level"
