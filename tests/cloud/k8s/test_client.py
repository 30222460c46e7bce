"""KubeClient verbs, headers, errors, timeouts and rate limiting, against the fake server."""

import json

from treq.testing import StubTreq
from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from kubeedge_tw.cloud.k8s import errors
from kubeedge_tw.cloud.k8s.client import USER_AGENT, KubeClient
from tests.cloud.k8s.fake_apiserver import FakeCluster


def configmap(name, namespace="default", **data):
    """A ConfigMap manifest."""
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace}, "data": data}


def pod(name, node=None):
    """A pod manifest in ``default``."""
    obj = {"metadata": {"name": name, "namespace": "default"},
           "spec": {"containers": [{"name": "c", "image": "nginx"}]}}
    if node:
        obj["spec"]["nodeName"] = node
    return obj


class ClientTestCase(SynchronousTestCase):
    """A fake cluster and a client per test."""

    def setUp(self):
        self.cluster = FakeCluster()
        self.api = self.cluster.api
        self.client = self.cluster.client(token="s3cret")

    def ok(self, d):
        """The result of a Deferred that must have succeeded synchronously."""
        return self.successResultOf(d)

    def fails(self, d, *types):
        """The exception of a Deferred that must have failed with one of ``types``."""
        return self.failureResultOf(d, *types).value

    def last_headers(self):
        return self.api.request_headers[-1]


class VerbTests(ClientTestCase):
    """CRUD verbs map to the right requests and results."""

    def test_create_get_list(self):
        """create returns the stored object; get and list see it."""
        created = self.ok(self.client.create("configmaps", configmap("a", k="v")))
        self.assertEqual(created["metadata"]["resourceVersion"], str(self.api.rv))
        got = self.ok(self.client.get("configmaps", "a", "default"))
        self.assertEqual(got["data"], {"k": "v"})
        listed = self.ok(self.client.list("configmaps", "default"))
        self.assertEqual(listed["kind"], "ConfigMapList")
        self.assertEqual([i["metadata"]["name"] for i in listed["items"]], ["a"])
        self.assertEqual(self.api.requests[0],
                         ("POST", "/api/v1/namespaces/default/configmaps"))

    def test_create_namespace_argument(self):
        """namespace= wins over an object without one; neither is a ValueError."""
        obj = {"metadata": {"name": "x"}}
        self.ok(self.client.create("configmaps", obj, namespace="kube-system"))
        self.assertEqual(self.api.requests[-1][1], "/api/v1/namespaces/kube-system/configmaps")
        self.assertRaises(ValueError, self.client.create, "configmaps", {"metadata": {"name": "y"}})

    def test_cluster_scoped_create(self):
        """Nodes are created without a namespace."""
        self.ok(self.client.create("nodes", {"metadata": {"name": "edge-1"}}))
        self.assertEqual(self.api.requests[-1], ("POST", "/api/v1/nodes"))
        self.assertEqual(self.ok(self.client.get("nodes", "edge-1"))["kind"], "Node")

    def test_list_query(self):
        """Selectors, resourceVersion, limit and continue go to the query string."""
        self.ok(self.client.list("pods", label_selector="app in (a,b)",
                                 field_selector="spec.nodeName=edge-1", resource_version="0",
                                 limit=10))
        self.assertEqual(self.api.requests[-1][1],
                         "/api/v1/pods?labelSelector=app%20in%20%28a%2Cb%29&fieldSelector="
                         "spec.nodeName%3Dedge-1&resourceVersion=0&limit=10")

    def test_paging(self):
        """limit and continue_token page through a list."""
        for name in "abc":
            self.ok(self.client.create("configmaps", configmap(name)))
        page = self.ok(self.client.list("configmaps", limit=2))
        rest = self.ok(self.client.list("configmaps", limit=2,
                                        continue_token=page["metadata"]["continue"]))
        self.assertEqual([i["metadata"]["name"] for i in page["items"] + rest["items"]],
                         ["a", "b", "c"])

    def test_update_and_conflict(self):
        """update succeeds with the current resourceVersion and raises Conflict when stale."""
        created = self.ok(self.client.create("configmaps", configmap("a", k="1")))
        created["data"]["k"] = "2"
        updated = self.ok(self.client.update("configmaps", created))
        self.assertEqual(updated["data"], {"k": "2"})
        created["data"]["k"] = "3"
        e = self.fails(self.client.update("configmaps", created), errors.Conflict)
        self.assertEqual((e.code, e.reason), (409, "Conflict"))
        self.assertNotIsInstance(e, errors.AlreadyExists)

    def test_already_exists(self):
        """Creating a taken name raises AlreadyExists with the Status details."""
        self.ok(self.client.create("configmaps", configmap("a")))
        e = self.fails(self.client.create("configmaps", configmap("a")), errors.AlreadyExists)
        self.assertEqual(e.details["name"], "a")

    def test_not_found(self):
        """A missing object raises NotFound."""
        e = self.fails(self.client.get("pods", "nope", "default"), errors.NotFound)
        self.assertEqual(e.message, 'pods "nope" not found')

    def test_invalid(self):
        """A rejected object raises Invalid with the field causes."""
        e = self.fails(self.client.create("configmaps", configmap("Not_Valid")), errors.Invalid)
        self.assertEqual(e.causes[0]["field"], "metadata.name")

    def test_update_status(self):
        """update_status PUTs to /status and changes only the status."""
        created = self.ok(self.client.create("pods", pod("p")))
        created["status"] = {"phase": "Running"}
        created["spec"]["nodeName"] = "ignored"
        result = self.ok(self.client.update_status("pods", created))
        self.assertEqual(self.api.requests[-1],
                         ("PUT", "/api/v1/namespaces/default/pods/p/status"))
        self.assertEqual(result["status"]["phase"], "Running")
        self.assertNotIn("nodeName", result["spec"])

    def test_patch_types(self):
        """Each patch_type sends its content type and the server applies it."""
        self.ok(self.client.create("pods", pod("p")))
        self.ok(self.client.patch("pods", "p", {"metadata": {"labels": {"a": "1"}}}, "default"))
        self.assertEqual(self.last_headers().getRawHeaders("content-type"),
                         ["application/merge-patch+json"])
        result = self.ok(self.client.patch(
            "pods", "p", {"spec": {"containers": [{"name": "side", "image": "busybox"}]}},
            "default", patch_type="strategic"))
        self.assertEqual(self.last_headers().getRawHeaders("content-type"),
                         ["application/strategic-merge-patch+json"])
        self.assertEqual(len(result["spec"]["containers"]), 2)
        result = self.ok(self.client.patch(
            "pods", "p", [{"op": "replace", "path": "/metadata/labels/a", "value": "2"}],
            "default", patch_type="json"))
        self.assertEqual(self.last_headers().getRawHeaders("content-type"),
                         ["application/json-patch+json"])
        self.assertEqual(result["metadata"]["labels"], {"a": "2"})
        self.assertRaises(ValueError, self.client.patch, "pods", "p", {}, "default",
                          patch_type="apply")

    def test_patch_status(self):
        """patch_status PATCHes /status (how KubeEdge reports node status)."""
        self.ok(self.client.create("nodes", {"metadata": {"name": "edge-1"}}))
        result = self.ok(self.client.patch_status(
            "nodes", "edge-1", {"status": {"conditions": [{"type": "Ready", "status": "True"}]}},
            patch_type="strategic"))
        self.assertEqual(self.api.requests[-1], ("PATCH", "/api/v1/nodes/edge-1/status"))
        self.assertEqual(result["status"]["conditions"][0]["status"], "True")

    def test_delete_options(self):
        """delete sends DeleteOptions: grace period, propagation policy, preconditions."""
        created = self.ok(self.client.create("pods", pod("p", node="edge-1")))
        held = self.ok(self.client.delete("pods", "p", "default"))
        self.assertEqual(held["metadata"]["deletionGracePeriodSeconds"], 30)
        self.fails(self.client.delete("pods", "p", "default", grace_period_seconds=0,
                                      preconditions={"uid": "wrong"}), errors.Conflict)
        self.ok(self.client.delete("pods", "p", "default", grace_period_seconds=0,
                                   propagation_policy="Background",
                                   preconditions={"uid": created["metadata"]["uid"]}))
        self.fails(self.client.get("pods", "p", "default"), errors.NotFound)
        self.assertRaises(ValueError, self.client.delete, "pods", "p", "default",
                          propagation_policy="Sometimes")
        self.assertRaises(ValueError, self.client.delete, "pods", "p", "default",
                          preconditions={"name": "x"})

    def test_delete_body(self):
        """The DeleteOptions body is sent only when an option is given."""
        self.ok(self.client.create("configmaps", configmap("a")))
        self.ok(self.client.create("configmaps", configmap("b")))
        self.ok(self.client.delete("configmaps", "a", "default"))
        self.assertIsNone(self.last_headers().getRawHeaders("content-type"))
        self.ok(self.client.delete("configmaps", "b", "default", grace_period_seconds=5))
        self.assertEqual(self.last_headers().getRawHeaders("content-type"), ["application/json"])

    def test_binding_subresource(self):
        """create(subresource="binding") POSTs a Binding to the named pod."""
        self.ok(self.client.create("pods", pod("p")))
        binding = {"apiVersion": "v1", "kind": "Binding",
                   "metadata": {"name": "p", "namespace": "default"},
                   "target": {"apiVersion": "v1", "kind": "Node", "name": "edge-1"}}
        self.ok(self.client.create("pods", binding, subresource="binding"))
        self.assertEqual(self.api.requests[-1],
                         ("POST", "/api/v1/namespaces/default/pods/p/binding"))
        self.assertEqual(self.ok(self.client.get("pods", "p", "default"))["spec"]["nodeName"],
                         "edge-1")

    def test_scale_subresource(self):
        """get/update on the scale subresource."""
        self.ok(self.client.create("deployments", {"metadata": {"name": "d", "namespace": "ns"},
                                                   "spec": {"replicas": 1}}))
        scale = self.ok(self.client.get("deployments", "d", "ns", subresource="scale"))
        scale["spec"]["replicas"] = 3
        self.ok(self.client.update("deployments", scale, subresource="scale"))
        self.assertEqual(self.ok(self.client.get("deployments", "d", "ns"))["spec"]["replicas"], 3)

    def test_custom_resources(self):
        """KubeEdge CRDs are addressed in their groups."""
        device = {"apiVersion": "devices.kubeedge.io/v1alpha2", "kind": "Device",
                  "metadata": {"name": "sensor", "namespace": "default"}, "spec": {}}
        self.ok(self.client.create("devices", device))
        self.assertEqual(self.api.requests[-1][1],
                         "/apis/devices.kubeedge.io/v1alpha2/namespaces/default/devices")
        self.ok(self.client.patch_status("devices", "sensor", {"status": {"twins": []}},
                                         "default"))


class HeaderTests(ClientTestCase):
    """What every request carries."""

    def test_standard_headers(self):
        """Bearer token, JSON Accept and our User-Agent on every request."""
        self.ok(self.client.list("pods"))
        headers = self.last_headers()
        self.assertEqual(headers.getRawHeaders("authorization"), ["Bearer s3cret"])
        self.assertEqual(headers.getRawHeaders("accept"), ["application/json"])
        self.assertEqual(headers.getRawHeaders("user-agent"), [USER_AGENT])

    def test_token_source_is_asked_per_request(self):
        """A callable token is read for each request, so a rotated token is used."""
        tokens = iter(["one", "two"])
        client = self.cluster.client(token=lambda: next(tokens))
        self.ok(client.list("pods"))
        self.ok(client.list("pods"))
        self.assertEqual([h.getRawHeaders("authorization")[0] for h in self.api.request_headers],
                         ["Bearer one", "Bearer two"])

    def test_no_token(self):
        """Without a token no Authorization header is sent."""
        self.ok(self.cluster.client().list("pods"))
        self.assertIsNone(self.last_headers().getRawHeaders("authorization"))

    def test_unauthorized(self):
        """A refused token raises Unauthorized."""
        self.api.authenticate = lambda r: r.getHeader(b"authorization") == b"Bearer right"
        self.fails(self.client.list("pods"), errors.Unauthorized)

    def test_body_is_json(self):
        """create sends compact JSON with Content-Type application/json."""
        self.ok(self.client.create("configmaps", configmap("a", k="ü")))
        self.assertEqual(self.last_headers().getRawHeaders("content-type"), ["application/json"])


class Hanging(Resource):
    """Answers nothing, or a fixed raw response."""

    isLeaf = True

    def __init__(self, code=None, body=b"", content_type=b"text/html"):
        super().__init__()
        self.code, self.body, self.content_type = code, body, content_type

    def render(self, request):
        if self.code is None:
            return NOT_DONE_YET
        request.setResponseCode(self.code)
        request.setHeader(b"content-type", self.content_type)
        return self.body


class FailureTests(SynchronousTestCase):
    """Transport failures and odd responses become K8sErrors."""

    def client_for(self, resource, **kwargs):
        from twisted.internet.task import Clock
        self.clock = Clock()
        return KubeClient(StubTreq(resource), "https://k8s.test", self.clock, qps=None, **kwargs)

    def test_connection_failure(self):
        """A cut connection raises K8sConnectionError, never a raw treq exception."""
        cluster = FakeCluster()
        cluster.api.down = True
        d = cluster.client().get("pods", "x", "default")
        cluster.flush()
        e = self.failureResultOf(d, errors.K8sConnectionError).value
        self.assertIn("GET https://k8s.test:6443/api/v1/namespaces/default/pods/x", str(e))
        self.assertIsNone(e.code)

    def test_non_status_error_body(self):
        """A proxy's HTML error page becomes the error class of its HTTP code."""
        client = self.client_for(Hanging(502, b"<html>bad gateway</html>"))
        e = self.failureResultOf(client.get("pods", "x", "ns"), errors.K8sError).value
        self.assertEqual((e.code, e.status["code"]), (502, 502))
        self.assertIn("bad gateway", e.message)

    def test_non_json_success(self):
        """A 200 that is not JSON raises K8sError InvalidResponse."""
        client = self.client_for(Hanging(200, b"<html>", b"text/html"))
        e = self.failureResultOf(client.get("pods", "x", "ns"), errors.K8sError).value
        self.assertEqual(e.reason, "InvalidResponse")

    def test_request_timeout(self):
        """A request that gets no answer fails with K8sTimeout after request_timeout."""
        client = self.client_for(Hanging(), request_timeout=10)
        d = client.get("pods", "x", "ns")
        self.clock.advance(9)
        self.assertNoResult(d)
        self.clock.advance(1)
        self.failureResultOf(d, errors.K8sTimeout)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_watch_start_timeout(self):
        """A watch whose response never starts fails with K8sTimeout too."""
        client = self.client_for(Hanging(), request_timeout=10)
        d = client.watch("pods", lambda t, o: None)
        self.clock.advance(10)
        self.failureResultOf(d, errors.K8sTimeout)

    def test_no_timeout(self):
        """request_timeout=None leaves no timer behind."""
        client = self.client_for(Hanging(), request_timeout=None)
        d = client.get("pods", "x", "ns")
        self.assertEqual(self.clock.getDelayedCalls(), [])
        d.cancel()
        self.failureResultOf(d, defer.CancelledError)


class RateLimitTests(SynchronousTestCase):
    """qps/burst throttle requests on the injected clock."""

    def test_requests_wait_for_tokens(self):
        """With qps 2, burst 1 the second request goes out 0.5 s after the first."""
        cluster = FakeCluster()
        client = cluster.client(qps=2, burst=1)
        first, second = client.list("pods"), client.list("pods")
        self.successResultOf(first)
        self.assertNoResult(second)
        self.assertEqual(len(cluster.api.requests), 1)
        cluster.clock.advance(0.5)
        self.successResultOf(second)
        self.assertEqual(len(cluster.api.requests), 2)

    def test_close_cancels_waiting_requests(self):
        """close() fails requests still waiting for a token and calls on_close."""
        cluster = FakeCluster()
        closed = []
        client = cluster.client(qps=1, burst=1, on_close=lambda: closed.append(True))
        client.list("pods")
        waiting = client.list("pods")
        self.successResultOf(client.close())
        self.failureResultOf(waiting, defer.CancelledError)
        self.assertEqual(closed, [True])
        self.assertEqual(cluster.clock.getDelayedCalls(), [])

    def test_url(self):
        """url() joins server, path and an encoded query, dropping None values."""
        client = FakeCluster().client()
        self.assertEqual(client.url("pods", "ns", query={"watch": "true", "x": None,
                                                         "labelSelector": "a=b"}),
                         "https://k8s.test:6443/api/v1/namespaces/ns/pods?watch=true&"
                         "labelSelector=a%3Db")
        prefixed = KubeClient(None, "https://h/prefix/", None, qps=None)
        self.assertEqual(prefixed.url("nodes", name="n"), "https://h/prefix/api/v1/nodes/n")

    def test_json_body_roundtrip(self):
        """Non-ASCII data survives the round trip."""
        cluster = FakeCluster()
        client = cluster.client()
        self.successResultOf(client.create("configmaps", configmap("a", k="ü€")))
        self.assertEqual(cluster.api.object("configmaps", "a", "default")["data"], {"k": "ü€"})
        self.assertEqual(json.loads(json.dumps({"k": "ü€"})), {"k": "ü€"})
