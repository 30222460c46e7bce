"""EventBus with real MQTT parts: ``mqttMode`` 2 against a real mosquitto (routing to the
twin and the cloud, publishing to a paho subscriber, reconnect and resubscribe after
mosquitto restarts), and ``mqttMode`` 0 with its internal broker used by a real paho
client and by mosquitto_pub / mosquitto_sub (subscribe, publish, retained, QoS 1 with a
persistent session). All on the real reactor over loopback; waits are on Deferreds fired
by the parts, each bounded by a timeout."""

import os
import uuid

from paho.mqtt import client as mqtt
from twisted.internet import defer, reactor, task, threads
from twisted.trial.unittest import TestCase

from kubeedge_tw.common import message as m
from kubeedge_tw.common import names
from kubeedge_tw.common.config import EDGE, default_config
from kubeedge_tw.common.core import build_core
from kubeedge_tw.edge import tap as edge_tap
from kubeedge_tw.edge.eventbus.topics import resource_to_topic
from tests.edge.fakes import Recorder
from tests.integration.parts import (
    LOOPBACK, free_port, require_executable, run_command, start_mosquitto)

WAIT = 15


def within(d, seconds, what):
    """``d``, failing with "timed out waiting for <what>" after ``seconds``."""
    def timed_out(result, timeout):
        raise AssertionError("timed out after {}s waiting for {}".format(timeout, what))
    return d.addTimeout(seconds, reactor, onTimeoutCancel=timed_out)


class PahoClient:
    """A real paho-mqtt client on its own network thread (``loop_start``), as a mapper
    or an application would run it; every callback comes back to the reactor with
    ``callFromThread``, where tests wait on Deferreds."""

    def __init__(self, port, client_id=None, clean_session=True):
        self.port = port
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=client_id or "test-" + uuid.uuid4().hex[:10],
                                  clean_session=clean_session, protocol=mqtt.MQTTv311)
        self.messages = []
        self._waiters = []
        self._acks = {}
        self._connected = defer.Deferred()
        self.session_present = None
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        reactor.callFromThread(self._connect_done, flags.session_present, reason_code.value)

    def _connect_done(self, present, code):
        self.session_present = present
        if not self._connected.called:
            if code:
                self._connected.errback(AssertionError("CONNACK code {}".format(code)))
            else:
                self._connected.callback(self)

    def _on_message(self, client, userdata, message):
        reactor.callFromThread(self._got, message.topic, message.payload, message.qos,
                               message.retain)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        codes = [c.value for c in reason_codes]
        reactor.callFromThread(lambda: self._acks.setdefault(mid, defer.Deferred())
                               .callback(codes))

    def _got(self, topic, payload, qos, retain):
        self.messages.append((topic, payload, qos, retain))
        for waiter in list(self._waiters):
            predicate, d = waiter
            if predicate(topic):
                self._waiters.remove(waiter)
                d.callback((topic, payload, qos, retain))

    def connect(self):
        """Connect (on a thread) and start the network thread; fires on CONNACK."""
        d = threads.deferToThread(self.client.connect, LOOPBACK, self.port, 30)
        d.addCallback(lambda _: self.client.loop_start())
        d.addCallback(lambda _: within(self._connected, WAIT, "paho CONNACK"))
        return d

    def subscribe(self, topic, qos=1):
        """Subscribe; fires with the SUBACK codes."""
        _, mid = self.client.subscribe(topic, qos)
        return within(self._acks.setdefault(mid, defer.Deferred()), WAIT, "SUBACK")

    def publish(self, topic, payload, qos=1, retain=False):
        """Publish; fires once sent (QoS 0) or acknowledged (QoS 1)."""
        info = self.client.publish(topic, payload, qos, retain)
        return threads.deferToThread(info.wait_for_publish, WAIT)

    def wait_for(self, topic):
        """Fires with ``(topic, payload, qos, retain)`` of the first message on
        ``topic`` (already received or to come)."""
        for item in self.messages:
            if item[0] == topic:
                return defer.succeed(item)
        d = defer.Deferred()
        self._waiters.append((lambda t: t == topic, d))
        return within(d, WAIT, "a message on " + topic)

    def wait_next(self, topic):
        """Fires with the next message on ``topic`` received after this call."""
        seen = sum(1 for item in self.messages if item[0] == topic)
        d = defer.Deferred()

        def newer(t):
            return t == topic and sum(1 for item in self.messages if item[0] == topic) > seen
        self._waiters.append((newer, d))
        return within(d, WAIT, "the next message on " + topic)

    def close(self):
        """Disconnect and stop the network thread."""
        self.client.disconnect()
        return threads.deferToThread(self.client.loop_stop)


def edge_config(testcase, mode, port, with_twin=False):
    """An edge config with only EventBus (and DeviceTwin) enabled, on loopback ports."""
    return default_config(EDGE, overrides={
        "stateDir": os.path.abspath(testcase.mktemp()),
        "modules.edged.hostnameOverride": "edge-1",
        "modules.deviceTwin.enable": with_twin,
        "modules.edgeHub.enable": False, "modules.metaManager.enable": False,
        "modules.edged.enable": False, "modules.serviceBus.enable": False,
        "modules.eventBus.mqttMode": mode, "modules.eventBus.mqttQOS": 1,
        "modules.eventBus.mqttServerInternal": "tcp://127.0.0.1:{}".format(port),
        "modules.eventBus.mqttServerExternal": "tcp://127.0.0.1:{}".format(port)})


class Edge:
    """An edge built by the real factories (tap's module specs) with recorders in the
    places of DeviceTwin (unless ``with_twin``) and EdgeHub, on the real reactor."""

    def __init__(self, testcase, mode, port, with_twin=False):
        self.config = edge_config(testcase, mode, port, with_twin)
        config = self.config
        self.core = build_core("kubeedge-edge", reactor, config, edge_tap.EDGE_MODULE_SPECS)
        self.eventbus = self.core.bus.module(names.EVENTBUS)
        self.link = self.eventbus.links[0]
        self.hub = self.core.add_module(Recorder(reactor, names.EDGEHUB, names.HUB_GROUP))
        self.twin = (self.core.bus.module(names.DEVICETWIN) if with_twin else
                     self.core.add_module(Recorder(reactor, names.DEVICETWIN,
                                                   names.TWIN_GROUP)))
        self.core.startService()
        testcase.addCleanup(self.core.stopService)

    def request(self, operation, resource, content):
        """Another module asks EventBus for something."""
        self.core.bus.send(names.EVENTBUS, m.new_message(
            "test", names.BUS_GROUP, operation, resource, content))


def topic_of(message):
    """The MQTT topic a bus message from EventBus came from."""
    return resource_to_topic(message.resource)


class ExternalModeTests(TestCase):
    """mqttMode 2: EventBus as a client of a real mosquitto."""

    timeout = 60

    @defer.inlineCallbacks
    def setUp(self):
        self.port, self.mosquitto = yield start_mosquitto(self)
        self.edge = Edge(self, 2, self.port)
        yield within(self.edge.link.wait_subscribed(), WAIT, "EventBus subscribed")

    @defer.inlineCallbacks
    def test_routes_to_twin_and_cloud(self):
        """Device topics reach the twin and upload topics the cloud, as KubeEdge builds them."""
        yield run_command(["mosquitto_pub", "-h", LOOPBACK, "-p", str(self.port), "-q", "1",
                           "-t", "$hw/events/device/dev1/twin/update", "-m", '{"twin":{}}'])
        yield run_command(["mosquitto_pub", "-h", LOOPBACK, "-p", str(self.port),
                           "-t", "$hw/events/upload/sensor", "-m", "42"])
        to_twin = yield within(self.edge.twin.wait_for(lambda msg: True), WAIT, "twin")
        self.assertEqual(topic_of(to_twin), "$hw/events/device/dev1/twin/update")
        self.assertEqual((to_twin.source, to_twin.group, to_twin.operation, to_twin.content),
                         ("bus", "user", "response", '{"twin":{}}'))
        to_cloud = yield within(self.edge.hub.wait_for(lambda msg: True), WAIT, "cloud")
        self.assertEqual((topic_of(to_cloud), to_cloud.content),
                         ("$hw/events/upload/sensor", "42"))

    @defer.inlineCallbacks
    def test_publish_reaches_paho_subscriber(self):
        """A publish request from a module reaches a paho subscriber through mosquitto."""
        app = PahoClient(self.port)
        yield app.connect()
        self.addCleanup(app.close)
        yield app.subscribe("$hw/events/device/+/twin/update/result", 1)
        self.edge.request("publish", "$hw/events/device/dev1/twin/update/result",
                          '{"event_id":"r1"}')
        topic, payload, qos, _ = yield app.wait_for("$hw/events/device/dev1/twin/update/result")
        self.assertEqual((payload, qos), (b'{"event_id":"r1"}', 1))

    @defer.inlineCallbacks
    def test_reconnect_and_resubscribe_after_restart(self):
        """After a mosquitto restart EventBus reconnects, resubscribes and routes again."""
        self.edge.request("subscribe", "app/+/events", None)
        gone = self.edge.link.wait_disconnected()
        ended = defer.Deferred()
        self.mosquitto.proto.ended.addBoth(lambda result: (ended.callback(None), result)[1])
        self.mosquitto.signalProcess("TERM")
        yield within(ended, WAIT, "mosquitto to exit")
        yield within(gone, WAIT, "EventBus to notice mosquitto went away")
        yield start_mosquitto(self, port=self.port)
        yield within(self.edge.link.wait_connected(), 30, "the reconnect")
        yield within(self.edge.link.wait_subscribed(), WAIT, "the resubscription")
        yield run_command(["mosquitto_pub", "-h", LOOPBACK, "-p", str(self.port), "-q", "1",
                           "-t", "$hw/events/device/dev1/twin/get", "-m", "{}"])
        yield run_command(["mosquitto_pub", "-h", LOOPBACK, "-p", str(self.port), "-q", "1",
                           "-t", "app/7/events", "-m", "e"])
        to_twin = yield within(self.edge.twin.wait_for(lambda msg: True), WAIT, "twin")
        self.assertEqual(topic_of(to_twin), "$hw/events/device/dev1/twin/get")
        to_cloud = yield within(self.edge.hub.wait_for(lambda msg: True), WAIT, "cloud")
        self.assertEqual(topic_of(to_cloud), "app/7/events")
        self.assertGreaterEqual(self.edge.link.stats["connects"], 2)


class InternalModeTests(TestCase):
    """mqttMode 0: the internal broker, used by real MQTT clients."""

    timeout = 60

    def setUp(self):
        require_executable("mosquitto_pub", "mosquitto-clients")
        self.port = free_port()
        self.edge = Edge(self, 0, self.port)

    @defer.inlineCallbacks
    def test_paho_subscribe_publish_qos1(self):
        """A paho client gets QoS 1 messages on a wildcard, its own and a module's."""
        app = PahoClient(self.port)
        yield app.connect()
        self.addCleanup(app.close)
        self.assertEqual((yield app.subscribe("t/#", 1)), [1])
        yield app.publish("t/a", b"hello", qos=1)
        _, payload, qos, retain = yield app.wait_for("t/a")
        self.assertEqual((payload, qos, retain), (b"hello", 1, False))
        self.edge.request("publish", "t/from-edge", {"k": "v"})
        _, payload, qos, _ = yield app.wait_for("t/from-edge")
        self.assertEqual((payload, qos), (b'{"k":"v"}', 1))

    @defer.inlineCallbacks
    def test_routing_through_internal_broker(self):
        """mosquitto_pub to a device topic reaches the twin; to an upload topic the cloud."""
        yield run_command(["mosquitto_pub", "-h", LOOPBACK, "-p", str(self.port), "-q", "2",
                           "-t", "$hw/events/node/edge-1/membership/get", "-m", "{}"])
        yield run_command(["mosquitto_pub", "-h", LOOPBACK, "-p", str(self.port),
                           "-t", "SYS/dis/upload_records", "-m", "rec"])
        to_twin = yield within(self.edge.twin.wait_for(lambda msg: True), WAIT, "twin")
        self.assertEqual(topic_of(to_twin), "$hw/events/node/edge-1/membership/get")
        to_cloud = yield within(self.edge.hub.wait_for(lambda msg: True), WAIT, "cloud")
        self.assertEqual(to_cloud.resource, "SYS/dis/upload_records")

    @defer.inlineCallbacks
    def test_retained_with_mosquitto_clients(self):
        """mosquitto_sub gets a retained message; an empty retained payload deletes it."""
        base = ["-h", LOOPBACK, "-p", str(self.port)]
        out, err, code = yield run_command(["mosquitto_pub"] + base + [
            "-t", "cfg/dev1", "-m", "v1", "-r", "-q", "1"])
        self.assertEqual(code, 0, err)
        out, err, code = yield run_command(["mosquitto_sub"] + base + [
            "-t", "cfg/#", "-C", "1", "-v", "-W", "5"])
        self.assertEqual((out, code), (b"cfg/dev1 v1\n", 0), err)
        yield run_command(["mosquitto_pub"] + base + ["-t", "cfg/dev1", "-n", "-r"])
        broker = self.edge.link
        self.assertNotIn("cfg/dev1", broker.retained)
        # With nothing retained, mosquitto_sub waits its 1 s and exits on the timeout.
        out, err, code = yield run_command(["mosquitto_sub"] + base + [
            "-t", "cfg/#", "-C", "1", "-W", "1"])
        self.assertEqual(out, b"")
        self.assertNotEqual(code, 0)

    @defer.inlineCallbacks
    def test_persistent_session_gets_qos1_sent_while_away(self):
        """A persistent paho session gets on reconnect the QoS 1 message sent while away."""
        first = PahoClient(self.port, client_id="mapper-1", clean_session=False)
        yield first.connect()
        yield first.subscribe("$hw/events/device/+/twin/update/delta", 1)
        gone = self.edge.link.sessions["mapper-1"].protocol.ended
        yield first.close()
        yield within(gone, WAIT, "the broker to see the client go")
        self.edge.request("publish", "$hw/events/device/dev1/twin/update/delta",
                          '{"delta":{"temp":"20"}}')
        # One reactor turn: EventBus's inbox drain was scheduled first, so it has run.
        yield task.deferLater(reactor, 0, lambda: None)
        self.assertEqual(len(self.edge.link.sessions["mapper-1"].queue), 1)
        second = PahoClient(self.port, client_id="mapper-1", clean_session=False)
        yield second.connect()
        self.addCleanup(second.close)
        self.assertTrue(second.session_present)
        _, payload, qos, _ = yield second.wait_for("$hw/events/device/dev1/twin/update/delta")
        self.assertEqual((payload, qos), (b'{"delta":{"temp":"20"}}', 1))
