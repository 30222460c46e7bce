"""The base of every KubeEdge module: a Twisted service with a KubeEdge name and group and a
bounded inbox drained on the reactor.

KubeEdge's beehive gives each module a channel and a goroutine that receives from it. Here a
module has a bounded ``deque`` that the bus appends to and a drain scheduled with
``clock.callLater(0, ...)``, so delivery is always asynchronous (a handler never runs inside
its sender's call stack) and deterministic under ``Clock`` in tests. At most
``concurrency`` handlers are in flight at once (1 keeps beehive's in-order semantics). A
handler that raises or whose Deferred fails is logged with the message id; the module goes
on with the next message.
"""

import collections

from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

__all__ = ["Module", "QueueFull"]


class QueueFull(Exception):
    """A module's inbox is at its bound; the message was not accepted."""


class Module(service.Service):
    """A KubeEdge module. Subclasses set ``name`` and ``group`` and override :meth:`handle`.

    ``self.bus`` is set when the module is registered on a :class:`~kubeedge_tw.common.bus.Bus`.
    """

    log = Logger()

    #: KubeEdge module name, exactly as on the wire (e.g. ``websocket``, ``metaManager``).
    name = None
    #: KubeEdge group name (e.g. ``hub``, ``meta``).
    group = None
    #: Default inbox bound; beehive's channels are 1024 deep.
    queue_size = 1024
    #: How many handlers may run at once.
    concurrency = 1
    #: How many messages one drain turn may start before yielding to the reactor.
    drain_batch = 64

    def __init__(self, clock, *, name=None, group=None, queue_size=None, concurrency=None):
        if name is not None:
            self.name = name
        if group is not None:
            self.group = group
        if not self.name or not self.group:
            raise ValueError("a module needs a name and a group")
        self.clock = clock
        if queue_size is not None:
            self.queue_size = queue_size
        if concurrency is not None:
            self.concurrency = concurrency
        self.bus = None
        self._inbox = collections.deque()
        self._drain_call = None
        self._draining = False
        self._in_flight = 0
        self._idle_waiters = []
        #: Counters an operator (or a test) can read.
        self.stats = {"received": 0, "handled": 0, "failed": 0, "refused": 0}

    # -- inbox ------------------------------------------------------------------------------

    def has_room(self):
        """Whether :meth:`enqueue` would accept a message now."""
        return len(self._inbox) < self.queue_size

    def enqueue(self, message, force=False):
        """Accept ``message`` for handling, or raise :class:`QueueFull`.

        ``force`` takes it beyond the bound (for the few messages already read from a
        connection that is closing, which must not be lost)."""
        if len(self._inbox) >= self.queue_size and not force:
            self.stats["refused"] += 1
            raise QueueFull("module {} inbox is full ({} messages); refused {}".format(
                self.name, self.queue_size, message.describe()))
        self._inbox.append(message)
        self.stats["received"] += 1
        self._schedule_drain()

    @property
    def pending(self):
        """How many messages wait in the inbox (not counting those being handled)."""
        return len(self._inbox)

    def _schedule_drain(self):
        if (self.running and self._drain_call is None and not self._draining
                and self._inbox and self._in_flight < self.concurrency):
            self._drain_call = self.clock.callLater(0, self._drain)

    def _drain(self):
        self._drain_call = None
        self._draining = True
        started = 0
        while self._inbox and self._in_flight < self.concurrency and self.running:
            if started >= self.drain_batch:
                break
            message = self._inbox.popleft()
            started += 1
            self._in_flight += 1
            # A handler that finishes at once (most do) costs no Deferred.
            try:
                result = self.handle(message)
            except Exception:
                self._handler_failed(Failure(), message)
                self._handler_done(None)
                continue
            if not isinstance(result, defer.Deferred):
                if not hasattr(result, "__await__"):
                    self._handler_done(None)
                    continue
                result = defer.Deferred.fromCoroutine(result)
            result.addErrback(self._handler_failed, message)
            result.addBoth(self._handler_done)
        self._draining = False
        self._schedule_drain()

    def _handler_failed(self, failure, message):
        self.stats["failed"] += 1
        self.log.failure("module {module} failed to handle {operation} {resource} "
                         "(msg {msg_id})", failure, module=self.name,
                         operation=message.operation, resource=message.resource,
                         msg_id=message.msg_id, log_event="module_handler_failed")

    def _handler_done(self, _):
        self._in_flight -= 1
        self.stats["handled"] += 1
        if not self._in_flight:
            waiters, self._idle_waiters = self._idle_waiters, []
            for d in waiters:
                d.callback(None)
        self._schedule_drain()

    # -- to override ------------------------------------------------------------------------

    def handle(self, message):
        """Handle one message from the bus; may return a Deferred or be ``async``.

        The default logs and drops it, which is right for a module that only sends.
        """
        self.log.debug("module {module} ignores {what}", module=self.name,
                       what=message.describe())

    # -- bus shortcuts ----------------------------------------------------------------------

    def send(self, module, message):
        """Send ``message`` to the module named ``module``."""
        return self.bus.send(module, message)

    def send_to_group(self, group, message):
        """Send ``message`` to every module of ``group``."""
        return self.bus.send_to_group(group, message)

    def send_sync(self, module, message, timeout):
        """Send and wait for the reply; see :meth:`Bus.send_sync`."""
        return self.bus.send_sync(module, message, timeout)

    def send_resp(self, message):
        """Deliver a reply to the ``send_sync`` waiting for it."""
        return self.bus.send_resp(message)

    # -- service ----------------------------------------------------------------------------

    def startService(self):
        super().startService()
        self._schedule_drain()

    def stopService(self):
        """Stop taking messages from the inbox; wait for handlers already running.

        Messages still queued are counted in the log (the modules that must not lose them
        persist before acknowledging, so nothing acknowledged is lost)."""
        super().stopService()
        if self._drain_call is not None and self._drain_call.active():
            self._drain_call.cancel()
        self._drain_call = None
        if self._inbox:
            self.log.info("module {module} stopping with {count} unhandled messages",
                          module=self.name, count=len(self._inbox),
                          log_event="module_stopped_with_backlog")
        if not self._in_flight:
            return defer.succeed(None)
        d = defer.Deferred()
        self._idle_waiters.append(d)
        return d
