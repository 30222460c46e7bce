"""Unit tests for CloudHub: a real autobahn client against the hub over iosim, every timer
(ours and autobahn's) on a Clock."""

import json

import txaio
from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase

from kubeedge_tw.cloud.cloudhub.hub import MAX_BAD_FRAMES, CloudHub
from kubeedge_tw.cloud.cloudhub.session import needs_ack, object_key
from kubeedge_tw.common import message as m
from kubeedge_tw.common import names
from kubeedge_tw.common.module import Module

PROJECT = names.DEFAULT_PROJECT_ID


class FakePort:
    """What ``listen`` returns: a listening port on a fixed address."""

    def __init__(self):
        self.stopped = False

    def getHost(self):
        return IPv4Address("TCP", "127.0.0.1", 10000)

    def stopListening(self):
        self.stopped = True
        return defer.succeed(None)


class Recorder(Module):
    """A controller stand-in that records what the hub sends to its group."""

    def __init__(self, clock, name, group):
        super().__init__(clock, name=name, group=group)
        self.seen = []

    def handle(self, message):
        self.seen.append(message)


class Edge(WebSocketClientProtocol):
    """A test edge: records decoded messages and close codes."""

    def onConnect(self, response):
        self.factory.edge = self
        self.received = []
        self.closed = None
        self.raw = []

    def onMessage(self, payload, isBinary):
        self.raw.append(payload)
        self.received.append(m.decode(payload))

    def onClose(self, wasClean, code, reason):
        self.closed = (code, reason)
        self.factory.close_codes.append((code, reason))

    def send(self, message):
        self.sendMessage(m.encode(message), isBinary=False)


class HubHarness:
    """A started CloudHub with recorder controllers and helpers to connect edges."""

    def __init__(self, testcase, **hub_kwargs):
        self.clock = Clock()
        previous = txaio.config.loop
        txaio.config.loop = self.clock  # autobahn's timers on our Clock
        testcase.addCleanup(setattr, txaio.config, "loop", previous)
        from kubeedge_tw.common.bus import Bus
        self.bus = Bus(self.clock)
        self.port = FakePort()
        self.cert_names = {}
        kwargs = dict(listen=lambda factory: defer.succeed(self.port), keepalive_interval=30,
                      cert_names=lambda transport: self.cert_names.get(
                          transport.peerAddress.port, set()),
                      ping=False, handshake_timeout=0)
        kwargs.update(hub_kwargs)
        self.hub = CloudHub(self.clock, **kwargs)
        self.bus.register(self.hub)
        self.edgecontroller = Recorder(self.clock, names.EDGECONTROLLER,
                                       names.EDGECONTROLLER_GROUP)
        self.devicecontroller = Recorder(self.clock, names.DEVICECONTROLLER,
                                         names.DEVICECONTROLLER_GROUP)
        for mod in (self.edgecontroller, self.devicecontroller):
            self.bus.register(mod)
            mod.startService()
        self.hub.startService()
        self.pumps = []
        self._next_port = 40000

    def connect(self, node="edge-1", cert_names=None, headers=None, path=None):
        """Connect an edge; returns (edge protocol or None, client factory, pump)."""
        self._next_port += 1
        self.cert_names[self._next_port] = {node} if cert_names is None else cert_names
        url = "wss://127.0.0.1:10000" + (path or "/{}/{}/events".format(PROJECT, node))
        factory = WebSocketClientFactory(url, headers=headers if headers is not None else {
            "node_id": node, "project_id": PROJECT, "ConnectionUse": "msg"})
        factory.protocol = Edge
        factory.setProtocolOptions(openHandshakeTimeout=0, closeHandshakeTimeout=0)
        factory.edge = None
        factory.close_codes = []
        server = self.hub.factory.buildProtocol(None)
        client = factory.buildProtocol(None)
        peer = IPv4Address("TCP", "127.0.0.1", self._next_port)
        server_t = iosim.FakeTransport(server, isServer=True, peerAddress=peer)
        client_t = iosim.FakeTransport(client, isServer=False,
                                       peerAddress=IPv4Address("TCP", "127.0.0.1", 10000))
        pump = iosim.connect(server, server_t, client, client_t, greet=True)
        self.pumps.append(pump)
        self.flush()
        return factory.edge, factory, pump, server

    def flush(self):
        """Deliver everything pending: bytes both ways and zero-delay calls."""
        for _ in range(20):
            self.clock.advance(0)
            moved = any([pump.pump() for pump in self.pumps])
            if not moved and not [c for c in self.clock.getDelayedCalls()
                                  if c.getTime() <= self.clock.seconds()]:
                break

    def advance(self, seconds):
        self.clock.advance(seconds)
        self.flush()


def pod_update(node="edge-1", name="nginx", rv="10", op="update", group="resource"):
    return m.new_message(names.EDGECONTROLLER, group, op,
                         "node/{}/default/pod/{}".format(node, name),
                         {"metadata": {"name": name, "resourceVersion": rv}},
                         resource_version=rv)


class ConnectTests(SynchronousTestCase):
    """Identity, certificate check, node limit and replacement at upgrade."""

    def test_connect_by_header(self):
        """An edge sending node_id is accepted and controllers get a connected event."""
        h = HubHarness(self)
        edge, _, _, _ = h.connect("edge-1")
        self.assertIsNotNone(edge)
        self.assertTrue(h.hub.is_connected("edge-1"))
        events = [x for x in h.edgecontroller.seen if x.operation == names.OP_CONNECTED]
        self.assertEqual(len(events), 1)
        self.assertEqual(events[0].resource, "node/edge-1")
        self.assertEqual(events[0].source, "cloudhub")
        content = json.loads(events[0].content)
        self.assertEqual((content["event_type"], content["client_id"]), ("connected", "edge-1"))
        self.assertEqual(len(h.devicecontroller.seen), 1)

    def test_go_canonical_header(self):
        """Node_id in Go's canonical case is understood."""
        h = HubHarness(self)
        edge, _, _, _ = h.connect("edge-2", headers={"Node_id": "edge-2"}, path="/x")
        self.assertIsNotNone(edge)
        self.assertEqual(h.hub.connected_nodes(), ["edge-2"])

    def test_connect_by_path(self):
        """Without the header, the node id comes from /<project>/<node>/events (v1.0)."""
        h = HubHarness(self)
        edge, _, _, _ = h.connect("edge-3", headers={})
        self.assertIsNotNone(edge)
        self.assertTrue(h.hub.is_connected("edge-3"))

    def test_no_node_id(self):
        """No header and an unrelated path is refused with 400."""
        h = HubHarness(self)
        edge, factory, pump, _ = h.connect("edge-1", headers={}, path="/somewhere")
        self.assertIsNone(edge)
        self.assertFalse(h.hub.connected_nodes())
        self.assertIn("400", pump.client.wasNotCleanReason)

    def test_cn_mismatch_403(self):
        """A certificate naming another node is refused with HTTP 403."""
        h = HubHarness(self)
        edge, factory, pump, server = h.connect("edge-1", cert_names={"edge-9"})
        self.assertIsNone(edge)
        self.assertFalse(h.hub.is_connected("edge-1"))
        self.assertIn("403", pump.client.wasNotCleanReason)

    def test_any_node_cert(self):
        """With allowAnyNodeCert a certificate that names no node is accepted."""
        h = HubHarness(self, allow_any_node_cert=True)
        edge, _, _, _ = h.connect("edge-1", cert_names={"kubeedge.io"})
        self.assertIsNotNone(edge)

    def test_node_limit_429(self):
        """Beyond nodeLimit new nodes are refused, but a known node may reconnect."""
        h = HubHarness(self, node_limit=1)
        first, _, _, _ = h.connect("edge-1")
        second, _, pump, _ = h.connect("edge-2")
        self.assertIsNotNone(first)
        self.assertIsNone(second)
        self.assertIn("429", pump.client.wasNotCleanReason)
        again, _, _, _ = h.connect("edge-1")
        self.assertIsNotNone(again)

    def test_replacement(self):
        """A second connection for a node replaces the first, which is closed with a
        reason; no disconnected event is sent for the replaced one."""
        h = HubHarness(self)
        first, f1, _, _ = h.connect("edge-1")
        second, _, _, _ = h.connect("edge-1")
        self.assertIsNotNone(second)
        self.assertEqual(f1.close_codes[0][0], 1000)
        self.assertIn("replaced", f1.close_codes[0][1])
        ops = [x.operation for x in h.edgecontroller.seen]
        self.assertEqual(ops, [names.OP_CONNECTED, names.OP_CONNECTED])
        self.assertTrue(h.hub.is_connected("edge-1"))


class KeepaliveTests(SynchronousTestCase):
    """Per-node keepalive deadline on the clock."""

    def test_keepalive_resets_deadline(self):
        """Keepalives keep the node connected and are never forwarded."""
        h = HubHarness(self)
        edge, _, _, _ = h.connect("edge-1")
        for _ in range(4):
            h.advance(20)
            edge.send(m.new_message("websocket", "resource", "keepalive", "node", "ping"))
            h.flush()
        self.assertTrue(h.hub.is_connected("edge-1"))
        self.assertEqual([x.operation for x in h.edgecontroller.seen], [names.OP_CONNECTED])

    def test_keepalive_timeout_disconnects(self):
        """After keepaliveInterval without keepalive the node is disconnected and the
        controllers are told."""
        h = HubHarness(self)
        edge, factory, _, _ = h.connect("edge-1")
        h.advance(29.9)
        self.assertTrue(h.hub.is_connected("edge-1"))
        h.advance(0.1)
        self.assertFalse(h.hub.is_connected("edge-1"))
        self.assertEqual([x.operation for x in h.edgecontroller.seen],
                         [names.OP_CONNECTED, names.OP_DISCONNECTED])
        self.assertIsNotNone(edge.closed)


    def test_no_timeout_while_reads_are_paused(self):
        """While the hub itself does not read an edge (busy controllers), neither the
        keepalive deadline nor the websocket ping disconnects it; once reads resume, a
        silent edge is disconnected one interval later."""
        h = HubHarness(self, ping=True)
        h.edgecontroller.queue_size = 1
        edge, _, _, server = h.connect("edge-1")
        h.edgecontroller.stopService()   # the controller stops taking messages
        for i in range(5):
            edge.send(m.new_message("edged", "meta", "update", "default/podstatus/p%d" % i,
                                    {}))
        h.flush()
        self.assertTrue(server.reading_paused)
        h.advance(100)
        self.assertTrue(h.hub.is_connected("edge-1"))
        self.assertIsNone(edge.closed)
        # A ping whose pong sits unread: the wait starts again instead of a drop.
        server.onAutoPingTimeout()
        h.flush()
        self.assertTrue(h.hub.is_connected("edge-1"))
        self.assertTrue(server.autoPingTimeoutCall.active())
        server.autoPingTimeoutCall.cancel()
        server.autoPingTimeoutCall = None
        h.edgecontroller.startService()
        for _ in range(20):
            h.advance(0.1)
        self.assertFalse(server.reading_paused)
        self.assertEqual(len([x for x in h.edgecontroller.seen if x.source == "edged"]), 5)
        self.assertTrue(h.hub.is_connected("edge-1"))
        h.advance(31)
        self.assertFalse(h.hub.is_connected("edge-1"))
        self.assertEqual(h.edgecontroller.seen[-1].operation, names.OP_DISCONNECTED)


class InboundTests(SynchronousTestCase):
    """Routing of edge messages to controllers."""

    def test_route_to_edgecontroller_with_prefix(self):
        """A node status update goes to edgecontroller with node/<id>/ prepended."""
        h = HubHarness(self)
        edge, _, _, _ = h.connect("edge-1")
        edge.send(m.new_message("edged", "meta", "update", "default/nodestatus/edge-1", {}))
        h.flush()
        got = h.edgecontroller.seen[-1]
        self.assertEqual(got.resource, "node/edge-1/default/nodestatus/edge-1")
        self.assertEqual(got.operation, "update")

    def test_route_twin_to_devicecontroller(self):
        """Messages whose source is twin go to devicecontroller."""
        h = HubHarness(self)
        edge, _, _, _ = h.connect("edge-1")
        edge.send(m.new_message("twin", "resource", "get", "membership/detail", "{}"))
        h.flush()
        self.assertEqual(h.devicecontroller.seen[-1].resource, "node/edge-1/membership/detail")
        self.assertNotIn("membership", h.edgecontroller.seen[-1].resource)

    def test_sync_reply_via_bus(self):
        """A reply to a cloud module's send_sync through cloudhub fires its Deferred."""
        h = HubHarness(self)
        edge, _, _, _ = h.connect("edge-1")
        query = m.new_message(names.EDGECONTROLLER, "resource", "query",
                              "node/edge-1/default/pod/x", None)
        d = h.bus.send_sync(names.CLOUDHUB, query, 10)
        h.flush()
        request = edge.received[-1]
        self.assertEqual(request.resource, "default/pod/x")
        edge.send(m.new_response(request, {"kind": "Pod"}))
        h.flush()
        reply = self.successResultOf(d)
        self.assertEqual(reply.content, {"kind": "Pod"})
        self.assertEqual(reply.resource, "node/edge-1/default/pod/x")

    def test_zero_value_ignored(self):
        """The zero-value message of a stopping v1.15 edge is ignored, not an error."""
        h = HubHarness(self)
        edge, _, _, _ = h.connect("edge-1")
        before = len(h.edgecontroller.seen)
        edge.sendMessage(b'{"header":{"msg_id":"","timestamp":0},"route":{},"content":null}\n')
        h.flush()
        self.assertEqual(len(h.edgecontroller.seen), before)
        self.assertEqual(edge.received, [])


class BadInputTests(SynchronousTestCase):
    """Bad frames get error replies; repeated garbage closes with 1008."""

    def test_error_reply_with_msg_id(self):
        """A frame with a readable msg_id but an unknown operation gets an error reply."""
        h = HubHarness(self)
        edge, _, _, _ = h.connect("edge-1")
        edge.sendMessage(b'{"header":{"msg_id":"bad-1"},"route":{"operation":"explode",'
                         b'"resource":"default/pod/x"},"content":null}')
        h.flush()
        reply = edge.received[-1]
        self.assertEqual((reply.operation, reply.parent_msg_id), ("error", "bad-1"))
        self.assertIn("unknown operation", reply.content)
        edge.sendMessage(b'{"header":{"msg_id":"bad-2","timestamp":"x"}}')
        h.flush()
        self.assertEqual(edge.received[-1].parent_msg_id, "bad-2")

    def test_oversized(self):
        """A message over maxMessageSize is refused with an error naming the limit."""
        h = HubHarness(self, max_message_size=1000)
        edge, _, _, _ = h.connect("edge-1")
        edge.send(m.new_message("edged", "meta", "update", "default/pod/x", "y" * 1500)
                  .replace(msg_id="big-1"))
        h.flush()
        reply = edge.received[-1]
        self.assertEqual(reply.parent_msg_id, "big-1")
        self.assertIn("maxMessageSize", reply.content)

    def test_garbage_closes_1008_others_unaffected(self):
        """Ten garbage frames in a row close that connection with 1008; another node
        keeps working."""
        h = HubHarness(self)
        bad, bad_factory, _, _ = h.connect("edge-1")
        good, _, _, _ = h.connect("edge-2")
        for i in range(MAX_BAD_FRAMES - 1):
            bad.sendMessage(b"garbage %d" % i)
            h.flush()
        self.assertTrue(h.hub.is_connected("edge-1"))
        bad.sendMessage(b"\xff\xfe", isBinary=True)
        h.flush()
        self.assertEqual(bad_factory.close_codes[0][0], 1008)
        self.assertFalse(h.hub.is_connected("edge-1"))
        good.send(m.new_message("edged", "meta", "update", "default/podstatus/p", {}))
        h.flush()
        self.assertEqual(h.edgecontroller.seen[-1].resource, "node/edge-2/default/podstatus/p")

    def test_good_frame_resets_count(self):
        """A valid frame between bad ones resets the count."""
        h = HubHarness(self)
        edge, factory, _, _ = h.connect("edge-1")
        for i in range(MAX_BAD_FRAMES * 2):
            edge.sendMessage(b"garbage")
            if i % 5 == 4:
                edge.send(m.new_message("websocket", "resource", "keepalive", "node", "ping"))
            h.flush()
        self.assertTrue(h.hub.is_connected("edge-1"))


class BackpressureTests(SynchronousTestCase):
    """A busy controller pauses reading from the edge; nothing is refused or lost."""

    def test_burst_into_small_inbox(self):
        """50 messages into a 2-message inbox all arrive, in order, and reads resume."""
        h = HubHarness(self)
        h.edgecontroller.queue_size = 2
        h.edgecontroller.drain_batch = 1
        edge, _, _, server = h.connect("edge-1")
        sent = [m.new_message("edged", "meta", "update", "default/podstatus/p%d" % i, {})
                for i in range(50)]
        for msg in sent:
            edge.send(msg)
        h.flush()
        self.assertTrue(server.reading_paused, "reads are paused while the inbox is full")
        self.assertTrue(server.backlog)
        for _ in range(200):
            h.clock.advance(0.01)
            h.flush()
        got = [x.msg_id for x in h.edgecontroller.seen if x.source == "edged"]
        self.assertEqual(got, [x.msg_id for x in sent])
        self.assertEqual([x for x in edge.received if x.operation == "error"], [])
        self.assertFalse(server.reading_paused)
        self.assertEqual(len(server.backlog), 0)

    def test_connection_events_never_dropped(self):
        """connected/disconnected reach a controller even when its inbox is full."""
        h = HubHarness(self)
        h.edgecontroller.queue_size = 1
        h.edgecontroller.stopService()  # stop draining, then fill the inbox
        h.bus.send(names.EDGECONTROLLER, m.new_message("x", "resource", "update", "r", None))
        edge, _, _, _ = h.connect("edge-1")
        edge.dropConnection(abort=True)
        h.flush()
        h.edgecontroller.startService()
        h.flush()
        ops = [x.operation for x in h.edgecontroller.seen]
        self.assertEqual(ops, ["update", names.OP_CONNECTED, names.OP_DISCONNECTED])

    def test_backlog_bounded(self):
        """Beyond the per-connection backlog, messages are refused with an error reply."""
        h = HubHarness(self, inbound_backlog=3)
        h.edgecontroller.queue_size = 1
        edge, _, _, _ = h.connect("edge-1")
        h.edgecontroller.stopService()  # a controller that stopped draining
        for i in range(10):
            edge.send(m.new_message("edged", "meta", "update", "default/podstatus/p%d" % i, {}))
        h.flush()
        errors = [x for x in edge.received if x.operation == "error"]
        self.assertEqual(len(errors), 10 - 1 - 3)
        self.assertIn("busy", errors[0].content)


class OutboundTests(SynchronousTestCase):
    """Delivery to nodes: prefix stripping, ACK, resend, collapse, undelivered."""

    def setUp(self):
        self.undelivered = []
        self.acked = []

    def node_undelivered(self, node, message, reason):
        self.undelivered.append((node, message, reason))

    def node_acked(self, node, message, key):
        self.acked.append((node, message, key))

    def harness(self, **kw):
        h = HubHarness(self, **kw)
        h.hub.add_observer(self)
        return h

    def test_strip_prefix_and_ack(self):
        """An outbound pod update reaches the edge as default/pod/<name>; its ACK records
        the acknowledged resourceVersion."""
        h = self.harness()
        edge, _, _, _ = h.connect("edge-1")
        h.bus.send(names.CLOUDHUB, pod_update(rv="10"))
        h.flush()
        got = edge.received[-1]
        self.assertEqual(got.resource, "default/pod/nginx")
        self.assertEqual(got.resource_version, "10")
        edge.send(m.new_response(got, "OK", source=names.EDGECONTROLLER))
        h.flush()
        self.assertEqual(h.hub.acked_versions("edge-1"), {"pod/default/nginx": "10"})
        self.assertEqual(self.acked[0][2], "pod/default/nginx")
        self.assertNotIn(names.OP_RESPONSE, [x.operation for x in h.edgecontroller.seen])

    def test_resend_until_ack_then_undelivered(self):
        """Without ACK a message is resent every 5 s, 5 sends in all, then reported."""
        h = self.harness()
        edge, _, _, _ = h.connect("edge-1")
        h.bus.send(names.CLOUDHUB, pod_update())
        h.flush()
        self.assertEqual(len(edge.received), 1)
        for n in range(2, 6):
            edge.send(m.new_message("websocket", "resource", "keepalive", "node", "ping"))
            h.advance(5)
            self.assertEqual(len(edge.received), n)
        self.assertEqual({x.msg_id for x in edge.received}, {edge.received[0].msg_id})
        h.advance(5)
        self.assertEqual(len(edge.received), 5)
        self.assertEqual(len(self.undelivered), 1)
        self.assertIn("no ACK after 5 sends", self.undelivered[0][2])

    def test_ack_stops_resend(self):
        """An ACK after the first resend stops further sends."""
        h = self.harness()
        edge, _, _, _ = h.connect("edge-1")
        h.bus.send(names.CLOUDHUB, pod_update())
        h.flush()
        h.advance(5)
        self.assertEqual(len(edge.received), 2)
        edge.send(m.new_response(edge.received[0], "OK"))
        h.flush()
        h.advance(20)
        self.assertEqual(len(edge.received), 2)
        self.assertEqual(self.undelivered, [])

    def test_no_ack_types_fire_and_forget(self):
        """Twin messages and pod lists need no ACK and are not resent."""
        h = self.harness()
        edge, _, _, _ = h.connect("edge-1")
        h.bus.send(names.CLOUDHUB, m.new_message(names.DEVICECONTROLLER, "twin", "update",
                                                 "node/edge-1/membership", {}))
        h.advance(6)
        self.assertEqual(len(edge.received), 1)
        self.assertEqual(edge.received[0].resource, "membership")

    def test_collapse_newer_replaces_queued(self):
        """While the window is full, a newer event for a queued object replaces it and an
        older one is dropped."""
        h = self.harness(window=1)
        edge, _, _, _ = h.connect("edge-1")
        h.bus.send(names.CLOUDHUB, pod_update(name="a", rv="1"))
        h.bus.send(names.CLOUDHUB, pod_update(name="b", rv="5"))
        h.bus.send(names.CLOUDHUB, pod_update(name="b", rv="7"))
        h.bus.send(names.CLOUDHUB, pod_update(name="b", rv="6"))
        h.flush()
        self.assertEqual([x.resource for x in edge.received], ["default/pod/a"])
        edge.send(m.new_response(edge.received[0], "OK"))
        h.flush()
        self.assertEqual([(x.resource, x.resource_version) for x in edge.received[1:]],
                         [("default/pod/b", "7")])

    def test_bounded_queue(self):
        """A full node queue reports new messages undelivered instead of growing."""
        h = self.harness(window=1, node_queue_size=3)
        edge, _, _, _ = h.connect("edge-1")
        for i in range(6):
            h.bus.send(names.CLOUDHUB, pod_update(name="p%d" % i))
        h.flush()
        session = h.hub.session("edge-1")
        self.assertEqual(session.queued, 3)
        self.assertEqual(len(self.undelivered), 2)
        self.assertIn("queue full", self.undelivered[0][2])

    def test_not_connected(self):
        """A message for a node that is not connected is reported undelivered."""
        h = self.harness()
        h.bus.send(names.CLOUDHUB, pod_update(node="edge-7"))
        h.flush()
        self.assertEqual(self.undelivered[0][0], "edge-7")
        self.assertIn("not connected", self.undelivered[0][2])

    def test_disconnect_reports_pending_and_keeps_acked(self):
        """Disconnect reports messages awaiting ACK; acknowledged versions survive for the
        resync after reconnect."""
        h = self.harness()
        edge, _, _, _ = h.connect("edge-1")
        h.bus.send(names.CLOUDHUB, pod_update(name="a", rv="3"))
        h.flush()
        edge.send(m.new_response(edge.received[0], "OK"))
        h.bus.send(names.CLOUDHUB, pod_update(name="b", rv="4"))
        h.flush()
        edge.dropConnection(abort=True)
        h.flush()
        self.assertFalse(h.hub.is_connected("edge-1"))
        self.assertEqual([x[1].resource for x in self.undelivered], ["default/pod/b"])
        self.assertEqual(h.hub.acked_versions("edge-1"), {"pod/default/a": "3"})
        edge2, _, _, _ = h.connect("edge-1")
        self.assertEqual(h.hub.acked_versions("edge-1"), {"pod/default/a": "3"})

    def test_delete_ack_forgets_version(self):
        """An acknowledged delete removes the object's acknowledged version."""
        h = self.harness()
        edge, _, _, _ = h.connect("edge-1")
        h.bus.send(names.CLOUDHUB, pod_update(rv="3"))
        h.flush()
        edge.send(m.new_response(edge.received[-1], "OK"))
        h.bus.send(names.CLOUDHUB, pod_update(rv="4", op="delete"))
        h.flush()
        edge.send(m.new_response(edge.received[-1], "OK"))
        h.flush()
        self.assertEqual(h.hub.acked_versions("edge-1"), {})

    def test_node_stop(self):
        """node/<id> with operation deleted closes that node's connection."""
        h = self.harness()
        edge, factory, _, _ = h.connect("edge-1")
        h.bus.send(names.CLOUDHUB, m.new_message(names.EDGECONTROLLER, "resource", "deleted",
                                                 "node/edge-1", None))
        h.flush()
        self.assertEqual(factory.close_codes[0][0], 1000)
        self.assertFalse(h.hub.is_connected("edge-1"))

    def test_stop_service_closes_everything(self):
        """stopService stops listening, closes connections and leaves no timers."""
        h = self.harness()
        edge, factory, _, _ = h.connect("edge-1")
        h.bus.send(names.CLOUDHUB, pod_update())
        h.flush()
        d = h.hub.stopService()
        h.flush()
        self.successResultOf(d)
        self.assertTrue(h.port.stopped)
        self.assertEqual(factory.close_codes[0][0], 1001)
        self.assertEqual(h.clock.getDelayedCalls(), [])


class AckRuleTests(SynchronousTestCase):
    """Which messages need an ACK, and their object keys (reference 2.7)."""

    def test_rules(self):
        """Object insert/update/delete in the resource group need an ACK; the rest not."""
        def msg(group, op, res):
            return m.new_message("edgecontroller", group, op, res, None)
        self.assertTrue(needs_ack(msg("resource", "update", "default/pod/x")))
        self.assertTrue(needs_ack(msg("resource", "delete", "default/configmap/c")))
        self.assertFalse(needs_ack(msg("resource", "response", "default/pod/x")))
        self.assertFalse(needs_ack(msg("twin", "update", "device/d/twin/cloud_updated")))
        self.assertFalse(needs_ack(msg("resource", "update", "default/podlist/svc")))
        self.assertFalse(needs_ack(msg("resource", "update", "default/pod")))
        self.assertEqual(object_key(msg("resource", "update", "ns/secret/s")), "secret/ns/s")
        self.assertIsNone(object_key(msg("user", "update", "ns/secret/s")))


class ScaleTests(SynchronousTestCase):
    """What CloudHub does for thousands of nodes: one ACK timer call, content serialised
    once per fan-out, the long-lived freezer told of every connection, autobahn's
    byte counters kept by the lean read/write path."""

    def test_freezer_told_of_opens_and_closes(self):
        """Opens and closes (a replaced connection too) reach the freezer with the
        number of connected nodes; it freezes once the burst settled."""
        from kubeedge_tw.cloud.cloudhub.longlived import LongLivedFreezer
        from tests.cloud.test_cloudhub_longlived import FakeCollector
        h = HubHarness(self)
        collector = FakeCollector()
        h.hub.long_lived = freezer = LongLivedFreezer(h.clock, collector=collector,
                                                      settle=10)
        h.connect("edge-1")
        _, first, _, _ = h.connect("edge-2")
        self.assertEqual(freezer.connected, 2)
        h.advance(10)
        self.assertEqual(collector.calls, ["collect(1)", "freeze"])
        self.assertEqual(freezer.frozen_connections, 2)
        h.connect("edge-2")  # replaces the first edge-2 connection
        self.assertEqual(first.close_codes[0][0], 1000)
        self.assertEqual((freezer.connected, freezer.closed_while_frozen), (2, 1))
        d = h.hub.stopService()
        h.flush()
        self.successResultOf(d)
        self.assertEqual(freezer.closed_while_frozen, 3)
        self.assertEqual(freezer.connected, 0)
        self.assertEqual(h.clock.getDelayedCalls(), [])

    def test_fanout_shares_content(self):
        """The same content object to three nodes: each edge gets its own id and
        resource with the content, which was serialised once."""
        h = HubHarness(self)
        edges = [h.connect("edge-{}".format(n))[0] for n in range(3)]
        content = {"metadata": {"name": "cm", "namespace": "default",
                                "resourceVersion": "5"}, "data": {"k": "v"}}
        sent = []
        for n in range(3):
            message = m.new_message(names.EDGECONTROLLER, names.WIRE_GROUP_RESOURCE,
                                    names.OP_UPDATE,
                                    "node/edge-{}/default/configmap/cm".format(n), content,
                                    resource_version="5")
            sent.append(message.msg_id)
            h.bus.send(names.CLOUDHUB, message)
        h.flush()
        got = [edge.received[-1] for edge in edges]
        self.assertEqual([g.msg_id for g in got], sent)
        self.assertEqual({g.resource for g in got}, {"default/configmap/cm"})
        self.assertEqual([g.content for g in got], [content] * 3)
        self.assertEqual(h.hub.encoder.stats["content_reused"], 2)

    def test_one_ack_timer_call_for_many_nodes(self):
        """Messages awaiting ACK on several nodes wait on one delayed call."""
        h = HubHarness(self)
        edges = [h.connect("edge-{}".format(n))[0] for n in range(3)]
        for n in range(3):
            h.bus.send(names.CLOUDHUB, pod_update(node="edge-{}".format(n)))
        h.flush()
        expiring = [c for c in h.clock.getDelayedCalls() if c.func == h.hub.ack_timer._expire]
        self.assertEqual(len(expiring), 1)
        for edge in edges:
            edge.send(m.new_response(edge.received[-1], "OK"))
        h.flush()
        h.advance(5)
        self.assertEqual([len(edge.received) for edge in edges], [1, 1, 1])
        self.assertEqual([c for c in h.clock.getDelayedCalls()
                          if c.func == h.hub.ack_timer._expire], [])

    def test_byte_counters(self):
        """The hub's lean read and write path keeps autobahn's wire-level counters."""
        h = HubHarness(self)
        edge, _, _, server = h.connect("edge-1")
        out0 = server.trafficStats.outgoingOctetsWireLevel
        in0 = server.trafficStats.incomingOctetsWireLevel
        h.bus.send(names.CLOUDHUB, pod_update())
        h.flush()
        frame = m.encode(edge.received[-1])
        self.assertEqual(server.trafficStats.outgoingOctetsWireLevel - out0,
                         len(frame) + 4)  # 2-byte header + 16-bit length, unmasked
        edge.send(m.new_message("websocket", "resource", "keepalive", "node", "ping"))
        h.flush()
        self.assertGreater(server.trafficStats.incomingOctetsWireLevel, in0)
