"""The garbage collector (kube-controller-manager's ``garbagecollector``).

It keeps a graph of owner references between the objects of the informed types
(Deployments, ReplicaSets and pods by default; any type the shared informers can watch can
be added) and acts like the real one:

* **dangling owners**: an object whose owner references all name objects that no longer
  exist (checked by uid, with a live GET before acting, since another informer may simply
  be late) is deleted with ``propagationPolicy: Background``; when only some owners are
  gone, just those references are removed;
* **foreground deletion**: an object being deleted (``deletionTimestamp``) with the
  ``foregroundDeletion`` finalizer has its dependents deleted (in the foreground
  themselves when they have dependents), and once none that blocks
  (``blockOwnerDeletion``) is left, the finalizer is removed so the deletion completes;
* **orphaning**: an object being deleted with the ``orphan`` finalizer has its owner
  reference removed from every dependent, then the finalizer.

Background propagation (kubectl's default) needs nothing more: the owner is gone at once
and its dependents become dangling. Owners of a type that is not informed are checked
with a GET when a dependent appears or changes its references (the real collector
watches every type it can discover; this one watches what it is given).
"""

import collections

from kubeedge_tw.cloud.controlplane.base import Controller
from kubeedge_tw.cloud.controlplane.util import is_terminating, meta, object_key, split_key
from kubeedge_tw.cloud.k8s import Conflict, NotFound
from kubeedge_tw.cloud.k8s.resources import UnknownResource

__all__ = ["GarbageCollector", "FOREGROUND", "ORPHAN", "DEFAULT_GC_RESOURCES"]

FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"
DEFAULT_GC_RESOURCES = ("deployments", "replicasets", "pods")

_ABSENT, _PRESENT, _WAITING = "absent", "present", "waiting"


class GarbageCollector(Controller):
    """Deletes what lost its owners and runs foreground/orphan deletion; see the module
    docstring."""

    name = "garbage-collector"
    concurrency = 20

    def __init__(self, clock, kube, recorder=None, resources=DEFAULT_GC_RESOURCES,
                 concurrency=None):
        """``resources``: the types to collect (plural names of the client's table)."""
        self.resources = tuple(resources)
        self.informed = tuple((r, r, {}) for r in self.resources)
        super().__init__(clock, kube, recorder, concurrency)
        self._uids = {}                                   # uid -> (resource, key)
        self._refs = {}                                   # (resource, key) -> owner uids
        self._dependents = collections.defaultdict(set)   # owner uid -> {(resource, key)}

    # -- the graph ------------------------------------------------------------------------

    def register_handlers(self):
        """One set of handlers per type."""
        for resource in self.resources:
            getattr(self, resource).add_handler(
                lambda obj, r=resource: self._changed(r, None, obj),
                lambda old, new, r=resource: self._changed(r, old, new),
                lambda obj, r=resource: self._deleted(r, obj))

    def replay(self, attribute, objects):
        """Already synced informers: their objects as adds."""
        for obj in objects:
            self._changed(attribute, None, obj)

    def informer_for(self, resource):
        """The informer of an informed type."""
        return getattr(self, resource)

    def _changed(self, resource, old, obj):
        key = object_key(obj)
        node = (resource, key)
        obj_meta = meta(obj)
        uid = obj_meta.get("uid")
        if uid:
            self._uids[uid] = node
        refs = tuple(r.get("uid") for r in obj_meta.get("ownerReferences") or () if r.get("uid"))
        previous = self._refs.get(node, ())
        if refs != previous:
            for owner in previous:
                self._unlink(owner, node)
            for owner in refs:
                self._dependents[owner].add(node)
            if refs:
                self._refs[node] = refs
            else:
                self._refs.pop(node, None)
        finalizers = obj_meta.get("finalizers") or ()
        if obj_meta.get("deletionTimestamp") and (FOREGROUND in finalizers or
                                                  ORPHAN in finalizers):
            self.queue.add(("owner",) + node)
        # New references are checked (a live GET settles owners not in our caches);
        # later, an owner's deletion in the cache brings its dependents back here.
        if refs and (refs != previous or any(self._owner_waiting(u) for u in refs)):
            self.queue.add(("dependent",) + node)

    def _deleted(self, resource, obj):
        key = object_key(obj)
        node = (resource, key)
        uid = meta(obj).get("uid")
        if uid and self._uids.get(uid) == node:
            del self._uids[uid]
        for owner in self._refs.pop(node, ()):
            self._unlink(owner, node)
            if self._owner_waiting(owner):
                self.queue.add(("owner",) + self._uids[owner])
        for dependent in list(self._dependents.get(uid, ())):
            self.queue.add(("dependent",) + dependent)

    def _unlink(self, owner, node):
        dependents = self._dependents.get(owner)
        if dependents is not None:
            dependents.discard(node)
            if not dependents:
                del self._dependents[owner]

    def _cached(self, node):
        resource, key = node
        return self.informer_for(resource).get_by_key(key)

    def _owner_waiting(self, uid):
        node = self._uids.get(uid)
        if node is None:
            return False
        owner = self._cached(node)
        return owner is not None and is_terminating(owner) and \
            FOREGROUND in (meta(owner).get("finalizers") or ())

    def dependents_of(self, uid):
        """``(resource, key)`` of the objects naming ``uid`` as an owner."""
        return set(self._dependents.get(uid, ()))

    # -- sync ------------------------------------------------------------------------------

    async def sync(self, item):
        """Process one graph node: as a dependent (``attemptToDeleteItem``) or as an owner
        being deleted (``processDeletingDependentsItem`` / ``orphanDependents``)."""
        role, resource, key = item
        if role == "owner":
            await self._owner(resource, key)
        else:
            await self._dependent(resource, key)

    async def _owner_state(self, ref, namespace):
        uid = ref.get("uid")
        node = self._uids.get(uid)
        if node is not None:
            owner = self._cached(node)
            if owner is not None:
                if is_terminating(owner) and FOREGROUND in (meta(owner).get("finalizers") or ()):
                    return _WAITING
                return _PRESENT
        # Not in our caches: ask the API server (the informer may be late, or the kind is
        # not one we watch).
        try:
            rtype = self.client.resources.resolve(ref.get("kind"))
        except UnknownResource:
            return _PRESENT  # cannot tell: never delete on a guess
        if "/" in (ref.get("apiVersion") or "") and rtype.api_version != ref.get("apiVersion") \
                and rtype.group != ref.get("apiVersion").split("/")[0]:
            return _PRESENT
        try:
            owner = await self.client.get(rtype, ref.get("name"),
                                          namespace=namespace if rtype.namespaced else None)
        except NotFound:
            return _ABSENT
        if meta(owner).get("uid") != uid:
            return _ABSENT
        if is_terminating(owner) and FOREGROUND in (meta(owner).get("finalizers") or ()):
            return _WAITING
        return _PRESENT

    async def _dependent(self, resource, key):
        obj = self._cached((resource, key))
        if obj is None or is_terminating(obj):
            return
        obj_meta = meta(obj)
        refs = [r for r in obj_meta.get("ownerReferences") or () if r.get("uid")]
        if not refs:
            return
        states = [(ref, await self._owner_state(ref, obj_meta.get("namespace")))
                  for ref in refs]
        solid = [ref for ref, state in states if state == _PRESENT]
        dangling = [ref for ref, state in states if state == _ABSENT]
        waiting = [ref for ref, state in states if state == _WAITING]
        namespace, name = split_key(key)
        if solid:
            if dangling:
                gone = {ref.get("uid") for ref in dangling}
                keep = [r for r in obj_meta.get("ownerReferences") or ()
                        if r.get("uid") not in gone]
                self.log.info("{resource} {key}: removing references to deleted owners",
                              resource=resource, key=key, log_event="gc_unlink")
                try:
                    await self.client.patch(resource, name, {"metadata": {
                        "ownerReferences": keep,
                        "resourceVersion": obj_meta.get("resourceVersion")}},
                        namespace=namespace)
                except NotFound:
                    pass
                # A Conflict (it changed meanwhile) fails the sync: the queue retries it
                # with the fresh object.
            return
        policy = "Background"
        if waiting and self._dependents.get(obj_meta.get("uid")):
            policy = "Foreground"
        self.log.info("{resource} {key}: owners {owners} are gone; deleting ({policy})",
                      resource=resource, key=key, policy=policy,
                      owners=", ".join("{}/{}".format(r.get("kind"), r.get("name"))
                                       for r in refs), log_event="gc_delete")
        try:
            await self.client.delete(resource, name, namespace=namespace,
                                     propagation_policy=policy,
                                     preconditions={"uid": obj_meta.get("uid")})
        except (NotFound, Conflict):
            pass

    async def _owner(self, resource, key):
        owner = self._cached((resource, key))
        if owner is None or not is_terminating(owner):
            return
        owner_meta = meta(owner)
        finalizers = list(owner_meta.get("finalizers") or ())
        uid = owner_meta.get("uid")
        dependents = [(node, self._cached(node)) for node in sorted(self.dependents_of(uid))]
        dependents = [(node, obj) for node, obj in dependents if obj is not None]
        if ORPHAN in finalizers:
            for (dep_resource, dep_key), obj in dependents:
                dep_namespace, dep_name = split_key(dep_key)
                keep = [r for r in meta(obj).get("ownerReferences") or () if r.get("uid") != uid]
                await self.client.patch(dep_resource, dep_name, {"metadata": {
                    "ownerReferences": keep or None,
                    "resourceVersion": meta(obj).get("resourceVersion")}},
                    namespace=dep_namespace)
            await self._remove_finalizer(resource, key, owner, ORPHAN)
            return
        if FOREGROUND not in finalizers:
            return
        blocking = []
        for (dep_resource, dep_key), obj in dependents:
            ref = next((r for r in meta(obj).get("ownerReferences") or ()
                        if r.get("uid") == uid), {})
            if ref.get("blockOwnerDeletion"):
                blocking.append(dep_key)
            if is_terminating(obj):
                continue
            policy = "Foreground" if self._dependents.get(meta(obj).get("uid")) else \
                "Background"
            dep_namespace, dep_name = split_key(dep_key)
            try:
                await self.client.delete(dep_resource, dep_name, namespace=dep_namespace,
                                         propagation_policy=policy,
                                         preconditions={"uid": meta(obj).get("uid")})
            except (NotFound, Conflict):
                pass
        if not blocking:
            await self._remove_finalizer(resource, key, owner, FOREGROUND)
        # Else: each dependent's deletion brings this owner back to the queue.

    async def _remove_finalizer(self, resource, key, owner, finalizer):
        namespace, name = split_key(key)
        remaining = [f for f in meta(owner).get("finalizers") or () if f != finalizer]
        self.log.info("{resource} {key}: dependents handled; removing finalizer {finalizer}",
                      resource=resource, key=key, finalizer=finalizer,
                      log_event="gc_finalizer_removed")
        try:
            await self.client.patch(resource, name, {"metadata": {
                "finalizers": remaining or None,
                "resourceVersion": meta(owner).get("resourceVersion")}}, namespace=namespace)
        except NotFound:
            pass
