"""Unit tests for EdgeHub against a fake cloud over iosim, on a MemoryReactorClock: the
handshake, keepalive, outbound and inbound routing, the offline queue, the connection
broadcast, reconnects with backoff, shutdown, TLS files and the factory."""

import json
import os
import socket

from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogLevel
from twisted.trial.unittest import SynchronousTestCase

from kubeedge_tw.common import message as m
from kubeedge_tw.common import names
from kubeedge_tw.common.config import EDGE, default_config
from kubeedge_tw.common.core import Core
from kubeedge_tw.common.tls import write_test_pki
from kubeedge_tw.edge import tap as edge_tap
from kubeedge_tw.edge.edgehub import (
    EdgeHub, TLSEndpointFactory, create_edgehub, edgehub_url, split_host_port)
from tests.edge.fakes import Harness, Recorder, capture_logs, message, named

HEARTBEAT = 15
ZERO_VALUE_FRAME = b'{"header":{"msg_id":"","timestamp":0},"route":{},"content":null}\n'


def status(resource="default/podstatus/nginx", content=None, operation="update"):
    """An edge-to-cloud status message, as metaManager would send it to websocket."""
    return message(resource, operation, group="meta", source="metaManager",
                   content={"status": resource} if content is None else content)


class HandshakeTests(SynchronousTestCase):
    """The opening handshake looks like a KubeEdge v1.15 edge's."""

    def test_url_path_and_headers(self):
        """The upgrade goes to /<projectID>/<node>/events with KubeEdge's three headers."""
        h = Harness()
        server = h.connect()
        request = server.request
        self.assertEqual(request.path, "/{}/edge-1/events".format(names.DEFAULT_PROJECT_ID))
        self.assertEqual(request.headers["node_id"], "edge-1")
        self.assertEqual(request.headers["project_id"], names.DEFAULT_PROJECT_ID)
        self.assertEqual(request.headers["connectionuse"], "msg")
        self.assertEqual(request.headers["host"], "127.0.0.1:10000")
        self.assertEqual(h.attempts, [("127.0.0.1", 10000)])
        self.assertEqual(h.hub.url, "wss://127.0.0.1:10000/{}/edge-1/events".format(
            names.DEFAULT_PROJECT_ID))

    def test_no_frame_debug_lines(self):
        """Opening the link and passing a message logs none of autobahn's per-frame debug
        lines (they would fill twistd's log, which has no level filter)."""
        events = capture_logs(self)
        h = Harness()
        server = h.connect()
        msg = message()
        server.send(msg)
        h.flush()
        self.assertEqual(h.modules[names.META_GROUP].payload_seen(), [msg])
        protocol_debug = [e for e in events if e.get("log_level") == LogLevel.debug and
                          "Protocol" in (e.get("log_namespace") or "")]
        self.assertEqual(protocol_debug, [])

    def test_ipv6_host(self):
        """An IPv6 server is bracketed in the URL and the Host header."""
        h = Harness(server_host="::1", project_id="proj", node_name="edge-6")
        server = h.connect()
        self.assertEqual(h.hub.url, "wss://[::1]:10000/proj/edge-6/events")
        self.assertEqual(server.request.headers["host"], "[::1]:10000")
        self.assertEqual(server.request.path, "/proj/edge-6/events")

    def test_connected_and_wait_connected(self):
        """connected and wait_connected follow the websocket's state."""
        h = Harness()
        h.start()
        self.assertFalse(h.hub.connected)
        waiting = h.hub.wait_connected()
        self.assertNoResult(waiting)
        self.assertIsNone(self.successResultOf(h.hub.wait_disconnected()))
        h.accept()
        self.assertTrue(h.hub.connected)
        self.assertIsNone(self.successResultOf(waiting))
        self.assertIsNone(self.successResultOf(h.hub.wait_connected()))
        gone = h.hub.wait_disconnected()
        self.assertNoResult(gone)
        h.drop()
        self.assertFalse(h.hub.connected)
        self.assertIsNone(self.successResultOf(gone))

    def test_opening_handshake_timeout(self):
        """A cloud that never answers the upgrade is dropped after handshakeTimeout."""
        h = Harness(handshake_timeout=7)
        h.start()
        pump = h.completer.succeedOnce(greet=False)
        h.reactor.advance(6.9)
        self.assertFalse(pump.clientIO.disconnecting)
        h.reactor.advance(0.1)
        self.assertTrue(pump.clientIO.disconnecting)
        self.assertFalse(h.hub.connected)


class KeepaliveTests(SynchronousTestCase):
    """The keepalive message goes out at open and every heartbeat while connected."""

    def test_keepalive_timing_and_format(self):
        """KubeEdge's keepalive goes out as text at open, then once per heartbeat."""
        h = Harness()
        server = h.connect()
        self.assertEqual(len(h.cloud.keepalives()), 1)
        h.advance(HEARTBEAT - 0.1)
        self.assertEqual(len(h.cloud.keepalives()), 1)
        h.advance(0.1)
        self.assertEqual(len(h.cloud.keepalives()), 2)
        h.advance(HEARTBEAT)
        self.assertEqual(len(h.cloud.keepalives()), 3)
        payload, is_binary = server.frames[0]
        self.assertFalse(is_binary)
        data = json.loads(payload)
        self.assertEqual(data["route"], {"source": "websocket", "group": "resource",
                                         "operation": "keepalive", "resource": "node"})
        self.assertEqual(data["content"], "ping")
        self.assertTrue(data["header"]["msg_id"])

    def test_keepalive_stops_on_close(self):
        """After a drop the only timer left is the reconnect; no keepalive is sent."""
        h = Harness()
        h.connect()
        h.drop()
        self.assertEqual([c.getTime() for c in h.reactor.getDelayedCalls()], [1.5])
        self.assertEqual(len(h.cloud.keepalives()), 1)

    def test_dead_cloud_detected_within_two_heartbeats(self):
        """A cloud that stops answering (no pong) is dropped at 2 x heartbeat."""
        h = Harness()
        h.connect()
        # From now on nothing is delivered: a half-open connection.
        h.reactor.advance(HEARTBEAT)
        h.reactor.advance(HEARTBEAT - 0.1)
        self.assertFalse(h.pump.clientIO.disconnecting)
        h.reactor.advance(0.1)
        self.assertTrue(h.pump.clientIO.disconnecting)
        h.flush()
        self.assertFalse(h.hub.connected)
        self.assertEqual(h.pending_attempts(), 0)
        h.reactor.advance(1.5)
        self.assertEqual(h.pending_attempts(), 1)

    def test_answered_pings_keep_the_link(self):
        """A cloud that answers pings stays connected over many heartbeats."""
        h = Harness()
        h.connect()
        for _ in range(5):
            h.advance(HEARTBEAT)
        self.assertTrue(h.hub.connected)
        self.assertEqual(len(h.cloud.keepalives()), 6)


class OutboundTests(SynchronousTestCase):
    """Messages other modules send to websocket reach the cloud."""

    def test_encoded_as_one_text_frame(self):
        """A message sent to websocket arrives as its encode() bytes in one text frame."""
        h = Harness()
        server = h.connect()
        out = status()
        h.bus.send(names.EDGEHUB, out)
        h.flush()
        self.assertIn((m.encode(out), False), server.frames)
        self.assertEqual(h.cloud.received_except_keepalives(), [out])

    def test_sync_reply_delivered(self):
        """send_sync to websocket fires with the cloud's reply, which no module sees."""
        h = Harness()
        server = h.connect()
        query = message("default/configmap/cfg", "query", group="meta", source="metaManager")
        d = h.bus.send_sync(names.EDGEHUB, query, 10)
        h.flush()
        [sent] = h.cloud.received_except_keepalives()
        self.assertTrue(sent.sync)
        self.assertEqual(sent.msg_id, query.msg_id)
        reply = m.new_response(sent, {"kind": "ConfigMap"}, source="edgecontroller")
        server.send(reply)
        h.flush()
        self.assertEqual(self.successResultOf(d), reply)
        self.assertEqual(h.modules[names.META_GROUP].payload_seen(), [])

    def test_unencodable_message(self):
        """A message whose content is not JSON is logged; a sync caller gets an error."""
        events = capture_logs(self)
        h = Harness()
        h.connect()
        bad = status(content={"x": object()})
        d = h.bus.send_sync(names.EDGEHUB, bad, 10)
        h.flush()
        reply = self.successResultOf(d)
        self.assertEqual(reply.operation, names.OP_ERROR)
        self.assertEqual(reply.parent_msg_id, bad.msg_id)
        self.assertIn("not JSON-serialisable", reply.content)
        self.assertEqual(len(named(events, "edgehub_bad_outbound")), 1)
        self.assertTrue(h.hub.connected)


class InboundTests(SynchronousTestCase):
    """Cloud messages are routed by route.group; nothing the cloud sends breaks the link."""

    def test_routes_by_group(self):
        """resource and func go to meta, twin to twin, user to bus."""
        h = Harness()
        server = h.connect()
        sent = {}
        for wire_group, edge_group in [("resource", names.META_GROUP),
                                       ("func", names.META_GROUP),
                                       ("twin", names.TWIN_GROUP),
                                       ("user", names.BUS_GROUP)]:
            msg = message("default/pod/" + wire_group, group=wire_group)
            server.send(msg)
            sent.setdefault(edge_group, []).append(msg)
        h.flush()
        for edge_group, expected in sent.items():
            self.assertEqual(h.modules[edge_group].payload_seen(), expected)

    def test_unknown_group_dropped(self):
        """A message for an unknown group is logged and dropped; the link stays."""
        events = capture_logs(self)
        h = Harness()
        server = h.connect()
        server.send(message(group="app"))
        h.flush()
        self.assertEqual(len(named(events, "edgehub_unroutable")), 1)
        for recorder in h.modules.values():
            self.assertEqual(recorder.payload_seen(), [])
        self.assertTrue(h.hub.connected)

    def test_group_without_module(self):
        """A message for a group no module has joined yet is logged and dropped."""
        events = capture_logs(self)
        h = Harness(modules=[(names.METAMANAGER, names.META_GROUP)])
        server = h.connect()
        server.send(message("membership", group="twin", source="devicecontroller"))
        h.flush()
        self.assertEqual(len(named(events, "edgehub_no_module")), 1)
        self.assertTrue(h.hub.connected)

    def test_full_inbox(self):
        """A full inbox is logged as edgehub_queue_full; the next message still flows."""
        events = capture_logs(self)
        h = Harness(modules=[])
        meta = Recorder(h.reactor, names.METAMANAGER, names.META_GROUP, queue_size=1)
        h.bus.register(meta)
        server = h.connect()  # meta is not started: the broadcast fills its inbox
        first, second = message("default/pod/a"), message("default/pod/b")
        server.send(first)
        server.send(second)
        h.flush()
        self.assertEqual(len(named(events, "edgehub_queue_full")), 2)
        meta.startService()
        h.flush()
        self.assertEqual((meta.broadcasts(), meta.payload_seen()), (["cloud_connected"], []))
        server.send(second)
        h.flush()
        self.assertEqual(meta.payload_seen(), [second])
        self.assertTrue(h.hub.connected)

    def test_bad_frame_logged_link_kept(self):
        """A frame that is not a message is logged with its reason; the link stays up."""
        events = capture_logs(self)
        h = Harness()
        server = h.connect()
        server.send_raw(b"not json at all")
        server.send_raw(b'{"header": 5}')
        good = message()
        server.send(good)
        h.flush()
        bad = named(events, "edgehub_bad_frame")
        self.assertEqual(len(bad), 2)
        self.assertIn("not JSON", bad[0]["reason"])
        self.assertIn("header", bad[1]["reason"])
        self.assertEqual(h.modules[names.META_GROUP].payload_seen(), [good])
        self.assertTrue(h.hub.connected)
        self.assertIsNone(server.closed)
        self.assertEqual(h.hub.counters["bad_frames"], 2)

    def test_zero_value_message_ignored(self):
        """The zero-value message of a stopping v1.15 peer is ignored silently."""
        events = capture_logs(self)
        h = Harness()
        server = h.connect()
        server.send_raw(ZERO_VALUE_FRAME)
        server.send_raw(ZERO_VALUE_FRAME)
        h.flush()
        for recorder in h.modules.values():
            self.assertEqual(recorder.payload_seen(), [])
        self.assertEqual([e for e in events if e["log_level"] >= LogLevel.warn], [])
        self.assertTrue(h.hub.connected)

    def test_binary_frame(self):
        """A message in a binary frame (v1.0 style) is routed like a text one."""
        h = Harness()
        server = h.connect()
        msg = message()
        server.send_raw(m.encode(msg, legacy=True), is_binary=True)
        h.flush()
        self.assertEqual(h.modules[names.META_GROUP].payload_seen(), [msg])

    def test_fragmented_message_reassembled(self):
        """A message cloudcore fragments into 4096-byte frames arrives whole."""
        h = Harness()
        server = h.connect()
        big = message(content={"data": "x" * 20000})
        server.send(big, fragment_size=4096)
        h.flush()
        self.assertEqual(h.modules[names.META_GROUP].payload_seen(), [big])

    def test_oversized_message_closes(self):
        """A message over the size limit drops the connection; the hub reconnects."""
        events = capture_logs(self)
        h = Harness(max_message_size=1024)
        server = h.connect()
        server.send(message(content={"data": "x" * 2000}))
        h.flush()
        self.assertFalse(h.hub.connected)
        [closed] = named(events, "edgehub_disconnected")
        self.assertIn("exceeds payload limit of 1024", closed["reason"])
        h.reactor.advance(1.5)
        self.assertEqual(h.pending_attempts(), 1)


class OfflineTests(SynchronousTestCase):
    """While disconnected, status is kept (newest wins) and sent after reconnecting."""

    def test_kept_dropped_and_refused_before_first_connect(self):
        """Offline: status kept newest-wins, others dropped, sync refused; kept sent on connect."""
        events = capture_logs(self)
        h = Harness()
        h.start()
        pod1 = status("default/podstatus/nginx", content=1)
        node = status("default/nodestatus/edge-1", content="n")
        pod2 = status("default/podstatus/nginx", content=2)
        keepalive = message("node", "keepalive", group="resource", source="websocket",
                            content="ping")
        query = message("default/configmap/cfg", "query", group="meta",
                        source="metaManager")
        sync_query = message("default/secret/s", "query", group="meta",
                             source="metaManager")
        for msg in (pod1, node, pod2, keepalive, query):
            h.bus.send(names.EDGEHUB, msg)
        d = h.bus.send_sync(names.EDGEHUB, sync_query, 10)
        h.flush()
        self.assertEqual(h.hub.offline.messages(), [node, pod2])
        reply = self.successResultOf(d)
        self.assertEqual((reply.operation, reply.parent_msg_id, reply.content),
                         (names.OP_ERROR, sync_query.msg_id, "cloud is disconnected"))
        self.assertEqual([e["what"] for e in named(events, "edgehub_dropped_offline")],
                         [query.describe()])
        h.accept()
        self.assertEqual([msg.operation for msg in h.cloud.received][:1], ["keepalive"])
        self.assertEqual(h.cloud.received_except_keepalives(), [node, pod2])
        self.assertEqual(len(h.hub.offline), 0)
        self.assertEqual(len(named(events, "edgehub_offline_flushed")), 1)

    def test_bounded(self):
        """Past the bound the oldest kept message is evicted with a warning."""
        events = capture_logs(self)
        h = Harness(offline_queue_size=2)
        h.start()
        a, b, c = (status("default/podstatus/a"), status("default/podstatus/b"),
                   status("default/podstatus/c"))
        for msg in (a, b, c):
            h.bus.send(names.EDGEHUB, msg)
        h.flush()
        self.assertEqual(h.hub.offline.messages(), [b, c])
        [evicted] = named(events, "edgehub_offline_evicted")
        self.assertEqual(evicted["what"], a.describe())
        self.assertEqual(h.hub.counters["evicted_offline"], 1)

    def test_flushed_after_reconnect_in_order(self):
        """Status and twin reports kept during a break go out in order after reconnecting."""
        h = Harness()
        h.connect()
        h.drop()
        kept = [status("default/nodestatus/edge-1"),
                message("device/d1/twin/edge_updated", group="twin", source="twin"),
                message("membership/detail", "get", group="resource", source="twin",
                        content="{}"),
                status("default/podpatch/nginx", operation="patch")]
        for msg in kept:
            h.bus.send(names.EDGEHUB, msg)
        h.flush()
        self.assertEqual(h.hub.offline.messages(), kept)
        h.reactor.advance(1.5)
        second = h.accept()
        self.assertEqual(h.cloud.received_except_keepalives(), kept)
        self.assertEqual([m.decode(p).operation for p, _ in second.frames][0], "keepalive")


class BroadcastTests(SynchronousTestCase):
    """cloud_connected / cloud_disconnected go to every other group (reference 2.8)."""

    def test_connected_and_disconnected(self):
        """Each non-hub group gets one publish on node/connection per change."""
        h = Harness()
        h.connect()
        for group, recorder in h.modules.items():
            [msg] = recorder.seen
            self.assertEqual((msg.source, msg.group, msg.operation, msg.resource, msg.content),
                             ("edgehub", group, "publish", "node/connection",
                              "cloud_connected"))
        self.assertEqual(h.cloud.received_except_keepalives(), [])
        h.drop()
        for recorder in h.modules.values():
            self.assertEqual(recorder.broadcasts(), ["cloud_connected", "cloud_disconnected"])

    def test_failed_handshake_is_not_a_disconnect(self):
        """A connection that never opened broadcasts nothing."""
        h = Harness()
        h.cloud.refuse = (403, "not this node")
        h.start()
        h.accept()
        for recorder in h.modules.values():
            self.assertEqual(recorder.seen, [])


class ReconnectTests(SynchronousTestCase):
    """ClientService reconnects with backoff on the injected clock."""

    def test_reconnect_with_backoff(self):
        """After a drop: retry at 1.5 s, then 2.25 s after a refused attempt, then connected."""
        events = capture_logs(self)
        h = Harness()
        h.connect()
        h.drop()
        h.reactor.advance(1.49)
        self.assertEqual(h.pending_attempts(), 0)
        h.reactor.advance(0.01)
        self.assertEqual(h.pending_attempts(), 1)
        h.refuse_tcp()
        self.assertEqual(len(named(events, "edgehub_connect_failed")), 1)
        h.reactor.advance(2.24)
        self.assertEqual(h.pending_attempts(), 0)
        h.reactor.advance(0.01)
        self.assertEqual(h.pending_attempts(), 1)
        h.accept()
        self.assertTrue(h.hub.connected)
        self.assertEqual(h.hub.counters["connects"], 2)
        self.assertEqual(len(h.cloud.requests), 2)

    def test_refused_upgrade_backs_off(self):
        """An upgrade the cloud refuses counts as a failed attempt: the delay grows."""
        events = capture_logs(self)
        h = Harness()
        h.cloud.refuse = (403, "not this node")
        h.start()
        h.accept()
        self.assertFalse(h.hub.connected)
        self.assertEqual([c.getTime() for c in h.reactor.getDelayedCalls()], [2.25])
        h.reactor.advance(2.25)
        h.accept()
        self.assertEqual([c.getTime() - h.reactor.seconds()
                          for c in h.reactor.getDelayedCalls()], [1.5 ** 3])
        self.assertEqual(len(named(events, "edgehub_handshake_failed")), 2)
        h.cloud.refuse = None
        h.reactor.advance(1.5 ** 3)
        h.accept()
        self.assertTrue(h.hub.connected)
        h.drop()
        self.assertEqual([c.getTime() - h.reactor.seconds()
                          for c in h.reactor.getDelayedCalls()], [1.5])


class LifecycleTests(SynchronousTestCase):
    """stopService closes cleanly and leaves nothing on the clock."""

    def test_stop_while_connected(self):
        """Stop closes with 1000, broadcasts cloud_disconnected and leaves no delayed call."""
        h = Harness()
        server = h.connect()
        d = h.stop()
        self.assertIsNone(self.successResultOf(d))
        self.assertEqual(server.closed[1], 1000)
        self.assertFalse(h.hub.connected)
        self.assertEqual(h.modules[names.META_GROUP].broadcasts(),
                         ["cloud_connected", "cloud_disconnected"])
        self.assertEqual(h.reactor.getDelayedCalls(), [])
        self.assertEqual(h.pending_attempts(), 0)

    def test_stop_while_waiting_to_retry(self):
        """Stopping during the backoff wait cancels the retry."""
        h = Harness()
        h.connect()
        h.drop()
        self.assertIsNone(self.successResultOf(h.stop()))
        self.assertEqual(h.reactor.getDelayedCalls(), [])
        h.reactor.advance(100)
        self.assertEqual(h.pending_attempts(), 0)

    def test_stop_while_connecting(self):
        """Stopping while a TCP connection is pending cancels it."""
        h = Harness()
        h.start()
        self.assertEqual(h.pending_attempts(), 1)
        self.assertIsNone(self.successResultOf(h.stop()))
        self.assertEqual(h.reactor.getDelayedCalls(), [])

    def test_stop_during_handshake(self):
        """Stopping between TCP connect and the upgrade answer ends the connection quietly."""
        h = Harness()
        h.start()
        pump = h.completer.succeedOnce(greet=False)
        h.pump = pump
        d = h.stop()
        self.assertIsNone(self.successResultOf(d))
        self.assertFalse(h.hub.connected)
        self.assertEqual(h.modules[names.META_GROUP].seen, [])
        self.assertEqual(h.reactor.getDelayedCalls(), [])

    def test_close_handshake_timeout(self):
        """A cloud that keeps TCP open after our close frame is dropped at close_timeout."""
        h = Harness(close_timeout=5)
        h.connect()
        h.hub._protocol.sendClose(code=1000)
        # Nothing is delivered from here on: the cloud is silent.
        h.reactor.advance(4.9)
        self.assertFalse(h.pump.clientIO.disconnecting)
        h.reactor.advance(0.1)
        self.assertTrue(h.pump.clientIO.disconnecting)


class TLSFilesTests(SynchronousTestCase):
    """Certificates are read at each attempt; missing or bad files are retried."""

    def test_missing_then_bad_then_good_files(self):
        """Missing/invalid TLS files are logged per attempt and retried until valid ones exist."""
        events = capture_logs(self)
        h = Harness()
        base = os.path.abspath(self.mktemp())
        paths = (os.path.join(base, "ca", "rootCA.crt"),
                 os.path.join(base, "certs", "edge-1.crt"),
                 os.path.join(base, "certs", "edge-1.key"))
        h.hub.endpoint_factory = TLSEndpointFactory(h.reactor, *paths, timeout=30)
        h.start()
        [first] = named(events, "edgehub_tls_files")
        self.assertIn(paths[0], first["reason"])
        self.assertEqual(h.pending_attempts(), 0)
        self.assertEqual([c.getTime() for c in h.reactor.getDelayedCalls()], [1.5])
        write_test_pki(base, ["edge-1"])
        with open(paths[0], "w") as f:
            f.write("not a certificate")
        h.reactor.advance(1.5)
        second = named(events, "edgehub_tls_files")[1]
        self.assertIn("not a PEM certificate", second["reason"])
        self.assertEqual(h.pending_attempts(), 0)
        write_test_pki(base, ["edge-1"])
        h.reactor.advance(1.5 ** 2)
        self.assertEqual(len(named(events, "edgehub_tls_files")), 2)
        self.assertEqual(h.pending_attempts(), 1)
        self.assertEqual(h.reactor.tcpClients[0][:2], ("127.0.0.1", 10000))
        self.assertIsNone(self.successResultOf(h.stop()))
        self.assertEqual(h.reactor.getDelayedCalls(), [])


class PooledMemoryReactor(MemoryReactorClock):
    """A MemoryReactorClock with the reactor's thread API, threadless: ``callFromThread``
    calls at once and the thread pool runs work on the spot (see tests.common.test_lazy)."""

    def __init__(self):
        from tests.common.test_lazy import RecordingPool
        super().__init__()
        self.pool = RecordingPool()

    def callFromThread(self, f, *args, **kwargs):
        """Call ``f`` now."""
        f(*args, **kwargs)

    def getThreadPool(self):
        """The pool that runs work at once."""
        return self.pool


class FactoryTests(SynchronousTestCase):
    """create_edgehub reads modules.edgeHub and the node name from the config."""

    def config(self, **overrides):
        """A default edge config in a fresh state dir, with ``overrides``."""
        self.state = os.path.abspath(self.mktemp())
        values = {"stateDir": self.state}
        values.update(overrides)
        return default_config(EDGE, overrides=values)

    def test_reads_config(self):
        """Every edgeHub setting comes from the config; relative paths join the state dir."""
        config = self.config(**{
            "modules.edged.hostnameOverride": "edge-7",
            "modules.edgeHub.heartbeat": 5,
            "modules.edgeHub.projectID": "proj",
            "modules.edgeHub.websocket.server": "[::1]:10443",
            "modules.edgeHub.websocket.handshakeTimeout": 7,
            "modules.edgeHub.tlsCaFile": "/etc/ca.crt"})
        clock = MemoryReactorClock()
        hub = create_edgehub(Core("kubeedge-edge", clock, config), config)
        self.assertIsInstance(hub, EdgeHub)
        self.assertEqual((hub.name, hub.group), ("websocket", "hub"))
        self.assertIs(hub.clock, clock)
        self.assertEqual(hub.url, "wss://[::1]:10443/proj/edge-7/events")
        self.assertEqual(hub.headers, {"node_id": "edge-7", "project_id": "proj",
                                       "ConnectionUse": "msg"})
        self.assertEqual((hub.heartbeat, hub.handshake_timeout), (5, 7))
        factory = hub.endpoint_factory
        self.assertEqual((factory.ca_file, factory.cert_file, factory.key_file),
                         ("/etc/ca.crt", os.path.join(self.state, "certs", "edge.crt"),
                          os.path.join(self.state, "certs", "edge.key")))
        self.assertEqual(factory.timeout, 7)
        self.assertIs(factory.reactor, clock)

    def test_node_name_defaults_to_hostname(self):
        """An empty hostnameOverride means this host's name, lowercased."""
        config = self.config()
        hub = create_edgehub(Core("kubeedge-edge", MemoryReactorClock(), config), config)
        self.assertEqual(hub.node_name, socket.gethostname().lower())
        self.assertEqual(hub.headers["node_id"], socket.gethostname().lower())

    def test_wired_into_the_edge_tap(self):
        """The edge service tree builds EdgeHub as module websocket."""
        config = self.config()
        core = edge_tap.create_edge_service(config, MemoryReactorClock())
        self.assertIsInstance(core.bus.module(names.EDGEHUB), EdgeHub)
        self.assertNotIn(names.EDGEHUB, core.unavailable)

    def test_renewal_client_loaded_on_the_pool_when_due(self):
        """With rotateCertificates the rotator's renewal imports kubeedge_tw.certs.join on
        the reactor's thread pool when it runs, then renews with it (here: no cert files,
        so the renewal fails with JoinError)."""
        from kubeedge_tw.certs.join import JoinError
        from tests.common.test_lazy import RecordingPool
        config = self.config(**{"modules.edgeHub.rotateCertificates": True,
                                "modules.edged.hostnameOverride": "edge-7"})
        clock = PooledMemoryReactor()
        core = Core("kubeedge-edge", clock, config)
        create_edgehub(core, config)
        rotator = core.getServiceNamed("certrotation")
        self.assertEqual(clock.pool.ran, [])
        d = rotator._renew("https://127.0.0.1:10002", "edge-7", "/nonexistent/ca.crt",
                           "/nonexistent/edge.crt", "/nonexistent/edge.key")
        self.assertEqual([args for _, args in clock.pool.ran], [("kubeedge_tw.certs.join",)])
        self.assertIsInstance(clock.pool, RecordingPool)
        self.assertIn("cannot load the current certificate",
                      self.failureResultOf(d, JoinError).getErrorMessage())

    def test_split_host_port(self):
        """HOST:PORT and [IPv6]:PORT split; anything else is a ValueError."""
        self.assertEqual(split_host_port("127.0.0.1:10000"), ("127.0.0.1", 10000))
        self.assertEqual(split_host_port("cloud.example:443"), ("cloud.example", 443))
        self.assertEqual(split_host_port("[::1]:10000"), ("::1", 10000))
        for bad in ("cloud", "::1:10000", "[::1]10000", ":10000", "host:port"):
            self.assertRaises(ValueError, split_host_port, bad)

    def test_url(self):
        """edgehub_url builds KubeEdge's wss URL."""
        self.assertEqual(edgehub_url("10.0.0.1", 10000, "p", "n"),
                         "wss://10.0.0.1:10000/p/n/events")
