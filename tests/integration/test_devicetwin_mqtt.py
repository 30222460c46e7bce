"""DeviceTwin and EventBus together over real MQTT, built by the real factories on the real
reactor with the real sqlite pool: a mapper-like paho client sees a device added by the
cloud on ``membership/updated``, reports a value and gets ``update/result``,
``update/document`` and ``update/delta`` as specified, the ``edge_updated`` report reaches
a stub ``websocket`` module, the rows are in ``edgecore.db``; bad payloads get 400/404
results; a desired value from the cloud reaches the mapper as a delta. Once with the
internal broker (``mqttMode`` 0) and once through a real mosquitto (``mqttMode`` 2)."""

import json
import os
import sqlite3

from twisted.internet import defer
from twisted.trial.unittest import TestCase

from kubeedge_tw.common import message as m
from kubeedge_tw.common import names
from tests.integration.parts import free_port, start_mosquitto
from tests.integration.test_eventbus_mosquitto import WAIT, Edge, PahoClient, within

DEV = "$hw/events/device/thermo-1/"
MEMBERSHIP = "$hw/events/node/edge-1/membership/"


def rows(path, table):
    """The rows of ``table`` in the edge database, as dicts."""
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute('SELECT * FROM "{}" ORDER BY id'.format(table))]
    finally:
        conn.close()


class MapperFlowMixin:
    """The mapper's view of the edge; subclasses set up ``self.port`` and the mode."""

    timeout = 60
    mode = None

    @defer.inlineCallbacks
    def start_edge(self):
        """The edge (EventBus + DeviceTwin + stub websocket) and a subscribed mapper."""
        self.edge = Edge(self, self.mode, self.port, with_twin=True)
        self.db = os.path.join(self.edge.config.state_dir, "edgecore.db")
        self.twin = self.edge.twin
        if hasattr(self.edge.link, "wait_subscribed"):
            yield within(self.edge.link.wait_subscribed(), WAIT, "EventBus subscribed")
        self.mapper = PahoClient(self.port, client_id="mapper")
        yield self.mapper.connect()
        self.addCleanup(self.mapper.close)
        yield self.mapper.subscribe("$hw/events/node/+/membership/#", 1)
        yield self.mapper.subscribe("$hw/events/device/+/twin/update/#", 1)
        yield self.mapper.subscribe("$hw/events/device/+/twin/get/result", 1)
        yield self.mapper.subscribe("$hw/events/device/+/state/update/result", 1)

    def cloud(self, resource, content, operation="update"):
        """The cloud's DeviceController sends the twin a message (as EdgeHub delivers)."""
        self.edge.core.bus.send(names.DEVICETWIN, m.new_message(
            "devicecontroller", names.WIRE_GROUP_TWIN, operation, resource, content))

    def next_on(self, topic):
        """Fires with the decoded payload of the next message on ``topic``."""
        return self.mapper.wait_next(topic).addCallback(lambda item: json.loads(item[1]))

    @defer.inlineCallbacks
    def add_thermometer(self):
        """The cloud adds device thermo-1 (desired temp 20, int) to this node; fires
        with the membership/updated payload once the desired value's delta (published
        after it, and after the document) has arrived too."""
        announced = self.next_on(MEMBERSHIP + "updated")
        first_delta = self.next_on(DEV + "twin/update/delta")
        self.cloud("membership", {"event_id": "m1", "timestamp": 1, "added_devices": [{
            "id": "thermo-1", "name": "thermo-1",
            "attributes": {"unit": {"value": "C", "metadata": {"type": "string"}}},
            "twin": {"temp": {"expected": {"value": "20"}, "optional": False,
                              "metadata": {"type": "int"},
                              "expected_version": {"cloud": 5, "edge": 0}}}}],
            "removed_devices": []})
        update = yield announced
        self.assertEqual((yield first_delta)["delta"], {"temp": "20"})
        return update

    @defer.inlineCallbacks
    def test_membership_then_twin_update(self):
        """A mapper sees the device, reports, gets result/document/delta; the cloud gets it."""
        update = yield self.add_thermometer()
        device, = update["added_devices"]
        self.assertEqual((device["id"], device["twin"]["temp"]["expected"]["value"]),
                         ("thermo-1", "20"))
        self.assertNotIn("expected_version", device["twin"]["temp"])
        result, document, delta = (self.next_on(DEV + "twin/update/result"),
                                   self.next_on(DEV + "twin/update/document"),
                                   self.next_on(DEV + "twin/update/delta"))
        report = within(self.edge.hub.wait_for(
            lambda msg: msg.resource == "device/thermo-1/twin/edge_updated"), WAIT,
            "edge_updated at the websocket stub")
        yield self.mapper.publish(DEV + "twin/update", json.dumps({
            "event_id": "u1", "timestamp": 1,
            "twin": {"temp": {"actual": {"value": "19"}, "metadata": {"type": "int"}}}}))
        result, document, delta, report = yield defer.gatherResults(
            [result, document, delta, report])
        self.assertEqual(result["event_id"], "u1")
        self.assertEqual(result["twin"]["temp"]["actual"]["value"], "19")
        self.assertNotIn("actual_version", result["twin"]["temp"])
        self.assertEqual(document["twin"]["temp"]["current"]["actual"]["value"], "19")
        self.assertEqual(delta["delta"], {"temp": "20"})
        self.assertEqual((report.source, report.group, report.operation),
                         ("twin", "twin", "update"))
        self.assertEqual(report.content["twin"]["temp"]["actual"]["value"], "19")
        self.assertEqual(report.content["twin"]["temp"]["actual_version"],
                         {"cloud": 0, "edge": 1})
        yield self.twin.store.wait_idle()
        twin, = rows(self.db, "device_twin")
        self.assertEqual((twin["deviceid"], twin["name"], twin["expected"], twin["actual"],
                          twin["expected_version"], twin["actual_version"],
                          twin["attr_type"], twin["optional"]),
                         ("thermo-1", "temp", "20", "19", '{"cloud":5,"edge":0}',
                          '{"cloud":0,"edge":1}', "int", 0))
        self.assertEqual(rows(self.db, "device_attr")[0]["value"], "C")

    @defer.inlineCallbacks
    def test_bad_payloads_get_errors(self):
        """Bad payloads get 400 with the event id, an unknown device 404; nothing changes."""
        yield self.add_thermometer()
        yield self.twin.store.wait_idle()
        before = rows(self.db, "device_twin")
        cases = [("{not json", 400, ""),
                 ('{"event_id":"e1"}', 400, "e1"),
                 ('{"event_id":"e2","twin":{"temp":{"actual":{"value":"hot"}}}}', 400, "e2")]
        for payload, code, event_id in cases:
            answer = self.next_on(DEV + "twin/update/result")
            yield self.mapper.publish(DEV + "twin/update", payload)
            result = yield answer
            self.assertEqual((result["code"], result["event_id"]), (code, event_id), result)
        answer = self.next_on("$hw/events/device/nobody/twin/update/result")
        yield self.mapper.publish("$hw/events/device/nobody/twin/update",
                                  '{"event_id":"e3","twin":{}}')
        self.assertEqual(((yield answer)["code"]), 404)
        self.assertEqual(rows(self.db, "device_twin"), before)
        self.assertEqual(self.twin.stats["failed"], 0)

    @defer.inlineCallbacks
    def test_get_state_and_cloud_desired(self):
        """twin/get and state/update are answered; a cloud desired value becomes a delta."""
        yield self.add_thermometer()
        got = self.next_on(DEV + "twin/get/result")
        yield self.mapper.publish(DEV + "twin/get", '{"event_id":"g1"}')
        self.assertEqual((yield got)["twin"]["temp"]["expected"]["value"], "20")
        state = self.next_on(DEV + "state/update/result")
        yield self.mapper.publish(DEV + "state/update", '{"state":"online"}')
        self.assertEqual((yield state)["device"]["state"], "online")
        delta = self.next_on(DEV + "twin/update/delta")
        self.cloud("device/thermo-1/twin/cloud_updated", {"event_id": "c1", "twin": {
            "temp": {"expected": {"value": "23"}, "metadata": {"type": "int"},
                     "expected_version": {"cloud": 6, "edge": 0}}}})
        self.assertEqual((yield delta)["delta"], {"temp": "23"})
        members = self.next_on(MEMBERSHIP + "get/result")
        yield self.mapper.publish(MEMBERSHIP + "get", '{"event_id":"mg"}')
        self.assertEqual([d["id"] for d in (yield members)["devices"]], ["thermo-1"])


class InternalBrokerFlowTests(MapperFlowMixin, TestCase):
    """The mapper flow with the internal broker (mqttMode 0)."""

    mode = 0

    def setUp(self):
        self.port = free_port()
        return self.start_edge()


class MosquittoFlowTests(MapperFlowMixin, TestCase):
    """The mapper flow through a real mosquitto (mqttMode 2)."""

    mode = 2

    @defer.inlineCallbacks
    def setUp(self):
        self.port, _ = yield start_mosquitto(self)
        yield self.start_edge()
