"""Integration: Devices end to end. The embedded API server with the KubeEdge CRDs, the
real DeviceController and CloudHub, a real edge (EdgeHub over mutual TLS, EventBus,
DeviceTwin on sqlite), a paho mapper, checked with real kubectl:

* a Device created with kubectl reaches the mapper on ``membership/updated``; the mapper's
  reported value shows in ``kubectl get device -o json``; a desired value patched with
  kubectl reaches the mapper as ``twin/update/delta`` -- with EventBus on its internal
  broker (``mqttMode`` 0) and on a real mosquitto (``mqttMode`` 2);
* edge autonomy: while the cloud is stopped the edge still answers the mapper's twin and
  state updates; when a new cloud starts on the same state directory and ports, the
  value and the state reported while it was away reach the Device's status.
"""

import json
import os
import time

from twisted.internet import defer, reactor
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from kubeedge_tw.cloud.tap import create_cloud_service
from kubeedge_tw.common import names
from kubeedge_tw.common.config import CLOUD, EDGE, load_config
from kubeedge_tw.edge.tap import create_edge_service
from tests.integration.parts import (
    LoopbackCloud, free_port, require_executable, start_mosquitto)
from tests.integration.test_cloud_edge import poll
from tests.integration.test_controllers_e2e import _sleep
from tests.integration.test_eventbus_mosquitto import WAIT, PahoClient, within

MODEL = {"apiVersion": "devices.kubeedge.io/v1alpha2", "kind": "DeviceModel",
         "metadata": {"name": "thermo-model", "namespace": "default"},
         "spec": {"properties": [{"name": "temp", "type": {"int": {
             "accessMode": "ReadWrite", "defaultValue": 20}}}]}}
DEVICE = {"apiVersion": "devices.kubeedge.io/v1alpha2", "kind": "Device",
          "metadata": {"name": "thermo-1", "namespace": "default"},
          "spec": {"deviceModelRef": {"name": "thermo-model"},
                   "nodeSelector": {"nodeSelectorTerms": [{"matchExpressions": [
                       {"key": "", "operator": "In", "values": ["edge-1"]}]}]}},
          "status": {"twins": [{"propertyName": "temp", "desired": {
              "value": "20", "metadata": {"type": "int"}}}]}}
NODE = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "edge-1", "labels": {
    "node-role.kubernetes.io/edge": ""}}}
DEV = "$hw/events/device/thermo-1/"
#: How long a report may take to show in the Device's status (after a reconnect too).
REPORT_WAIT = 60


def twin_report(event_id, value, twin="temp"):
    """A mapper's ``twin/update`` payload reporting ``twin`` = ``value``."""
    return json.dumps({"event_id": event_id, "timestamp": int(time.time() * 1000),
                       "twin": {twin: {"actual": {"value": value},
                                       "metadata": {"type": "int"}}}})


def with_humidity(model, device):
    """``model`` and ``device`` with a second int property and twin, ``humidity``."""
    model, device = json.loads(json.dumps(model)), json.loads(json.dumps(device))
    model["spec"]["properties"].append({"name": "humidity", "type": {"int": {
        "accessMode": "ReadOnly", "defaultValue": 50}}})
    device["status"]["twins"].append({"propertyName": "humidity", "desired": {
        "value": "50", "metadata": {"type": "int"}}})
    return model, device


class _DevicesSetup:
    """A cloud, a joined edge and a mapper; ``mqtt_mode`` picks the edge's EventBus
    broker: 0 = its internal broker, 2 = a real mosquitto started for the test. Mixed
    into ``TestCase`` subclasses; the tests here run in every mode."""

    timeout = 120
    mqtt_mode = 0

    @defer.inlineCallbacks
    def setUp(self):
        self.kubectl = require_executable("kubectl", "kubernetes-client")
        self.base = os.path.abspath(self.mktemp())
        os.makedirs(self.base)
        cloud = LoopbackCloud(self.base)
        self.ws, self.https, self.api = cloud.ws, cloud.https, cloud.api
        self.cloud_config = cloud.path
        self.cloud = None
        self.addCleanup(self._stop, "cloud")
        yield self.start_cloud()
        self.kubeconfig = self.cloud.apiserver.kubeconfig_path
        edge_config = yield cloud.join()
        if self.mqtt_mode == 2:
            self.mqtt, _ = yield start_mosquitto(self)
            broker = {"modules.eventBus.mqttServerExternal":
                      "tcp://127.0.0.1:{}".format(self.mqtt)}
        else:
            self.mqtt = free_port()
            broker = {"modules.eventBus.mqttServerInternal":
                      "tcp://127.0.0.1:{}".format(self.mqtt)}
        config = load_config(edge_config, EDGE, overrides=dict(broker, **{
            "modules.edged.enable": False, "modules.eventBus.mqttMode": self.mqtt_mode}))
        self.edge = create_edge_service(config, reactor)
        self.edge.startService()
        self.addCleanup(self._stop, "edge")
        self.edge_hub = self.edge.bus.module(names.EDGEHUB)
        yield self.edge_hub.wait_connected().addTimeout(20, reactor)
        for link in self.edge.bus.module(names.EVENTBUS).links:
            if hasattr(link, "wait_subscribed"):
                yield within(link.wait_subscribed(), WAIT, "EventBus subscribed")
        self.mapper = None
        for _ in range(50):   # the internal broker may still be binding its port
            try:
                mapper = PahoClient(self.mqtt, client_id="mapper")
                yield mapper.connect()
                self.mapper = mapper
                break
            except Exception:
                yield _sleep(0.2)
        self.assertIsNotNone(self.mapper, "no MQTT broker on port {}".format(self.mqtt))
        self.addCleanup(self.mapper.close)
        yield self.mapper.subscribe("$hw/events/node/+/membership/#", 1)
        yield self.mapper.subscribe("$hw/events/device/+/twin/update/#", 1)
        yield self.mapper.subscribe("$hw/events/device/+/state/update/result", 1)

    @defer.inlineCallbacks
    def start_cloud(self):
        """Start a cloud service from ``cloudcore.yaml`` (a new one after a stop: same
        state directory, same ports) and wait for its API server and DeviceController."""
        self.cloud = create_cloud_service(load_config(self.cloud_config, CLOUD), reactor)
        self.cloud.startService()
        yield self.cloud.apiserver.when_ready()
        yield self.cloud.bus.module(names.DEVICECONTROLLER).when_ready().addTimeout(
            30, reactor)

    @defer.inlineCallbacks
    def _stop(self, which):
        """Stop ``self.<which>`` (cloud or edge) when it runs."""
        service = getattr(self, which, None)
        if service is not None and service.running:
            yield service.stopService()

    @defer.inlineCallbacks
    def kubectl_run(self, *args, stdin=None):
        """Run kubectl on the cloud's kubeconfig (``-`` = ``stdin`` through a file);
        fires with its output, fails the test on a non-zero exit."""
        if stdin is not None:
            path = os.path.join(self.base, "obj-{}.json".format(free_port()))
            with open(path, "w") as f:
                f.write(stdin)
            args = tuple(a if a != "-" else path for a in args)
        out, err, code = yield getProcessOutputAndValue(
            self.kubectl, args, env=dict(os.environ, KUBECONFIG=self.kubeconfig))
        self.assertEqual(code, 0, (args, err))
        defer.returnValue(out.decode())

    def get_device(self):
        """``kubectl get device thermo-1 -o json``, parsed."""
        return self.kubectl_run("get", "device", "thermo-1", "-o", "json").addCallback(
            json.loads)

    def next_on(self, topic):
        """The next JSON payload the mapper receives on ``topic``."""
        return self.mapper.wait_next(topic).addCallback(lambda item: json.loads(item[1]))

    @defer.inlineCallbacks
    def create_device(self, model=MODEL, device=DEVICE):
        """Node, model and Device with kubectl; fires with the device the mapper was
        told of on ``membership/updated``."""
        announced = self.next_on("$hw/events/node/edge-1/membership/updated")
        # The Device names its node and model, which must exist (422 otherwise); edged is
        # off here, so the node is created the way an operator would.
        yield self.kubectl_run("apply", "-f", "-", stdin=json.dumps(NODE))
        yield self.kubectl_run("apply", "-f", "-", stdin=json.dumps(model))
        yield self.kubectl_run("apply", "-f", "-", stdin=json.dumps(device))
        update = yield within(announced, 30, "membership/updated")
        device, = update["added_devices"]
        defer.returnValue(device)

    @defer.inlineCallbacks
    def report(self, event_id, value, twin="temp"):
        """Report ``twin`` = ``value``; fires with the edge's ``update/result``."""
        result = self.next_on(DEV + "twin/update/result")
        yield self.mapper.publish(DEV + "twin/update", twin_report(event_id, value, twin))
        result = yield within(result, WAIT, "twin/update/result for " + event_id)
        defer.returnValue(result)

    @defer.inlineCallbacks
    def wait_status(self, check, what, seconds=REPORT_WAIT):
        """Poll ``kubectl get device`` until ``check(device)`` is true; fire with the
        device, or fail after ``seconds`` naming ``what`` and the last status seen."""
        deadline = time.monotonic() + seconds
        while True:
            device = yield self.get_device()
            if check(device):
                defer.returnValue(device)
            if time.monotonic() > deadline:
                self.fail("{} not in the Device's status within {}s; last status: {}".format(
                    what, seconds, json.dumps(device.get("status"))))
            yield _sleep(0.2)

    @staticmethod
    def reported(device, name="temp"):
        """The reported value of twin ``name`` in a Device, or None."""
        for twin in (device.get("status") or {}).get("twins") or ():
            if twin.get("propertyName") == name:
                return (twin.get("reported") or {}).get("value")
        return None

    @defer.inlineCallbacks
    def test_device_membership_reported_and_desired(self):
        """kubectl-created Device -> membership/updated on MQTT; mapper report -> status
        reported in kubectl; kubectl-patched desired -> twin/update/delta on MQTT."""
        device = yield self.create_device()
        self.assertEqual(device["id"], "thermo-1")
        self.assertEqual(device["twin"]["temp"]["expected"]["value"], "20")

        yield self.report("u1", "19")
        obj = yield self.wait_status(lambda d: self.reported(d) == "19", "reported 19")
        twin = obj["status"]["twins"][0]
        reported = twin["reported"]
        self.assertEqual(reported["metadata"]["type"], "int")
        self.assertEqual(twin["desired"]["value"], "20")

        delta = self.next_on(DEV + "twin/update/delta")
        yield self.kubectl_run("patch", "device", "thermo-1", "--type=merge", "-p",
                               json.dumps({"status": {"twins": [{
                                   "propertyName": "temp", "desired": {
                                       "value": "25", "metadata": {"type": "int"}},
                                   "reported": reported}]}}))
        delta = yield within(delta, 30, "twin/update/delta")
        self.assertEqual(delta["delta"], {"temp": "25"})


class DevicesEndToEndTests(_DevicesSetup, TestCase):
    """kubectl -> DeviceController -> CloudHub -> EdgeHub -> DeviceTwin -> MQTT and back,
    EventBus on its internal broker."""

    mqtt_mode = 0

    @defer.inlineCallbacks
    def test_reported_while_cloud_down_reaches_cloud_after_restart(self):
        """With the cloud stopped, the edge answers the mapper's twin and state updates;
        a new cloud on the same state and ports gets every value and the state reported
        meanwhile into the Device's status, and confirms every report to the twin."""
        yield self.create_device(*with_humidity(MODEL, DEVICE))
        yield self.report("online-1", "19")
        yield self.wait_status(lambda d: self.reported(d) == "19", "reported 19")
        twin_module = self.edge.bus.module(names.DEVICETWIN)
        yield poll(lambda: not twin_module.unconfirmed, seconds=WAIT)

        yield self.cloud.stopService()
        yield within(self.edge_hub.wait_disconnected(), WAIT, "EdgeHub to notice")
        # Edge autonomy: the twin answers from its own store while the cloud is away.
        for event_id, value, twin in (("offline-1", "41", "temp"), ("offline-2", "42", "temp"),
                                      ("offline-3", "55", "humidity")):
            result = yield self.report(event_id, value, twin)
            self.assertNotIn("code", result, result)
            self.assertEqual(result["event_id"], event_id)
            self.assertEqual(result["twin"][twin]["actual"]["value"], value)
        state = self.mapper.wait_next(DEV + "state/update/result")
        yield self.mapper.publish(DEV + "state/update", json.dumps(
            {"event_id": "offline-4", "timestamp": 0, "state": "online"}))
        state = json.loads((yield within(state, WAIT, "state/update/result"))[1])
        self.assertNotIn("code", state, state)
        self.assertEqual(state["device"]["state"], "online")
        last_online = state["device"]["last_online"]
        # EdgeHub keeps one message per (operation, resource): the humidity report took
        # the place of the temp reports, which only the twin's confirm map still holds.
        kept = sorted(message.resource for message in self.edge_hub.offline.messages())
        self.assertEqual(kept, ["device/thermo-1/state",
                                "device/thermo-1/twin/edge_updated"])
        self.assertEqual(len(twin_module.unconfirmed), 3, "temp, humidity and state")
        yield _sleep(2)   # the cloud stays away a little longer

        yield self.start_cloud()
        obj = yield self.wait_status(
            lambda d: self.reported(d) == "42" and self.reported(d, "humidity") == "55",
            "temp 42 and humidity 55, reported while the cloud was down")
        twins = {twin["propertyName"]: twin for twin in obj["status"]["twins"]}
        self.assertEqual(twins["temp"]["desired"]["value"], "20", "desired kept")
        self.assertEqual(twins["temp"]["reported"]["metadata"]["type"], "int")
        # DeviceController records device/<id>/state as status.state and lastOnlineTime.
        obj = yield self.wait_status(lambda d: d["status"].get("state") == "online",
                                     "state online, reported while the cloud was down")
        self.assertEqual(obj["status"]["lastOnlineTime"], last_online)
        yield poll(lambda: not twin_module.unconfirmed, seconds=WAIT)


class DevicesMosquittoTests(_DevicesSetup, TestCase):
    """The same flow with the edge's EventBus in ``mqttMode`` 2 on a real mosquitto,
    where the mapper connects too."""

    mqtt_mode = 2
