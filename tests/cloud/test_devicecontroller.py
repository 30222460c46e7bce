"""Tests for DeviceController against the verified fake API server (FakeCluster) on a
Clock, with the recording CloudHub stand-in of the EdgeController tests."""

import json

from twisted.trial.unittest import SynchronousTestCase

from kubeedge_tw.cloud.devicecontroller import DeviceController
from kubeedge_tw.cloud.devicecontroller import convert
from kubeedge_tw.cloud.devicecontroller.controller import (
    MODEL_NOT_FOUND, NODE_NOT_FOUND, UNKNOWN_TWIN_PROPERTY)
from kubeedge_tw.cloud.kube import KubeContext
from kubeedge_tw.common import message as m
from kubeedge_tw.common import names
from kubeedge_tw.common.bus import Bus
from kubeedge_tw.common.resource import strip_node
from tests.cloud.k8s.fake_apiserver import FakeCluster
from tests.cloud.test_edgecontroller import FakeHub

GROUP = "devices.kubeedge.io"


def model(name="sensor-model", properties=None):
    return {"apiVersion": GROUP + "/v1alpha2", "kind": "DeviceModel",
            "metadata": {"name": name},
            "spec": {"properties": properties if properties is not None else [
                {"name": "temperature", "description": "degrees",
                 "type": {"int": {"accessMode": "ReadOnly", "defaultValue": 20,
                                  "unit": "C"}}},
                {"name": "switch", "type": {"string": {"accessMode": "ReadWrite",
                                                       "defaultValue": "OFF"}}}]}}


def device(name="sensor-1", node="edge-1", desired=None, model_name="sensor-model"):
    spec = {"deviceModelRef": {"name": model_name},
            "protocol": {"modbus": {"slaveID": 1}},
            "propertyVisitors": [{"propertyName": "temperature",
                                  "modbus": {"register": "HoldingRegister", "offset": 2}}]}
    if node:
        spec["nodeSelector"] = {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": "", "operator": "In", "values": [node]}]}]}
    twins = [{"propertyName": k, "desired": {"value": v, "metadata": {"type": "string"}}}
             for k, v in (desired if desired is not None else {"switch": "ON"}).items()]
    return {"apiVersion": GROUP + "/v1alpha2", "kind": "Device",
            "metadata": {"name": name, "labels": {"description": "a-sensor"}},
            "spec": spec, "status": {"twins": twins}}


def node(name):
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {
        "node-role.kubernetes.io/edge": ""}}}


class Harness:
    """Fake API server, shared informers, DeviceController, recording hub. ``nodes``
    exist from the start."""

    def __init__(self, nodes=("edge-1", "edge-2")):
        self.cluster = FakeCluster()
        for name in nodes:
            self.cluster.api.put("nodes", node(name))
        self.clock = self.cluster.clock
        self.client = self.cluster.client()
        self.bus = Bus(self.clock)
        self.hub = FakeHub(self.clock)
        self.kube = KubeContext(self.clock, lambda: self.client)
        self.dc = DeviceController(self.clock, self.kube)
        self.bus.register(self.hub)
        self.bus.register(self.dc)
        self.kube.startService()
        self.hub.startService()
        self.dc.startService()
        self.run()

    def run(self, seconds=0):
        self.clock.advance(seconds)
        for _ in range(40):
            self.cluster.flush()
            self.clock.advance(0)

    def call(self, d):
        result = []
        d.addBoth(result.append)
        self.run()
        value = result[0]
        if hasattr(value, "raiseException"):
            value.raiseException()
        return value

    def create(self, resource, obj):
        return self.call(self.client.create(resource, obj, namespace="default"))

    def patch(self, name, patch, status=False):
        call = self.client.patch_status if status else self.client.patch
        return self.call(call("devices", name, patch, namespace="default"))

    def get(self, resource, name):
        return self.call(self.client.get(resource, name, namespace="default"))

    def from_edge(self, node, op, resource, content):
        msg = m.new_message(names.DEVICETWIN, names.WIRE_GROUP_TWIN, op,
                            "node/{}/{}".format(node, resource), content)
        self.bus.send(names.DEVICECONTROLLER, msg)
        self.run()
        return msg

    def sent_to(self, node, resource=None):
        prefix = "node/{}/".format(node)
        return [x for x in self.hub.sent if x.resource.startswith(prefix)
                and (resource is None or strip_node(x.resource) == resource)]

    def replies(self, request):
        return [x for x in self.hub.sent if x.parent_msg_id == request.msg_id]

    def profile(self, node="edge-1"):
        cm = self.get("configmaps", convert.profile_name(node))
        return json.loads(cm["data"][convert.PROFILE_KEY])

    def stop(self, case):
        """Stop everything and check that no timer is left behind."""
        self.dc.stopService()
        self.call(self.kube.stopService())
        case.assertEqual(self.clock.getDelayedCalls(), [])


class ConvertTests(SynchronousTestCase):
    """The pure payload builders."""

    def test_node_of_device(self):
        """The node is the first value of the first match expression, else ""."""
        self.assertEqual(convert.device_node(device(node="n1")), "n1")
        self.assertEqual(convert.device_node(device(node=None)), "")
        self.assertEqual(convert.device_node({"spec": {"nodeSelector": {
            "nodeSelectorTerms": []}}}), "")

    def test_edge_device_shape(self):
        """id/name, description label, attributes from the model, versioned twins."""
        dev = device()
        dev["metadata"]["resourceVersion"] = "1234"
        out = convert.edge_device(dev, model(), 99)
        self.assertEqual(out["id"], "sensor-1")
        self.assertEqual(out["description"], "a-sensor")
        self.assertEqual(out["attributes"]["temperature"],
                         {"value": "20", "optional": False, "metadata": {"type": "int"}})
        self.assertEqual(out["twin"], {"switch": {
            "expected": {"value": "ON", "metadata": {"timestamp": 99}}, "optional": False,
            "metadata": {"type": "string"},
            "expected_version": {"cloud": 1234, "edge": 0}}})

    def test_apply_reported_keeps_desired(self):
        """Reported values land next to desired, as strings; unknown twins ignored."""
        twins, changed = convert.apply_reported(device(), {
            "switch": {"actual": {"value": "OFF", "metadata": {"timestamp": 5}},
                       "metadata": {"type": "string"}},
            "ghost": {"actual": {"value": "1"}}})
        self.assertEqual(changed, ["switch"])
        self.assertEqual(twins, [{"propertyName": "switch",
                                  "desired": {"value": "ON", "metadata": {"type": "string"}},
                                  "reported": {"value": "OFF", "metadata": {
                                      "timestamp": "5", "type": "string"}}}])


    def test_unknown_twins_left_out(self):
        """Twins naming a property the model does not declare are reported by
        unknown_twins and left out of what goes to the edge and the profile."""
        dev = device(desired={"switch": "ON", "humidity": "40", "pressure": "1"})
        self.assertEqual(convert.unknown_twins(dev, model()), ["humidity", "pressure"])
        self.assertEqual(set(convert.desired_twins(dev, model())), {"switch"})
        self.assertEqual(set(convert.desired_twins(dev)), {"switch", "humidity", "pressure"})
        self.assertEqual(set(convert.edge_device(dev, model(), 1)["twin"]), {"switch"})
        profile = json.loads(convert.device_profile([dev], {"sensor-model": model()}))
        self.assertEqual([t["propertyName"] for t in profile["deviceInstances"][0]["twins"]],
                         ["switch"])


class DownstreamTests(SynchronousTestCase):
    """Devices and desired values go to the right edge node."""

    def setUp(self):
        self.h = Harness()
        self.addCleanup(self.h.stop, self)
        self.h.create("devicemodels", model())

    def test_membership_added_and_removed(self):
        """Creating a Device sends membership added to its node (group twin); deleting it
        sends removed."""
        h = self.h
        h.create("devices", device())
        sent = h.sent_to("edge-1", "membership")
        self.assertEqual(len(sent), 1)
        msg = sent[0]
        self.assertEqual((msg.source, msg.group, msg.operation),
                         ("devicecontroller", "twin", "update"))
        self.assertEqual([d["id"] for d in msg.content["added_devices"]], ["sensor-1"])
        self.assertEqual(msg.content["removed_devices"], [])
        self.assertEqual(set(msg.content), {"event_id", "timestamp", "added_devices",
                                            "removed_devices"})
        h.call(h.client.delete("devices", "sensor-1", namespace="default"))
        sent = h.sent_to("edge-1", "membership")
        self.assertEqual([d["id"] for d in sent[1].content["removed_devices"]], ["sensor-1"])

    def test_node_change_moves_device(self):
        """A new node selector removes the device from the old node, adds it to the new."""
        h = self.h
        h.create("devices", device())
        h.patch("sensor-1", {"spec": {"nodeSelector": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "", "operator": "In", "values": ["edge-2"]}]}]}}})
        old = h.sent_to("edge-1", "membership")
        self.assertEqual([d["id"] for d in old[-1].content["removed_devices"]], ["sensor-1"])
        new = h.sent_to("edge-2", "membership")
        self.assertEqual([d["id"] for d in new[0].content["added_devices"]], ["sensor-1"])

    def test_desired_change_sends_cloud_updated(self):
        """A desired value change goes as twin/cloud_updated with the new rv; a removed
        twin as a deleted tombstone; a reported-only change sends nothing."""
        h = self.h
        h.create("devices", device(desired={"switch": "ON", "temperature": "21"}))
        updated = h.patch("sensor-1", {"status": {"twins": [
            {"propertyName": "switch", "desired": {"value": "OFF",
                                                   "metadata": {"type": "string"}}}]}},
            status=True)
        sent = h.sent_to("edge-1", "device/sensor-1/twin/cloud_updated")
        self.assertEqual(len(sent), 1)
        twin = sent[0].content["twin"]
        rv = int(updated["metadata"]["resourceVersion"])
        self.assertEqual(twin["switch"]["expected"]["value"], "OFF")
        self.assertEqual(twin["switch"]["expected_version"], {"cloud": rv, "edge": 0})
        self.assertEqual(twin["switch"]["optional"], False)
        self.assertEqual(twin["temperature"]["metadata"], {"type": "deleted"})
        self.assertIn("event_id", sent[0].content)
        h.patch("sensor-1", {"status": {"twins": [
            {"propertyName": "switch", "desired": {"value": "OFF",
                                                   "metadata": {"type": "string"}},
             "reported": {"value": "OFF", "metadata": {}}}]}}, status=True)
        self.assertEqual(len(h.sent_to("edge-1", "device/sensor-1/twin/cloud_updated")), 1)

    def test_model_change_sends_attributes(self):
        """A model that gains a property sends device/<id> updated with attributes."""
        h = self.h
        h.create("devices", device())
        props = model()["spec"]["properties"] + [
            {"name": "humidity", "type": {"double": {"defaultValue": 0.5}}}]
        h.call(h.client.patch("devicemodels", "sensor-model",
                              {"spec": {"properties": props}}, namespace="default"))
        sent = h.sent_to("edge-1", "device/sensor-1")
        self.assertEqual([x.operation for x in sent], ["updated"])
        self.assertEqual(sent[0].content["attributes"]["humidity"],
                         {"value": "0.5", "optional": False, "metadata": {"type": "float"}})

    def test_device_without_node_not_sent(self):
        """A Device without a node selector goes nowhere and gets no profile."""
        h = self.h
        h.create("devices", device(node=None))
        self.assertEqual(h.hub.sent, [])


class InvalidDeviceTests(SynchronousTestCase):
    """Devices an API server without KubeEdge's admission webhook stores although their
    model or node is missing, or their twins are not in the model: Warning Events, and
    nothing invalid reaches an edge until it is fixed."""

    def setUp(self):
        self.h = Harness(nodes=("edge-1",))
        self.addCleanup(self.h.stop, self)
        self.h.create("devicemodels", model())

    def events(self, reason=None):
        return [e for e in self.h.cluster.api.objects("events")
                if reason is None or e["reason"] == reason]

    def assertOneWarning(self, dev, reason, message):
        events = self.events(reason)
        self.assertEqual(len(events), 1, events)
        event = events[0]
        self.assertEqual((event["type"], event["reason"], event["message"], event["count"]),
                         ("Warning", reason, message, 1))
        self.assertEqual(event["source"], {"component": "devicecontroller"})
        self.assertEqual(event["metadata"]["namespace"], "default")
        ref = event["involvedObject"]
        self.assertEqual(
            {k: ref.get(k) for k in ("apiVersion", "kind", "name", "namespace", "uid")},
            {"apiVersion": GROUP + "/v1alpha2", "kind": "Device",
             "name": dev["metadata"]["name"], "namespace": "default",
             "uid": dev["metadata"]["uid"]})
        return event

    def test_missing_model(self):
        """A Device whose model is missing gets a DeviceModelNotFound Warning naming the
        model and namespace and is sent nowhere (no membership, detail or profile); once
        the model is created it is delivered with its attributes."""
        h = self.h
        dev = h.create("devices", device("led-1", model_name="led-model"))
        self.assertOneWarning(dev, MODEL_NOT_FOUND,
                              'deviceModelRef "led-model" not found in namespace default')
        self.assertEqual(h.hub.sent, [])
        req = h.from_edge("edge-1", "get", "membership/detail", "{}")
        self.assertEqual(h.replies(req)[0].content["devices"], [])
        self.assertIsNone(h.cluster.api.object("configmaps", "device-profile-config-edge-1",
                                               "default"))
        h.create("devicemodels", model("led-model"))
        sent = h.sent_to("edge-1", "membership")
        self.assertEqual(len(sent), 1)
        added = sent[0].content["added_devices"]
        self.assertEqual([d["id"] for d in added], ["led-1"])
        self.assertIn("temperature", added[0]["attributes"])
        self.assertEqual([d["name"] for d in h.profile()["deviceInstances"]], ["led-1"])
        self.assertEqual(len(self.events()), 1)

    def test_device_edited_to_existing_model(self):
        """Fixing deviceModelRef on the Device delivers it."""
        h = self.h
        h.create("devices", device(model_name="led-model"))
        self.assertEqual(h.hub.sent, [])
        h.patch("sensor-1", {"spec": {"deviceModelRef": {"name": "sensor-model"}}})
        sent = h.sent_to("edge-1", "membership")
        self.assertEqual([d["id"] for d in sent[0].content["added_devices"]], ["sensor-1"])

    def test_missing_node(self):
        """A Device bound to a node that does not exist gets a NodeNotFound Warning and
        is sent nowhere; when the Node appears it is delivered to it."""
        h = self.h
        dev = h.create("devices", device(node="edge-9"))
        self.assertOneWarning(dev, NODE_NOT_FOUND,
                              'node "edge-9" (spec.nodeSelector) not found')
        self.assertEqual(h.hub.sent, [])
        h.call(h.client.create("nodes", node("edge-9")))
        sent = h.sent_to("edge-9", "membership")
        self.assertEqual([d["id"] for d in sent[0].content["added_devices"]], ["sensor-1"])

    def test_moved_to_missing_node(self):
        """A delivered Device moved to a missing node is withdrawn from its old node and
        sent to no other."""
        h = self.h
        h.create("devices", device())
        h.patch("sensor-1", {"spec": {"nodeSelector": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "", "operator": "In", "values": ["edge-9"]}]}]}}})
        sent = h.sent_to("edge-1", "membership")
        self.assertEqual([d["id"] for d in sent[-1].content["removed_devices"]],
                         ["sensor-1"])
        self.assertEqual(h.sent_to("edge-9"), [])
        self.assertEqual([e["reason"] for e in self.events()], [NODE_NOT_FOUND])

    def test_unknown_twin(self):
        """Twins not in the model get an UnknownTwinProperty Warning listing them; the
        device goes with its other twins; once the model declares the property, that
        twin is sent as cloud_updated."""
        h = self.h
        dev = h.create("devices", device(desired={"switch": "ON", "humidity": "40"}))
        self.assertOneWarning(
            dev, UNKNOWN_TWIN_PROPERTY, '"humidity" in status.twins is not a property of '
            'DeviceModel "sensor-model": not sent to the edge')
        sent = h.sent_to("edge-1", "membership")
        self.assertEqual(len(sent), 1)
        self.assertEqual(set(sent[0].content["added_devices"][0]["twin"]), {"switch"})
        props = model()["spec"]["properties"] + [
            {"name": "humidity", "type": {"int": {"defaultValue": 0}}}]
        h.call(h.client.patch("devicemodels", "sensor-model",
                              {"spec": {"properties": props}}, namespace="default"))
        updated = h.sent_to("edge-1", "device/sensor-1/twin/cloud_updated")
        self.assertEqual(len(updated), 1)
        self.assertEqual(updated[0].content["twin"]["humidity"]["expected"]["value"], "40")
        self.assertEqual(len(self.events()), 1)

    def test_no_event_flood(self):
        """Many changes to an invalid Device and a relist record one Event; a problem
        that goes and comes back is counted on that same Event, not a new one."""
        h = self.h
        h.create("devices", device(model_name="led-model"))
        for i in range(30):
            h.patch("sensor-1", {"status": {"state": "s{}".format(i)}}, status=True)
        h.cluster.api.expire_watches()
        h.run(5)
        events = self.events()
        self.assertEqual([(e["reason"], e["count"]) for e in events], [(MODEL_NOT_FOUND, 1)])
        h.create("devicemodels", model("led-model"))
        self.assertEqual(len(h.sent_to("edge-1", "membership")), 1)
        h.call(h.client.delete("devicemodels", "led-model", namespace="default"))
        sent = h.sent_to("edge-1", "membership")
        self.assertEqual([d["id"] for d in sent[-1].content["removed_devices"]],
                         ["sensor-1"])
        events = self.events()
        self.assertEqual([(e["reason"], e["count"]) for e in events], [(MODEL_NOT_FOUND, 2)])
        self.assertEqual(len(h.sent_to("edge-1", "membership")), 2)


class ProfileTests(SynchronousTestCase):
    """The per-node device-profile-config ConfigMap."""

    def test_profile_follows_devices(self):
        """Created with the first device, lists devices/models/protocols, updated on a new
        device, deleted with the last one; a reported value does not rewrite it."""
        h = Harness()
        self.addCleanup(h.stop, self)
        h.create("devicemodels", model())
        h.create("devices", device())
        profile = h.profile()
        self.assertEqual([d["name"] for d in profile["deviceInstances"]], ["sensor-1"])
        self.assertEqual(profile["deviceInstances"][0]["model"], "sensor-model")
        self.assertEqual(profile["deviceInstances"][0]["protocol"], "modbus-sensor-1")
        self.assertEqual(profile["deviceModels"][0]["properties"][0]["dataType"], "int")
        self.assertEqual(profile["protocols"][0]["protocolConfig"], {"slaveID": 1})
        h.create("devices", device("sensor-2"))
        self.assertEqual([d["name"] for d in h.profile()["deviceInstances"]],
                         ["sensor-1", "sensor-2"])
        rv = h.get("configmaps", "device-profile-config-edge-1")["metadata"]["resourceVersion"]
        h.from_edge("edge-1", "update", "device/sensor-1/twin/edge_updated", {
            "event_id": "e", "timestamp": 1, "twin": {"switch": {
                "actual": {"value": "OFF", "metadata": {"timestamp": 2}},
                "metadata": {"type": "string"}}}})
        self.assertEqual(h.get("configmaps", "device-profile-config-edge-1")["metadata"][
            "resourceVersion"], rv)
        for name in ("sensor-1", "sensor-2"):
            h.call(h.client.delete("devices", name, namespace="default"))
        self.assertEqual(h.cluster.api.object("configmaps", "device-profile-config-edge-1",
                                              "default"), None)


class UpstreamTests(SynchronousTestCase):
    """Reports and requests from the edge twins."""

    def setUp(self):
        self.h = Harness()
        self.addCleanup(self.h.stop, self)
        self.h.create("devicemodels", model())
        self.h.create("devices", device())

    def test_membership_detail(self):
        """get membership/detail is answered with the node's devices, as a response."""
        h = self.h
        h.create("devices", device("other", node="edge-2"))
        req = h.from_edge("edge-1", "get", "membership/detail", json.dumps({
            "event_type": "group_membership_event", "event_id": "123",
            "group_id": "edge-1", "operation": "detail", "timestamp": 1}))
        reply = h.replies(req)
        self.assertEqual(len(reply), 1)
        self.assertEqual((reply[0].operation, reply[0].group, reply[0].resource),
                         ("response", "twin", "node/edge-1/membership/detail"))
        self.assertEqual(reply[0].content["event_id"], "123")
        self.assertEqual([d["id"] for d in reply[0].content["devices"]], ["sensor-1"])
        self.assertIn("twin", reply[0].content["devices"][0])

    def test_edge_updated_writes_reported(self):
        """edge_updated sets status.twins[].reported (desired kept) and is confirmed."""
        h = self.h
        req = h.from_edge("edge-1", "update", "device/sensor-1/twin/edge_updated", {
            "event_id": "e1", "timestamp": 1, "twin": {"switch": {
                "actual": {"value": "OFF", "metadata": {"timestamp": 1700}},
                "metadata": {"type": "string"}, "actual_version": {"cloud": 0, "edge": 1}}}})
        twins = h.get("devices", "sensor-1")["status"]["twins"]
        self.assertEqual(twins, [{"propertyName": "switch",
                                  "desired": {"value": "ON", "metadata": {"type": "string"}},
                                  "reported": {"value": "OFF", "metadata": {
                                      "timestamp": "1700", "type": "string"}}}])
        confirm = h.replies(req)
        self.assertEqual([(c.operation, c.resource, c.content) for c in confirm],
                         [("response", "node/edge-1/twin", "OK")])
        # The reported write is not echoed back as a desired change.
        self.assertEqual(h.sent_to("edge-1", "device/sensor-1/twin/cloud_updated"), [])

    def test_state_recorded(self):
        """device/<id>/state sets status.state and lastOnlineTime, twins untouched."""
        h = self.h
        req = h.from_edge("edge-1", "update", "device/sensor-1/state", json.dumps({
            "event_id": "s", "timestamp": 1, "device": {
                "name": "sensor-1", "state": "online",
                "last_online": "2026-11-25 12:00:00"}}))
        status = h.get("devices", "sensor-1")["status"]
        self.assertEqual((status["state"], status["lastOnlineTime"]),
                         ("online", "2026-11-25 12:00:00"))
        self.assertEqual(len(status["twins"]), 1)
        self.assertEqual(len(h.replies(req)), 1)

    def test_unknown_device_and_garbage_confirmed(self):
        """Reports for unknown devices or without a twin map are dropped and confirmed
        (resending cannot help); nothing breaks."""
        h = self.h
        a = h.from_edge("edge-1", "update", "device/nope/twin/edge_updated",
                        {"twin": {"x": {"actual": {"value": "1"}}}})
        b = h.from_edge("edge-1", "update", "device/sensor-1/twin/edge_updated", "garbage")
        self.assertEqual(len(h.replies(a)), 1)
        self.assertEqual(len(h.replies(b)), 1)
        self.assertNotIn("reported", h.get("devices", "sensor-1")["status"]["twins"][0])


class ReadinessTests(SynchronousTestCase):
    """Requests that arrive before the informers synced wait for them."""

    def test_detail_waits_for_sync(self):
        """A membership/detail get before the device list is answered after it, with the
        devices (an early empty answer would wipe the edge's devices)."""
        cluster = FakeCluster()
        clock = cluster.clock
        client = cluster.client()
        bus = Bus(clock)
        hub = FakeHub(clock)
        kube = KubeContext(clock, lambda: client)
        dc = DeviceController(clock, kube)
        bus.register(hub)
        bus.register(dc)
        cluster.api.put("nodes", node("edge-1"))
        cluster.api.put("devicemodels", dict(model(), metadata={
            "name": "sensor-model", "namespace": "default"}))
        cluster.api.put("devices", dict(device(), metadata={
            "name": "sensor-1", "namespace": "default"}))
        hub.startService()
        dc.startService()
        req = m.new_message(names.DEVICETWIN, "twin", "get", "node/edge-1/membership/detail",
                            "{}")
        bus.send(names.DEVICECONTROLLER, req)
        clock.advance(0)
        self.assertEqual([x for x in hub.sent if x.parent_msg_id == req.msg_id], [])
        kube.startService()
        for _ in range(40):
            cluster.flush()
            clock.advance(0)
        replies = [x for x in hub.sent if x.parent_msg_id == req.msg_id]
        self.assertEqual([d["id"] for d in replies[0].content["devices"]], ["sensor-1"])
        dc.stopService()
        kube.stopService()
        for _ in range(5):
            cluster.flush()
            clock.advance(0)
        self.assertEqual(clock.getDelayedCalls(), [])
