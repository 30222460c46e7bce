"""Unit tests for the EventBus module on a Clock with FakeLinks and recorder modules:
routing MQTT messages to the twin and the cloud, the publish/subscribe/message/get_result
operations, bad input, the service lifecycle and the factory's modes."""

import base64
import json
import os

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from kubeedge_tw.common import message as m
from kubeedge_tw.common import names
from kubeedge_tw.common.bus import Bus
from kubeedge_tw.common.config import EDGE, default_config
from kubeedge_tw.common.core import Core
from kubeedge_tw.edge.eventbus import (
    SUBSCRIBED_TOPICS, EventBus, create_eventbus, parse_mqtt_url, payload_bytes)
from kubeedge_tw.edge.eventbus.broker import MQTTBroker
from kubeedge_tw.edge.eventbus.external import ExternalMQTTClient
from tests.edge.eventbus.fakes import FakeLink
from tests.edge.fakes import Recorder, capture_logs, named


class Harness:
    """EventBus over two FakeLinks, with recorder twin and websocket modules."""

    def __init__(self, links=2, **kw):
        self.clock = Clock()
        self.bus = Bus(self.clock)
        self.links = [FakeLink() for _ in range(links)]
        self.eventbus = EventBus(self.clock, node_name="edge-1", links=self.links, **kw)
        self.twin = Recorder(self.clock, names.DEVICETWIN, names.TWIN_GROUP)
        self.hub = Recorder(self.clock, names.EDGEHUB, names.HUB_GROUP)
        for module in (self.eventbus, self.twin, self.hub):
            self.bus.register(module)
            module.startService()

    def request(self, operation, resource, content):
        """Another module sends EventBus a request; run it."""
        self.bus.send(names.EVENTBUS, m.new_message(names.DEVICETWIN, names.BUS_GROUP,
                                                    operation, resource, content))
        self.clock.advance(0)

    def mqtt(self, topic, payload, link=0):
        """A message arrives on one link; let the modules run."""
        delivered = self.links[link].deliver(topic, payload)
        self.clock.advance(0)
        return delivered


class InboundTests(SynchronousTestCase):
    """MQTT messages become bus messages as KubeEdge builds them (reference 4.1)."""

    def test_subscribes_kubeedge_topics_on_every_link(self):
        """Starting subscribes every KubeEdge filter, QoS 1, on each link, and starts it."""
        h = Harness()
        for link in h.links:
            self.assertEqual(link.subscriptions, {t: 1 for t in SUBSCRIBED_TOPICS})
            self.assertEqual(link.started, 1)

    def test_device_topic_to_twin(self):
        """A twin update goes to group twin as bus/user/response with a base64url topic."""
        h = Harness()
        topic = "$hw/events/device/dev-1/twin/update"
        self.assertTrue(h.mqtt(topic, b'{"event_id":"1"}'))
        msg, = h.twin.seen
        self.assertEqual((msg.source, msg.group, msg.operation),
                         ("bus", "user", "response"))
        self.assertEqual(base64.urlsafe_b64decode(msg.resource).decode(), topic)
        self.assertEqual(msg.content, '{"event_id":"1"}')
        self.assertEqual(h.hub.seen, [])

    def test_namespaced_and_node_topics_to_twin(self):
        """v1.17 namespaced device topics and membership get go to the twin."""
        h = Harness()
        h.mqtt("$hw/events/device/ns/dev/twin/get", b"{}")
        h.mqtt("$hw/events/device/ns/dev/state/update", b"{}")
        h.mqtt("$hw/events/node/edge-1/membership/get", b"{}")
        self.assertEqual(len(h.twin.seen), 3)

    def test_upload_to_cloud(self):
        """$hw/events/upload/... goes to websocket with the base64url topic."""
        h = Harness()
        h.mqtt("$hw/events/upload/sensor", b"42")
        msg, = h.hub.seen
        self.assertEqual(msg.resource,
                         base64.urlsafe_b64encode(b"$hw/events/upload/sensor").decode())
        self.assertEqual((msg.source, msg.group, msg.operation, msg.content),
                         ("bus", "user", "response", "42"))
        self.assertEqual(h.twin.seen, [])

    def test_upload_records_literal(self):
        """SYS/dis/upload_records keeps its topic as the resource."""
        h = Harness()
        h.mqtt("SYS/dis/upload_records", b"rec")
        self.assertEqual(h.hub.seen[0].resource, "SYS/dis/upload_records")

    def test_message_encodes_as_json(self):
        """The bus message made from MQTT encodes on the wire as KubeEdge's would."""
        h = Harness()
        h.mqtt("$hw/events/upload/x", b'{"a":1}')
        frame = json.loads(m.encode(h.hub.seen[0]))
        self.assertEqual(frame["route"], {"source": "bus", "group": "user",
                                          "operation": "response",
                                          "resource": "JGh3L2V2ZW50cy91cGxvYWQveA=="})
        self.assertEqual(frame["content"], '{"a":1}')

    def test_non_utf8_payload(self):
        """A non-UTF-8 payload goes to the twin as bytes, not to the cloud, logged."""
        events = capture_logs(self)
        h = Harness()
        h.mqtt("$hw/events/device/d/twin/update", b"\xff\xfe")
        h.mqtt("$hw/events/upload/x", b"\xff")
        self.assertEqual(h.twin.seen[0].content, b"\xff\xfe")
        self.assertEqual(h.hub.seen, [])
        self.assertEqual(len(named(events, "eventbus_bad_payload")), 2)
        self.assertEqual(h.eventbus.counters["bad_payload"], 2)

    def test_no_cloud_module(self):
        """Without a websocket module the message is dropped with a log line."""
        events = capture_logs(self)
        clock = Clock()
        bus = Bus(clock)
        link = FakeLink()
        eventbus = EventBus(clock, node_name="n", links=[link])
        bus.register(eventbus)
        eventbus.startService()
        link.deliver("$hw/events/upload/x", b"1")
        link.deliver("$hw/events/device/d/twin/get", b"1")
        self.assertEqual(len(named(events, "eventbus_undeliverable")), 2)


class OutboundTests(SynchronousTestCase):
    """Requests from other modules are carried out on every link."""

    def test_publish_string_bytes_and_json(self):
        """publish sends str, bytes and JSON with mqttQOS and mqttRetain on each link."""
        h = Harness(qos=1, retain=True)
        h.request("publish", "$hw/events/device/d/twin/update/result", '{"ok":1}')
        h.request("publish", "t/bytes", b"\x00\x01")
        h.request("publish", "t/json", {"a": [1, "é"]})
        h.request("publish", "t/none", None)
        for link in h.links:
            self.assertEqual(link.published, [
                ("$hw/events/device/d/twin/update/result", b'{"ok":1}', 1, True),
                ("t/bytes", b"\x00\x01", 1, True),
                ("t/json", '{"a":[1,"é"]}'.encode(), 1, True),
                ("t/none", b"", 1, True)])

    def test_publish_bad_topic(self):
        """A publish to a wildcard or empty topic is refused and logged; others go on."""
        events = capture_logs(self)
        h = Harness()
        h.request("publish", "$hw/events/device/+/twin/update", "x")
        h.request("publish", "", "x")
        h.request("publish", "ok", "x")
        self.assertEqual([x[0] for x in h.links[0].published], ["ok"])
        self.assertEqual(len(named(events, "eventbus_bad_request")), 2)

    def test_subscribe(self):
        """subscribe adds the filter on every link and keeps it for restarts."""
        h = Harness()
        h.request("subscribe", "app/+/data", None)
        for link in h.links:
            self.assertEqual(link.subscriptions["app/+/data"], 1)
        self.assertIn("app/+/data", h.eventbus.topics)
        h.mqtt("app/1/data", b"v")
        self.assertEqual(len(h.hub.seen), 1)

    def test_subscribe_bad_filter(self):
        """An invalid filter is refused with a log line."""
        events = capture_logs(self)
        h = Harness()
        h.request("subscribe", "a/#/b", None)
        self.assertNotIn("a/#/b", h.links[0].subscriptions)
        self.assertEqual(len(named(events, "eventbus_bad_request")), 1)

    def test_message_operation(self):
        """message publishes the JSON of content.message on content.message.topic."""
        h = Harness()
        body = {"message": {"topic": "app/x", "data": "v"}}
        h.request("message", "", body)
        topic, payload, _, _ = h.links[0].published[0]
        self.assertEqual((topic, json.loads(payload)), ("app/x", body["message"]))
        h.request("message", "", json.dumps(body))
        self.assertEqual(h.links[0].published[1][0], "app/x")

    def test_message_operation_bad_content(self):
        """message without message.topic is refused with a log line."""
        events = capture_logs(self)
        h = Harness()
        for content in ({"message": {"data": 1}}, {"x": 1}, "text", None, [1]):
            h.request("message", "", content)
        self.assertEqual(h.links[0].published, [])
        self.assertEqual(len(named(events, "eventbus_bad_request")), 5)

    def test_get_result_auth_info(self):
        """get_result on auth_info publishes on the node's authInfo result topic."""
        h = Harness()
        h.request("get_result", "auth_info", {"ak": "x"})
        h.request("get_result", "other", {"ak": "x"})
        self.assertEqual(h.links[0].published, [
            ("$hw/events/node/edge-1/authInfo/get/result", b'{"ak":"x"}', 0, False)])

    def test_unknown_operation(self):
        """An unknown operation is logged and ignored."""
        events = capture_logs(self)
        h = Harness()
        h.request("frobnicate", "x", None)
        self.assertEqual(len(named(events, "eventbus_bad_request")), 1)

    def test_payload_bytes(self):
        """payload_bytes maps each content kind to its payload."""
        self.assertEqual(payload_bytes(bytearray(b"a")), b"a")
        self.assertEqual(payload_bytes(3), b"3")
        self.assertEqual(payload_bytes(True), b"true")


class LifecycleTests(SynchronousTestCase):
    """The module starts and stops its links."""

    def test_stop_stops_links(self):
        """stopService stops every link and fires."""
        h = Harness()
        d = h.eventbus.stopService()
        self.successResultOf(d)
        self.assertEqual([link.stopped for link in h.links], [1, 1])

    def test_needs_a_link(self):
        """An EventBus without links is a programming error."""
        self.assertRaises(ValueError, EventBus, Clock(), node_name="n", links=[])


class FactoryTests(SynchronousTestCase):
    """create_eventbus picks the links by mqttMode."""

    def build(self, mode, **more):
        """The EventBus for ``mode`` from a default edge config."""
        overrides = {"stateDir": os.path.abspath(self.mktemp()),
                     "modules.eventBus.mqttMode": mode,
                     "modules.edged.hostnameOverride": "edge-7"}
        overrides.update(more)
        config = default_config(EDGE, overrides=overrides)
        return create_eventbus(Core("kubeedge-edge", Clock(), config), config)

    def test_modes(self):
        """Modes 0/1/2 pick broker/both/client with the configured addresses and QoS."""
        internal = self.build(0, **{"modules.eventBus.mqttServerInternal": "tcp://[::1]:2884",
                                    "modules.eventBus.mqttSessionQueueSize": 7})
        broker, = internal.links
        self.assertIsInstance(broker, MQTTBroker)
        self.assertEqual((broker.host, broker.requested_port, broker.session_queue_size),
                         ("::1", 2884, 7))
        both = self.build(1, **{"modules.eventBus.mqttQOS": 1,
                                "modules.eventBus.mqttRetain": True})
        self.assertEqual([type(link) for link in both.links], [MQTTBroker, ExternalMQTTClient])
        self.assertEqual((both.qos, both.retain), (1, True))
        external = self.build(2)
        client, = external.links
        self.assertIsInstance(client, ExternalMQTTClient)
        self.assertEqual((client.host, client.port), ("127.0.0.1", 1883))
        self.assertTrue(client.client_id.startswith("hub-client-edge-7-"))
        self.assertEqual(external.node_name, "edge-7")

    def test_parse_mqtt_url(self):
        """tcp://HOST:PORT parses; anything else is a ValueError."""
        self.assertEqual(parse_mqtt_url("tcp://127.0.0.1:1884"), ("127.0.0.1", 1884))
        for bad in ("ssl://h:1", "tcp://h", "tcp://:1", "h:1"):
            self.assertRaises(ValueError, parse_mqtt_url, bad)
