"""Test doubles for the edge side: a fake CloudHub (a real autobahn websocket server that
records what it gets), a recording module, and a harness that joins an EdgeHub to the fake
cloud over ``iosim`` on a ``MemoryReactorClock`` — no sockets, no TLS, no real time.

The fakes are real parts where it is cheap (autobahn on both ends of the connection, the
real module bus) and are checked by ``tests.edge.test_fakes``.
"""

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny
from twisted.internet import defer
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import globalLogPublisher
from twisted.test.iosim import ConnectionCompleter

from kubeedge_tw.common import message as m
from kubeedge_tw.common import names
from kubeedge_tw.common.bus import Bus
from kubeedge_tw.common.module import Module
from kubeedge_tw.edge.edgehub import EdgeHub
from kubeedge_tw.edge.edgehub.protocol import ClockTimer

CLOUD_PORT = 10000


class FakeCloudProtocol(WebSocketServerProtocol):
    """One edge connection as the fake cloud sees it."""

    def __init__(self):
        super().__init__()
        #: The opening request (autobahn ``ConnectionRequest``: ``path``, ``headers``).
        self.request = None
        #: Every message received, as ``(payload bytes, is_binary)``.
        self.frames = []
        #: ``(was_clean, code, reason)`` once closed.
        self.closed = None

    def onConnect(self, request):
        """Record the request; refuse it when the factory says so."""
        self.request = request
        self.factory.requests.append(request)
        if self.factory.refuse is not None:
            raise ConnectionDeny(*self.factory.refuse)

    def onOpen(self):
        """Count the open connection."""
        self.factory.connections.append(self)

    def onMessage(self, payload, isBinary):
        """Record the frame; decode it into ``factory.received`` when it is a message."""
        self.frames.append((payload, isBinary))
        try:
            self.factory.received.append(m.decode(payload))
        except m.MessageError:
            self.factory.undecodable.append(payload)

    def onClose(self, wasClean, code, reason):
        """Record how the connection closed."""
        self.closed = (wasClean, code, reason)

    def send(self, message, fragment_size=None):
        """Send ``message`` to the edge as a text frame, like cloudcore."""
        self.send_raw(m.encode(message), fragment_size=fragment_size)

    def send_raw(self, payload, is_binary=False, fragment_size=None):
        """Send raw ``payload`` bytes to the edge."""
        self.sendMessage(payload, isBinary=is_binary, fragmentSize=fragment_size)


class FakeCloudFactory(WebSocketServerFactory):
    """The fake cloud: accepts edges, records requests and messages, timers on ``clock``."""

    protocol = FakeCloudProtocol

    def __init__(self, clock):
        super().__init__(reactor=clock)
        self._batched_timer = ClockTimer(clock)
        self.requests = []
        self.connections = []
        self.received = []
        self.undecodable = []
        #: ``(status, reason)`` to refuse upgrades with, or None to accept.
        self.refuse = None

    def received_except_keepalives(self):
        """Messages received from all edges, keepalives left out."""
        return [msg for msg in self.received if msg.operation != names.OP_KEEPALIVE]

    def keepalives(self):
        """The keepalive messages received."""
        return [msg for msg in self.received if msg.operation == names.OP_KEEPALIVE]


class Recorder(Module):
    """A module that records every message it handles."""

    def __init__(self, clock, name, group, **kw):
        super().__init__(clock, name=name, group=group, **kw)
        self.seen = []
        self._waiters = []

    def handle(self, message):
        """Record ``message`` and fire the :meth:`wait_for` waiters it satisfies."""
        self.seen.append(message)
        waiting, self._waiters = self._waiters, []
        for predicate, d in waiting:
            if predicate(message):
                d.callback(message)
            else:
                self._waiters.append((predicate, d))

    def wait_for(self, predicate):
        """A Deferred firing with the first message, seen or to come, that matches."""
        for seen in self.seen:
            if predicate(seen):
                return defer.succeed(seen)
        d = defer.Deferred()
        self._waiters.append((predicate, d))
        return d

    def payload_seen(self):
        """Messages other than the hub's connection broadcast."""
        return [msg for msg in self.seen if msg.resource != names.RES_NODE_CONNECTION]

    def broadcasts(self):
        """Contents of the connection broadcasts received, in order."""
        return [msg.content for msg in self.seen if msg.resource == names.RES_NODE_CONNECTION]


#: Recorder modules a harness registers by default: (name, group).
DEFAULT_MODULES = (
    (names.METAMANAGER, names.META_GROUP),
    (names.DEVICETWIN, names.TWIN_GROUP),
    (names.EVENTBUS, names.BUS_GROUP),
)


class Harness:
    """An EdgeHub on a bus with recorder modules, and a fake cloud listening on the same
    ``MemoryReactorClock``; :meth:`accept` completes a pending connection over iosim."""

    def __init__(self, modules=DEFAULT_MODULES, endpoint_factory=None, **hub_kw):
        self.reactor = MemoryReactorClock()
        self.bus = Bus(self.reactor)
        self.attempts = []
        kw = dict(node_name="edge-1", server_host="127.0.0.1", server_port=CLOUD_PORT,
                  endpoint_factory=endpoint_factory or self.endpoint, heartbeat=15,
                  jitter=lambda: 0)
        kw.update(hub_kw)
        self.hub = EdgeHub(self.reactor, **kw)
        self.bus.register(self.hub)
        self.modules = {}
        for name, group in modules:
            recorder = Recorder(self.reactor, name, group)
            self.bus.register(recorder)
            self.modules[group] = recorder
        self.cloud = FakeCloudFactory(self.reactor)
        self.reactor.listenTCP(CLOUD_PORT, self.cloud)
        self.completer = ConnectionCompleter(self.reactor)
        self.pump = None

    def endpoint(self, host, port):
        """The unit-test endpoint factory: plain TCP on the memory reactor."""
        self.attempts.append((host, port))
        return TCP4ClientEndpoint(self.reactor, host, port)

    def start(self):
        """Start the recorders and the hub (which starts connecting)."""
        for recorder in self.modules.values():
            recorder.startService()
        self.hub.startService()

    def accept(self):
        """Complete the pending connection attempt; return the cloud's protocol."""
        pump = self.completer.succeedOnce()
        if pump is None:
            raise AssertionError("no connection attempt is pending")
        self.pump = pump
        pump.flush()
        return pump.server

    def refuse_tcp(self):
        """Fail the pending connection attempt with ECONNREFUSED."""
        self.completer.failOnce()

    def flush(self):
        """Move bytes both ways and run what is due now, until quiet."""
        if self.pump is not None:
            self.pump.flush()
        self.reactor.advance(0)

    def advance(self, seconds):
        """Advance the clock, then flush."""
        self.reactor.advance(seconds)
        self.flush()

    def connect(self):
        """Start and accept the first connection; return the cloud's protocol."""
        self.start()
        return self.accept()

    def drop(self):
        """The cloud drops the TCP connection (no close handshake)."""
        self.pump.server.transport.loseConnection()
        self.flush()

    def stop(self):
        """Stop the hub and the recorders; return the hub's stop Deferred."""
        d = self.hub.stopService()
        self.flush()
        for recorder in self.modules.values():
            if recorder.running:
                recorder.stopService()
        return d

    def pending_attempts(self):
        """How many TCP connection attempts wait on the memory reactor."""
        return len(self.reactor.tcpClients)


def capture_logs(testcase):
    """Collect every log event during ``testcase``; returns the (live) list."""
    events = []
    globalLogPublisher.addObserver(events.append)
    testcase.addCleanup(globalLogPublisher.removeObserver, events.append)
    return events


def named(events, log_event):
    """The events with ``log_event == log_event``."""
    return [e for e in events if e.get("log_event") == log_event]


def message(resource="default/pod/nginx", operation="update", group="resource",
            source="edgecontroller", content=None, **kw):
    """A message with a fresh id (defaults: a cloud pod update)."""
    return m.new_message(source, group, operation, resource,
                         {"r": resource} if content is None else content, **kw)
