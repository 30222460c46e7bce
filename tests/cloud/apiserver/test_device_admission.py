"""Unit tests for the API server's ``device_admission`` option: on (the default) it
refuses Devices as KubeEdge's admission webhook does; off it stores them, as a cluster
without the webhook does."""

import copy
import json
import os

from twisted.trial.unittest import SynchronousTestCase

from kubeedge_tw.cloud.apiserver import errors
from tests.cloud.apiserver.fakes import TestServer

DEVICE = {"metadata": {"name": "lamp"},
          "spec": {"deviceModelRef": {"name": "bulb"}, "nodeSelector": {
              "nodeSelectorTerms": [{"matchExpressions": [
                  {"key": "", "operator": "In", "values": ["edge-9"]}]}]}},
          "status": {"twins": [{"propertyName": "power", "desired": {"value": "ON"}}]}}


class DeviceAdmissionTests(SynchronousTestCase):
    """The Device reference checks can be switched off, and only those."""

    def setUp(self):
        self.server = TestServer(os.path.abspath(self.mktemp()))
        self.addCleanup(self.server.close)
        self.api = self.server.api
        self.devices = self.server.registry.get("devices.kubeedge.io", "v1alpha2", "devices")

    def test_on_by_default(self):
        """By default a Device with a missing model and node is refused (422)."""
        self.assertTrue(self.api.device_admission)
        e = self.failureResultOf(self.api.create(self.devices, "default",
                                                 copy.deepcopy(DEVICE)), errors.APIError).value
        self.assertEqual(e.code, 422)

    def test_off_stores_invalid_devices(self):
        """Off, the same Device is created, updated and patched; the rest of validation
        still applies."""
        self.api.device_admission = False
        created = self.successResultOf(self.api.create(self.devices, "default",
                                                       copy.deepcopy(DEVICE)))
        self.assertEqual(created["spec"]["deviceModelRef"], {"name": "bulb"})
        self.successResultOf(self.api.patch(
            self.devices, "default", "lamp", "application/merge-patch+json",
            {"spec": {"deviceModelRef": {"name": "other"}}}))
        stored = json.loads(self.successResultOf(self.api.get(self.devices, "default",
                                                              "lamp")))
        self.assertEqual(stored["spec"]["deviceModelRef"], {"name": "other"})
        stored["status"]["twins"][0]["propertyName"] = "colour"
        self.successResultOf(self.api.update(self.devices, "default", "lamp", stored))
        bad = copy.deepcopy(DEVICE)
        bad["metadata"]["name"] = "Not_A_Name"
        self.assertEqual(self.failureResultOf(self.api.create(
            self.devices, "default", bad), errors.APIError).value.code, 422)
