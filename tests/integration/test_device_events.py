"""Integration: invalid Devices on a cluster without KubeEdge's admission webhook.

The embedded API server runs alone with ``device_admission`` off, so that it stores
Devices whose DeviceModel or node is missing, as such a cluster does; the cloud is
pointed at it through ``kubeAPIConfig.kubeConfig``, exactly as at a remote cluster (no
embedded API server, no control plane of its own). Real kubectl creates the objects and
reads the Warning Events the DeviceController records; the per-node profile ConfigMap
shows when a device is delivered once the problem is fixed.
"""

import json
import os

from twisted.internet import defer, reactor
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from kubeedge_tw.cloud.apiserver import create_apiserver
from kubeedge_tw.cloud.tap import create_cloud_service
from kubeedge_tw.common import names
from kubeedge_tw.common.config import CLOUD, default_config, load_config
from kubeedge_tw.common.core import Core
from tests.integration.parts import LoopbackCloud, free_port, require_executable
from tests.integration.test_controllers_e2e import _sleep

GROUP = "devices.kubeedge.io/v1alpha2"


def node(name):
    """A Node as an operator would create it."""
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {
        "node-role.kubernetes.io/edge": ""}}}


def model(name):
    """A DeviceModel with one string property, ``power``."""
    return {"apiVersion": GROUP, "kind": "DeviceModel",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"properties": [{"name": "power", "type": {"string": {
                "accessMode": "ReadWrite", "defaultValue": "OFF"}}}]}}


def device(name, model_name, node_name, twins=("power",)):
    """A Device of ``model_name`` on ``node_name`` with desired ``twins``."""
    return {"apiVersion": GROUP, "kind": "Device",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"deviceModelRef": {"name": model_name},
                     "nodeSelector": {"nodeSelectorTerms": [{"matchExpressions": [
                         {"key": "", "operator": "In", "values": [node_name]}]}]}},
            "status": {"twins": [{"propertyName": t, "desired": {
                "value": "ON", "metadata": {"type": "string"}}} for t in twins]}}


class DeviceEventsTests(TestCase):
    """Warning Events for invalid Devices, with the cloud on an external API server."""

    timeout = 90

    @defer.inlineCallbacks
    def setUp(self):
        self.kubectl = require_executable("kubectl", "kubernetes-client")
        self.base = os.path.abspath(self.mktemp())
        os.makedirs(self.base)
        server_config = default_config(CLOUD, overrides={
            "stateDir": os.path.join(self.base, "cluster"),
            "modules.apiServer.address": "127.0.0.1", "modules.apiServer.port": free_port()})
        self.server = create_apiserver(Core("cluster", reactor, server_config), server_config,
                                       device_admission=False)
        self.server.startService()
        self.addCleanup(self._stop, self.server)
        yield self.server.when_ready()
        self.kubeconfig = self.server.kubeconfig_path
        cloud = LoopbackCloud(self.base, top={"kubeAPIConfig": {
            "kubeConfig": self.kubeconfig}})
        self.cloud = create_cloud_service(load_config(cloud.path, CLOUD), reactor)
        self.assertIsNone(getattr(self.cloud, "apiserver", None))
        self.cloud.startService()
        self.addCleanup(self._stop, self.cloud)
        yield self.cloud.bus.module(names.DEVICECONTROLLER).when_ready().addTimeout(
            30, reactor)

    @staticmethod
    def _stop(service):
        return service.stopService() if service.running else None

    @defer.inlineCallbacks
    def kubectl_run(self, *args, stdin=None, check=True):
        """Run kubectl on the cluster's kubeconfig (an object in ``stdin`` is applied
        from a file); fires with ``(stdout, exit code)``."""
        if stdin is not None:
            path = os.path.join(self.base, "obj-{}.json".format(free_port()))
            with open(path, "w") as f:
                json.dump(stdin, f)
            args = args + ("-f", path)
        out, err, code = yield getProcessOutputAndValue(
            self.kubectl, args, env=dict(os.environ, KUBECONFIG=self.kubeconfig))
        if check:
            self.assertEqual(code, 0, (args, err))
        defer.returnValue((out.decode(), code))

    def apply(self, obj):
        return self.kubectl_run("apply", stdin=obj)

    @defer.inlineCallbacks
    def until(self, read, seconds=30):
        """Poll ``read()`` (a Deferred) every 0.2 s until it gives a true value."""
        for _ in range(int(seconds / 0.2)):
            value = yield read()
            if value:
                defer.returnValue(value)
            yield _sleep(0.2)
        self.fail("condition not met within {}s".format(seconds))

    @defer.inlineCallbacks
    def warnings(self, reason):
        """``kubectl get events -o json``: the events with ``reason``."""
        out, _ = yield self.kubectl_run("get", "events", "-n", "default", "-o", "json")
        defer.returnValue([e for e in json.loads(out)["items"] if e.get("reason") == reason])

    @defer.inlineCallbacks
    def profile(self, node_name):
        """The device profile ConfigMap of ``node_name``, parsed, or None."""
        out, code = yield self.kubectl_run(
            "get", "configmap", "device-profile-config-" + node_name, "-n", "default",
            "-o", "json", check=False)
        defer.returnValue(json.loads(json.loads(out)["data"]["deviceProfile.json"])
                          if code == 0 else None)

    @defer.inlineCallbacks
    def test_missing_model(self):
        """A Device with a missing DeviceModel gets a Warning Event (kubectl get events)
        and no profile; once the model is created the device is delivered."""
        yield self.apply(node("edge-1"))
        yield self.apply(device("led-1", "led-model", "edge-1"))
        events = yield self.until(lambda: self.warnings("DeviceModelNotFound"))
        stored, _ = yield self.kubectl_run("get", "device", "led-1", "-o", "json")
        event, = events
        self.assertEqual((event["type"], event["message"], event["source"]["component"]),
                         ("Warning", 'deviceModelRef "led-model" not found in namespace '
                          "default", "devicecontroller"))
        ref = event["involvedObject"]
        self.assertEqual((ref["apiVersion"], ref["kind"], ref["name"], ref["namespace"],
                          ref["uid"]), (GROUP, "Device", "led-1", "default",
                                        json.loads(stored)["metadata"]["uid"]))
        table, _ = yield self.kubectl_run("get", "events", "-n", "default")
        self.assertIn("DeviceModelNotFound", table)
        self.assertIsNone((yield self.profile("edge-1")))
        yield self.apply(model("led-model"))
        profile = yield self.until(lambda: self.profile("edge-1"))
        self.assertEqual([d["name"] for d in profile["deviceInstances"]], ["led-1"])

    @defer.inlineCallbacks
    def test_missing_node_and_unknown_twin(self):
        """A Device on a missing node with a twin its model lacks gets NodeNotFound and
        UnknownTwinProperty Warnings; when the Node is created the device is delivered
        without that twin."""
        yield self.apply(model("lamp-model"))
        yield self.apply(device("lamp-1", "lamp-model", "edge-9",
                                twins=("power", "colour")))
        missing = yield self.until(lambda: self.warnings("NodeNotFound"))
        self.assertEqual(missing[0]["message"], 'node "edge-9" (spec.nodeSelector) not found')
        unknown = yield self.until(lambda: self.warnings("UnknownTwinProperty"))
        self.assertEqual(unknown[0]["message"], '"colour" in status.twins is not a property '
                         'of DeviceModel "lamp-model": not sent to the edge')
        self.assertIsNone((yield self.profile("edge-9")))
        yield self.apply(node("edge-9"))
        profile = yield self.until(lambda: self.profile("edge-9"))
        instance, = profile["deviceInstances"]
        self.assertEqual([t["propertyName"] for t in instance["twins"]], ["power"])
