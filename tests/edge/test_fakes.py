"""Checks of the edge test doubles themselves (tests.edge.fakes), against plain autobahn."""

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from twisted.internet.testing import MemoryReactorClock
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase

from kubeedge_tw.common import message as m
from kubeedge_tw.edge.edgehub.protocol import ClockTimer
from tests.edge.fakes import FakeCloudFactory, Recorder, message


class PlainClient(WebSocketClientProtocol):
    """A bare autobahn client that records what it gets."""

    def __init__(self):
        super().__init__()
        self.opened = False
        self.got = []
        self.closed = None

    def onOpen(self):
        """Note that the websocket opened."""
        self.opened = True

    def onMessage(self, payload, isBinary):
        """Record a message."""
        self.got.append((payload, isBinary))

    def onClose(self, wasClean, code, reason):
        """Record how the connection closed."""
        self.closed = (wasClean, code, reason)


def connect(cloud, clock):
    """A plain client connected to ``cloud`` over iosim; returns (client, server, pump)."""
    factory = WebSocketClientFactory("ws://cloud:10000/p/edge-9/events",
                                     headers={"node_id": "edge-9"}, reactor=clock)
    factory._batched_timer = ClockTimer(clock)
    factory.protocol = PlainClient
    client = factory.buildProtocol(None)
    server = cloud.buildProtocol(None)
    pump = iosim.connect(server, iosim.makeFakeServer(server),
                         client, iosim.makeFakeClient(client), clock=clock)
    return client, server, pump


class FakeCloudTests(SynchronousTestCase):
    """The fake cloud records requests and messages and can send and refuse."""

    def test_records_and_sends(self):
        """The fake records request, frames and messages; send reaches the client as text."""
        clock = MemoryReactorClock()
        cloud = FakeCloudFactory(clock)
        client, server, pump = connect(cloud, clock)
        self.assertTrue(client.opened)
        self.assertEqual(server.request.path, "/p/edge-9/events")
        self.assertEqual(server.request.headers["node_id"], "edge-9")
        self.assertEqual(cloud.connections, [server])
        msg, keepalive = message(), message("node", "keepalive", content="ping")
        client.sendMessage(m.encode(msg))
        client.sendMessage(m.encode(keepalive))
        client.sendMessage(b"garbage")
        pump.flush()
        self.assertEqual(cloud.received, [msg, keepalive])
        self.assertEqual(cloud.received_except_keepalives(), [msg])
        self.assertEqual(cloud.keepalives(), [keepalive])
        self.assertEqual(cloud.undecodable, [b"garbage"])
        server.send(msg)
        pump.flush()
        self.assertEqual(client.got, [(m.encode(msg), False)])
        client.sendClose(1000)
        pump.flush()
        self.assertEqual(server.closed[1], 1000)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_refuse(self):
        """With refuse set the upgrade is answered with that status and never opens."""
        clock = MemoryReactorClock()
        cloud = FakeCloudFactory(clock)
        cloud.refuse = (403, "no")
        client, server, pump = connect(cloud, clock)
        pump.flush()
        self.assertFalse(client.opened)
        self.assertIn("403", client.closed[2])
        self.assertEqual(len(cloud.requests), 1)
        self.assertEqual(cloud.connections, [])


class RecorderTests(SynchronousTestCase):
    """Recorder keeps what it handles and separates the connection broadcast."""

    def test_recorder(self):
        """Handled messages are kept in order; broadcasts are listed apart."""
        clock = MemoryReactorClock()
        recorder = Recorder(clock, "metaManager", "meta")
        recorder.startService()
        msg = message()
        broadcast = m.new_message("edgehub", "meta", "publish", "node/connection",
                                  "cloud_connected")
        recorder.enqueue(msg)
        recorder.enqueue(broadcast)
        clock.advance(0)
        self.assertEqual(recorder.seen, [msg, broadcast])
        self.assertEqual(recorder.payload_seen(), [msg])
        self.assertEqual(recorder.broadcasts(), ["cloud_connected"])

    def test_wait_for(self):
        """wait_for fires with a matching message already seen or when one arrives."""
        clock = MemoryReactorClock()
        recorder = Recorder(clock, "metaManager", "meta")
        recorder.startService()
        first, second = message("default/pod/a"), message("default/pod/b")
        recorder.enqueue(first)
        clock.advance(0)
        self.assertEqual(self.successResultOf(recorder.wait_for(lambda x: x == first)), first)
        d = recorder.wait_for(lambda x: x.resource == "default/pod/b")
        self.assertNoResult(d)
        recorder.enqueue(second)
        clock.advance(0)
        self.assertEqual(self.successResultOf(d), second)
