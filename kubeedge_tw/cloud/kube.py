"""The cloud side's one Kubernetes client and its shared informers.

cloudcore builds one clientset and one set of shared informers that every controller
reads; :class:`KubeContext` is that, as a service in the cloud tree. Its client comes
from a factory because, with the embedded API server, the kubeconfig only exists once
that server has started. Controllers call :meth:`KubeContext.when_ready` and then
:meth:`KubeContext.informer` for the resources they watch; each informer is created and
started once and shared.
"""

from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger

from kubeedge_tw.cloud.k8s import Informer

__all__ = ["KubeContext"]


class KubeContext(service.Service):
    """One KubeClient and shared informers; see the module docstring."""

    log = Logger()
    name = "kube"

    def __init__(self, clock, client_factory):
        """``client_factory()`` returns a KubeClient or a Deferred firing with one."""
        self.clock = clock
        self._factory = client_factory
        self.client = None
        self._informers = {}
        self._waiters = []
        self._failure = None

    def when_ready(self):
        """A Deferred firing with this context once the client exists."""
        if self.client is not None:
            return defer.succeed(self)
        if self._failure is not None:
            return defer.fail(self._failure)
        d = defer.Deferred()
        self._waiters.append(d)
        return d

    def informer(self, resource, **kwargs):
        """The shared, started informer for ``resource`` (created on first use)."""
        if self.client is None:
            raise RuntimeError("the Kubernetes client is not ready yet (use when_ready)")
        key = (resource, tuple(sorted(kwargs.items())))
        informer = self._informers.get(key)
        if informer is None:
            informer = Informer(self.client, resource, self.clock, **kwargs)
            self._informers[key] = informer
            if self.running:
                informer.startService()
        return informer

    def startService(self):
        super().startService()
        d = defer.maybeDeferred(self._factory)

        def ready(client):
            self.client = client
            self.log.info("Kubernetes API client ready: {url}",
                          url=getattr(client, "server_url", "?"), log_event="kube_ready")
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                waiter.callback(self)

        def failed(failure):
            self._failure = failure
            self.log.critical("no Kubernetes API client: {error}",
                              error=failure.getErrorMessage(), log_event="kube_failed")
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                waiter.errback(failure)
        d.addCallbacks(ready, failed)

    @defer.inlineCallbacks
    def stopService(self):
        super().stopService()
        for informer in list(self._informers.values()):
            if informer.running:
                yield informer.stopService()
        if self.client is not None:
            yield defer.maybeDeferred(self.client.close)
