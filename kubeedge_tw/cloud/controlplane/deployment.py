"""The Deployment controller (kube-controller-manager's ``deployment`` controller).

A Deployment owns ReplicaSets, one per pod template it has had: the *new* one has the
current template, named ``<deployment>-<pod-template-hash>`` with the label
``pod-template-hash`` on itself, its selector and its template; the others are *old*.
Like ``pkg/controller/deployment``:

* **pod-template-hash**: FNV-1a (32 bit) over the template (canonical JSON) and the
  ``status.collisionCount``, written with ``rand.SafeEncodeString``'s alphabet. It is
  stable, but not byte-for-byte Kubernetes' value (Go hashes its ``spew`` dump of the
  struct). A name taken by a ReplicaSet with another template bumps ``collisionCount``.
* **RollingUpdate** (``maxSurge``/``maxUnavailable``, default 25 %/25 %, surge rounded up,
  unavailable down, both 0 means 1 unavailable): the new ReplicaSet grows while the total
  stays within ``replicas + maxSurge``; old ones shrink (unhealthy pods first) while at
  least ``replicas - maxUnavailable`` pods stay available.
* **Recreate**: old ReplicaSets go to 0, and once none of their pods runs the new one goes
  to ``replicas``.
* **scaling** (``kubectl scale``, a changed ``spec.replicas``): the active ReplicaSet is
  resized; during a rollout the change is spread proportionally over the active ones
  (``deployment.kubernetes.io/desired-replicas`` / ``max-replicas`` annotations).
* **revisions**: ``deployment.kubernetes.io/revision`` on each ReplicaSet (a reused old
  template gets the next number) and on the Deployment; old ReplicaSets beyond
  ``revisionHistoryLimit`` (10) with no pods are deleted.
* **status**: ``replicas``, ``updatedReplicas``, ``readyReplicas``, ``availableReplicas``,
  ``unavailableReplicas``, ``observedGeneration``, ``collisionCount`` and the conditions
  ``Available`` (``MinimumReplicasAvailable``) and ``Progressing``
  (``NewReplicaSetCreated``, ``ReplicaSetUpdated``, ``NewReplicaSetAvailable`` when done,
  ``ProgressDeadlineExceeded`` after ``progressDeadlineSeconds`` without progress), which
  is what ``kubectl rollout status`` and ``kubectl get deploy`` read.
* **events**: ``ScalingReplicaSet`` (``Scaled up replica set web-5d4f7 to 3 from 1``).
* orphan ReplicaSets matching the selector are adopted, others released.
"""

import copy
import json
import math

from kubeedge_tw.cloud.controlplane.base import Controller
from kubeedge_tw.cloud.controlplane.events import NORMAL
from kubeedge_tw.cloud.controlplane.refs import OwnerIndex, claim
from kubeedge_tw.cloud.controlplane.util import (
    controller_ref, format_time, get_condition, is_terminating, meta, object_key,
    owner_reference, parse_time, scaled_value, selector_matches, split_key)
from kubeedge_tw.cloud.k8s import AlreadyExists, K8sError, NotFound

__all__ = ["DeploymentController", "compute_hash", "safe_encode", "resolve_fenceposts",
           "max_surge", "max_unavailable", "REVISION", "DESIRED_REPLICAS", "MAX_REPLICAS",
           "HASH_LABEL"]

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
#: Deployment annotations never copied to its ReplicaSets (``annotationsToSkip``).
_SKIPPED_ANNOTATIONS = frozenset({
    "kubectl.kubernetes.io/last-applied-configuration", REVISION, REVISION_HISTORY,
    DESIRED_REPLICAS, MAX_REPLICAS, "deprecated.deployment.rollback.to"})

_ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789"
_MAX_INT32 = 2 ** 31 - 1


# -- pure functions ----------------------------------------------------------------------------


def safe_encode(text):
    """``rand.SafeEncodeString``: each character mapped into an alphabet without vowels."""
    return "".join(_ALPHANUMS[ord(ch) % len(_ALPHANUMS)] for ch in text)


def compute_hash(template, collision_count=None):
    """The pod-template-hash of ``template`` (see the module docstring)."""
    data = json.dumps(template, sort_keys=True, separators=(",", ":")).encode("utf-8")
    value = 0x811C9DC5
    for byte in data:
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    if collision_count is not None:
        for byte in int(collision_count & 0xFFFFFFFF).to_bytes(4, "little"):
            value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return safe_encode(str(value))


def _replicas(obj):
    value = (obj.get("spec") or {}).get("replicas")
    return 1 if value is None else value


def _strategy(deployment):
    return ((deployment.get("spec") or {}).get("strategy") or {})


def _is_rolling(deployment):
    return (_strategy(deployment).get("type") or "RollingUpdate") == "RollingUpdate"


def resolve_fenceposts(surge, unavailable, desired):
    """``ResolveFenceposts``: absolute surge (rounded up) and unavailable (rounded down);
    both 0 makes unavailable 1."""
    surge_value = scaled_value("25%" if surge is None else surge, desired, True)
    unavailable_value = scaled_value("25%" if unavailable is None else unavailable, desired,
                                     False)
    if surge_value == 0 and unavailable_value == 0:
        unavailable_value = 1
    return surge_value, unavailable_value


def _fenceposts(deployment):
    rolling = _strategy(deployment).get("rollingUpdate") or {}
    return resolve_fenceposts(rolling.get("maxSurge"), rolling.get("maxUnavailable"),
                              _replicas(deployment))


def max_surge(deployment):
    """``MaxSurge``: 0 unless RollingUpdate."""
    if not _is_rolling(deployment):
        return 0
    return _fenceposts(deployment)[0]


def max_unavailable(deployment):
    """``MaxUnavailable``: 0 unless RollingUpdate with replicas; at most ``replicas``."""
    replicas = _replicas(deployment)
    if not _is_rolling(deployment) or replicas == 0:
        return 0
    return min(_fenceposts(deployment)[1], replicas)


def _without_hash(template):
    template = copy.deepcopy(template or {})
    labels = (template.get("metadata") or {}).get("labels")
    if labels is not None:
        labels.pop(HASH_LABEL, None)
    return template


def _equal_ignore_hash(a, b):
    """``EqualIgnoreHash``: templates equal but for the pod-template-hash label (empty
    label maps and absent ones are the same)."""
    a, b = _without_hash(a), _without_hash(b)
    for template in (a, b):
        m = template.get("metadata")
        if m is not None:
            for field in ("labels", "annotations"):
                if not m.get(field):
                    m.pop(field, None)
            if not m:
                template.pop("metadata")
    return a == b


def _revision(rs):
    try:
        return int((meta(rs).get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def _created(obj):
    return parse_time(meta(obj).get("creationTimestamp")) or 0.0


def _by_creation(rss):
    return sorted(rss, key=lambda rs: (_created(rs), meta(rs).get("name")))


def _active(rss):
    return [rs for rs in rss if rs is not None and _replicas(rs) > 0]


def _status(rs, field):
    return (rs.get("status") or {}).get(field) or 0


def _sum_spec(rss):
    return sum(_replicas(rs) for rs in rss if rs is not None)


def _sum_status(rss, field):
    return sum(_status(rs, field) for rs in rss if rs is not None)


def _annotation_int(rs, name):
    value = (meta(rs).get("annotations") or {}).get(name)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _set_condition(conditions, ctype, status, reason, message, now_text, force=False):
    """``SetDeploymentCondition`` (nothing changes for the same status and reason unless
    ``force``; the transition time stays while the status does)."""
    current = next((c for c in conditions if c.get("type") == ctype), None)
    if current is not None and current.get("status") == status and \
            current.get("reason") == reason and not force:
        return conditions
    condition = {"type": ctype, "status": status, "lastUpdateTime": now_text,
                 "lastTransitionTime": now_text, "reason": reason, "message": message}
    if current is not None and current.get("status") == status:
        condition["lastTransitionTime"] = current.get("lastTransitionTime") or now_text
    return [c for c in conditions if c.get("type") != ctype] + [condition]


# -- the controller ----------------------------------------------------------------------------


class DeploymentController(Controller):
    """Rolls Deployments out through ReplicaSets; see the module docstring."""

    name = "deployment-controller"
    informed = (("deployments", "deployments", {}), ("replicasets", "replicasets", {}),
                ("pods", "pods", {}))
    concurrency = 5

    def __init__(self, clock, kube, recorder=None, concurrency=None):
        """See :class:`~kubeedge_tw.cloud.controlplane.base.Controller`."""
        super().__init__(clock, kube, recorder, concurrency)
        self.rs_index = OwnerIndex()
        self.pod_index = OwnerIndex()
        self._deployment_by_uid = {}
        self._rs_by_uid = {}

    # -- handlers ----------------------------------------------------------------------------

    def register_handlers(self):
        """Deployments, their ReplicaSets and (for Recreate) their pods."""
        self.deployments.add_handler(self.on_add_deployments,
                                     lambda old, new: self.on_add_deployments(new),
                                     self.on_delete_deployments)
        self.replicasets.add_handler(self.on_add_replicasets, self.on_update_replicasets,
                                     self.on_delete_replicasets)
        self.pods.add_handler(self.on_add_pods, lambda old, new: self.on_add_pods(new),
                              self.on_delete_pods)

    def on_add_deployments(self, deployment):
        """A Deployment appeared or changed."""
        self._deployment_by_uid[meta(deployment).get("uid")] = object_key(deployment)
        self.queue.add(object_key(deployment))

    def on_delete_deployments(self, deployment):
        """A Deployment went away."""
        self._deployment_by_uid.pop(meta(deployment).get("uid"), None)

    def _owner_key(self, uid):
        return self._deployment_by_uid.get(uid) if uid else None

    def on_add_replicasets(self, rs):
        """A ReplicaSet appeared: its Deployment, or any that would adopt it."""
        self.on_update_replicasets(None, rs)

    def on_update_replicasets(self, old, rs):
        """A ReplicaSet changed (its status, mostly)."""
        self._rs_by_uid[meta(rs).get("uid")] = object_key(rs)
        previous, uid = self.rs_index.set(object_key(rs), rs)
        for owner in {previous, uid}:
            key = self._owner_key(owner) if owner else None
            if key is not None:
                self.queue.add(key)
        if uid is None:
            labels = meta(rs).get("labels") or {}
            for deployment in self.deployments.list():
                if meta(deployment).get("namespace") == meta(rs).get("namespace") and \
                        selector_matches((deployment.get("spec") or {}).get("selector"),
                                         labels):
                    self.queue.add(object_key(deployment))

    def on_delete_replicasets(self, rs):
        """A ReplicaSet went away."""
        self._rs_by_uid.pop(meta(rs).get("uid"), None)
        uid = self.rs_index.remove(object_key(rs)) or (controller_ref(rs) or {}).get("uid")
        key = self._owner_key(uid)
        if key is not None:
            self.queue.add(key)

    def on_add_pods(self, pod):
        """Pods matter only to Recreate, which waits for the old ones to stop."""
        self.on_update_pods(None, pod)

    def on_update_pods(self, old, pod):
        """A pod changed: a Recreate Deployment may go on once it stopped."""
        _, uid = self.pod_index.set(object_key(pod), pod)
        self._pod_changed(uid)

    def on_delete_pods(self, pod):
        """A pod went away: a Recreate Deployment may go on."""
        uid = self.pod_index.remove(object_key(pod)) or (controller_ref(pod) or {}).get("uid")
        self._pod_changed(uid)

    def _pod_changed(self, rs_uid):
        rs_key = self._rs_by_uid.get(rs_uid) if rs_uid else None
        rs = self.replicasets.get_by_key(rs_key) if rs_key else None
        ref = controller_ref(rs) if rs is not None else None
        key = self._owner_key(ref.get("uid")) if ref else None
        if key is not None:
            deployment = self.deployments.get_by_key(key)
            if deployment is not None and not _is_rolling(deployment):
                self.queue.add(key)

    # -- sync ------------------------------------------------------------------------------------

    def _now(self):
        return format_time(self.clock.seconds())

    async def sync(self, key):
        """Reconcile one Deployment (``syncDeployment``)."""
        deployment = self.deployments.get_by_key(key)
        if deployment is None:
            return
        deployment = copy.deepcopy(deployment)
        namespace = meta(deployment).get("namespace")
        uid = meta(deployment).get("uid")
        spec = deployment.get("spec") or {}
        selector = spec.get("selector")
        if not selector or (not selector.get("matchLabels")
                            and not selector.get("matchExpressions")):
            # An empty selector would match every pod; Kubernetes refuses to act on it.
            return
        candidates = [self.replicasets.get_by_key(k) for k in
                      sorted(self.rs_index.owned(uid) | self.rs_index.orphans(namespace))]
        candidates = [rs for rs in candidates if rs is not None]
        rss = await claim(self.client, "replicasets", deployment,
                          owner_reference(deployment, "apps/v1", "Deployment"), selector,
                          candidates)
        rss = [copy.deepcopy(rs) for rs in rss]
        if is_terminating(deployment):
            await self._sync_status(deployment, rss, self._find_new(deployment, rss))
            return
        if spec.get("paused"):
            await self._sync_scaling(deployment, rss)
            return
        if self._is_scaling_event(deployment, rss):
            await self._sync_scaling(deployment, rss)
            return
        if _is_rolling(deployment):
            await self._rollout_rolling(deployment, rss)
        else:
            await self._rollout_recreate(deployment, rss)

    # -- finding ReplicaSets ------------------------------------------------------------------------

    def _find_new(self, deployment, rss):
        """``FindNewReplicaSet``: the oldest ReplicaSet with the Deployment's template."""
        template = (deployment.get("spec") or {}).get("template")
        for rs in _by_creation(rss):
            if _equal_ignore_hash((rs.get("spec") or {}).get("template"), template):
                return rs
        return None

    def _is_scaling_event(self, deployment, rss):
        new = self._find_new(deployment, rss)
        replicas = _replicas(deployment)
        for rs in _active([r for r in rss if r is not new] + [new]):
            desired = _annotation_int(rs, DESIRED_REPLICAS)
            if desired is not None and desired != replicas:
                return True
        return False

    async def _new_and_old(self, deployment, rss, create):
        """``getAllReplicaSetsAndSyncRevision``: ``(new or None, old list)``."""
        new = self._find_new(deployment, rss)
        old = [rs for rs in rss if rs is not new]
        new = await self._get_new(deployment, rss, old, new, create)
        return new, [rs for rs in old if rs is not new]

    def _new_rs_annotations(self, deployment, rs, revision, exists):
        """``SetNewReplicaSetAnnotations``; returns whether anything changed."""
        rs_meta = rs.setdefault("metadata", {})
        annotations = dict(rs_meta.get("annotations") or {})
        before = dict(annotations)
        for name, value in (meta(deployment).get("annotations") or {}).items():
            if name not in _SKIPPED_ANNOTATIONS:
                annotations[name] = value
        old_revision = annotations.get(REVISION)
        try:
            old_number = int(old_revision) if old_revision is not None else 0
        except ValueError:
            old_number = 0
        if old_number < revision:
            annotations[REVISION] = str(revision)
            if old_revision is not None:
                history = annotations.get(REVISION_HISTORY)
                annotations[REVISION_HISTORY] = (history + "," if history else "") + \
                    old_revision
        if not exists:
            annotations[DESIRED_REPLICAS] = str(_replicas(deployment))
            annotations[MAX_REPLICAS] = str(_replicas(deployment) + max_surge(deployment))
        rs_meta["annotations"] = annotations
        return annotations != before

    async def _get_new(self, deployment, rss, old, existing, create):
        """``getNewReplicaSet``: sync the existing new ReplicaSet's revision, or create
        it when ``create``."""
        revision = max([_revision(rs) for rs in old] or [0]) + 1
        spec = deployment.get("spec") or {}
        namespace = meta(deployment).get("namespace")
        if existing is not None:
            changed = self._new_rs_annotations(deployment, existing, revision, True)
            min_ready = spec.get("minReadySeconds") or 0
            if (existing.get("spec") or {}).get("minReadySeconds", 0) != min_ready:
                existing["spec"]["minReadySeconds"] = min_ready
                changed = True
            if changed:
                existing = await self.client.update("replicasets", existing,
                                                    namespace=namespace)
            await self._set_deployment_revision(deployment, _revision(existing))
            if get_condition(deployment.get("status"), "Progressing") is None:
                status = deployment.setdefault("status", {})
                status["conditions"] = _set_condition(
                    status.get("conditions") or [], "Progressing", "True",
                    "FoundNewReplicaSet", 'Found new replica set "{}"'.format(
                        meta(existing).get("name")), self._now())
                await self._write_status(deployment)
            return existing
        if not create:
            return None
        status = deployment.get("status") or {}
        collisions = status.get("collisionCount")
        template = copy.deepcopy(spec.get("template") or {})
        pod_hash = compute_hash(template, collisions)
        template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = pod_hash
        selector = copy.deepcopy(spec.get("selector") or {})
        selector.setdefault("matchLabels", {})[HASH_LABEL] = pod_hash
        name = "{}-{}".format(meta(deployment).get("name"), pod_hash)
        new = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
               "metadata": {"name": name, "namespace": namespace,
                            "labels": dict(template["metadata"]["labels"]),
                            "ownerReferences": [owner_reference(deployment, "apps/v1",
                                                                "Deployment")]},
               "spec": {"replicas": 0, "minReadySeconds": spec.get("minReadySeconds") or 0,
                        "selector": selector, "template": template}}
        new["spec"]["replicas"] = self._new_rs_replicas(deployment, old + [new], new)
        self._new_rs_annotations(deployment, new, revision, False)
        try:
            created = await self.client.create("replicasets", new, namespace=namespace)
        except AlreadyExists:
            try:
                current = await self.client.get("replicasets", name, namespace=namespace)
            except NotFound:
                raise K8sError("replica set {} vanished after AlreadyExists".format(name))
            ref = controller_ref(current)
            if ref is not None and ref.get("uid") == meta(deployment).get("uid") and \
                    _equal_ignore_hash((current.get("spec") or {}).get("template"),
                                       spec.get("template")):
                return current  # ours: the cache was late
            # A hash collision: try the next name.
            deployment.setdefault("status", {})["collisionCount"] = (collisions or 0) + 1
            await self._write_status(deployment)
            raise K8sError("hash collision on replica set {}; collisionCount now {}".format(
                name, (collisions or 0) + 1))
        replicas = _replicas(created)
        if replicas > 0:
            self.event(deployment, NORMAL, "ScalingReplicaSet",
                       "Scaled up replica set {} to {}".format(name, replicas))
        await self._set_deployment_revision(deployment, revision)
        status = deployment.setdefault("status", {})
        status["conditions"] = _set_condition(
            status.get("conditions") or [], "Progressing", "True", "NewReplicaSetCreated",
            'Created new replica set "{}"'.format(name), self._now())
        await self._write_status(deployment)
        return created

    async def _set_deployment_revision(self, deployment, revision):
        annotations = meta(deployment).get("annotations") or {}
        if annotations.get(REVISION) == str(revision):
            return
        namespace, name = split_key(object_key(deployment))
        updated = await self.client.patch("deployments", name, {
            "metadata": {"annotations": {REVISION: str(revision)}}}, namespace=namespace)
        deployment["metadata"]["annotations"] = meta(updated).get("annotations")
        deployment["metadata"]["resourceVersion"] = meta(updated).get("resourceVersion")

    def _new_rs_replicas(self, deployment, all_rss, new):
        """``NewRSNewReplicas``."""
        replicas = _replicas(deployment)
        if not _is_rolling(deployment):
            return replicas
        current = _sum_spec(all_rss)
        max_total = replicas + max_surge(deployment)
        if current >= max_total:
            return _replicas(new)
        scale_up = min(max_total - current, replicas - _replicas(new))
        return _replicas(new) + scale_up

    # -- scaling ReplicaSets ------------------------------------------------------------------------

    async def _scale(self, rs, replicas, deployment):
        """``scaleReplicaSetAndRecordEvent``: set the size and the replicas annotations;
        returns ``(scaled, rs)``. ``rs`` (our copy) is updated in place with what the
        server stored, so every list holding it sees the new state."""
        old = _replicas(rs)
        annotations = meta(rs).get("annotations") or {}
        desired = str(_replicas(deployment))
        maximum = str(_replicas(deployment) + max_surge(deployment))
        if old == replicas and annotations.get(DESIRED_REPLICAS) == desired and \
                annotations.get(MAX_REPLICAS) == maximum:
            return False, rs
        new = copy.deepcopy(rs)
        new["spec"]["replicas"] = replicas
        new["metadata"]["annotations"] = dict(annotations, **{DESIRED_REPLICAS: desired,
                                                               MAX_REPLICAS: maximum})
        updated = await self.client.update("replicasets", new,
                                           namespace=meta(rs).get("namespace"))
        rs.clear()
        rs.update(updated)
        if old != replicas:
            self.event(deployment, NORMAL, "ScalingReplicaSet",
                       "Scaled {} replica set {} to {} from {}".format(
                           "up" if replicas > old else "down", meta(rs).get("name"),
                           replicas, old))
        return old != replicas, rs

    async def _sync_scaling(self, deployment, rss):
        """``dc.sync``: a scaling event or a paused Deployment."""
        new, old = await self._new_and_old(deployment, rss, False)
        await self._scale_deployment(deployment, new, old)
        await self._sync_status(deployment, old + ([new] if new else []), new)

    async def _scale_deployment(self, deployment, new, old):
        """``dc.scale``: resize the active ReplicaSet, or spread a change proportionally."""
        replicas = _replicas(deployment)
        latest = self._active_or_latest(new, old)
        if latest is not None:
            if _replicas(latest) != replicas:
                await self._scale(latest, replicas, deployment)
            return
        if self._saturated(deployment, new):
            for rs in _active(old):
                await self._scale(rs, 0, deployment)
            return
        if not _is_rolling(deployment):
            return
        all_rss = _active(old + ([new] if new else []))
        allowed = replicas + max_surge(deployment) if replicas > 0 else 0
        to_add = allowed - _sum_spec(all_rss)
        if to_add > 0:
            all_rss.sort(key=lambda rs: (-_replicas(rs), -_created(rs)))
        elif to_add < 0:
            all_rss.sort(key=lambda rs: (-_replicas(rs), _created(rs)))
        sizes, added = {}, 0
        for rs in all_rss:
            name = meta(rs).get("name")
            if to_add != 0:
                proportion = self._proportion(rs, deployment, to_add, added)
                sizes[name] = _replicas(rs) + proportion
                added += proportion
            else:
                sizes[name] = _replicas(rs)
        if to_add != 0 and all_rss:
            first = meta(all_rss[0]).get("name")
            sizes[first] = max(sizes[first] + to_add - added, 0)
        for rs in all_rss:
            await self._scale(rs, sizes[meta(rs).get("name")], deployment)

    def _proportion(self, rs, deployment, to_add, added):
        """``GetProportion``."""
        if rs is None or _replicas(rs) == 0 or to_add == 0 or to_add == added:
            return 0
        fraction = self._fraction(rs, deployment)
        allowed = to_add - added
        if to_add > 0:
            return min(fraction, allowed)
        return max(fraction, allowed)

    def _fraction(self, rs, deployment):
        """``getReplicaSetFraction``."""
        replicas = _replicas(deployment)
        if replicas == 0:
            return -_replicas(rs)
        deployment_replicas = replicas + max_surge(deployment)
        annotated = _annotation_int(rs, MAX_REPLICAS)
        if annotated is None or annotated == 0:
            annotated = (deployment.get("status") or {}).get("replicas") or 0
        if annotated == 0:
            return 0
        new_size = _replicas(rs) * deployment_replicas / annotated
        return int(math.floor(new_size + 0.5)) - _replicas(rs)

    @staticmethod
    def _active_or_latest(new, old):
        """``FindActiveOrLatest``."""
        if new is None and not old:
            return None
        old = sorted(old, key=lambda rs: (_created(rs), meta(rs).get("name")), reverse=True)
        active = _active(old + [new])
        if not active:
            return new if new is not None else old[0]
        if len(active) == 1:
            return active[0]
        return None

    @staticmethod
    def _saturated(deployment, rs):
        """``IsSaturated``."""
        if rs is None:
            return False
        replicas = _replicas(deployment)
        return _replicas(rs) == replicas and \
            _annotation_int(rs, DESIRED_REPLICAS) == replicas and \
            _status(rs, "availableReplicas") == replicas

    # -- rollouts ------------------------------------------------------------------------------

    async def _rollout_rolling(self, deployment, rss):
        """``rolloutRolling``."""
        new, old = await self._new_and_old(deployment, rss, True)
        all_rss = old + [new]
        if await self._reconcile_new(deployment, all_rss, new):
            await self._sync_rollout_status(deployment, all_rss, new)
            return
        if await self._reconcile_old(deployment, all_rss, _active(old), new):
            await self._sync_rollout_status(deployment, all_rss, new)
            return
        if self._complete(deployment, self._calculate_status(deployment, all_rss, new)):
            await self._cleanup(deployment, old)
        await self._sync_rollout_status(deployment, all_rss, new)

    async def _reconcile_new(self, deployment, all_rss, new):
        """``reconcileNewReplicaSet``: whether it scaled."""
        replicas = _replicas(deployment)
        if _replicas(new) == replicas:
            return False
        if _replicas(new) > replicas:
            target = replicas
        else:
            target = self._new_rs_replicas(deployment, all_rss, new)
        scaled, _ = await self._scale(new, target, deployment)
        return scaled

    async def _reconcile_old(self, deployment, all_rss, old, new):
        """``reconcileOldReplicaSets``: whether it scaled any down."""
        if _sum_spec(old) == 0:
            return False
        all_count = _sum_spec(all_rss)
        min_available = _replicas(deployment) - max_unavailable(deployment)
        new_unavailable = _replicas(new) - _status(new, "availableReplicas")
        max_scaled_down = all_count - min_available - new_unavailable
        if max_scaled_down <= 0:
            return False
        old, cleaned = await self._cleanup_unhealthy(deployment, old, max_scaled_down)
        all_rss = old + [new]
        scaled = await self._scale_down_old(deployment, all_rss, old)
        return cleaned + scaled > 0

    async def _cleanup_unhealthy(self, deployment, old, maximum):
        """``cleanupUnhealthyReplicas``: shrink old ReplicaSets by their unavailable
        pods, oldest first."""
        total = 0
        result = []
        for rs in _by_creation(old):
            if total >= maximum or _replicas(rs) == 0 or \
                    _replicas(rs) == _status(rs, "availableReplicas"):
                result.append(rs)
                continue
            count = min(maximum - total, _replicas(rs) - _status(rs, "availableReplicas"))
            await self._scale(rs, _replicas(rs) - count, deployment)
            total += count
            result.append(rs)
        return result, total

    async def _scale_down_old(self, deployment, all_rss, old):
        """``scaleDownOldReplicaSetsForRollingUpdate``."""
        min_available = _replicas(deployment) - max_unavailable(deployment)
        available = _sum_status(all_rss, "availableReplicas")
        if available <= min_available:
            return 0
        to_scale = available - min_available
        total = 0
        for rs in _by_creation(old):
            if total >= to_scale:
                break
            if _replicas(rs) == 0:
                continue
            count = min(_replicas(rs), to_scale - total)
            await self._scale(rs, _replicas(rs) - count, deployment)
            total += count
        return total

    async def _rollout_recreate(self, deployment, rss):
        """``rolloutRecreate``."""
        new, old = await self._new_and_old(deployment, rss, False)
        all_rss = old + ([new] if new else [])
        scaled = False
        for rs in _active(old):
            changed, _ = await self._scale(rs, 0, deployment)
            scaled = scaled or changed
        if scaled:
            await self._sync_rollout_status(deployment, all_rss, new)
            return
        if self._old_pods_running(new, old):
            await self._sync_rollout_status(deployment, all_rss, new)
            return
        if new is None:
            new, old = await self._new_and_old(deployment, rss, True)
            all_rss = old + [new]
        await self._scale(new, _replicas(deployment), deployment)
        if self._complete(deployment, self._calculate_status(deployment, all_rss, new)):
            await self._cleanup(deployment, old)
        await self._sync_rollout_status(deployment, all_rss, new)

    def _old_pods_running(self, new, old):
        """``oldPodsRunning``: any old ReplicaSet still has pods, or a pod of one is
        neither Succeeded nor Failed."""
        if _sum_status(old, "replicas") > 0:
            return True
        for rs in old:
            for key in self.pod_index.owned(meta(rs).get("uid")):
                pod = self.pods.get_by_key(key)
                if pod is not None and (pod.get("status") or {}).get("phase") not in (
                        "Succeeded", "Failed"):
                    return True
        return False

    async def _cleanup(self, deployment, old):
        """``cleanupDeployment``: delete the oldest empty ReplicaSets beyond
        ``revisionHistoryLimit``."""
        limit = (deployment.get("spec") or {}).get("revisionHistoryLimit")
        limit = 10 if limit is None else limit
        alive = [rs for rs in old if not is_terminating(rs)]
        diff = len(alive) - limit
        if diff <= 0:
            return
        alive.sort(key=lambda rs: (_revision(rs), _created(rs)))
        for rs in alive[:diff]:
            if _status(rs, "replicas") != 0 or _replicas(rs) != 0 or \
                    meta(rs).get("generation", 0) > _status(rs, "observedGeneration"):
                continue
            try:
                await self.client.delete("replicasets", meta(rs).get("name"),
                                         namespace=meta(rs).get("namespace"),
                                         preconditions={"uid": meta(rs).get("uid")})
            except NotFound:
                pass

    # -- status ------------------------------------------------------------------------------------

    def _calculate_status(self, deployment, all_rss, new):
        """``calculateStatus``."""
        all_rss = [rs for rs in all_rss if rs is not None]
        available = _sum_status(all_rss, "availableReplicas")
        total = _sum_spec(all_rss)
        old_status = deployment.get("status") or {}
        status = {
            "observedGeneration": meta(deployment).get("generation", 0),
            "replicas": _sum_status(all_rss, "replicas"),
            "updatedReplicas": _status(new, "replicas") if new is not None else 0,
            "readyReplicas": _sum_status(all_rss, "readyReplicas"),
            "availableReplicas": available,
            "unavailableReplicas": max(total - available, 0),
            "conditions": list(old_status.get("conditions") or []),
        }
        if old_status.get("collisionCount") is not None:
            status["collisionCount"] = old_status["collisionCount"]
        now = self._now()
        if available >= _replicas(deployment) - max_unavailable(deployment):
            status["conditions"] = _set_condition(
                status["conditions"], "Available", "True", "MinimumReplicasAvailable",
                "Deployment has minimum availability.", now)
        else:
            status["conditions"] = _set_condition(
                status["conditions"], "Available", "False", "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.", now)
        return status

    @staticmethod
    def _complete(deployment, status):
        """``DeploymentComplete``."""
        replicas = _replicas(deployment)
        return status["updatedReplicas"] == replicas and status["replicas"] == replicas and \
            status["availableReplicas"] == replicas and \
            status["observedGeneration"] >= meta(deployment).get("generation", 0)

    @staticmethod
    def _progressing(deployment, status):
        """``DeploymentProgressing``."""
        old = deployment.get("status") or {}
        old_old = (old.get("replicas") or 0) - (old.get("updatedReplicas") or 0)
        new_old = status["replicas"] - status["updatedReplicas"]
        return status["updatedReplicas"] > (old.get("updatedReplicas") or 0) or \
            new_old < old_old or \
            status["readyReplicas"] > (old.get("readyReplicas") or 0) or \
            status["availableReplicas"] > (old.get("availableReplicas") or 0)

    def _deadline(self, deployment):
        seconds = (deployment.get("spec") or {}).get("progressDeadlineSeconds")
        if seconds is None:
            seconds = 600
        return None if seconds >= _MAX_INT32 else seconds

    def _timed_out(self, deployment, status):
        """``DeploymentTimedOut``."""
        deadline = self._deadline(deployment)
        condition = get_condition(status, "Progressing")
        if deadline is None or condition is None:
            return False
        if condition.get("reason") == "ProgressDeadlineExceeded":
            return True
        since = parse_time(condition.get("lastUpdateTime"))
        return since is not None and since + deadline < self.clock.seconds()

    async def _sync_rollout_status(self, deployment, all_rss, new):
        """``syncRolloutStatus``: the status with the Progressing condition."""
        status = self._calculate_status(deployment, all_rss, new)
        deadline = self._deadline(deployment)
        now = self._now()
        if deadline is None:
            status["conditions"] = [c for c in status["conditions"]
                                    if c.get("type") != "Progressing"]
        current = get_condition(status, "Progressing")
        complete = status["replicas"] == status["updatedReplicas"] and current is not None \
            and current.get("reason") == "NewReplicaSetAvailable"
        subject = 'ReplicaSet "{}"'.format(meta(new).get("name")) if new is not None else \
            'Deployment "{}"'.format(meta(deployment).get("name"))
        if deadline is not None and not complete:
            if self._complete(deployment, status):
                status["conditions"] = _set_condition(
                    status["conditions"], "Progressing", "True", "NewReplicaSetAvailable",
                    "{} has successfully progressed.".format(subject), now)
            elif self._progressing(deployment, status):
                status["conditions"] = _set_condition(
                    status["conditions"], "Progressing", "True", "ReplicaSetUpdated",
                    "{} is progressing.".format(subject), now, force=True)
            elif self._timed_out(deployment, status):
                status["conditions"] = _set_condition(
                    status["conditions"], "Progressing", "False", "ProgressDeadlineExceeded",
                    "{} has timed out progressing.".format(subject), now)
        failures = [c for rs in all_rss if rs is not None
                    for c in (rs.get("status") or {}).get("conditions") or ()
                    if c.get("type") == "ReplicaFailure" and c.get("status") == "True"]
        if failures:
            status["conditions"] = _set_condition(
                status["conditions"], "ReplicaFailure", "True", failures[0].get("reason"),
                failures[0].get("message") or "", now)
        else:
            status["conditions"] = [c for c in status["conditions"]
                                    if c.get("type") != "ReplicaFailure"]
        await self._write_if_changed(deployment, status)
        self._requeue_stuck(deployment, status)

    def _requeue_stuck(self, deployment, status):
        """``requeueStuckDeployment``: look again when the progress deadline passes."""
        deadline = self._deadline(deployment)
        condition = get_condition(status, "Progressing")
        if deadline is None or condition is None or self._complete(deployment, status) or \
                condition.get("reason") in ("NewReplicaSetAvailable",
                                            "ProgressDeadlineExceeded"):
            return
        since = parse_time(condition.get("lastUpdateTime"))
        if since is None:
            return
        self.queue.add_after(object_key(deployment), since + deadline - self.clock.seconds()
                             + 1)

    async def _sync_status(self, deployment, all_rss, new):
        """``syncDeploymentStatus``."""
        await self._write_if_changed(deployment,
                                     self._calculate_status(deployment, all_rss, new))

    async def _write_if_changed(self, deployment, status):
        old = dict(deployment.get("status") or {})
        new = dict(status)
        if not new.get("conditions"):
            new.pop("conditions", None)
        if {k: v for k, v in new.items() if v not in (0, None)} == \
                {k: v for k, v in old.items() if v not in (0, None)}:
            return
        deployment["status"] = new
        await self._write_status(deployment)

    async def _write_status(self, deployment):
        namespace, name = split_key(object_key(deployment))
        status = dict(deployment.get("status") or {})
        try:
            updated = await self.client.patch_status(
                "deployments", name, {"status": dict(status, conditions=status.get(
                    "conditions") or None)}, namespace=namespace)
        except NotFound:
            return
        deployment["status"] = updated.get("status") or {}
        deployment["metadata"]["resourceVersion"] = meta(updated).get("resourceVersion")
