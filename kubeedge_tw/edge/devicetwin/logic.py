"""DeviceTwin's rules as pure functions: twin updates, cloud syncs, deletions, attributes.

This is KubeEdge's ``dtmanager/twin.go`` (``DealMsgTwin``, ``dealTwinAdd``,
``dealTwinCompare``, ``dealTwinDelete``, ``dealVersion``) and ``device.go``
(``DealMsgAttr``), reference 4.2/4.3, rewritten to work on copies: a request either
applies as a whole or (on a validation error) changes nothing, instead of KubeEdge's
"change the cache, reload it from sqlite on error".

Deal types: :data:`REST` is a local update (a mapper over MQTT): the touched side's
``edge`` version is bumped, values are validated against the twin's type, errors are
reported (400). :data:`SYNC` is an update from the cloud: the incoming version must be
present and not older than the local one on either counter (else the sync is *rejected*
and the local value goes back to the cloud in ``edge_updated``); invalid values are skipped.
KubeEdge's behaviours kept on purpose: every reported value bumps the version and the
timestamp even when unchanged; a twin added by a mapper is optional unless it says
otherwise; ``optional`` can only go from true to false; the type of a live twin is fixed
(a request's ``metadata.type`` only matters for new and deleted twins).
"""

from dataclasses import dataclass, field

from kubeedge_tw.edge.devicetwin.model import (
    BAD_REQUEST, DEFAULT_TYPE, TYPE_DELETED, Attr, Twin, TwinValue, Version, validate_value)

__all__ = ["REST", "SYNC", "TwinOutcome", "AttrOutcome", "deal_twins", "deal_attrs",
           "deal_version", "build_delta", "strip_versions"]

#: A local update from a mapper (KubeEdge ``RestDealType``).
REST = 0
#: An update from the cloud (KubeEdge ``SyncDealType``).
SYNC = 1
_SYNC_DELETE = 3
_SIDES = ("expected", "actual")


@dataclass
class TwinOutcome:
    """What a twin request did.

    ``twins`` is the device's new twin map (apply it only when ``error`` is None);
    ``changed`` the names whose rows must be written; ``result`` the update/result map
    (REST only; versions stripped, None for a deleted twin); ``sync`` what goes to the
    cloud in ``edge_updated`` (versions kept); ``document`` name -> ``{"last", "current"}``;
    ``error`` ``(code, reason)``.
    """

    twins: dict
    changed: list = field(default_factory=list)
    result: dict = field(default_factory=dict)
    sync: dict = field(default_factory=dict)
    document: dict = field(default_factory=dict)
    error: tuple = None


class _Reject(Exception):
    def __init__(self, reason, code=BAD_REQUEST):
        super().__init__(reason)
        self.reason = reason
        self.code = code


def deal_version(version, requested, deal_type):
    """Apply the version rule to ``version`` (mutated); returns ``(ok, reason)``.

    REST bumps ``edge``. A sync needs ``requested`` (except a sync deletion) and is refused
    when the local ``cloud`` or ``edge`` counter is ahead of it; else it copies it."""
    if deal_type == REST:
        version.edge += 1
        return True, None
    if requested is None:
        if deal_type == _SYNC_DELETE:
            return True, None
        return False, "version missing while syncing"
    if version.cloud > requested.cloud:
        return False, "cloud version {} is older than the edge's {}".format(
            requested.cloud, version.cloud)
    if version.edge > requested.edge:
        return False, "edge has newer local changes (edge version {} > {})".format(
            version.edge, requested.edge)
    version.cloud, version.edge = requested.cloud, requested.edge
    return True, None


def strip_versions(doc):
    """A ``MsgTwin`` document without its versions (a new dict)."""
    if doc is None:
        return None
    return {k: v for k, v in doc.items() if k not in ("expected_version", "actual_version")}


_GO_ORDER = ("expected", "actual", "optional", "metadata", "expected_version",
             "actual_version")


def _go_order(doc):
    """``doc`` with ``MsgTwin``'s keys in Go's field order."""
    return {k: doc[k] for k in _GO_ORDER if k in doc}


def _side_json(twin, side):
    value = getattr(twin, side)
    return value.to_json() if value is not None else None


def _rejected(twin, side):
    """What a rejected sync sends back for one side: the local value and version."""
    out = {}
    value = _side_json(twin, side)
    if value is not None:
        out[side] = value
    version = getattr(twin, side + "_version")
    if version is not None:
        out[side + "_version"] = version.to_json()
    out["optional"] = twin.optional
    out["metadata"] = {"type": twin.attr_type}
    return _go_order(out)


def _add(out, name, patch, deal_type, now):
    if patch is None:
        if deal_type == REST:
            raise _Reject("twin {} does not exist; there is nothing to delete".format(name))
        return
    attr_type = patch.attr_type if patch.has_metadata and patch.attr_type else DEFAULT_TYPE
    twin = Twin(optional=True if patch.optional is None else patch.optional,
                attr_type=attr_type)
    if deal_type == SYNC and attr_type == TYPE_DELETED:
        # A tombstone the edge never saw: keep its versions (KubeEdge dealTwinAdd).
        twin.expected_version = patch.expected_version
        twin.actual_version = patch.actual_version
    else:
        for side in _SIDES:
            value = getattr(patch, side)
            if value is None:
                continue
            if value.value is None:
                if deal_type == REST:
                    raise _Reject("twin {}: {}.value is missing".format(name, side))
                return
            version = Version()
            ok, _ = deal_version(version, getattr(patch, side + "_version"), deal_type)
            if not ok:
                return  # a cloud twin without version is not added
            error = validate_value(attr_type, value.value)
            if error is not None:
                if deal_type == REST:
                    raise _Reject("twin {}: {}".format(name, error))
                return
            setattr(twin, side, TwinValue(value.value, now))
            setattr(twin, side + "_version", version)
    out.twins[name] = twin
    out.changed.append(name)
    out.document[name] = {"last": None,
                          "current": None if twin.deleted else twin.to_json(versions=False)}
    if deal_type == REST:
        out.sync[name] = twin.to_json(versions=True)
        out.result[name] = twin.to_json(versions=False)


def _delete(out, name, twin, patch, deal_type):
    if twin.deleted:
        return
    last = twin.to_json(versions=False)
    kind = REST if deal_type == REST else _SYNC_DELETE
    twin = twin.copy()
    for side in _SIDES:
        version = getattr(twin, side + "_version")
        if version is None:
            continue
        requested = getattr(patch, side + "_version") if patch is not None else None
        ok, _ = deal_version(version, None if kind == REST else requested, kind)
        if not ok:
            out.sync[name] = out.twins[name].to_json(versions=True)
            return
    twin.expected = twin.actual = None
    twin.attr_type = TYPE_DELETED
    out.twins[name] = twin
    out.changed.append(name)
    out.document[name] = {"last": last, "current": None}
    if deal_type == REST:
        out.result[name] = None
        out.sync[name] = twin.to_json(versions=True)


def _compare(out, name, twin, patch, deal_type, now):
    was_deleted = twin.deleted
    last = None if was_deleted else twin.to_json(versions=False)
    if was_deleted:
        value_type = patch.attr_type if patch.has_metadata and patch.attr_type else DEFAULT_TYPE
    else:
        value_type = twin.attr_type
    twin = twin.copy()
    sync, changed, allowed = {}, False, True
    for side in _SIDES:
        value = getattr(patch, side)
        if value is None or not allowed:
            continue
        if value.value is None:
            if deal_type == REST:
                raise _Reject("twin {}: {}.value is missing".format(name, side))
            continue
        error = validate_value(value_type, value.value)
        if error is not None:
            if deal_type == REST:
                raise _Reject("twin {}: {}".format(name, error))
            continue
        version = (getattr(twin, side + "_version") or Version()).copy()
        requested = getattr(patch, side + "_version") if deal_type != REST else None
        ok, _ = deal_version(version, requested, deal_type)
        if not ok:
            sync.update(_rejected(twin, side))
            allowed = False
            continue
        setattr(twin, side, TwinValue(value.value, now))
        setattr(twin, side + "_version", version)
        if deal_type == REST:
            sync[side] = TwinValue(value.value, now).to_json()
            sync[side + "_version"] = version.to_json()
        changed = True
    if allowed:
        if (patch.optional is not None and patch.optional != twin.optional
                and twin.optional):
            twin.optional = patch.optional
            changed = True
        if twin.deleted:
            # Writing to a tombstone brings the twin back, typed as the request says.
            twin.attr_type = value_type
            changed = True
    if changed and deal_type == REST:
        sync["optional"] = twin.optional
        sync["metadata"] = {"type": twin.attr_type}
    if changed:
        out.twins[name] = twin
        out.changed.append(name)
        out.document[name] = {"last": last, "current": twin.to_json(versions=False)}
        if deal_type == REST:
            out.result[name] = strip_versions(_go_order(sync))
            out.sync[name] = _go_order(sync)
        elif not allowed:
            out.sync[name] = _go_order(sync)
    elif deal_type != REST and not allowed:
        out.sync[name] = _go_order(sync)


def deal_twins(twins, patches, deal_type, now):
    """Apply ``patches`` (``{name: TwinPatch or None}``) to ``twins`` (``{name: Twin}``,
    not modified) for ``deal_type`` at ``now`` (ms); returns a :class:`TwinOutcome`."""
    out = TwinOutcome(twins=dict(twins))
    try:
        for name, patch in patches.items():
            twin = out.twins.get(name)
            if twin is None:
                _add(out, name, patch, deal_type, now)
            elif patch is None or (deal_type != REST and patch.attr_type == TYPE_DELETED):
                if patch is None and deal_type == REST and not twin.optional:
                    raise _Reject("twin {} is not optional and cannot be deleted".format(name))
                if patch is None and deal_type != REST:
                    continue
                _delete(out, name, twin, patch, deal_type)
            else:
                _compare(out, name, twin, patch, deal_type, now)
    except _Reject as e:
        return TwinOutcome(twins=dict(twins), error=(e.code, e.reason))
    return out


def build_delta(twins):
    """``(twin, delta)`` of an ``update/delta`` payload: every live twin with a desired
    value (versions stripped), and name -> desired where reported differs. Publish only
    when ``delta`` is non-empty."""
    twin_docs, delta = {}, {}
    for name, twin in twins.items():
        if twin.deleted:
            continue
        expected = twin.expected.value if twin.expected is not None else None
        if not expected:
            continue
        actual = twin.actual.value if twin.actual is not None else None
        if expected != (actual or ""):
            delta[name] = expected
        twin_docs[name] = twin.to_json(versions=False)
    return twin_docs, delta


@dataclass
class AttrOutcome:
    """What an attribute update did: the new map, rows to write or delete, and the
    ``attributes`` map of the ``$hw/events/device/<id>/updated`` payload."""

    attributes: dict
    changed: list = field(default_factory=list)
    deleted: list = field(default_factory=list)
    result: dict = field(default_factory=dict)


def deal_attrs(attributes, patches, detail):
    """Apply attribute ``patches`` (KubeEdge ``DealMsgAttr``). ``detail`` (membership
    add/detail) removes attributes the cloud no longer lists; otherwise a null removes an
    optional attribute."""
    out = AttrOutcome(attributes=dict(attributes))
    for name, patch in patches.items():
        attr = out.attributes.get(name)
        if attr is None:
            if patch is None:
                continue
            attr = Attr(value=patch.value,
                        optional=True if patch.optional is None else patch.optional,
                        attr_type=patch.attr_type if patch.has_metadata and patch.attr_type
                        else DEFAULT_TYPE)
            out.attributes[name] = attr
            out.changed.append(name)
            out.result[name] = attr.to_json()
            continue
        if patch is None:
            if not detail and attr.optional:
                del out.attributes[name]
                out.deleted.append(name)
                out.result[name] = None
            continue
        attr = attr.copy()
        changes = {}
        if attr.value != patch.value:
            attr.value = changes["value"] = patch.value
        if patch.has_metadata and (patch.attr_type or DEFAULT_TYPE) != attr.attr_type:
            attr.attr_type = patch.attr_type or DEFAULT_TYPE
            changes["metadata"] = {"type": attr.attr_type}
        if patch.optional is not None and patch.optional != attr.optional and attr.optional:
            attr.optional = changes["optional"] = patch.optional
        if changes:
            out.attributes[name] = attr
            out.changed.append(name)
            out.result[name] = dict({"value": changes.pop("value", "")}, **changes)
    if detail:
        for name in list(out.attributes):
            if name not in patches:
                del out.attributes[name]
                out.deleted.append(name)
                out.result[name] = None
    return out
