"""The node lifecycle controller (kube-controller-manager's ``nodelifecycle`` controller),
with edge autonomy.

**Health.** A node is healthy while its heartbeats keep coming: the ``Ready`` condition's
``lastHeartbeatTime`` (what edges post with their node status) or the renewal of its Lease
in ``kube-node-lease``. Like the real controller, the *time a heartbeat was observed* on the
injected clock is what counts (``nodeHealthData.probeTimestamp``), so a skewed clock on an
edge cannot make a node look dead or alive; a node first seen gets a full grace period.
Every ``monitor_period`` (5 s) nodes are checked: one whose last heartbeat was observed
more than ``grace_period`` (40 s, ``--node-monitor-grace-period``) ago gets every condition
``Unknown`` (reason ``NodeStatusUnknown``, "Kubelet stopped posting node status."; a
missing ``Ready`` is added with ``NodeStatusNeverUpdated``, "Kubelet never posted node
status."), heartbeat times untouched.

**Taints** follow ``Ready`` as with ``TaintNodesByCondition`` and taint-based eviction:
``Unknown`` -> ``node.kubernetes.io/unreachable`` ``NoSchedule`` and ``NoExecute``;
``False`` -> ``node.kubernetes.io/not-ready`` (same effects); ``True`` -> neither. When the
heartbeats resume, whatever the edge reports decides ``Ready`` again, and the taints follow.

**Events**: ``NodeNotReady`` ("Node edge-1 status is now: NodeNotReady") when ``Ready``
leaves ``True``, ``NodeReady`` when it comes back.

**Pods** of a node whose ``Ready`` leaves ``True`` get their own ``Ready`` condition
``False`` and a ``NodeNotReady`` Warning ("Node is not ready"), as the real controller's
``MarkPodsNotReady`` does, so ``kubectl get pods`` stops showing them ready. They keep
running on the edge; when it is back it posts their statuses again (edged resends them all
on reconnect) and they are Ready again.

**Eviction** is off by default: an edge keeps running its pods while it cannot reach the
cloud (KubeEdge's edge autonomy), so deleting them in the cloud would only make the edge
stop them once it reconnects. With ``eviction_timeout`` (seconds) set, the pods of a node
not Ready for that long that do not tolerate its ``NoExecute`` taint without a
``tolerationSeconds`` limit are deleted (``TaintManagerEviction`` events).
"""

from twisted.internet import task

from kubeedge_tw.cloud.controlplane.base import Controller
from kubeedge_tw.cloud.controlplane.events import NORMAL, WARNING
from kubeedge_tw.cloud.controlplane.scheduler import (
    TAINT_NOT_READY, TAINT_UNREACHABLE, tolerates)
from kubeedge_tw.cloud.controlplane.util import format_time, get_condition, meta
from kubeedge_tw.cloud.k8s import NotFound

__all__ = ["NodeLifecycleController", "NODE_LEASE_NAMESPACE"]

NODE_LEASE_NAMESPACE = "kube-node-lease"
_CONDITION_TAINTS = (TAINT_UNREACHABLE, TAINT_NOT_READY)


class _Health:
    """What the controller observed of one node."""

    __slots__ = ("heartbeat", "lease", "probe", "ready", "not_ready_since")

    def __init__(self, now):
        self.heartbeat = None
        self.lease = None
        self.probe = now
        self.ready = None
        self.not_ready_since = None


class NodeLifecycleController(Controller):
    """Marks silent nodes Unknown and taints nodes by readiness; see the module docstring."""

    name = "node-lifecycle-controller"
    concurrency = 5

    def __init__(self, clock, kube, recorder=None, grace_period=40.0, monitor_period=5.0,
                 eviction_timeout=None, concurrency=None):
        """``eviction_timeout`` ``None`` keeps pods on unreachable nodes (the default)."""
        self.informed = (("nodes", "nodes", {}),
                         ("leases", "leases", {"namespace": NODE_LEASE_NAMESPACE}),
                         ("pods", "pods", {}))
        super().__init__(clock, kube, recorder, concurrency)
        self.grace_period = grace_period
        self.monitor_period = monitor_period
        self.eviction_timeout = eviction_timeout
        self.health = {}
        self._monitor = None

    # -- handlers -------------------------------------------------------------------------

    def register_handlers(self):
        """Nodes and their Leases."""
        self.nodes.add_handler(self.on_add_nodes, lambda old, new: self.on_add_nodes(new),
                               self.on_delete_nodes)
        self.leases.add_handler(self.on_add_leases, lambda old, new: self.on_add_leases(new),
                                None)

    def _health(self, name):
        health = self.health.get(name)
        if health is None:
            health = self.health[name] = _Health(self.clock.seconds())
        return health

    def on_add_nodes(self, node):
        """A node appeared or changed: a new heartbeat time is a heartbeat."""
        name = meta(node).get("name")
        health = self._health(name)
        ready = get_condition(node.get("status"), "Ready")
        heartbeat = ready.get("lastHeartbeatTime") if ready else None
        if heartbeat != health.heartbeat:
            if health.heartbeat is not None or heartbeat is not None:
                health.probe = self.clock.seconds()
            health.heartbeat = heartbeat
        self.queue.add(name)

    def on_delete_nodes(self, node):
        """A node went away: forget it."""
        self.health.pop(meta(node).get("name"), None)

    def on_add_leases(self, lease):
        """A node Lease renewed: a heartbeat."""
        name = meta(lease).get("name")
        renew = (lease.get("spec") or {}).get("renewTime")
        health = self._health(name)
        if renew != health.lease:
            health.lease = renew
            health.probe = self.clock.seconds()
            self.queue.add(name)

    def replay(self, attribute, objects):
        """Already synced informers: nodes and leases as adds."""
        handler = {"nodes": self.on_add_nodes, "leases": self.on_add_leases}.get(attribute)
        for obj in objects if handler else ():
            handler(obj)

    # -- monitoring -----------------------------------------------------------------------------

    def started(self):
        """Check every node every ``monitor_period`` seconds."""
        self._monitor = task.LoopingCall(self._check_all)
        self._monitor.clock = self.clock
        self._monitor.start(self.monitor_period, now=False)

    def stopped(self):
        """Stop checking."""
        if self._monitor is not None and self._monitor.running:
            self._monitor.stop()
        self._monitor = None

    def _check_all(self):
        for name in list(self.health):
            self.queue.add(name)

    # -- sync -----------------------------------------------------------------------------------

    async def sync(self, name):
        """Reconcile one node's conditions, taints and (optionally) pods."""
        node = self.nodes.get(name)
        if node is None:
            return
        health = self._health(name)
        now = self.clock.seconds()
        status = node.get("status") or {}
        ready = get_condition(status, "Ready")
        if now - health.probe > self.grace_period and \
                (ready is None or ready.get("status") != "Unknown"):
            await self._mark_unknown(node, status)
            return  # the informer brings the new state back here
        ready_status = ready.get("status") if ready else None
        if self._observe(node, health, ready_status, now):
            await self._mark_pods_not_ready(node)
        await self._reconcile_taints(node, ready_status, now)
        if self.eviction_timeout is not None and ready_status not in ("True", None) and \
                health.not_ready_since is not None:
            waited = now - health.not_ready_since
            if waited >= self.eviction_timeout:
                await self._evict(node, ready_status)
            else:
                self.queue.add_after(name, self.eviction_timeout - waited)

    def _observe(self, node, health, ready_status, now):
        """Record Ready transitions (events, not-ready time); whether ``Ready`` just left
        ``True``."""
        name = meta(node).get("name")
        previous, health.ready = health.ready, ready_status
        if ready_status == "True":
            health.not_ready_since = None
            if previous not in (None, "True"):
                self.event(node, NORMAL, "NodeReady",
                           "Node {} status is now: NodeReady".format(name))
        elif ready_status is not None:
            if health.not_ready_since is None:
                health.not_ready_since = now
            if previous == "True":
                self.event(node, NORMAL, "NodeNotReady",
                           "Node {} status is now: NodeNotReady".format(name))
                return True
        return False

    async def _mark_pods_not_ready(self, node):
        """Every pod on ``node`` whose ``Ready`` condition is not ``False`` gets it
        ``False``, and a ``NodeNotReady`` Warning."""
        name = meta(node).get("name")
        now = format_time(self.clock.seconds())
        for pod in self.pods.list():
            if (pod.get("spec") or {}).get("nodeName") != name:
                continue
            ready = get_condition(pod.get("status"), "Ready")
            if ready is not None and ready.get("status") == "False":
                continue
            condition = dict(ready or {"type": "Ready"}, status="False",
                             lastTransitionTime=now)
            try:
                await self.client.patch_status("pods", meta(pod).get("name"), {
                    "status": {"conditions": [condition]}},
                    namespace=meta(pod).get("namespace"), patch_type="strategic")
            except NotFound:
                continue
            except Exception as e:   # one pod's failure leaves the others to be marked
                self.log.warn("pod {ns}/{pod}: cannot mark it not ready: {error}",
                              ns=meta(pod).get("namespace"), pod=meta(pod).get("name"),
                              error=e, log_event="node_pod_not_ready_failed")
                continue
            self.event(pod, WARNING, "NodeNotReady", "Node is not ready")

    async def _mark_unknown(self, node, status):
        name = meta(node).get("name")
        now = format_time(self.clock.seconds())
        conditions = []
        has_ready = False
        for condition in status.get("conditions") or ():
            if condition.get("type") == "Ready":
                has_ready = True
            if condition.get("status") == "Unknown":
                continue
            conditions.append(dict(condition, status="Unknown", reason="NodeStatusUnknown",
                                   message="Kubelet stopped posting node status.",
                                   lastTransitionTime=now))
        if not has_ready:
            conditions.append({"type": "Ready", "status": "Unknown",
                               "reason": "NodeStatusNeverUpdated",
                               "message": "Kubelet never posted node status.",
                               "lastHeartbeatTime": meta(node).get("creationTimestamp"),
                               "lastTransitionTime": now})
        if not conditions:
            return
        self.log.info("node {node}: no heartbeat for {grace}s: conditions Unknown", node=name,
                      grace=self.grace_period, log_event="node_status_unknown")
        try:
            await self.client.patch_status("nodes", name, {"status": {
                "conditions": conditions}}, patch_type="strategic")
        except NotFound:
            pass

    async def _reconcile_taints(self, node, ready_status, now):
        if ready_status == "Unknown":
            wanted_key = TAINT_UNREACHABLE
        elif ready_status == "False":
            wanted_key = TAINT_NOT_READY
        else:
            wanted_key = None
        taints = list((node.get("spec") or {}).get("taints") or ())
        current = {(t.get("key"), t.get("effect")): t for t in taints
                   if t.get("key") in _CONDITION_TAINTS}
        wanted = {(wanted_key, effect) for effect in ("NoSchedule", "NoExecute")} \
            if wanted_key else set()
        if set(current) == wanted:
            return
        kept = [t for t in taints if t.get("key") not in _CONDITION_TAINTS or
                (t.get("key"), t.get("effect")) in wanted]
        for key, effect in sorted(wanted - set(current)):
            taint = {"key": key, "effect": effect}
            if effect == "NoExecute":
                taint["timeAdded"] = format_time(now)
            kept.append(taint)
        self.log.info("node {node}: taints now {taints}", node=meta(node).get("name"),
                      taints=", ".join("{}:{}".format(t.get("key"), t.get("effect"))
                                       for t in kept) or "none",
                      log_event="node_taints_changed")
        try:
            await self.client.patch("nodes", meta(node).get("name"), {
                "metadata": {"resourceVersion": meta(node).get("resourceVersion")},
                "spec": {"taints": kept or None}})
        except NotFound:
            pass

    async def _evict(self, node, ready_status):
        name = meta(node).get("name")
        key = TAINT_UNREACHABLE if ready_status == "Unknown" else TAINT_NOT_READY
        for pod in self.pods.list():
            spec = pod.get("spec") or {}
            if spec.get("nodeName") != name or meta(pod).get("deletionTimestamp"):
                continue
            forever = [t for t in spec.get("tolerations") or ()
                       if t.get("tolerationSeconds") is None]
            if tolerates(forever, key, "", "NoExecute"):
                continue
            self.event(pod, NORMAL, "TaintManagerEviction", "Marking for deletion Pod {}/{}"
                       .format(meta(pod).get("namespace"), meta(pod).get("name")))
            try:
                await self.client.delete("pods", meta(pod).get("name"),
                                         namespace=meta(pod).get("namespace"),
                                         preconditions={"uid": meta(pod).get("uid")})
            except NotFound:
                pass
