"""What every control-plane controller shares: the shared informers, a work queue and the
start/stop protocol.

A :class:`Controller` is a Twisted service. On start it waits for
:meth:`KubeContext.when_ready <kubeedge_tw.cloud.kube.KubeContext.when_ready>`, takes the
shared informers it names in :attr:`Controller.informed` and adds its handlers, then starts
its :class:`~kubeedge_tw.cloud.controlplane.workqueue.WorkQueue` only once every one of those
informers has synced, as ``cache.WaitForCacheSync`` makes kube-controller-manager's
controllers do (acting on a half-filled cache would, say, create pods that already exist).
An informer that another module started earlier has already synced; its current objects
are handed to the new handlers as adds, so a controller sees the same thing either way.
"""

from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger

from kubeedge_tw.cloud.controlplane.workqueue import WorkQueue

__all__ = ["Controller"]


class Controller(service.Service):
    """Base class: ``informed`` is a tuple of ``(attribute, resource, informer kwargs)``;
    subclasses implement :meth:`register_handlers` and :meth:`sync` (one key), and may
    override :meth:`started` / :meth:`stopped` for their timers."""

    log = Logger()
    informed = ()
    concurrency = 5

    def __init__(self, clock, kube, recorder=None, concurrency=None):
        """``kube`` is the shared :class:`~kubeedge_tw.cloud.kube.KubeContext`,
        ``recorder`` an :class:`~kubeedge_tw.cloud.controlplane.events.EventRecorder`."""
        self.clock = clock
        self.kube = kube
        self.recorder = recorder
        self.queue = WorkQueue(clock, self.sync, self.name,
                               concurrency=concurrency or self.concurrency)
        self.synced = False
        self._wiring = None

    @property
    def client(self):
        """The shared :class:`~kubeedge_tw.cloud.k8s.client.KubeClient`."""
        return self.kube.client

    def event(self, obj, event_type, reason, message):
        """Record an event about ``obj`` (nothing without a recorder)."""
        if self.recorder is not None:
            self.recorder.event(obj, event_type, reason, message)

    def startService(self):
        """Wire to the informers once the Kubernetes client exists."""
        super().startService()
        self._wiring = self.kube.when_ready()
        self._wiring.addCallback(self._wire)
        self._wiring.addErrback(self._wire_failed)

    def _wire(self, kube):
        informers = []
        for attribute, resource, kwargs in self.informed:
            informer = kube.informer(resource, **kwargs)
            setattr(self, attribute, informer)
            informers.append(informer)
        self.register_handlers()
        for informer, (attribute, _, _) in zip(informers, self.informed):
            if informer.has_synced:
                self.replay(attribute, informer.list())
        d = defer.gatherResults([i.wait_synced() for i in informers], consumeErrors=True)
        d.addCallback(lambda _: self._all_synced())
        return d

    def _wire_failed(self, failure):
        cancelled = failure.check(defer.CancelledError) or (
            failure.check(defer.FirstError) and
            failure.value.subFailure.check(defer.CancelledError))
        if cancelled:
            return None  # stopped before the caches synced
        self.log.error("{controller} is idle: {error}", controller=self.name,
                       error=failure.getErrorMessage(), log_event="controlplane_idle")
        return None

    def _all_synced(self):
        if not self.running:
            return
        self.synced = True
        self.queue.start()
        self.started()
        self.log.info("{controller} started", controller=self.name,
                      log_event="controlplane_controller_started")

    def replay(self, attribute, objects):
        """Hand an already synced informer's objects to the handlers as adds (override
        when the add handler is not :meth:`on_add`)."""
        handler = getattr(self, "on_add_" + attribute, None)
        if handler is not None:
            for obj in objects:
                handler(obj)

    def stopService(self):
        """Stop the queue and timers; fires once runs in flight were cancelled."""
        super().stopService()
        if self._wiring is not None and not self._wiring.called:
            self._wiring.cancel()
        self._wiring = None
        self.synced = False
        self.stopped()
        return self.queue.stop()

    # -- for subclasses -------------------------------------------------------------------

    def register_handlers(self):
        """Add handlers to the informers (attributes named in :attr:`informed`)."""

    def sync(self, key):
        """Reconcile one key; may return a Deferred or be ``async``."""
        raise NotImplementedError

    def started(self):
        """Called once the caches synced and the queue started."""

    def stopped(self):
        """Called on stop: cancel timers here."""
