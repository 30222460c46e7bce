"""Integration: EdgeHub, built by create_edgehub from a config, over real TLS on 127.0.0.1
against a minimal real autobahn TLS websocket server (mutual TLS, certificates from
write_test_pki): connect, headers, keepalive, cloud -> edge routing, and a reconnect after
the server goes away and comes back on the same port, with status kept meanwhile."""

import os

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from twisted.internet import defer, reactor
from twisted.internet.endpoints import SSL4ServerEndpoint
from twisted.trial.unittest import TestCase

from kubeedge_tw.common import message as m
from kubeedge_tw.common import names
from kubeedge_tw.common.config import EDGE, default_config
from kubeedge_tw.common.core import Core
from kubeedge_tw.common.tls import server_options, write_test_pki
from kubeedge_tw.edge.edgehub import create_edgehub
from kubeedge_tw.edge.edgehub.protocol import ClockTimer
from tests.edge.fakes import Recorder, message


def within(d, seconds, what):
    """``d``, failing with a clear AssertionError after ``seconds`` on the real reactor."""
    def timed_out(result, timeout):
        raise AssertionError("timed out after {}s waiting for {}".format(seconds, what))
    return d.addTimeout(seconds, reactor, onTimeoutCancel=timed_out)


class TLSCloudProtocol(WebSocketServerProtocol):
    """One edge connection to the test cloud."""

    def __init__(self):
        super().__init__()
        self.request = None
        self.lost = defer.Deferred()

    def onConnect(self, request):
        """Keep the request for its headers."""
        self.request = request

    def onOpen(self):
        """Announce the open connection."""
        self.factory.connections.append(self)
        self.factory.fire(self)

    def onMessage(self, payload, isBinary):
        """Decode and announce each message."""
        self.factory.fire(m.decode(payload))

    def connectionLost(self, reason):
        """Let autobahn finish, then tell the test the socket is gone."""
        super().connectionLost(reason)
        self.lost.callback(None)


class TLSCloud(WebSocketServerFactory):
    """A minimal cloud: records connections, lets the test wait for events."""

    protocol = TLSCloudProtocol

    def __init__(self):
        super().__init__(reactor=reactor)
        self._batched_timer = ClockTimer(reactor)  # exact timers, nothing left behind
        self.connections = []
        self._waiters = []

    def wait_for(self, predicate):
        """A Deferred firing with the next opened protocol or message that matches."""
        d = defer.Deferred()
        self._waiters.append((predicate, d))
        return d

    def fire(self, event):
        """Give ``event`` to the waiters it satisfies."""
        waiting, self._waiters = self._waiters, []
        for predicate, d in waiting:
            if predicate(event):
                d.callback(event)
            else:
                self._waiters.append((predicate, d))


def is_open(event):
    """A newly opened connection."""
    return isinstance(event, TLSCloudProtocol)


def is_keepalive(event):
    """A keepalive message."""
    return isinstance(event, m.Message) and event.operation == names.OP_KEEPALIVE


class EdgeHubTLSTests(TestCase):
    """EdgeHub against a real TLS websocket server on loopback."""

    timeout = 15

    @defer.inlineCallbacks
    def test_connect_exchange_and_reconnect(self):
        """Connect, keepalive, cloud->meta, reconnect on the same port, kept status resent."""
        pki = write_test_pki(os.path.abspath(self.mktemp()), ["edge-1"])
        cloud = TLSCloud()
        options = server_options(pki["ca"], pki["server_cert"], pki["server_key"])
        port = yield SSL4ServerEndpoint(reactor, 0, options, interface="127.0.0.1").listen(
            cloud)
        ports = [port]
        number = port.getHost().port
        config = default_config(EDGE, overrides={
            "stateDir": os.path.abspath(self.mktemp()),
            "modules.edged.hostnameOverride": "edge-1",
            "modules.edgeHub.heartbeat": 2,
            "modules.edgeHub.websocket.server": "127.0.0.1:{}".format(number),
            "modules.edgeHub.websocket.handshakeTimeout": 5,
            "modules.edgeHub.tlsCaFile": pki["ca"],
            "modules.edgeHub.tlsCertFile": pki["edge-1_cert"],
            "modules.edgeHub.tlsPrivateKeyFile": pki["edge-1_key"]})
        core = Core("kubeedge-edge", reactor, config)
        hub = core.add_module(create_edgehub(core, config))
        meta = core.add_module(Recorder(reactor, names.METAMANAGER, names.META_GROUP))

        @defer.inlineCallbacks
        def clean_up():
            yield core.stopService()
            for conn in cloud.connections:
                yield within(conn.lost, 5, "the server side to close")
            for listening in ports:
                yield listening.stopListening()
        self.addCleanup(clean_up)

        opened = cloud.wait_for(is_open)
        keepalive = cloud.wait_for(is_keepalive)
        core.startService()
        first = yield within(opened, 5, "the first connection")
        yield within(hub.wait_connected(), 5, "the edge to see the connection")
        self.assertEqual(first.request.headers["node_id"], "edge-1")
        self.assertEqual(first.request.path,
                         "/{}/edge-1/events".format(names.DEFAULT_PROJECT_ID))
        ping = yield within(keepalive, 5, "a keepalive")
        self.assertEqual((ping.source, ping.resource, ping.content), ("websocket", "node", "ping"))

        pod = message("default/pod/nginx", "update", content={"kind": "Pod"})
        first.sendMessage(m.encode(pod))
        got = yield within(meta.wait_for(lambda x: x.msg_id == pod.msg_id), 5,
                           "the pod update in meta")
        self.assertEqual(got, pod)

        # The server goes away: port closed, connection dropped.
        yield port.stopListening()
        ports.remove(port)
        first.transport.abortConnection()
        yield within(hub.wait_disconnected(), 5, "the edge to see the drop")
        yield within(first.lost, 5, "the first connection to end")
        kept = message("default/podstatus/nginx", "update", group="meta",
                       source="metaManager", content={"phase": "Running"})
        hub.bus.send(names.EDGEHUB, kept)

        # ... and comes back on the same port.
        reopened = cloud.wait_for(is_open)
        flushed = cloud.wait_for(lambda e: isinstance(e, m.Message) and e.msg_id == kept.msg_id)
        port = yield SSL4ServerEndpoint(reactor, number, options,
                                        interface="127.0.0.1").listen(cloud)
        ports.append(port)
        second = yield within(reopened, 10, "the edge to reconnect")
        self.assertEqual(second.request.headers["node_id"], "edge-1")
        self.assertEqual((yield within(flushed, 5, "the kept pod status")), kept)
        self.assertTrue(hub.connected)
        self.assertEqual(hub.counters["connects"], 2)
