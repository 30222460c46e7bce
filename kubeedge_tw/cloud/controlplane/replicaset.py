"""The ReplicaSet controller (kube-controller-manager's ``replicaset`` controller).

For each ReplicaSet it keeps ``spec.replicas`` active pods (not Succeeded, Failed or being
deleted) that it controls:

* **more needed**: pods are made from ``spec.template`` (``generateName: <rs>-``, the
  template's labels and annotations, a controller owner reference with
  ``blockOwnerDeletion``) in slow-start batches of 1, 2, 4 ... (a failing batch stops the
  rest), at most ``burst_replicas`` (500) per sync; a ``SuccessfulCreate`` event names each
  pod (``FailedCreate`` a failure);
* **too many**: the pods least worth keeping are deleted first (``ActivePodsWithRanks``:
  unscheduled before scheduled, Pending before Unknown before Running, not ready before
  ready, more pods of this set on the same node first, ready for less time, more restarts,
  newer); ``SuccessfulDelete`` events;
* a pod deleted by hand (or being deleted) no longer counts, so a replacement is made at
  once;
* orphan pods matching the selector are adopted, controlled pods that stop matching are
  released (``ControllerRefManager``).

*Expectations* (``ControllerExpectations``) keep a sync from acting again before the
informer has shown the creations and deletions it asked for (or 5 minutes passed), so a
lagging cache never makes it create twice. The status (``replicas``,
``fullyLabeledReplicas``, ``readyReplicas``, ``availableReplicas`` (ready for
``minReadySeconds``), ``observedGeneration``, the ``ReplicaFailure`` condition) is written
when it changed.
"""

import copy

from twisted.internet import defer

from kubeedge_tw.cloud.controlplane.base import Controller
from kubeedge_tw.cloud.controlplane.events import NORMAL, WARNING
from kubeedge_tw.cloud.controlplane.refs import OwnerIndex, claim
from kubeedge_tw.cloud.controlplane.util import (
    controller_ref, format_time, get_condition, is_terminating, meta, object_key,
    owner_reference, parse_time, pod_is_active, pod_is_available, pod_is_ready,
    selector_matches, split_key)
from kubeedge_tw.cloud.k8s import K8sError, NotFound

__all__ = ["ReplicaSetController", "pod_from_template", "pods_to_delete", "slow_start_batch"]

#: ``BurstReplicas``: the most pods created or deleted in one sync.
BURST_REPLICAS = 500
#: ``ExpectationsTimeout``: after this, a sync acts even if the cache never caught up.
EXPECTATIONS_TIMEOUT = 300

_PHASE_ORDER = {"Pending": 0, "Unknown": 1, "Running": 2}


def pod_from_template(owner, template, reference):
    """``controller.GetPodFromTemplate``: a pod to create for ``owner``."""
    template_meta = (template or {}).get("metadata") or {}
    owner_meta = meta(owner)
    pod_meta = {"generateName": owner_meta.get("name") + "-",
                "namespace": owner_meta.get("namespace"),
                "ownerReferences": [reference]}
    for field in ("labels", "annotations", "finalizers"):
        if template_meta.get(field):
            pod_meta[field] = copy.deepcopy(template_meta[field])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta,
            "spec": copy.deepcopy((template or {}).get("spec") or {})}


def pods_to_delete(pods, count):
    """The ``count`` pods to delete first (``getPodsToDelete`` with
    ``ActivePodsWithRanks``; see the module docstring)."""
    on_node = {}
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName")
        if node:
            on_node[node] = on_node.get(node, 0) + 1

    def rank(pod):
        spec, status = pod.get("spec") or {}, pod.get("status") or {}
        node = spec.get("nodeName")
        ready = pod_is_ready(pod)
        ready_since = 0.0
        if ready:
            condition = get_condition(status, "Ready")
            ready_since = parse_time(condition.get("lastTransitionTime")) or 0.0
        restarts = max([c.get("restartCount") or 0
                        for c in status.get("containerStatuses") or ()] or [0])
        created = parse_time(meta(pod).get("creationTimestamp")) or 0.0
        return (1 if node else 0, _PHASE_ORDER.get(status.get("phase"), 0), 1 if ready else 0,
                -on_node.get(node, 0) if node else 0, -ready_since, -restarts, -created,
                meta(pod).get("name") or "")
    return sorted(pods, key=rank)[:count]


async def slow_start_batch(count, initial, call):
    """``slowStartBatch``: run ``call()`` ``count`` times in batches of ``initial``, then
    twice as many each time, stopping after a batch with a failure; returns ``(successes,
    first error or None)``."""
    remaining, successes, batch = count, 0, min(count, initial)
    while batch > 0:
        results = await defer.DeferredList(
            [defer.maybeDeferred(call) for _ in range(batch)], consumeErrors=True)
        failures = [r for ok, r in results if not ok]
        successes += batch - len(failures)
        if failures:
            return successes, failures[0].value
        remaining -= batch
        batch = min(2 * batch, remaining)
    return successes, None


class _Expectations:
    """Creations and deletions a controller waits to see in its cache."""

    __slots__ = ("adds", "deletes", "since")

    def __init__(self, since):
        self.adds = 0
        self.deletes = set()
        self.since = since


class ReplicaSetController(Controller):
    """Keeps each ReplicaSet's pods; see the module docstring."""

    name = "replicaset-controller"
    informed = (("replicasets", "replicasets", {}), ("pods", "pods", {}))
    concurrency = 5

    def __init__(self, clock, kube, recorder=None, concurrency=None,
                 burst_replicas=BURST_REPLICAS, write_concurrency=16,
                 expectations_timeout=EXPECTATIONS_TIMEOUT):
        """``write_concurrency`` bounds pod creations/deletions in flight."""
        super().__init__(clock, kube, recorder, concurrency)
        self.burst_replicas = burst_replicas
        self.expectations_timeout = expectations_timeout
        self.writes = defer.DeferredSemaphore(write_concurrency)
        self.pod_index = OwnerIndex()
        self._rs_by_uid = {}
        self._expectations = {}

    # -- handlers -------------------------------------------------------------------------

    def register_handlers(self):
        """ReplicaSets and pods enqueue the ReplicaSet concerned."""
        self.replicasets.add_handler(self.on_add_replicasets, self.on_update_replicasets,
                                     self.on_delete_replicasets)
        self.pods.add_handler(self.on_add_pods, self.on_update_pods, self.on_delete_pods)

    def on_add_replicasets(self, rs):
        """A ReplicaSet appeared."""
        self._rs_by_uid[meta(rs).get("uid")] = object_key(rs)
        self.queue.add(object_key(rs))

    def on_update_replicasets(self, old, rs):
        """A ReplicaSet changed."""
        self.on_add_replicasets(rs)

    def on_delete_replicasets(self, rs):
        """A ReplicaSet went away: forget its expectations."""
        self._rs_by_uid.pop(meta(rs).get("uid"), None)
        self._expectations.pop(object_key(rs), None)

    def _rs_key(self, uid):
        return self._rs_by_uid.get(uid) if uid else None

    def _enqueue_matching(self, pod):
        """An orphan: every ReplicaSet of its namespace that would adopt it."""
        namespace = meta(pod).get("namespace")
        labels = meta(pod).get("labels") or {}
        for rs in self.replicasets.list():
            if meta(rs).get("namespace") == namespace and \
                    selector_matches((rs.get("spec") or {}).get("selector"), labels):
                self.queue.add(object_key(rs))

    def on_add_pods(self, pod):
        """A pod appeared: an expected creation, or an orphan to adopt."""
        key = object_key(pod)
        _, uid = self.pod_index.set(key, pod)
        if is_terminating(pod):
            self._deletion_observed(key, uid)
            return
        rs_key = self._rs_key(uid)
        if rs_key is not None:
            expectations = self._expectations.get(rs_key)
            if expectations is not None:
                expectations.adds -= 1
            self.queue.add(rs_key)
        elif uid is None:
            self._enqueue_matching(pod)

    def on_update_pods(self, old, pod):
        """A pod changed: its (old and new) ReplicaSet resyncs; a pod now being deleted
        counts as an observed deletion; a pod becoming ready resyncs again after
        ``minReadySeconds``."""
        key = object_key(pod)
        previous, uid = self.pod_index.set(key, pod)
        if is_terminating(pod) and not is_terminating(old):
            self._deletion_observed(key, uid)
        if previous not in (False, None, uid):
            old_key = self._rs_key(previous)
            if old_key is not None:
                self.queue.add(old_key)
        rs_key = self._rs_key(uid)
        if rs_key is not None:
            self.queue.add(rs_key)
            if pod_is_ready(pod) and not pod_is_ready(old):
                rs = self.replicasets.get_by_key(rs_key)
                min_ready = ((rs or {}).get("spec") or {}).get("minReadySeconds") or 0
                if min_ready:
                    self.queue.add_after(rs_key, min_ready + 1)
        elif uid is None and (meta(old).get("labels") != meta(pod).get("labels")
                              or previous is not None):
            self._enqueue_matching(pod)

    def on_delete_pods(self, pod):
        """A pod went away."""
        key = object_key(pod)
        uid = self.pod_index.remove(key) or (controller_ref(pod) or {}).get("uid")
        self._deletion_observed(key, uid)

    def _deletion_observed(self, key, uid):
        rs_key = self._rs_key(uid)
        if rs_key is None:
            return
        expectations = self._expectations.get(rs_key)
        if expectations is not None:
            expectations.deletes.discard(key)
        self.queue.add(rs_key)

    # -- expectations -------------------------------------------------------------------------

    def _satisfied(self, key):
        expectations = self._expectations.get(key)
        if expectations is None:
            return True
        if expectations.adds <= 0 and not expectations.deletes:
            return True
        return self.clock.seconds() - expectations.since > self.expectations_timeout

    def _expect(self, key, adds=0, deletes=()):
        expectations = _Expectations(self.clock.seconds())
        expectations.adds = adds
        expectations.deletes = set(deletes)
        self._expectations[key] = expectations
        return expectations

    # -- sync ----------------------------------------------------------------------------------

    async def sync(self, key):
        """Reconcile one ReplicaSet."""
        rs = self.replicasets.get_by_key(key)
        if rs is None:
            self._expectations.pop(key, None)
            return
        namespace = meta(rs).get("namespace")
        uid = meta(rs).get("uid")
        spec = rs.get("spec") or {}
        selector = spec.get("selector")
        candidates = [self.pods.get_by_key(k) for k in
                      sorted(self.pod_index.owned(uid) | self.pod_index.orphans(namespace))]
        candidates = [p for p in candidates if p is not None]
        reference = owner_reference(rs, "apps/v1", "ReplicaSet")
        pods = await claim(self.client, "pods", rs, reference, selector, candidates)
        active = [p for p in pods if pod_is_active(p)]
        error = None
        if not self._satisfied(key):
            # Look again when the expectations expire, should the cache never catch up.
            expectations = self._expectations[key]
            self.queue.add_after(key, expectations.since + self.expectations_timeout
                                 - self.clock.seconds() + 1)
        elif not is_terminating(rs):
            error = await self._manage(key, rs, active)
        await self._update_status(key, rs, active, error)
        if error is not None:
            raise error
        min_ready = spec.get("minReadySeconds") or 0
        if min_ready:
            now = self.clock.seconds()
            if any(pod_is_ready(p) and not pod_is_available(p, min_ready, now) for p in active):
                self.queue.add_after(key, min_ready)

    async def _manage(self, key, rs, active):
        """Create or delete pods towards ``spec.replicas``; returns the first error."""
        spec = rs.get("spec") or {}
        wanted = spec.get("replicas", 1)
        diff = len(active) - wanted
        if diff < 0:
            count = min(-diff, self.burst_replicas)
            expectations = self._expect(key, adds=count)
            reference = owner_reference(rs, "apps/v1", "ReplicaSet")
            successes, error = await slow_start_batch(
                count, 1, lambda: self.writes.run(self._create_pod, rs, reference))
            expectations.adds -= count - successes  # never coming: do not wait for them
            return error
        if diff > 0:
            victims = pods_to_delete(active, min(diff, self.burst_replicas))
            expectations = self._expect(key, deletes=[object_key(p) for p in victims])
            results = await defer.DeferredList(
                [self.writes.run(self._delete_pod, rs, pod) for pod in victims],
                consumeErrors=True)
            error = None
            for (ok, result), pod in zip(results, victims):
                if not ok:
                    expectations.deletes.discard(object_key(pod))
                    error = error or result.value
            return error
        return None

    async def _create_pod(self, rs, reference):
        pod = pod_from_template(rs, (rs.get("spec") or {}).get("template"), reference)
        namespace = meta(rs).get("namespace")
        try:
            created = await self.client.create("pods", pod, namespace=namespace)
        except K8sError as e:
            self.event(rs, WARNING, "FailedCreate", "Error creating: {}".format(e.message))
            raise
        self.event(rs, NORMAL, "SuccessfulCreate", "Created pod: {}".format(
            meta(created).get("name")))
        return created

    async def _delete_pod(self, rs, pod):
        name = meta(pod).get("name")
        try:
            await self.client.delete("pods", name, namespace=meta(pod).get("namespace"),
                                     preconditions={"uid": meta(pod).get("uid")})
        except NotFound:
            return
        except K8sError as e:
            self.event(rs, WARNING, "FailedDelete", "Error deleting: {}".format(e.message))
            raise
        self.event(rs, NORMAL, "SuccessfulDelete", "Deleted pod: {}".format(name))

    async def _update_status(self, key, rs, active, error):
        spec, status = rs.get("spec") or {}, rs.get("status") or {}
        template_labels = (((spec.get("template") or {}).get("metadata") or {})
                           .get("labels") or {})
        now = self.clock.seconds()
        min_ready = spec.get("minReadySeconds") or 0
        new = {
            "replicas": len(active),
            "fullyLabeledReplicas": sum(
                1 for p in active if all((meta(p).get("labels") or {}).get(k) == v
                                         for k, v in template_labels.items())),
            "readyReplicas": sum(1 for p in active if pod_is_ready(p)),
            "availableReplicas": sum(1 for p in active if pod_is_available(p, min_ready, now)),
            "observedGeneration": meta(rs).get("generation", 0),
        }
        conditions = [c for c in status.get("conditions") or ()
                      if c.get("type") != "ReplicaFailure"]
        failure = get_condition(status, "ReplicaFailure")
        if error is not None:
            diff = len(active) - spec.get("replicas", 1)
            reason = "FailedCreate" if diff < 0 else "FailedDelete"
            message = getattr(error, "message", None) or str(error)
            if failure is not None and failure.get("reason") == reason and \
                    failure.get("message") == message:
                conditions.append(failure)
            else:
                conditions.append({"type": "ReplicaFailure", "status": "True",
                                   "reason": reason, "message": message,
                                   "lastTransitionTime": format_time(now)})
        if conditions:
            new["conditions"] = conditions
        current = {k: status.get(k, 0) for k in ("replicas", "fullyLabeledReplicas",
                                                 "readyReplicas", "availableReplicas",
                                                 "observedGeneration")}
        if status.get("conditions"):
            current["conditions"] = status["conditions"]
        if new == current:
            return
        namespace, name = split_key(key)
        patch = {"status": dict(new, conditions=new.get("conditions"))}
        try:
            await self.client.patch_status("replicasets", name, patch, namespace=namespace)
        except NotFound:
            pass
