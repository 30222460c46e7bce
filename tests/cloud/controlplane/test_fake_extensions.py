"""The extended fake API server checked against kube-apiserver's behaviour, over raw HTTP
(so that a mistake shared by the client and the fake cannot hide)."""

import json

from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from tests.cloud.controlplane.fake_extensions import ControlPlaneFakeAPI

RS = "/apis/apps/v1/namespaces/default/replicasets"
PODS = "/api/v1/namespaces/default/pods"


class ExtensionTests(SynchronousTestCase):
    """Deletion finalizers by propagation policy; PodScheduled on bind."""

    def setUp(self):
        self.clock = Clock()
        self.api = ControlPlaneFakeAPI(self.clock)
        self.stub = StubTreq(self.api)

    def call(self, method, path, body=None):
        """One request; ``(code, decoded body)``."""
        data = json.dumps(body).encode() if body is not None else None
        d = self.stub.request(method, "https://k8s.test" + path, data=data, headers={
            "Content-Type": ["application/json"], "Accept": ["application/json"]})
        self.stub.flush()
        response = self.successResultOf(d)
        content = self.successResultOf(response.content())
        self.stub.flush()
        return response.code, json.loads(content)

    def make_rs(self, name="rs"):
        """Create a ReplicaSet; returns it."""
        code, rs = self.call("POST", RS, {"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                          "metadata": {"name": name}, "spec": {}})
        self.assertEqual(code, 201)
        return rs

    def test_foreground_adds_finalizer(self):
        """Foreground deletion keeps the object with deletionTimestamp and the
        foregroundDeletion finalizer."""
        self.make_rs()
        code, rs = self.call("DELETE", RS + "/rs", {"propagationPolicy": "Foreground"})
        self.assertEqual(code, 200)
        self.assertEqual(rs["metadata"]["finalizers"], ["foregroundDeletion"])
        self.assertTrue(rs["metadata"]["deletionTimestamp"])
        self.assertEqual(self.call("GET", RS + "/rs")[0], 200)

    def test_orphan_adds_finalizer_and_removal_deletes(self):
        """Orphan deletion adds the orphan finalizer; removing it deletes the object."""
        self.make_rs()
        rs = self.call("DELETE", RS + "/rs", {"propagationPolicy": "Orphan"})[1]
        self.assertEqual(rs["metadata"]["finalizers"], ["orphan"])
        rs["metadata"]["finalizers"] = []
        self.call("PUT", RS + "/rs", rs)
        self.assertEqual(self.call("GET", RS + "/rs")[0], 404)

    def test_background_deletes_at_once(self):
        """Background (and no policy) deletes at once, as before."""
        self.make_rs("a")
        self.make_rs("b")
        self.call("DELETE", RS + "/a", {"propagationPolicy": "Background"})
        self.call("DELETE", RS + "/b")
        self.assertEqual(self.call("GET", RS + "/a")[0], 404)
        self.assertEqual(self.call("GET", RS + "/b")[0], 404)

    def test_uid_precondition(self):
        """A stale uid precondition is a 409 Conflict for foreground deletion too."""
        self.make_rs()
        code, status = self.call("DELETE", RS + "/rs", {
            "propagationPolicy": "Foreground", "preconditions": {"uid": "other"}})
        self.assertEqual((code, status["reason"]), (409, "Conflict"))

    def test_bind_sets_pod_scheduled(self):
        """A binding sets nodeName and PodScheduled=True; a second is 409."""
        self.call("POST", PODS, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                                 "spec": {"containers": [{"name": "c", "image": "x"}]}})
        binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"},
                   "target": {"kind": "Node", "name": "n1"}}
        self.assertEqual(self.call("POST", PODS + "/p/binding", binding)[0], 201)
        pod = self.call("GET", PODS + "/p")[1]
        self.assertEqual(pod["spec"]["nodeName"], "n1")
        self.assertEqual([(c["type"], c["status"]) for c in pod["status"]["conditions"]],
                         [("PodScheduled", "True")])
        self.assertEqual(self.call("POST", PODS + "/p/binding", binding)[0], 409)
