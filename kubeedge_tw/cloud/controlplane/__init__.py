"""The embedded control plane: what kube-scheduler and kube-controller-manager do for a
cluster, for the embedded API server (``modules.apiServer``).

With a real cluster its own scheduler and controllers turn a Deployment into running pods;
with the embedded API server nothing would, and ``kubectl apply -f deployment.yaml``
would leave pods Pending forever. :class:`ControlPlane` is a ``MultiService`` of:

* :class:`~.scheduler.Scheduler` -- binds pending pods to fitting nodes;
* :class:`~.replicaset.ReplicaSetController` and
  :class:`~.deployment.DeploymentController` -- Deployment -> ReplicaSets -> pods, scaling
  and rolling updates;
* :class:`~.nodelifecycle.NodeLifecycleController` -- silent nodes become ``Unknown`` and
  tainted, without evicting pods from edge nodes unless asked to;
* :class:`~.garbagecollector.GarbageCollector` -- dependents of deleted owners go,
  ``--cascade=foreground|orphan`` behave;
* one :class:`~.events.EventSink` that every controller records its events through.

They read the shared informers of :class:`~kubeedge_tw.cloud.kube.KubeContext` and write
through its client, exactly as they would against a remote API server; each starts once
``kube.when_ready()`` fired and its informers synced. The cloud's ``makeService`` adds
this tree only when the embedded API server is in use (``create_controlplane``).
"""

from twisted.application import service
from twisted.internet import defer

from kubeedge_tw.cloud.controlplane.deployment import DeploymentController
from kubeedge_tw.cloud.controlplane.events import EventRecorder, EventSink
from kubeedge_tw.cloud.controlplane.garbagecollector import (
    DEFAULT_GC_RESOURCES, GarbageCollector)
from kubeedge_tw.cloud.controlplane.nodelifecycle import NodeLifecycleController
from kubeedge_tw.cloud.controlplane.replicaset import ReplicaSetController
from kubeedge_tw.cloud.controlplane.scheduler import Scheduler

__all__ = ["ControlPlane", "create_controlplane", "Scheduler", "ReplicaSetController",
           "DeploymentController", "NodeLifecycleController", "GarbageCollector",
           "EventSink", "EventRecorder"]


class ControlPlane(service.MultiService):
    """The scheduler, the controllers and their event sink; see the module docstring."""

    name = "controlplane"

    def __init__(self, clock, kube, node_grace_period=40.0, node_monitor_period=5.0,
                 eviction_timeout=None, gc_resources=DEFAULT_GC_RESOURCES,
                 scheduler_concurrency=None):
        """``node_grace_period``: seconds without a heartbeat before a node is
        ``Unknown``; ``eviction_timeout``: seconds after which pods of a node that is not
        Ready are deleted (``None``, the default: never)."""
        super().__init__()
        self.setName(self.name)
        self.clock = clock
        self.kube = kube
        self.events = EventSink(clock, kube)
        self.scheduler = Scheduler(clock, kube, self.events.recorder("default-scheduler"),
                                   concurrency=scheduler_concurrency)
        self.replicasets = ReplicaSetController(
            clock, kube, self.events.recorder("replicaset-controller"))
        self.deployments = DeploymentController(
            clock, kube, self.events.recorder("deployment-controller"))
        self.nodes = NodeLifecycleController(
            clock, kube, self.events.recorder("node-controller"),
            grace_period=node_grace_period, monitor_period=node_monitor_period,
            eviction_timeout=eviction_timeout)
        self.gc = GarbageCollector(clock, kube,
                                   self.events.recorder("garbage-collector-controller"),
                                   resources=gc_resources)
        for child in (self.scheduler, self.replicasets, self.deployments, self.nodes,
                      self.gc):
            child.setName(child.name)
            child.setServiceParent(self)
        self._ready = None

    def startService(self):
        """Start the controllers; events are written once the client exists."""
        super().startService()
        self._ready = self.kube.when_ready()
        self._ready.addCallbacks(lambda _: self.events.start(), lambda _: None)

    @defer.inlineCallbacks
    def stopService(self):
        """Stop the controllers, then the event sink."""
        if self._ready is not None and not self._ready.called:
            self._ready.cancel()
        self._ready = None
        yield super().stopService()
        yield self.events.stop()


def create_controlplane(core, config, **options):
    """The :class:`ControlPlane` of the cloud side ``core`` (its clock and
    :class:`~kubeedge_tw.cloud.kube.KubeContext`); ``options`` are :class:`ControlPlane`
    keyword arguments (the defaults are the issue's: 40 s node grace, no eviction)."""
    return ControlPlane(core.clock, core.kube, **options)
