"""Unit tests for the HTTP layer: authentication, discovery, content negotiation, error
Status objects and watch streams, through a real twisted.web Site on a StringTransport."""

import os

from twisted.trial.unittest import SynchronousTestCase

from kubeedge_tw.cloud.apiserver.http import negotiate
from tests.cloud.apiserver.fakes import TestServer

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"

NODE = {"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "edge-1", "labels": {"node-role.kubernetes.io/edge": ""}},
        "status": {"conditions": [{"type": "Ready", "status": "True"}],
                   "nodeInfo": {"kubeletVersion": "v1.31.0"}}}


def configmap(name, data=None, labels=None):
    """A config map body."""
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "labels": labels or {}}, "data": data or {}}


class HTTPTests(SynchronousTestCase):
    """Requests and responses."""

    def setUp(self):
        self.server = TestServer(os.path.abspath(self.mktemp()), watch_timeout=100,
                                 bookmark_interval=60)
        self.addCleanup(self.server.close)

    def request(self, *args, **kwargs):
        return self.server.request(*args, **kwargs)

    def test_anonymous_is_401(self):
        """No or a wrong token is a 401 Unauthorized Status."""
        for token in (None, "wrong"):
            response = self.request("GET", "/api/v1/namespaces", token=token)
            self.assertEqual(response.code, 401)
            self.assertEqual(response.json()["reason"], "Unauthorized")

    def test_discovery(self):
        """/api, /apis, group and resource lists, /version."""
        self.assertEqual(self.request("GET", "/api").json()["versions"], ["v1"])
        groups = {g["name"] for g in self.request("GET", "/apis").json()["groups"]}
        self.assertTrue({"apps", "coordination.k8s.io", "apiextensions.k8s.io",
                         "devices.kubeedge.io", "reliablesyncs.kubeedge.io"} <= groups)
        resources = {r["name"]: r for r in self.request("GET", "/api/v1").json()["resources"]}
        self.assertEqual(resources["pods"]["shortNames"], ["po"])
        self.assertIn("pods/status", resources)
        self.assertEqual(resources["pods/binding"]["verbs"], ["create"])
        apps = self.request("GET", "/apis/apps/v1").json()
        scale = [r for r in apps["resources"] if r["name"] == "deployments/scale"][0]
        self.assertEqual((scale["group"], scale["kind"]), ("autoscaling", "Scale"))
        self.assertEqual(self.request("GET", "/apis/apps").json()["preferredVersion"]
                         ["groupVersion"], "apps/v1")
        self.assertEqual(self.request("GET", "/version").json()["major"], "1")
        self.assertEqual(self.request("GET", "/apis/nope").code, 404)

    def test_openapi(self):
        """v3 declares fieldValidation on PATCH per kind; v2 protobuf is refused."""
        root = self.request("GET", "/openapi/v3").json()
        url = root["paths"]["api/v1"]["serverRelativeURL"]
        document = self.request("GET", url).json()
        patch = document["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"]
        self.assertEqual(patch["x-kubernetes-group-version-kind"]["kind"], "Pod")
        self.assertIn("fieldValidation", [p["name"] for p in patch["parameters"]])
        self.assertNotIn("application/strategic-merge-patch+json",
                         patch["requestBody"]["content"])
        self.assertIn("apis/devices.kubeedge.io/v1alpha2", root["paths"])
        refused = self.request("GET", "/openapi/v2", headers={
            "Accept": "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"})
        self.assertEqual(refused.code, 406)
        self.assertEqual(self.request("GET", "/openapi/v2", headers={
            "Accept": "application/json"}).json()["swagger"], "2.0")

    def test_crud_round_trip(self):
        """POST 201, GET, PUT, PATCH, DELETE with JSON bodies."""
        created = self.request("POST", "/api/v1/namespaces/default/configmaps",
                               configmap("c", {"a": "1"}))
        self.assertEqual(created.code, 201)
        self.assertEqual(self.request("GET", "/api/v1/namespaces/default/configmaps/c")
                         .json()["data"], {"a": "1"})
        body = created.json()
        body["data"]["a"] = "2"
        self.assertEqual(self.request("PUT", "/api/v1/namespaces/default/configmaps/c",
                                      body).code, 200)
        patched = self.request("PATCH", "/api/v1/namespaces/default/configmaps/c",
                               {"data": {"b": "3"}}, headers={
                                   "Content-Type": "application/merge-patch+json"})
        self.assertEqual(patched.json()["data"], {"a": "2", "b": "3"})
        deleted = self.request("DELETE", "/api/v1/namespaces/default/configmaps/c",
                               {"kind": "DeleteOptions", "apiVersion": "v1",
                                "propagationPolicy": "Background"})
        self.assertEqual(deleted.code, 200)
        self.assertEqual(self.request("GET", "/api/v1/namespaces/default/configmaps/c").code,
                         404)

    def test_yaml_body(self):
        """A YAML body is accepted with a YAML content type."""
        body = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: y\ndata:\n  k: v\n"
        response = self.request("POST", "/api/v1/namespaces/default/configmaps", body,
                                headers={"Content-Type": "application/yaml"})
        self.assertEqual(response.code, 201)

    def test_errors_are_status_objects(self):
        """404, 409, 422, 400, 415 and 405 come back as Status objects, never 500."""
        path = "/api/v1/namespaces/default/configmaps"
        self.request("POST", path, configmap("c"))
        cases = [
            (("GET", path + "/nope"), 404, "NotFound"),
            (("POST", path, configmap("c")), 409, "AlreadyExists"),
            (("POST", path, configmap("Bad_Name")), 422, "Invalid"),
            (("POST", path, b'{"metadata": {'), 400, "BadRequest"),
            (("POST", path, b"[1]"), 400, "BadRequest"),
            (("POST", path, b"{\"data\": NaN}"), 400, "BadRequest"),
            (("POST", path, {"metadata": {"name": "x"}, "data": "str"}), 400, "BadRequest"),
            (("POST", path, b"\x0a\x0bk8s", {"Content-Type":
                                              "application/vnd.kubernetes.protobuf"}), 415,
             "UnsupportedMediaType"),
            (("PATCH", path + "/c", b"{}", {"Content-Type": "text/plain"}), 415,
             "UnsupportedMediaType"),
            (("PATCH", path + "/c", b"{}", {"Content-Type": "application/apply-patch+yaml"}),
             415, "UnsupportedMediaType"),
            (("PUT", path, configmap("x")), 405, "MethodNotAllowed"),
            (("GET", "/api/v1/namespaces/default/nothings"), 404, "NotFound"),
            (("GET", path + "?labelSelector=a%20in%20b"), 400, "BadRequest"),
            (("GET", "/api/v1/pods?fieldSelector=spec.nope%3Dx"), 400, "BadRequest"),
            (("POST", "/api/v1/namespaces/missing/configmaps", configmap("z")), 404,
             "NotFound"),
        ]
        for args, code, reason in cases:
            response = self.request(*args[:3], headers=args[3] if len(args) > 3 else None)
            self.assertEqual((response.code, response.json().get("reason")), (code, reason),
                             (args, response.body))
            self.assertEqual(response.json()["kind"], "Status")
        invalid = self.request("POST", path, configmap("Bad_Name")).json()
        self.assertEqual(invalid["details"]["causes"][0]["field"], "metadata.name")

    def test_table_output(self):
        """kubectl get's Accept header gets a Table with the node printer's cells."""
        self.request("POST", "/api/v1/nodes", NODE)
        self.server.clock.advance(90)
        table = self.request("GET", "/api/v1/nodes", headers={"Accept": TABLE}).json()
        self.assertEqual(table["kind"], "Table")
        self.assertEqual([c["name"] for c in table["columnDefinitions"]][:5],
                         ["Name", "Status", "Roles", "Age", "Version"])
        self.assertEqual(table["rows"][0]["cells"][:5],
                         ["edge-1", "Ready", "edge", "90s", "v1.31.0"])
        one = self.request("GET", "/api/v1/nodes/edge-1", headers={"Accept": TABLE}).json()
        self.assertEqual(one["rows"][0]["cells"][0], "edge-1")

    def test_list_pages(self):
        """limit and continue page a list; the token is opaque and validated."""
        for i in range(3):
            self.request("POST", "/api/v1/namespaces/default/configmaps",
                         configmap("c{}".format(i)))
        first = self.request("GET", "/api/v1/namespaces/default/configmaps?limit=2").json()
        self.assertEqual([i["metadata"]["name"] for i in first["items"]], ["c0", "c1"])
        token = first["metadata"]["continue"]
        rest = self.request("GET", "/api/v1/namespaces/default/configmaps?limit=2&continue=" +
                            token).json()
        self.assertEqual([i["metadata"]["name"] for i in rest["items"]], ["c2"])
        self.assertNotIn("continue", rest["metadata"])
        self.assertEqual(self.request("GET", "/api/v1/namespaces/default/configmaps?"
                                             "continue=garbage!").code, 400)

    def test_watch_stream(self):
        """A watch sends existing objects as ADDED, then changes, as chunked JSON lines;
        selectors turn a change that stops matching into DELETED."""
        path = "/api/v1/namespaces/default/configmaps"
        self.request("POST", path, configmap("a", labels={"w": "1"}))
        watcher = self.server.connect()
        response = watcher.send("GET", path + "?watch=true&labelSelector=w%3D1")
        self.assertEqual(response.code, 200)
        self.assertFalse(response.complete)
        self.request("POST", path, configmap("b", labels={"w": "1"}))
        self.request("POST", path, configmap("c", labels={"w": "2"}))
        self.request("PATCH", path + "/a", {"metadata": {"labels": {"w": "2"}}},
                     headers={"Content-Type": "application/merge-patch+json"})
        events = watcher.response().lines()
        self.assertEqual([(e["type"], e["object"]["metadata"]["name"]) for e in events],
                         [("ADDED", "a"), ("ADDED", "b"), ("DELETED", "a")])
        watcher.close()
        self.assertEqual(self.server.resource.watches, set())

    def test_watch_resume_and_gone(self):
        """A watch from a resourceVersion replays later changes; a compacted one gets an
        ERROR event with a 410 Expired Status."""
        path = "/api/v1/namespaces/default/configmaps"
        first = self.request("POST", path, configmap("a")).json()
        self.request("POST", path, configmap("b"))
        watcher = self.server.connect()
        rv = first["metadata"]["resourceVersion"]
        events = watcher.send("GET", path + "?watch=1&resourceVersion=" + rv).lines()
        self.assertEqual([e["object"]["metadata"]["name"] for e in events], ["b"])
        watcher.close()
        gone = self.server.connect().send("GET", path + "?watch=1&resourceVersion=0")
        self.assertEqual(len(gone.lines()), 2)
        expired = self.server.connect().send(
            "GET", path + "?watch=1&resourceVersion=-5")
        self.assertEqual(expired.code, 200)
        event = expired.lines()[0]
        self.assertEqual((event["type"], event["object"]["code"], event["object"]["reason"]),
                         ("ERROR", 410, "Expired"))
        self.assertTrue(expired.complete)

    def test_watch_bookmarks_and_timeout(self):
        """Bookmarks come every interval on the clock; the watch ends at its timeout."""
        watcher = self.server.connect()
        watcher.send("GET", "/api/v1/nodes?watch=1&allowWatchBookmarks=true"
                            "&timeoutSeconds=150")
        self.server.clock.advance(60)
        events = watcher.response().lines()
        self.assertEqual(events[-1]["type"], "BOOKMARK")
        self.assertEqual(events[-1]["object"]["metadata"]["resourceVersion"],
                         str(self.server.store.current_rv))
        self.server.clock.advance(90)
        self.assertTrue(watcher.response().complete)
        watcher.close()
        self.assertEqual(self.server.clock.getDelayedCalls(), [])

    def test_watch_table(self):
        """kubectl get -w: each event's object is a Table; only the first has columns."""
        watcher = self.server.connect()
        watcher.send("GET", "/api/v1/nodes?watch=1", headers={"Accept": TABLE})
        self.request("POST", "/api/v1/nodes", NODE)
        self.request("PATCH", "/api/v1/nodes/edge-1", {"metadata": {"labels": {"x": "y"}}},
                     headers={"Content-Type": "application/merge-patch+json"})
        events = watcher.response().lines()
        self.assertEqual([e["object"]["kind"] for e in events], ["Table", "Table"])
        self.assertIsNotNone(events[0]["object"]["columnDefinitions"])
        self.assertIsNone(events[1]["object"]["columnDefinitions"])
        self.assertEqual(events[1]["object"]["rows"][0]["cells"][1], "Ready")
        watcher.close()

    def test_subresources_over_http(self):
        """status, scale and binding paths."""
        self.request("POST", "/api/v1/namespaces/default/pods", {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "x"}]}})
        bound = self.request("POST", "/api/v1/namespaces/default/pods/p/binding", {
            "apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"},
            "target": {"kind": "Node", "name": "edge-1"}})
        self.assertEqual(bound.code, 201)
        status = self.request("PATCH", "/api/v1/namespaces/default/pods/p/status",
                              {"status": {"phase": "Running", "podIP": "10.0.0.9"}},
                              headers={"Content-Type": "application/merge-patch+json"})
        self.assertEqual(status.json()["status"]["phase"], "Running")
        self.assertEqual(self.request("GET", "/api/v1/namespaces/default/pods/p/nope").code,
                         404)

    def test_oversized_body(self):
        """A body over the limit is answered 413 without being kept, even before
        authentication."""
        big = b'{"data": "' + b"x" * (3 * 1024 * 1024) + b'"}'
        for token in ("secret", None):
            response = self.request("POST", "/api/v1/namespaces/default/configmaps", big,
                                    token=token)
            self.assertEqual((response.code, response.json()["reason"]),
                             (413, "RequestEntityTooLarge"))

    def test_pretty(self):
        """?pretty=true indents the JSON."""
        body = self.request("GET", "/api/v1/namespaces/default?pretty=true").body
        self.assertIn(b'\n  "kind"', body)

    def test_negotiate(self):
        """Accept headers pick Table, partial metadata or JSON."""
        self.assertEqual(negotiate(TABLE), ("table", "v1"))
        self.assertEqual(negotiate("application/json;as=PartialObjectMetadataList;v=v1;"
                                   "g=meta.k8s.io"), ("partial", "v1"))
        self.assertEqual(negotiate("application/json"), ("json", None))
        self.assertEqual(negotiate(""), ("json", None))
