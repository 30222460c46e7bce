"""Owner references: who controls what, adoption and release.

:class:`OwnerIndex` keeps, from informer events, which objects each controller owns (by
its uid) and which objects of a namespace have no controller, so that a sync looks at its
own objects instead of every object of the type (client-go's indexers).

:func:`claim` is ``ControllerRefManager.Claim{Pods,ReplicaSets}``: of the candidates, keep
those the owner controls and whose labels still match its selector, *release* the ones it
controls that no longer match (drop its owner reference), and *adopt* orphans that match
(add a controller reference), unless the owner is being deleted.
"""

import collections

from kubeedge_tw.cloud.controlplane.util import (
    controller_ref, is_terminating, meta, selector_matches)
from kubeedge_tw.cloud.k8s import Conflict, NotFound

__all__ = ["OwnerIndex", "claim"]


class OwnerIndex:
    """Objects by controller uid, and orphans by namespace."""

    def __init__(self):
        """Empty."""
        self._owner = {}                              # key -> controller uid or None
        self._owned = collections.defaultdict(set)    # uid -> keys
        self._orphans = collections.defaultdict(set)  # namespace -> keys

    def set(self, key, obj):
        """Index ``obj`` under ``key``; returns ``(previous uid, uid)`` of its controller
        (``None`` for an orphan; previous is ``False`` for a new key)."""
        ref = controller_ref(obj)
        uid = ref.get("uid") if ref else None
        previous = self._owner.get(key, False)
        if previous is not False and previous == uid:
            return previous, uid
        self._drop(key, previous)
        self._owner[key] = uid
        if uid is None:
            self._orphans[meta(obj).get("namespace") or ""].add(key)
        else:
            self._owned[uid].add(key)
        return previous, uid

    def remove(self, key):
        """Forget ``key``; returns the uid of its controller (``None``/``False`` when it had
        none / was unknown)."""
        previous = self._owner.pop(key, False)
        self._drop(key, previous)
        return previous

    def _drop(self, key, uid):
        if uid is False:
            return
        if uid is None:
            namespace = key.rpartition("/")[0]
            keys = self._orphans.get(namespace)
        else:
            keys = self._owned.get(uid)
        if keys is not None:
            keys.discard(key)
            if not keys:
                if uid is None:
                    del self._orphans[key.rpartition("/")[0]]
                else:
                    del self._owned[uid]

    def owned(self, uid):
        """Keys of the objects ``uid`` controls."""
        return set(self._owned.get(uid, ()))

    def orphans(self, namespace):
        """Keys of the objects in ``namespace`` without a controller."""
        return set(self._orphans.get(namespace or "", ()))

    def owner_of(self, key):
        """The controller uid of ``key`` (``None`` for an orphan or unknown key)."""
        return self._owner.get(key) or None


async def claim(client, resource, owner, reference, selector, candidates):
    """The candidates ``owner`` controls after adopting and releasing; ``reference`` is
    the controller reference to add when adopting (see the module docstring). A candidate
    that changed or vanished meanwhile (409/404) is left for the next sync."""
    owner_meta = meta(owner)
    uid = owner_meta.get("uid")
    deleting = is_terminating(owner)
    claimed = []
    for obj in candidates:
        obj_meta = meta(obj)
        ref = controller_ref(obj)
        matches = selector_matches(selector, obj_meta.get("labels"))
        refs = list(obj_meta.get("ownerReferences") or ())
        if ref is not None:
            if ref.get("uid") != uid:
                continue
            if matches:
                claimed.append(obj)
                continue
            if deleting:
                continue
            remaining = [r for r in refs if r.get("uid") != uid]
            patch = {"metadata": {"ownerReferences": remaining or None,
                                  "resourceVersion": obj_meta.get("resourceVersion")}}
        else:
            if deleting or not matches or is_terminating(obj):
                continue
            patch = {"metadata": {"ownerReferences": refs + [reference],
                                  "resourceVersion": obj_meta.get("resourceVersion")}}
        try:
            updated = await client.patch(resource, obj_meta.get("name"), patch,
                                         namespace=obj_meta.get("namespace"))
        except (Conflict, NotFound):
            continue
        if ref is None:
            claimed.append(updated)
    return claimed
