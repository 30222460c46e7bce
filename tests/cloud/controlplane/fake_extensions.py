"""What kube-apiserver does that ``tests.cloud.k8s.fake_apiserver`` leaves out and the
control plane relies on, as a subclass of the verified fake (checked in
``test_fake_extensions``):

* ``DELETE`` with ``propagationPolicy: Foreground`` or ``Orphan`` does not delete the
  object: it gets a ``deletionTimestamp`` and the ``foregroundDeletion`` / ``orphan``
  finalizer (``BeforeDelete`` + ``deletionFinalizersForGarbageCollection``), and the
  garbage collector finishes the job; ``Background`` (or none) deletes at once;
* ``pods/binding`` also sets the pod's ``PodScheduled=True`` condition, as
  ``BindingREST.setPodHostAndAnnotations`` does.
"""

import copy
import json

from treq.testing import StubTreq

from tests.cloud.k8s.fake_apiserver import FakeCluster, FakeKubeAPI, _APIError, _conflict

__all__ = ["ControlPlaneFakeAPI", "ControlPlaneCluster"]

_FINALIZER = {"Foreground": "foregroundDeletion", "Orphan": "orphan"}


class ControlPlaneFakeAPI(FakeKubeAPI):
    """:class:`FakeKubeAPI` with deletion finalizers and the PodScheduled condition."""

    def _delete(self, request, t, namespace, name):
        raw = request.content.read() if request.content is not None else b""
        if request.content is not None:
            request.content.seek(0)
        try:
            options = json.loads(raw.decode("utf-8")) if raw else {}
        except (UnicodeDecodeError, ValueError):
            options = {}
        policy = (options or {}).get("propagationPolicy")
        key = (namespace or "", name)
        old = self.store[t].get(key)
        if old is None or policy not in _FINALIZER:
            return super()._delete(request, t, namespace, name)
        pre = options.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != old["metadata"]["uid"]:
            raise _conflict(t, name, "Precondition failed: UID in precondition: {}, UID in "
                            "object meta: {}".format(pre["uid"], old["metadata"]["uid"]))
        new = copy.deepcopy(old)
        meta = new["metadata"]
        wanted = _FINALIZER[policy]
        finalizers = [f for f in meta.get("finalizers") or () if f not in _FINALIZER.values()]
        meta["finalizers"] = finalizers + [wanted]
        meta.setdefault("deletionTimestamp", self._now())
        meta.setdefault("deletionGracePeriodSeconds", 0)
        if new == old:
            return self._typed(t, old)
        return self._commit(t, key, old, new)

    def _bind(self, t, namespace, name, binding):
        if not isinstance(binding, dict) or not (binding.get("target") or {}).get("name"):
            raise _APIError(400, "BadRequest", "a Binding needs target.name")
        current = self._get(t, namespace, name)
        if current["metadata"].get("deletionTimestamp"):
            raise _conflict(t, name, "pod {} is being deleted, cannot be assigned to a "
                            "host".format(name))
        node = (current.get("spec") or {}).get("nodeName")
        if node:
            raise _conflict(t, name, "pod {} is already assigned to node {!r}".format(
                name, node))
        old = self.store[t][(namespace, name)]
        new = copy.deepcopy(old)
        new.setdefault("spec", {})["nodeName"] = binding["target"]["name"]
        status = new.setdefault("status", {})
        status["conditions"] = [c for c in status.get("conditions") or ()
                                if c.get("type") != "PodScheduled"] + [
            {"type": "PodScheduled", "status": "True", "lastProbeTime": None,
             "lastTransitionTime": self._now()}]
        self._commit(t, (namespace, name), old, new)
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "code": 201}


class ControlPlaneCluster(FakeCluster):
    """:class:`FakeCluster` serving :class:`ControlPlaneFakeAPI`."""

    def __init__(self, **api_kwargs):
        """A fresh clock pair, the extended fake and a StubTreq on it."""
        super().__init__(**api_kwargs)
        self.api = ControlPlaneFakeAPI(self.server_clock, **api_kwargs)
        self.stub = StubTreq(self.api)
