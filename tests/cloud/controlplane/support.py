"""Test support: the control plane on the extended fake API server, on Clocks.

:class:`Harness` wires a :class:`~kubeedge_tw.cloud.kube.KubeContext` over
:class:`~tests.cloud.controlplane.fake_extensions.ControlPlaneCluster` and a
:class:`~kubeedge_tw.cloud.controlplane.ControlPlane` (or one controller), and moves
time and bytes until nothing changes. :meth:`Harness.kubelet` plays the edge: bound pods
become Running and Ready, pods being deleted go (what edged + EdgeController report).
Manifest builders make nodes, pods and Deployments.
"""

from twisted.internet import defer
from twisted.python.failure import Failure

from kubeedge_tw.cloud.controlplane import ControlPlane
from kubeedge_tw.cloud.controlplane.util import format_time
from kubeedge_tw.cloud.kube import KubeContext
from tests.cloud.controlplane.fake_extensions import ControlPlaneCluster

__all__ = ["Harness", "node", "pod", "deployment"]


class Harness:
    """Fake cluster + shared informers + control plane, all on Clocks."""

    def __init__(self, start=True, **options):
        """``options`` go to :class:`ControlPlane`; ``start=False`` leaves it stopped."""
        self.cluster = ControlPlaneCluster()
        self.api = self.cluster.api
        self.clock = self.cluster.clock
        self.server_clock = self.cluster.server_clock
        # Real time, so timestamps parse as plausible dates on both sides.
        self.clock.advance(1_700_000_000)
        self.server_clock.advance(1_700_000_000)
        self.client = self.cluster.client()
        self.kube = KubeContext(self.clock, lambda: self.client)
        self.cp = ControlPlane(self.clock, self.kube, **options)
        self.kube.startService()
        if start:
            self.cp.startService()
        self.run()

    # -- time and bytes ---------------------------------------------------------------------

    def pump(self, limit=2000):
        """Flush bytes and run due calls until nothing changes for three rounds."""
        quiet, last = 0, None
        for _ in range(limit):
            self.cluster.flush()
            self.clock.advance(0)
            self.server_clock.advance(0)
            state = (len(self.api.requests), self.api.rv,
                     len([c for c in self.clock.getDelayedCalls()
                          if c.getTime() <= self.clock.seconds()]))
            quiet = quiet + 1 if state == last else 0
            last = state
            if quiet >= 3:
                return
        raise AssertionError("the cluster did not settle")

    def run(self, seconds=0, step=1.0):
        """Advance both clocks by ``seconds`` in ``step``s, settling after each."""
        self.pump()
        remaining = seconds
        while remaining > 0:
            delta = min(step, remaining)
            self.clock.advance(delta)
            self.server_clock.advance(delta)
            self.pump()
            remaining -= delta

    def call(self, d):
        """The result of a client Deferred (raising its failure)."""
        result = []
        d.addBoth(result.append)
        self.run()
        if not result:
            raise AssertionError("the request did not complete")
        if isinstance(result[0], Failure):
            result[0].raiseException()
        return result[0]

    def stop(self):
        """Stop everything; the client clock must be left without delayed calls."""
        if self.cp.running:
            self.call(defer.maybeDeferred(self.cp.stopService))
        self.call(defer.maybeDeferred(self.kube.stopService))
        return self.clock.getDelayedCalls()

    # -- the API -----------------------------------------------------------------------------

    def create(self, resource, obj, namespace="default"):
        """Create through the client (cluster-scoped types without namespace)."""
        if resource == "nodes":
            namespace = None
        return self.call(self.client.create(resource, obj, namespace=namespace))

    def get(self, resource, name, namespace="default"):
        """The stored object, or ``None``."""
        return self.api.object(resource, name, None if resource == "nodes" else namespace)

    def objects(self, resource, namespace="default"):
        """Stored objects of a type (in ``namespace`` for namespaced ones)."""
        return [o for o in self.api.objects(resource)
                if resource == "nodes" or o["metadata"].get("namespace") == namespace]

    def pods(self, **labels):
        """Stored pods whose labels include ``labels``."""
        return [p for p in self.objects("pods")
                if all((p["metadata"].get("labels") or {}).get(k) == v
                       for k, v in labels.items())]

    def events(self, reason=None):
        """Stored events (of ``reason``), oldest first."""
        return [e for e in self.api.objects("events")
                if reason is None or e.get("reason") == reason]

    def kubelet(self):
        """Play the edges: bound pods Running and Ready; terminating pods deleted."""
        now = format_time(self.clock.seconds())
        for p in self.objects("pods"):
            name = p["metadata"]["name"]
            if p["metadata"].get("deletionTimestamp"):
                self.call(self.client.delete("pods", name, namespace="default",
                                             grace_period_seconds=0))
                continue
            if not p["spec"].get("nodeName") or (p.get("status") or {}).get("phase") == \
                    "Running":
                continue
            self.call(self.client.patch_status("pods", name, {"status": {
                "phase": "Running", "conditions": [
                    {"type": "Ready", "status": "True", "lastTransitionTime": now}]}},
                namespace="default", patch_type="strategic"))
        self.run()

    def heartbeat(self, name, status="True"):
        """A node status post with a fresh heartbeat (what EdgeController writes)."""
        now = format_time(self.clock.seconds())
        self.call(self.client.patch_status("nodes", name, {"status": {"conditions": [
            {"type": "Ready", "status": status, "reason": "EdgeReady",
             "lastHeartbeatTime": now, "lastTransitionTime": now}]}},
            patch_type="strategic"))


def node(name, labels=None, taints=None, cpu="4", memory="8Gi", pods="110", ready="True",
         unschedulable=False):
    """A Node manifest with allocatable resources and a Ready condition."""
    obj = {"apiVersion": "v1", "kind": "Node",
           "metadata": {"name": name, "labels": dict(labels or {})},
           "spec": {},
           "status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": pods},
                      "capacity": {"cpu": cpu, "memory": memory, "pods": pods},
                      "conditions": [{"type": "Ready", "status": ready}] if ready else []}}
    if taints:
        obj["spec"]["taints"] = taints
    if unschedulable:
        obj["spec"]["unschedulable"] = True
    return obj


def pod(name, cpu=None, memory=None, node_selector=None, tolerations=None, affinity=None,
        ports=None, labels=None, node_name=None, scheduler_name=None):
    """A Pod manifest with one container."""
    container = {"name": "c", "image": "nginx"}
    requests = {}
    if cpu:
        requests["cpu"] = cpu
    if memory:
        requests["memory"] = memory
    if requests:
        container["resources"] = {"requests": requests}
    if ports:
        container["ports"] = [{"containerPort": p} if isinstance(p, int) else p for p in ports]
    spec = {"containers": [container]}
    for key, value in (("nodeSelector", node_selector), ("tolerations", tolerations),
                       ("affinity", affinity), ("nodeName", node_name),
                       ("schedulerName", scheduler_name)):
        if value:
            spec[key] = value
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": dict(labels or {})}, "spec": spec}


def deployment(name, replicas=1, image="nginx:1", strategy=None, labels=None,
               node_selector=None, min_ready=None, revision_limit=None, deadline=None):
    """A Deployment manifest selecting ``app: <name>``."""
    labels = dict(labels or {"app": name})
    spec = {"replicas": replicas, "selector": {"matchLabels": dict(labels)},
            "template": {"metadata": {"labels": dict(labels)},
                         "spec": {"containers": [{"name": "c", "image": image}]}}}
    if strategy:
        spec["strategy"] = strategy
    if node_selector:
        spec["template"]["spec"]["nodeSelector"] = node_selector
    if min_ready:
        spec["minReadySeconds"] = min_ready
    if revision_limit is not None:
        spec["revisionHistoryLimit"] = revision_limit
    if deadline is not None:
        spec["progressDeadlineSeconds"] = deadline
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "labels": dict(labels)}, "spec": spec}


class HarnessMixin:
    """For ``SynchronousTestCase``: :meth:`harness` builds one and, at cleanup, stops it
    and checks that no delayed call is left on the client clock."""

    def harness(self, **options):
        """A started :class:`Harness`; see the class docstring."""
        h = Harness(**options)
        self.addCleanup(self._stop_harness, h)
        return h

    def _stop_harness(self, h):
        left = h.stop()
        if left:
            raise AssertionError("delayed calls left: {!r}".format(left))
