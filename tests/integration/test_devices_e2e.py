"""Integration: Devices end to end. The embedded API server with the KubeEdge CRDs, the
real DeviceController and CloudHub, a real edge (EdgeHub over mutual TLS, EventBus with
its internal broker, DeviceTwin on sqlite), a paho mapper, checked with real kubectl:
a Device created with kubectl reaches the mapper on ``membership/updated``; the mapper's
reported value shows in ``kubectl get device -o json``; a desired value patched with
kubectl reaches the mapper as ``twin/update/delta``."""

import io
import json
import os

from twisted.internet import defer, reactor
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from kubeedge_tw.certs import cli as certs_cli
from kubeedge_tw.certs.join import JoinOptions, join
from kubeedge_tw.cloud.tap import create_cloud_service
from kubeedge_tw.common import names
from kubeedge_tw.common.config import CLOUD, EDGE, load_config
from kubeedge_tw.edge.tap import create_edge_service
from tests.integration.parts import free_port, require_executable
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
DEV = "$hw/events/device/thermo-1/"


class DevicesEndToEndTests(TestCase):
    """kubectl -> DeviceController -> CloudHub -> EdgeHub -> DeviceTwin -> MQTT and back."""

    timeout = 120

    @defer.inlineCallbacks
    def setUp(self):
        self.kubectl = require_executable("kubectl", "kubernetes-client")
        self.base = os.path.abspath(self.mktemp())
        os.makedirs(self.base)
        self.ws, self.https, self.api = free_port(), free_port(), free_port()
        self.mqtt = free_port()
        path = os.path.join(self.base, "cloudcore.yaml")
        with open(path, "w") as f:
            f.write("apiVersion: cloudcore.config.kubeedge.io/v1alpha1\nkind: CloudCore\n"
                    "stateDir: {base}/cloud\nmodules:\n"
                    "  apiServer: {{address: 127.0.0.1, port: {api}}}\n"
                    "  cloudHub:\n    websocket: {{address: 127.0.0.1, port: {ws}}}\n"
                    "    https: {{address: 127.0.0.1, port: {https}}}\n".format(
                        base=self.base, api=self.api, ws=self.ws, https=self.https))
        self.cloud = create_cloud_service(load_config(path, CLOUD), reactor)
        self.cloud.startService()
        self.addCleanup(self._stop, "cloud")
        yield self.cloud.apiserver.when_ready()
        self.kubeconfig = self.cloud.apiserver.kubeconfig_path
        yield self.cloud.bus.module(names.DEVICECONTROLLER).when_ready().addTimeout(
            30, reactor)
        out = io.StringIO()
        self.assertEqual(certs_cli.gettoken_main(["--config", path], out=out), 0)
        options = JoinOptions()
        options.parseOptions(["--cloud", "127.0.0.1:{}".format(self.ws), "--https-port",
                              str(self.https), "--token", out.getvalue().strip(),
                              "--node", "edge-1", "--state-dir",
                              os.path.join(self.base, "edge")])
        edge_config = yield defer.Deferred.fromCoroutine(join(reactor, options,
                                                              io.StringIO()))
        config = load_config(edge_config, EDGE, overrides={
            "modules.edged.enable": False, "modules.eventBus.mqttMode": 0,
            "modules.eventBus.mqttServerInternal": "tcp://127.0.0.1:{}".format(self.mqtt)})
        self.edge = create_edge_service(config, reactor)
        self.edge.startService()
        self.addCleanup(self._stop, "edge")
        yield self.edge.bus.module(names.EDGEHUB).wait_connected().addTimeout(20, reactor)
        eventbus = self.edge.bus.module(names.EVENTBUS)
        link = getattr(eventbus, "link", None)
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
        self.assertIsNotNone(self.mapper, "no MQTT broker on the internal port")
        self.addCleanup(self.mapper.close)
        yield self.mapper.subscribe("$hw/events/node/+/membership/#", 1)
        yield self.mapper.subscribe("$hw/events/device/+/twin/update/#", 1)

    @defer.inlineCallbacks
    def _stop(self, which):
        service = getattr(self, which, None)
        if service is not None and service.running:
            yield service.stopService()

    @defer.inlineCallbacks
    def kubectl_run(self, *args, stdin=None):
        if stdin is not None:
            path = os.path.join(self.base, "obj-{}.json".format(free_port()))
            with open(path, "w") as f:
                f.write(stdin)
            args = tuple(a if a != "-" else path for a in args)
        out, err, code = yield getProcessOutputAndValue(
            self.kubectl, args, env=dict(os.environ, KUBECONFIG=self.kubeconfig))
        self.assertEqual(code, 0, (args, err))
        defer.returnValue(out.decode())

    def next_on(self, topic):
        return self.mapper.wait_next(topic).addCallback(lambda item: json.loads(item[1]))

    @defer.inlineCallbacks
    def test_device_membership_reported_and_desired(self):
        """kubectl-created Device -> membership/updated on MQTT; mapper report -> status
        reported in kubectl; kubectl-patched desired -> twin/update/delta on MQTT."""
        announced = self.next_on("$hw/events/node/edge-1/membership/updated")
        # The Device names its node and model, which must exist (422 otherwise); edged is
        # off here, so the node is created the way an operator would.
        yield self.kubectl_run("apply", "-f", "-", stdin=json.dumps({
            "apiVersion": "v1", "kind": "Node", "metadata": {"name": "edge-1", "labels": {
                "node-role.kubernetes.io/edge": ""}}}))
        yield self.kubectl_run("apply", "-f", "-", stdin=json.dumps(MODEL))
        yield self.kubectl_run("apply", "-f", "-", stdin=json.dumps(DEVICE))
        update = yield within(announced, 30, "membership/updated")
        device, = update["added_devices"]
        self.assertEqual(device["id"], "thermo-1")
        self.assertEqual(device["twin"]["temp"]["expected"]["value"], "20")

        yield self.mapper.publish(DEV + "twin/update", json.dumps({
            "event_id": "u1", "timestamp": 1,
            "twin": {"temp": {"actual": {"value": "19"}, "metadata": {"type": "int"}}}}))
        reported = None
        for _ in range(100):
            obj = json.loads((yield self.kubectl_run("get", "device", "thermo-1", "-o",
                                                     "json")))
            twin = obj["status"]["twins"][0]
            reported = twin.get("reported")
            if reported:
                break
            yield _sleep(0.2)
        self.assertEqual(reported["value"], "19")
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
