"""Unit tests for the internal MQTT broker on StringTransport and iosim with a Clock:
connection handshake, wildcards and $-topics, retained messages, QoS 0/1/2, persistent
sessions and redelivery, keepalive, bounds, malformed packets and the in-process side."""

from twisted.internet import protocol
from twisted.internet.testing import MemoryReactorClock
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase

from kubeedge_tw.edge.eventbus import packets as p
from kubeedge_tw.edge.eventbus.broker import MQTTBroker
from tests.edge.eventbus.fakes import BrokerClient
from tests.edge.fakes import capture_logs, named


def make_broker(**kw):
    """A broker on a MemoryReactorClock (not listening)."""
    reactor = MemoryReactorClock()
    return MQTTBroker(reactor, port=0, **kw), reactor


def publishes(packets):
    """``(topic, payload, qos, retain, dup)`` of the PUBLISH packets among ``packets``."""
    return [(x.topic, x.payload, x.qos, x.retain, x.dup) for x in packets
            if isinstance(x, p.Publish)]


class ConnectTests(SynchronousTestCase):
    """CONNECT is answered and checked as MQTT 3.1.1 says."""

    def test_connack(self):
        """A valid CONNECT gets CONNACK 0 without session present."""
        broker, _ = make_broker()
        client = BrokerClient(broker)
        self.assertEqual(client.connect(), p.ConnAck(False, 0))
        self.assertIn("c1", broker.sessions)

    def test_mqtt_31_client(self):
        """A 3.1 client (MQIsdp, level 3) is accepted."""
        broker, _ = make_broker()
        client = BrokerClient(broker)
        ack = client.connect(protocol_name="MQIsdp", protocol_level=3)
        self.assertEqual(ack.return_code, 0)

    def test_unsupported_level(self):
        """An MQTT 5 CONNECT gets return code 1 and is closed."""
        broker, _ = make_broker()
        client = BrokerClient(broker)
        client.send(p.Connect("c", protocol_level=5))
        self.assertEqual(client.received(), [p.ConnAck(False, 1)])
        self.assertTrue(client.closed)

    def test_empty_client_id(self):
        """An empty id is refused with a persistent session and assigned with a clean one."""
        broker, _ = make_broker()
        client = BrokerClient(broker)
        client.send(p.Connect("", clean_session=False))
        self.assertEqual(client.received(), [p.ConnAck(False, 2)])
        self.assertTrue(client.closed)
        other = BrokerClient(broker)
        self.assertEqual(other.connect(client_id="").return_code, 0)
        self.assertTrue(other.protocol.client_id.startswith("auto-"))

    def test_first_packet_must_be_connect(self):
        """A PUBLISH before CONNECT closes the connection with a log line."""
        events = capture_logs(self)
        broker, _ = make_broker()
        client = BrokerClient(broker)
        client.send(p.Publish("a", b"x"))
        self.assertTrue(client.closed)
        self.assertEqual(client.received(), [])
        self.assertEqual(len(named(events, "mqtt_protocol_error")), 1)

    def test_second_connect(self):
        """A second CONNECT on one connection closes it."""
        broker, _ = make_broker()
        client = BrokerClient(broker)
        client.connect()
        client.send(p.Connect("c1"))
        self.assertTrue(client.closed)

    def test_connect_deadline(self):
        """A connection that never sends CONNECT is closed after the deadline."""
        broker, reactor = make_broker(connect_timeout=5)
        client = BrokerClient(broker)
        reactor.advance(4.9)
        self.assertFalse(client.closed)
        reactor.advance(0.2)
        self.assertTrue(client.closed)

    def test_takeover(self):
        """A second connection with the same client id closes the first."""
        broker, _ = make_broker()
        first = BrokerClient(broker)
        first.connect("same")
        second = BrokerClient(broker)
        second.connect("same")
        self.assertTrue(first.closed)
        self.assertFalse(second.closed)
        first.lose()
        self.assertIs(broker.sessions["same"].protocol, second.protocol)

    def test_server_packets_from_client(self):
        """A client sending CONNACK or SUBACK is a protocol violation."""
        for packet in (p.ConnAck(False, 0), p.SubAck(1, (0,)), p.PingResp()):
            broker, _ = make_broker()
            client = BrokerClient(broker)
            client.connect()
            client.send(packet)
            self.assertTrue(client.closed, packet)


class RoutingTests(SynchronousTestCase):
    """Messages reach matching subscriptions only."""

    def setUp(self):
        self.broker, self.reactor = make_broker()
        self.sub = BrokerClient(self.broker)
        self.sub.connect("sub")
        self.pub = BrokerClient(self.broker)
        self.pub.connect("pub")

    def test_subscribe_and_receive(self):
        """A subscriber with '+' gets a QoS 0 message; SUBACK grants the QoS asked."""
        self.assertEqual(self.sub.subscribe("a/+", qos=0), [p.SubAck(1, (0,))])
        self.pub.send(p.Publish("a/b", b"hello"))
        self.assertEqual(publishes(self.sub.received()), [("a/b", b"hello", 0, False, False)])

    def test_qos2_subscription_granted_1(self):
        """A QoS 2 subscription is granted QoS 1."""
        self.assertEqual(self.sub.subscribe("x", qos=2), [p.SubAck(1, (1,))])

    def test_invalid_filter_refused(self):
        """An invalid filter gets 0x80 while the valid ones in the packet are granted."""
        events = capture_logs(self)
        self.sub.send(p.Subscribe(4, (("a/#/b", 0), ("ok", 1))))
        self.assertEqual(self.sub.received(), [p.SubAck(4, (0x80, 1))])
        self.assertFalse(self.sub.closed)
        self.assertEqual(len(named(events, "mqtt_subscribe_refused")), 1)

    def test_dollar_topics_not_matched_by_wildcards(self):
        """'#' does not match $hw/...; '$hw/#' does."""
        self.sub.subscribe("#", qos=0, packet_id=1)
        self.pub.send(p.Publish("$hw/events/device/d/twin/update", b"{}"))
        self.assertEqual(publishes(self.sub.received()), [])
        self.sub.subscribe("$hw/#", qos=0, packet_id=2)
        self.pub.send(p.Publish("$hw/events/device/d/twin/update", b"{}"))
        self.assertEqual(len(publishes(self.sub.received())), 1)

    def test_overlapping_subscriptions_deliver_once(self):
        """A message matching two filters is delivered once, at the highest QoS."""
        self.sub.subscribe("a/#", qos=0, packet_id=1)
        self.sub.subscribe("a/+", qos=1, packet_id=2)
        self.pub.send(p.Publish("a/b", b"x", 1, packet_id=9))
        self.assertEqual([x[:3] for x in publishes(self.sub.received())], [("a/b", b"x", 1)])

    def test_unsubscribe(self):
        """After UNSUBSCRIBE (answered with UNSUBACK) nothing more arrives."""
        self.sub.subscribe("a", qos=0)
        self.sub.send(p.Unsubscribe(5, ("a",)))
        self.assertEqual(self.sub.received(), [p.UnsubAck(5)])
        self.pub.send(p.Publish("a", b"x"))
        self.assertEqual(self.sub.received(), [])

    def test_wildcard_in_publish_topic_closes(self):
        """A PUBLISH to a topic with a wildcard closes that client only."""
        events = capture_logs(self)
        self.sub.subscribe("#", qos=0)
        self.pub.send(p.Publish("$hw/events/device/+/twin/update", b"{}"))
        self.assertTrue(self.pub.closed)
        self.assertFalse(self.sub.closed)
        self.assertEqual(publishes(self.sub.received()), [])
        self.assertEqual(len(named(events, "mqtt_protocol_error")), 1)

    def test_retain_flag_cleared_on_forwarding(self):
        """A retained message is forwarded to current subscribers with RETAIN 0."""
        self.sub.subscribe("r", qos=0)
        self.pub.send(p.Publish("r", b"v", retain=True))
        self.assertEqual(publishes(self.sub.received()), [("r", b"v", 0, False, False)])

    def test_ping(self):
        """PINGREQ is answered with PINGRESP."""
        self.pub.send(p.PingReq())
        self.assertEqual(self.pub.received(), [p.PingResp()])


class RetainedTests(SynchronousTestCase):
    """Retained messages are kept, sent on subscribe, replaced and deleted."""

    def test_retained_on_subscribe(self):
        """A new subscriber gets the retained message with RETAIN set, after SUBACK."""
        broker, _ = make_broker()
        pub = BrokerClient(broker)
        pub.connect("pub")
        pub.send(p.Publish("cfg/a", b"1", 1, retain=True, packet_id=1))
        self.assertEqual(pub.received(), [p.PubAck(1)])
        sub = BrokerClient(broker)
        sub.connect("sub")
        out = sub.subscribe("cfg/#", qos=1)
        self.assertIsInstance(out[0], p.SubAck)
        self.assertEqual(publishes(out), [("cfg/a", b"1", 1, True, False)])

    def test_replace_and_delete(self):
        """A newer retained message replaces the old; an empty one deletes it."""
        broker, _ = make_broker()
        pub = BrokerClient(broker)
        pub.connect("pub")
        pub.send(p.Publish("t", b"old", retain=True), p.Publish("t", b"new", retain=True))
        self.assertEqual(broker.retained["t"].payload, b"new")
        pub.send(p.Publish("t", b"", retain=True))
        self.assertNotIn("t", broker.retained)
        sub = BrokerClient(broker)
        sub.connect("sub")
        self.assertEqual(publishes(sub.subscribe("t")), [])

    def test_resubscribe_resends_retained(self):
        """Subscribing the same filter again replaces it and sends retained ones again."""
        broker, _ = make_broker()
        pub = BrokerClient(broker)
        pub.connect("pub")
        pub.send(p.Publish("t", b"v", retain=True))
        sub = BrokerClient(broker)
        sub.connect("sub")
        self.assertEqual(len(publishes(sub.subscribe("t", qos=0))), 1)
        self.assertEqual(len(publishes(sub.subscribe("t", qos=1, packet_id=2))), 1)
        self.assertEqual(broker.sessions["sub"].subscriptions, {"t": 1})

    def test_retained_bound(self):
        """Past max_retained new topics are published but not retained, with a log."""
        events = capture_logs(self)
        broker, _ = make_broker(max_retained=2)
        pub = BrokerClient(broker)
        pub.connect("pub")
        pub.send(*[p.Publish("t{}".format(i), b"v", retain=True) for i in range(3)])
        self.assertEqual(sorted(broker.retained), ["t0", "t1"])
        self.assertEqual(len(named(events, "mqtt_retained_full")), 1)


class QoSTests(SynchronousTestCase):
    """QoS 1 acknowledgement and redelivery, QoS 2 accepted once."""

    def test_inbound_qos1_puback(self):
        """A QoS 1 PUBLISH from a client is acknowledged with its packet id."""
        broker, _ = make_broker()
        client = BrokerClient(broker)
        client.connect()
        client.send(p.Publish("a", b"x", 1, packet_id=42))
        self.assertEqual(client.received(), [p.PubAck(42)])

    def test_inbound_qos2_delivered_once(self):
        """A QoS 2 PUBLISH sent twice (DUP) is delivered once; PUBREL gets PUBCOMP."""
        broker, _ = make_broker()
        sub = BrokerClient(broker)
        sub.connect("sub")
        sub.subscribe("a", qos=1)
        pub = BrokerClient(broker)
        pub.connect("pub")
        pub.send(p.Publish("a", b"x", 2, packet_id=3))
        pub.send(p.Publish("a", b"x", 2, dup=True, packet_id=3))
        self.assertEqual(pub.received(), [p.PubRec(3), p.PubRec(3)])
        pub.send(p.PubRel(3))
        self.assertEqual(pub.received(), [p.PubComp(3)])
        self.assertEqual([x[:3] for x in publishes(sub.received())], [("a", b"x", 1)])

    def test_outbound_qos_is_minimum(self):
        """A QoS 1 message to a QoS 0 subscription goes out as QoS 0."""
        broker, _ = make_broker()
        sub = BrokerClient(broker)
        sub.connect("sub")
        sub.subscribe("a", qos=0)
        pub = BrokerClient(broker)
        pub.connect("pub")
        pub.send(p.Publish("a", b"x", 1, packet_id=1))
        self.assertEqual(publishes(sub.received())[0][2], 0)

    def test_redelivery_on_reconnect(self):
        """Unacked QoS 1 messages are re-sent with DUP and their ids on session resume."""
        broker, _ = make_broker()
        sub = BrokerClient(broker)
        sub.connect("mapper", clean=False)
        sub.subscribe("a/#", qos=1)
        pub = BrokerClient(broker)
        pub.connect("pub")
        pub.send(p.Publish("a/1", b"one", 1, packet_id=1), p.Publish("a/2", b"two", 1,
                                                                     packet_id=2))
        first = [x for x in sub.received() if isinstance(x, p.Publish)]
        self.assertEqual([x.payload for x in first], [b"one", b"two"])
        sub.send(p.PubAck(first[0].packet_id))
        sub.lose()
        again = BrokerClient(broker)
        self.assertEqual(again.connect("mapper", clean=False), p.ConnAck(True, 0))
        redelivered = [x for x in again.received() if isinstance(x, p.Publish)]
        self.assertEqual([(x.payload, x.dup, x.packet_id) for x in redelivered],
                         [(b"two", True, first[1].packet_id)])

    def test_offline_queue_for_persistent_session(self):
        """An offline persistent session queues QoS 1 (not QoS 0) until it returns."""
        broker, _ = make_broker()
        sub = BrokerClient(broker)
        sub.connect("mapper", clean=False)
        sub.subscribe("a", qos=1)
        sub.lose()
        pub = BrokerClient(broker)
        pub.connect("pub")
        pub.send(p.Publish("a", b"q0", 0), p.Publish("a", b"q1", 1, packet_id=1))
        again = BrokerClient(broker)
        again.connect("mapper", clean=False)
        self.assertEqual([x[1] for x in publishes(again.received())], [b"q1"])

    def test_clean_session_discards_state(self):
        """A clean reconnect starts without subscriptions or queued messages."""
        broker, _ = make_broker()
        sub = BrokerClient(broker)
        sub.connect("mapper", clean=False)
        sub.subscribe("a", qos=1)
        sub.lose()
        again = BrokerClient(broker)
        self.assertEqual(again.connect("mapper", clean=True), p.ConnAck(False, 0))
        self.assertEqual(broker.sessions["mapper"].subscriptions, {})
        again.lose()
        self.assertNotIn("mapper", broker.sessions)

    def test_inflight_window(self):
        """Past max_inflight unacknowledged messages, more wait and flow on PUBACK."""
        broker, _ = make_broker(max_inflight=2)
        sub = BrokerClient(broker)
        sub.connect("sub")
        sub.subscribe("a", qos=1)
        pub = BrokerClient(broker)
        pub.connect("pub")
        pub.send(*[p.Publish("a", bytes([i]), 1, packet_id=i + 1) for i in range(4)])
        sent = [x for x in sub.received() if isinstance(x, p.Publish)]
        self.assertEqual(len(sent), 2)
        sub.send(p.PubAck(sent[0].packet_id))
        more = [x for x in sub.received() if isinstance(x, p.Publish)]
        self.assertEqual([x.payload for x in more], [b"\x02"])

    def test_session_queue_bound(self):
        """A session queue holds mqttSessionQueueSize; more are dropped, logged once."""
        events = capture_logs(self)
        broker, _ = make_broker(session_queue_size=3, max_inflight=1)
        sub = BrokerClient(broker)
        sub.connect("sub")
        sub.subscribe("a", qos=1)
        pub = BrokerClient(broker)
        pub.connect("pub")
        pub.send(*[p.Publish("a", b"m", 1, packet_id=i + 1) for i in range(10)])
        session = broker.sessions["sub"]
        self.assertEqual((len(session.inflight), len(session.queue), session.dropped),
                         (1, 3, 6))
        self.assertEqual(len(named(events, "mqtt_session_queue_full")), 1)


class FlowControlTests(SynchronousTestCase):
    """While the transport's buffer is full, messages wait in the bounded queue."""

    def test_pause_and_resume(self):
        """pauseProducing queues QoS 0 messages; resumeProducing sends them in order."""
        broker, _ = make_broker()
        sub = BrokerClient(broker)
        sub.connect("sub")
        sub.subscribe("a", qos=0)
        self.assertIs(sub.transport.producer, sub.protocol)
        pub = BrokerClient(broker)
        pub.connect("pub")
        sub.protocol.pauseProducing()
        pub.send(p.Publish("a", b"1"), p.Publish("a", b"2"))
        self.assertEqual(sub.received(), [])
        sub.protocol.resumeProducing()
        self.assertEqual([x[1] for x in publishes(sub.received())], [b"1", b"2"])


class KeepaliveTests(SynchronousTestCase):
    """Clients silent for 1.5 x keepalive are disconnected."""

    def test_expiry(self):
        """Traffic resets the timer; silence past 1.5 x keepalive closes the connection."""
        events = capture_logs(self)
        broker, reactor = make_broker()
        client = BrokerClient(broker)
        client.connect(keepalive=10)
        reactor.advance(14)
        client.send(p.PingReq())
        reactor.advance(14)
        self.assertFalse(client.closed)
        reactor.advance(1.1)
        self.assertTrue(client.closed)
        self.assertEqual(len(named(events, "mqtt_keepalive_expired")), 1)
        client.lose()
        self.assertEqual(reactor.getDelayedCalls(), [])

    def test_zero_keepalive(self):
        """Keepalive 0 disables the check."""
        broker, reactor = make_broker()
        client = BrokerClient(broker)
        client.connect(keepalive=0)
        reactor.advance(10000)
        self.assertFalse(client.closed)


class MalformedTests(SynchronousTestCase):
    """A malformed packet closes that client, logged; the broker goes on."""

    def test_garbage_closes_only_that_client(self):
        """Garbage from one client closes it; another client keeps working."""
        events = capture_logs(self)
        broker, _ = make_broker()
        good = BrokerClient(broker)
        good.connect("good")
        good.subscribe("a", qos=0)
        bad = BrokerClient(broker)
        bad.connect("bad")
        bad.send_raw(b"\xff\xff\xff\xff\xff")
        self.assertTrue(bad.closed)
        self.assertEqual(len(named(events, "mqtt_protocol_error")), 1)
        other = BrokerClient(broker)
        other.connect("other")
        other.send(p.Publish("a", b"still"))
        self.assertEqual(publishes(good.received())[0][1], b"still")

    def test_oversize_packet(self):
        """A packet over max_packet_size is refused from its header."""
        broker, _ = make_broker(max_packet_size=100)
        client = BrokerClient(broker)
        client.connect()
        client.send_raw(b"\x30" + p.encode_remaining_length(1000))
        self.assertTrue(client.closed)

    def test_packets_before_garbage_are_handled(self):
        """Valid packets in the same chunk as garbage are handled before closing."""
        broker, _ = make_broker()
        client = BrokerClient(broker)
        client.connect()
        client.send_raw(p.PingReq().encode() + b"\x00\x00")
        self.assertEqual(client.received(), [p.PingResp()])
        self.assertTrue(client.closed)

    def test_data_after_close_ignored(self):
        """Bytes arriving after the close are ignored."""
        broker, _ = make_broker()
        client = BrokerClient(broker)
        client.send_raw(b"\x00\x00")
        client.send(p.Connect("x"))
        self.assertEqual(client.received(), [])


class WillTests(SynchronousTestCase):
    """Wills are published when a client goes away without DISCONNECT."""

    def setUp(self):
        self.broker, _ = make_broker()
        self.sub = BrokerClient(self.broker)
        self.sub.connect("sub")
        self.sub.subscribe("will/#", qos=0)

    def test_will_on_connection_loss(self):
        """The will is published when the connection drops."""
        client = BrokerClient(self.broker)
        client.connect("dev", will_topic="will/dev", will_message=b"gone")
        client.lose()
        self.assertEqual(publishes(self.sub.received()), [("will/dev", b"gone", 0, False,
                                                            False)])

    def test_no_will_after_disconnect(self):
        """DISCONNECT discards the will."""
        client = BrokerClient(self.broker)
        client.connect("dev", will_topic="will/dev", will_message=b"gone")
        client.send(p.Disconnect())
        client.lose()
        self.assertEqual(publishes(self.sub.received()), [])


class InProcessTests(SynchronousTestCase):
    """EventBus's side: in-process subscriptions and publications."""

    def test_local_subscriber(self):
        """Client messages matching a local filter reach on_message once."""
        broker, _ = make_broker()
        got = []
        broker.on_message = lambda topic, payload: got.append((topic, payload))
        broker.subscribe("$hw/events/device/+/twin/+")
        broker.subscribe("$hw/events/device/#")
        client = BrokerClient(broker)
        client.connect()
        client.send(p.Publish("$hw/events/device/d1/twin/update", b"{}", 1, packet_id=1),
                    p.Publish("other", b"x"))
        self.assertEqual(got, [("$hw/events/device/d1/twin/update", b"{}")])

    def test_local_subscriber_failure_is_logged(self):
        """A failing on_message is logged and the client still gets its PUBACK."""
        events = capture_logs(self)
        broker, _ = make_broker()
        broker.on_message = lambda topic, payload: 1 / 0
        broker.subscribe("#")
        client = BrokerClient(broker)
        client.connect()
        client.send(p.Publish("a", b"x", 1, packet_id=1))
        self.assertEqual(client.received(), [p.PubAck(1)])
        self.assertEqual(len(named(events, "mqtt_local_handler_failed")), 1)
        self.flushLoggedErrors(ZeroDivisionError)

    def test_edge_publish_reaches_clients_not_itself(self):
        """broker.publish goes to subscribed clients, not back to on_message."""
        broker, _ = make_broker()
        got = []
        broker.on_message = lambda topic, payload: got.append(topic)
        broker.subscribe("#")
        client = BrokerClient(broker)
        client.connect()
        client.subscribe("$hw/events/device/+/twin/update/result", qos=1)
        broker.publish("$hw/events/device/d1/twin/update/result", b"{}", qos=1)
        self.assertEqual([x[:3] for x in publishes(client.received())],
                         [("$hw/events/device/d1/twin/update/result", b"{}", 1)])
        self.assertEqual(got, [])

    def test_invalid_topics_raise(self):
        """Publishing to a wildcard topic or subscribing a bad filter raises ValueError."""
        broker, _ = make_broker()
        self.assertRaises(ValueError, broker.publish, "a/+", b"")
        self.assertRaises(ValueError, broker.subscribe, "a#")

    def test_listen_and_stop(self):
        """startService listens on host:port; stopService closes clients and the port."""
        broker, reactor = make_broker()
        broker.startService()
        port, factory, _, interface = reactor.tcpServers[0]
        self.assertEqual((port, interface), (0, "127.0.0.1"))
        client = BrokerClient(broker)
        client.connect()
        d = broker.stopService()
        self.assertTrue(client.closed)
        self.assertNoResult(d)
        client.lose()
        self.successResultOf(d)


class IosimTests(SynchronousTestCase):
    """The broker over an iosim connection, byte streams pumped both ways."""

    def test_round_trip_over_iosim(self):
        """A client protocol connected through iosim subscribes and gets a publication."""
        broker, reactor = make_broker()

        class Client(protocol.Protocol):
            def __init__(self):
                self.reader = p.PacketReader()
                self.packets = []

            def dataReceived(self, data):
                self.reader.feed(data)
                packet = self.reader.next_packet()
                while packet is not None:
                    self.packets.append(packet)
                    packet = self.reader.next_packet()

        client, server, pump = iosim.connectedServerAndClient(
            lambda: broker.factory.buildProtocol(None), Client, greet=True)
        client.transport.write(p.Connect("io").encode()
                               + p.Subscribe(1, (("t/#", 1),)).encode()
                               + p.Publish("t/x", b"v", 1, packet_id=7).encode())
        pump.flush()
        self.assertEqual(client.packets[:2], [p.ConnAck(False, 0), p.SubAck(1, (1,))])
        self.assertIn(p.PubAck(7), client.packets[2:])
        delivered, = [x for x in client.packets if isinstance(x, p.Publish)]
        self.assertEqual((delivered.topic, delivered.payload, delivered.qos),
                         ("t/x", b"v", 1))
        client.transport.write(p.PubAck(delivered.packet_id).encode())
        pump.flush()
        self.assertEqual(broker.sessions["io"].inflight, {})
