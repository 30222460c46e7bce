"""Integration: CloudHub over real TLS websockets on 127.0.0.1 with real certificates.

Edges here are plain autobahn clients, so each test controls exactly which certificate
is presented and what is sent: refused handshakes (wrong CA, no certificate, expired,
certificate naming another node), KubeEdge-shaped exchange with fragmentation, garbage
closing one connection with 1008 while another node keeps working.
"""

import datetime
import os

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from twisted.internet import defer, endpoints, reactor, ssl
from twisted.trial.unittest import TestCase

from kubeedge_tw.cloud.cloudhub.hub import CloudHub
from kubeedge_tw.common import message as m
from kubeedge_tw.common import names, pki, tls
from kubeedge_tw.common.bus import Bus
from kubeedge_tw.common.module import Module

PROJECT = names.DEFAULT_PROJECT_ID


class Sink(Module):
    """Records what CloudHub routes to the edgecontroller group."""

    def __init__(self, clock):
        super().__init__(clock, name=names.EDGECONTROLLER, group=names.EDGECONTROLLER_GROUP)
        self.seen = []
        self.waiters = []

    def handle(self, message):
        self.seen.append(message)
        waiters, self.waiters = self.waiters, []
        for predicate, d in waiters:
            if predicate(message):
                d.callback(message)
            else:
                self.waiters.append((predicate, d))

    def wait_for(self, predicate):
        for message in self.seen:
            if predicate(message):
                return defer.succeed(message)
        d = defer.Deferred()
        self.waiters.append((predicate, d))
        return d


class Edge(WebSocketClientProtocol):
    """A raw test edge."""

    def onOpen(self):
        self.received = []
        self.factory.opened.callback(self)

    def onMessage(self, payload, isBinary):
        message = m.decode(payload)
        self.received.append(message)
        waiters, self.factory.waiters = self.factory.waiters, []
        for predicate, d in waiters:
            if predicate(message):
                d.callback(message)
            else:
                self.factory.waiters.append((predicate, d))

    def onClose(self, wasClean, code, reason):
        if not self.factory.opened.called:
            self.factory.opened.errback(ConnectionRefused(self.wasNotCleanReason or reason))
        self.factory.closed.callback((code, reason))

    def wait_for(self, predicate):
        for message in self.received:
            if predicate(message):
                return defer.succeed(message)
        d = defer.Deferred()
        self.factory.waiters.append((predicate, d))
        return d


class ConnectionRefused(Exception):
    """The handshake (TLS or websocket upgrade) did not complete."""


def timeout(d, seconds=10):
    return d.addTimeout(seconds, reactor)


class CloudHubTLSTests(TestCase):
    """A real CloudHub on a loopback port with a fresh PKI per test."""

    timeout = 60

    @defer.inlineCallbacks
    def setUp(self):
        self.dir = os.path.abspath(self.mktemp())
        self.pki = tls.write_test_pki(self.dir, ["edge-1", "edge-2"])
        self.bus = Bus(reactor)
        options = tls.server_options(self.pki["ca"], self.pki["server_cert"],
                                     self.pki["server_key"])
        endpoint = endpoints.SSL4ServerEndpoint(reactor, 0, options, interface="127.0.0.1")
        self.hub = CloudHub(reactor, listen=endpoint.listen, keepalive_interval=30,
                            max_message_size=64 * 1024)
        self.sink = Sink(reactor)
        self.bus.register(self.hub)
        self.bus.register(self.sink)
        self.sink.startService()
        yield self.hub.startService()
        self.port = self.hub.listening_port.getHost().port
        self.connections = []
        self.addCleanup(self.stop)

    @defer.inlineCallbacks
    def stop(self):
        for factory in self.connections:
            proto = getattr(factory, "proto", None)
            if proto is not None and proto.state != proto.STATE_CLOSED:
                proto.dropConnection(abort=True)
        for factory in self.connections:
            if factory.connector_done is not None:
                yield factory.closed
        yield self.hub.stopService()
        yield self.sink.stopService()

    def client_options(self, node, cert=None, key=None, ca=None, present_cert=True):
        ca = ca or self.pki["ca"]
        if not present_cert:
            with open(ca, "rb") as f:
                return ssl.optionsForClientTLS("127.0.0.1",
                                               trustRoot=ssl.Certificate.loadPEM(f.read()))
        return tls.client_options("127.0.0.1", ca, cert or self.pki[node + "_cert"],
                                  key or self.pki[node + "_key"])

    def connect(self, node, options, headers=None):
        """Dial the hub as ``node``; the Deferred fires with the open protocol or fails
        with ConnectionRefused."""
        url = "wss://127.0.0.1:{}/{}/{}/events".format(self.port, PROJECT, node)
        factory = WebSocketClientFactory(url, headers=headers if headers is not None else {
            "node_id": node, "project_id": PROJECT, "ConnectionUse": "msg"})
        factory.protocol = Edge
        factory.opened, factory.closed, factory.waiters = defer.Deferred(), defer.Deferred(), []
        factory.connector_done = None
        factory.setProtocolOptions(autoFragmentSize=4082)  # fragment like cloudcore
        self.connections.append(factory)
        endpoint = endpoints.wrapClientTLS(options, endpoints.TCP4ClientEndpoint(
            reactor, "127.0.0.1", self.port, timeout=5))
        d = endpoint.connect(factory)

        def connected(proto):
            factory.proto = proto
            factory.connector_done = True
            return factory.opened

        def failed(f):
            factory.connector_done = None
            return f

        d.addCallbacks(connected, failed)
        return timeout(d)

    @defer.inlineCallbacks
    def assert_refused(self, d):
        try:
            yield d
        except ConnectionRefused as e:
            defer.returnValue(str(e))
        except Exception as e:  # TLS alerts surface as connection errors
            defer.returnValue(repr(e))
        self.fail("the connection was accepted")

    @defer.inlineCallbacks
    def test_exchange_both_ways(self):
        """A good edge connects, its fragmented node status reaches edgecontroller with the
        node prefix, and a pod update from the cloud reaches it and is ACKed."""
        edge = yield self.connect("edge-1", self.client_options("edge-1"))
        self.assertEqual(self.hub.connected_nodes(), ["edge-1"])
        big = {"UID": "u", "Status": {"padding": "x" * 20000}}
        edge.sendMessage(m.encode(m.new_message("edged", "meta", "update",
                                                "default/nodestatus/edge-1", big)))
        got = yield timeout(self.sink.wait_for(
            lambda x: x.resource == "node/edge-1/default/nodestatus/edge-1"))
        self.assertEqual(got.content, big)
        self.bus.send(names.CLOUDHUB, m.new_message(
            names.EDGECONTROLLER, "resource", "update", "node/edge-1/default/pod/nginx",
            {"metadata": {"name": "nginx"}}, resource_version="77"))
        pod = yield timeout(edge.wait_for(lambda x: x.resource == "default/pod/nginx"))
        edge.sendMessage(m.encode(m.new_response(pod, "OK", source=names.EDGECONTROLLER)))
        for _ in range(1000):  # the ACK crosses the loopback in a few reactor turns
            if self.hub.acked_versions("edge-1"):
                break
            yield _turn()
        self.assertEqual(self.hub.acked_versions("edge-1"), {"pod/default/nginx": "77"})

    @defer.inlineCallbacks
    def test_wrong_ca_refused(self):
        """A client certificate from another CA never completes the handshake."""
        other = tls.write_test_pki(os.path.abspath(self.mktemp()), ["edge-1"])
        options = self.client_options("edge-1", cert=other["edge-1_cert"],
                                      key=other["edge-1_key"])
        reason = yield self.assert_refused(self.connect("edge-1", options))
        self.assertIn("unknown ca", reason)
        self.assertFalse(self.hub.connected_nodes(), reason)

    @defer.inlineCallbacks
    def test_no_client_cert_refused(self):
        """An edge presenting no certificate is refused in the TLS handshake."""
        reason = yield self.assert_refused(
            self.connect("edge-1", self.client_options("edge-1", present_cert=False)))
        self.assertIn("certificate required", reason)
        self.assertFalse(self.hub.connected_nodes(), reason)

    @defer.inlineCallbacks
    def test_expired_cert_refused(self):
        """An expired client certificate from the right CA is refused."""
        past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=30)
        key, cert = pki.issue_client_cert(self.pki["ca_key_obj"], self.pki["ca_cert_obj"],
                                          "edge-1", days=1, now=past)
        cert_path = pki.write_pem(os.path.join(self.dir, "old.crt"), pki.cert_pem(cert))
        key_path = pki.write_pem(os.path.join(self.dir, "old.key"), pki.key_pem(key), True)
        reason = yield self.assert_refused(self.connect(
            "edge-1", self.client_options("edge-1", cert=cert_path, key=key_path)))
        self.assertIn("expired", reason)
        self.assertFalse(self.hub.connected_nodes(), reason)

    @defer.inlineCallbacks
    def test_cn_mismatch_403(self):
        """A certificate for edge-2 claiming to be edge-1 gets HTTP 403 at upgrade."""
        reason = yield self.assert_refused(
            self.connect("edge-1", self.client_options("edge-2")))
        self.assertIn("403", reason)
        self.assertFalse(self.hub.connected_nodes())

    @defer.inlineCallbacks
    def test_garbage_1008_other_node_unaffected(self):
        """Garbage frames get error replies and, ten in a row, close 1008; another node
        keeps exchanging messages."""
        bad = yield self.connect("edge-1", self.client_options("edge-1"))
        good = yield self.connect("edge-2", self.client_options("edge-2"))
        bad.sendMessage(b'{"header":{"msg_id":"g-1"},"route":{"operation":"nope"}}')
        err = yield timeout(bad.wait_for(lambda x: x.parent_msg_id == "g-1"))
        self.assertEqual(err.operation, "error")
        for i in range(9):
            bad.sendMessage(b"not json %d" % i)
        code, reason = yield timeout(bad.factory.closed)
        self.assertEqual(code, 1008)
        self.assertIn("invalid", reason)
        good.sendMessage(m.encode(m.new_message("edged", "meta", "update",
                                                "default/podstatus/p", {"ok": 1})))
        got = yield timeout(self.sink.wait_for(
            lambda x: x.resource == "node/edge-2/default/podstatus/p"))
        self.assertEqual(got.content, {"ok": 1})
        self.assertEqual(self.hub.connected_nodes(), ["edge-2"])


def _turn():
    """A Deferred that fires on the next reactor turn."""
    d = defer.Deferred()
    reactor.callLater(0, d.callback, None)
    return d
