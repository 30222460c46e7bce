"""The fake API server checked against Kubernetes semantics, over raw HTTP.

These tests talk to :class:`~tests.cloud.k8s.fake_apiserver.FakeKubeAPI` with plain treq
requests (``StubTreq``), not through ``KubeClient``, so a mistake shared by the client and
the fake cannot hide itself. Each expectation is what a kube-apiserver v1.2x answers.
"""

import json

from treq.testing import StubTreq
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from tests.cloud.k8s.fake_apiserver import (
    FakeKubeAPI, json_patch, merge_patch, strategic_merge_patch)

PODS = "/api/v1/namespaces/default/pods"


def pod(name, labels=None, node=None, **extra):
    """A minimal pod manifest."""
    obj = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "labels": labels or {}},
           "spec": {"containers": [{"name": "c", "image": "nginx"}]}}
    if node:
        obj["spec"]["nodeName"] = node
    obj.update(extra)
    return obj


class Lines(Protocol):
    """Collects a streamed body as decoded JSON lines."""

    def __init__(self):
        self.buffer = b""
        self.events = []
        self.ended = None

    def dataReceived(self, data):
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        self.events.extend(json.loads(line) for line in lines if line.strip())

    def connectionLost(self, reason):
        self.ended = reason


class FakeTestCase(SynchronousTestCase):
    """A fresh fake per test and raw-HTTP helpers."""

    def setUp(self):
        self.clock = Clock()
        self.api = FakeKubeAPI(self.clock)
        self.stub = StubTreq(self.api)

    def call(self, method, path, body=None, content_type="application/json", raw=None):
        """One request; returns ``(code, decoded body)``."""
        headers = {"Accept": ["application/json"]}
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
        if data is not None:
            headers["Content-Type"] = [content_type]
        response = self.successResultOf(self.stub.request(method, "https://k8s" + path,
                                                          headers=headers, data=data))
        content = self.successResultOf(response.content())
        return response.code, json.loads(content) if content else None

    def watch(self, path):
        """Open a watch; returns ``(response, Lines)``."""
        response = self.successResultOf(self.stub.request(
            "GET", "https://k8s" + path, unbuffered=True))
        lines = Lines()
        response.deliverBody(lines)
        self.stub.flush()
        return response, lines

    def create(self, obj, path=PODS):
        """POST ``obj``; asserts 201 and returns the stored object."""
        code, body = self.call("POST", path, obj)
        self.assertEqual(code, 201, body)
        return body


class CRUDTests(FakeTestCase):
    """Create, get, update, delete and their Status errors."""

    def test_create_fills_server_fields(self):
        """create sets uid, creationTimestamp, namespace, resourceVersion, kind and apiVersion."""
        created = self.create({"metadata": {"name": "p1"}, "spec": {}})
        meta = created["metadata"]
        self.assertEqual((created["kind"], created["apiVersion"]), ("Pod", "v1"))
        self.assertEqual(meta["namespace"], "default")
        self.assertTrue(meta["uid"])
        self.assertEqual(meta["creationTimestamp"], "1970-01-01T00:00:00Z")
        self.assertEqual(meta["resourceVersion"], "1001")

    def test_resource_versions_increase_across_types(self):
        """One cluster-wide resourceVersion counter, bumped by every write."""
        a = self.create(pod("a"))
        b = self.create({"metadata": {"name": "cm"}}, "/api/v1/namespaces/default/configmaps")
        self.assertLess(int(a["metadata"]["resourceVersion"]),
                        int(b["metadata"]["resourceVersion"]))

    def test_generate_name(self):
        """generateName gets a five-character suffix."""
        created = self.create({"metadata": {"generateName": "web-"}})
        self.assertRegex(created["metadata"]["name"], r"^web-[a-z0-9]{5}$")

    def test_create_without_name_is_invalid(self):
        """No name and no generateName: 422 Invalid with the field in causes."""
        code, body = self.call("POST", PODS, {"metadata": {}})
        self.assertEqual((code, body["kind"], body["reason"]), (422, "Status", "Invalid"))
        self.assertEqual(body["details"]["causes"][0]["field"], "metadata.name")

    def test_create_bad_name_is_invalid(self):
        """A name that is not a DNS-1123 subdomain: 422 Invalid."""
        code, body = self.call("POST", PODS, pod("Bad_Name"))
        self.assertEqual((code, body["reason"]), (422, "Invalid"))

    def test_create_existing_is_already_exists(self):
        """create of a taken name: 409 AlreadyExists with details."""
        self.create(pod("a"))
        code, body = self.call("POST", PODS, pod("a"))
        self.assertEqual((code, body["reason"], body["status"]), (409, "AlreadyExists", "Failure"))
        self.assertEqual(body["message"], 'pods "a" already exists')
        self.assertEqual(body["details"], {"name": "a", "group": "", "kind": "pods"})

    def test_create_namespace_mismatch_is_bad_request(self):
        """metadata.namespace must match the URL's namespace: 400."""
        obj = pod("a")
        obj["metadata"]["namespace"] = "other"
        code, body = self.call("POST", PODS, obj)
        self.assertEqual((code, body["reason"]), (400, "BadRequest"))

    def test_create_with_resource_version_is_bad_request(self):
        """resourceVersion must not be set on create: 400."""
        obj = pod("a")
        obj["metadata"]["resourceVersion"] = "5"
        self.assertEqual(self.call("POST", PODS, obj)[0], 400)

    def test_get_missing_is_not_found(self):
        """get of a missing object: 404 NotFound naming it."""
        code, body = self.call("GET", PODS + "/nope")
        self.assertEqual((code, body["reason"], body["message"]),
                         (404, "NotFound", 'pods "nope" not found'))

    def test_group_resources_are_qualified_in_messages(self):
        """Messages name group resources as plural.group."""
        code, body = self.call("GET", "/apis/apps/v1/namespaces/default/deployments/x")
        self.assertEqual(body["message"], 'deployments.apps "x" not found')
        self.assertEqual(body["details"]["group"], "apps")

    def test_unknown_resource_is_not_found(self):
        """An unknown path: 404 Status."""
        code, body = self.call("GET", "/api/v1/widgets")
        self.assertEqual((code, body["kind"]), (404, "Status"))

    def test_update_with_stale_resource_version_conflicts(self):
        """PUT with an old resourceVersion: 409 Conflict."""
        created = self.create(pod("a"))
        fresh = dict(created, metadata=dict(created["metadata"], labels={"v": "1"}))
        self.assertEqual(self.call("PUT", PODS + "/a", fresh)[0], 200)
        stale = dict(created, metadata=dict(created["metadata"], labels={"v": "2"}))
        code, body = self.call("PUT", PODS + "/a", stale)
        self.assertEqual((code, body["reason"]), (409, "Conflict"))
        self.assertIn("the object has been modified", body["message"])

    def test_update_without_resource_version_is_unconditional(self):
        """PUT without resourceVersion overwrites (AllowUnconditionalUpdate)."""
        self.create(pod("a"))
        code, body = self.call("PUT", PODS + "/a", pod("a", labels={"x": "y"}))
        self.assertEqual((code, body["metadata"]["labels"]), (200, {"x": "y"}))

    def test_noop_update_keeps_resource_version(self):
        """An update that changes nothing does not bump the resourceVersion."""
        created = self.create(pod("a"))
        code, body = self.call("PUT", PODS + "/a", created)
        self.assertEqual(body["metadata"]["resourceVersion"],
                         created["metadata"]["resourceVersion"])
        self.assertEqual(self.api.rv, int(created["metadata"]["resourceVersion"]))

    def test_update_missing_is_not_found(self):
        """PUT to a missing object: 404."""
        self.assertEqual(self.call("PUT", PODS + "/a", pod("a"))[0], 404)

    def test_update_name_mismatch_is_bad_request(self):
        """The body's name must match the URL: 400."""
        self.create(pod("a"))
        self.assertEqual(self.call("PUT", PODS + "/a", pod("b"))[0], 400)

    def test_main_resource_ignores_status(self):
        """PUT to the object leaves its status alone."""
        created = self.create(pod("a"))
        created["status"] = {"phase": "Running"}
        created["metadata"]["labels"] = {"a": "b"}
        code, body = self.call("PUT", PODS + "/a", created)
        self.assertEqual(body["status"]["phase"], "Pending")
        self.assertEqual(body["metadata"]["labels"], {"a": "b"})

    def test_status_subresource_changes_only_status(self):
        """PUT to /status changes the status and nothing else."""
        created = self.create(pod("a"))
        created["status"] = {"phase": "Running"}
        created["metadata"]["labels"] = {"ignored": "yes"}
        code, body = self.call("PUT", PODS + "/a/status", created)
        self.assertEqual((code, body["status"]["phase"]), (200, "Running"))
        self.assertEqual(body["metadata"]["labels"], {})

    def test_generation_tracks_spec_changes(self):
        """metadata.generation grows when a deployment's spec changes, not its labels."""
        path = "/apis/apps/v1/namespaces/default/deployments"
        created = self.create({"metadata": {"name": "d"}, "spec": {"replicas": 1}}, path)
        self.assertEqual(created["metadata"]["generation"], 1)
        created["metadata"]["labels"] = {"a": "b"}
        code, body = self.call("PUT", path + "/d", created)
        self.assertEqual(body["metadata"]["generation"], 1)
        body["spec"]["replicas"] = 3
        code, body = self.call("PUT", path + "/d", body)
        self.assertEqual(body["metadata"]["generation"], 2)

    def test_delete_returns_object_and_removes_it(self):
        """DELETE of an unbound pod removes it at once and returns it."""
        self.create(pod("a"))
        code, body = self.call("DELETE", PODS + "/a")
        self.assertEqual((code, body["metadata"]["name"]), (200, "a"))
        self.assertEqual(self.call("GET", PODS + "/a")[0], 404)

    def test_delete_preconditions(self):
        """Failed uid / resourceVersion preconditions: 409 Conflict; matching ones delete."""
        created = self.create(pod("a"))
        code, body = self.call("DELETE", PODS + "/a", {"preconditions": {"uid": "other"}})
        self.assertEqual((code, body["reason"]), (409, "Conflict"))
        self.assertIn("Precondition failed", body["message"])
        code, _ = self.call("DELETE", PODS + "/a", {"preconditions": {"resourceVersion": "1"}})
        self.assertEqual(code, 409)
        code, _ = self.call("DELETE", PODS + "/a", {"preconditions": {
            "uid": created["metadata"]["uid"],
            "resourceVersion": created["metadata"]["resourceVersion"]}})
        self.assertEqual(code, 200)

    def test_bound_pod_deletion_is_graceful(self):
        """A pod on a node gets deletionTimestamp; grace 0 then removes it."""
        self.create(pod("a", node="edge-1"))
        code, body = self.call("DELETE", PODS + "/a")
        self.assertEqual(body["metadata"]["deletionGracePeriodSeconds"], 30)
        self.assertEqual(body["metadata"]["deletionTimestamp"], "1970-01-01T00:00:30Z")
        self.assertEqual(self.call("GET", PODS + "/a")[0], 200)
        self.call("DELETE", PODS + "/a", {"gracePeriodSeconds": 0})
        self.assertEqual(self.call("GET", PODS + "/a")[0], 404)

    def test_finalizers_hold_deletion(self):
        """An object with finalizers stays until an update removes them."""
        obj = {"metadata": {"name": "cm", "finalizers": ["x/y"]}}
        path = "/api/v1/namespaces/default/configmaps"
        self.create(obj, path)
        code, held = self.call("DELETE", path + "/cm")
        self.assertTrue(held["metadata"]["deletionTimestamp"])
        held["metadata"]["finalizers"] = []
        self.assertEqual(self.call("PUT", path + "/cm", held)[0], 200)
        self.assertEqual(self.call("GET", path + "/cm")[0], 404)

    def test_binding_sets_node_name(self):
        """POST pods/x/binding assigns the pod; a second binding conflicts."""
        self.create(pod("a"))
        binding = {"kind": "Binding", "apiVersion": "v1", "metadata": {"name": "a"},
                   "target": {"kind": "Node", "name": "edge-1"}}
        code, body = self.call("POST", PODS + "/a/binding", binding)
        self.assertEqual((code, body["status"]), (201, "Success"))
        self.assertEqual(self.call("GET", PODS + "/a")[1]["spec"]["nodeName"], "edge-1")
        self.assertEqual(self.call("POST", PODS + "/a/binding", binding)[0], 409)

    def test_scale_subresource(self):
        """GET/PUT deployments/x/scale reads and sets spec.replicas."""
        path = "/apis/apps/v1/namespaces/default/deployments"
        self.create({"metadata": {"name": "d"}, "spec": {"replicas": 1}}, path)
        code, scale = self.call("GET", path + "/d/scale")
        self.assertEqual((scale["kind"], scale["spec"]["replicas"]), ("Scale", 1))
        scale["spec"]["replicas"] = 4
        self.assertEqual(self.call("PUT", path + "/d/scale", scale)[1]["spec"]["replicas"], 4)
        self.assertEqual(self.call("GET", path + "/d")[1]["spec"]["replicas"], 4)

    def test_cluster_scoped_paths(self):
        """Nodes live at /api/v1/nodes/<name>; a namespaced node path is 404."""
        self.create({"metadata": {"name": "edge-1"}}, "/api/v1/nodes")
        self.assertEqual(self.call("GET", "/api/v1/nodes/edge-1")[0], 200)
        self.assertEqual(self.call("GET", "/api/v1/namespaces/default/nodes/edge-1")[0], 404)

    def test_method_not_allowed(self):
        """POST to an object: 405 MethodNotAllowed."""
        self.create(pod("a"))
        code, body = self.call("POST", PODS + "/a", pod("a"))
        self.assertEqual((code, body["reason"]), (405, "MethodNotAllowed"))

    def test_wrong_content_type_is_unsupported(self):
        """POST with a non-JSON content type: 415."""
        code, _ = self.call("POST", PODS, pod("a"), content_type="text/plain")
        self.assertEqual(code, 415)

    def test_authentication(self):
        """With an authenticator, a refused request gets 401 Unauthorized."""
        self.api.authenticate = lambda request: request.getHeader(b"authorization") == b"Bearer t"
        code, body = self.call("GET", PODS)
        self.assertEqual((code, body["reason"]), (401, "Unauthorized"))

    def test_injected_failure(self):
        """fail_next answers the next request with the given Status, then serves again."""
        self.api.fail_next(500, "InternalError", "boom")
        self.assertEqual(self.call("GET", PODS)[0], 500)
        self.assertEqual(self.call("GET", PODS)[0], 200)


class PatchTests(FakeTestCase):
    """PATCH in its three content types."""

    def test_merge_patch(self):
        """merge-patch: null deletes, maps merge, lists replace."""
        self.create(pod("a", labels={"a": "1", "b": "2"}))
        code, body = self.call("PATCH", PODS + "/a",
                               {"metadata": {"labels": {"a": None, "c": "3"}}},
                               content_type="application/merge-patch+json")
        self.assertEqual((code, body["metadata"]["labels"]), (200, {"b": "2", "c": "3"}))

    def test_strategic_merge_patch_merges_containers_by_name(self):
        """strategic merge: containers merge by name instead of being replaced."""
        self.create(pod("a"))
        patch = {"spec": {"containers": [{"name": "sidecar", "image": "busybox"}]}}
        code, body = self.call("PATCH", PODS + "/a", patch,
                               content_type="application/strategic-merge-patch+json")
        self.assertEqual([c["name"] for c in body["spec"]["containers"]], ["c", "sidecar"])

    def test_strategic_merge_patch_refused_for_custom_resources(self):
        """CRDs do not take strategic merge patches: 415."""
        devices = "/apis/devices.kubeedge.io/v1alpha2/namespaces/default/devices"
        self.create({"metadata": {"name": "d"}}, devices)
        code, _ = self.call("PATCH", devices + "/d", {"spec": {}},
                            content_type="application/strategic-merge-patch+json")
        self.assertEqual(code, 415)

    def test_json_patch(self):
        """json-patch: operations apply in order; a failing test op is 422."""
        self.create(pod("a", labels={"a": "1"}))
        ops = [{"op": "test", "path": "/metadata/labels/a", "value": "1"},
               {"op": "add", "path": "/metadata/labels/b", "value": "2"},
               {"op": "remove", "path": "/metadata/labels/a"}]
        code, body = self.call("PATCH", PODS + "/a", ops,
                               content_type="application/json-patch+json")
        self.assertEqual((code, body["metadata"]["labels"]), (200, {"b": "2"}))
        code, _ = self.call("PATCH", PODS + "/a", [{"op": "test", "path": "/metadata/name",
                                                    "value": "z"}],
                            content_type="application/json-patch+json")
        self.assertEqual(code, 422)

    def test_patch_with_stale_resource_version_conflicts(self):
        """A patch that carries an old resourceVersion: 409 Conflict."""
        self.create(pod("a"))
        code, body = self.call("PATCH", PODS + "/a", {"metadata": {"resourceVersion": "1"}},
                               content_type="application/merge-patch+json")
        self.assertEqual((code, body["reason"]), (409, "Conflict"))

    def test_status_patch(self):
        """PATCH to /status changes the status only."""
        self.create(pod("a"))
        code, body = self.call("PATCH", PODS + "/a/status",
                               {"status": {"phase": "Running"}, "metadata": {"labels": {"x": "y"}}},
                               content_type="application/merge-patch+json")
        self.assertEqual((body["status"]["phase"], body["metadata"]["labels"]), ("Running", {}))

    def test_unknown_patch_type(self):
        """An unknown patch content type: 415."""
        self.create(pod("a"))
        code, _ = self.call("PATCH", PODS + "/a", {}, content_type="application/json")
        self.assertEqual(code, 415)

    def test_patch_helpers(self):
        """The patch functions follow RFC 7386 and RFC 6902."""
        self.assertEqual(merge_patch({"a": {"b": 1, "c": 2}}, {"a": {"b": None}, "d": [1]}),
                         {"a": {"c": 2}, "d": [1]})
        self.assertEqual(json_patch({"l": [1, 3]}, [{"op": "add", "path": "/l/1", "value": 2},
                                                    {"op": "move", "from": "/l", "path": "/m"}]),
                         {"m": [1, 2, 3]})
        self.assertEqual(strategic_merge_patch(
            {"conditions": [{"type": "Ready", "status": "False"}, {"type": "X"}]},
            {"conditions": [{"type": "Ready", "status": "True"},
                            {"type": "X", "$patch": "delete"}]}),
            {"conditions": [{"type": "Ready", "status": "True"}]})


class ListTests(FakeTestCase):
    """Lists, selectors and paging."""

    def setUp(self):
        super().setUp()
        self.create(pod("a", labels={"app": "web", "tier": "front"}, node="n1"))
        self.create(pod("b", labels={"app": "db"}))
        obj = pod("c", labels={"app": "web"})
        self.create(obj, "/api/v1/namespaces/other/pods")

    def names(self, path):
        code, body = self.call("GET", path)
        self.assertEqual(code, 200, body)
        return [i["metadata"]["name"] for i in body["items"]]

    def test_list_shape(self):
        """A list has kind PodList, the current resourceVersion, and typeless items."""
        code, body = self.call("GET", PODS)
        self.assertEqual((body["kind"], body["apiVersion"]), ("PodList", "v1"))
        self.assertEqual(body["metadata"]["resourceVersion"], str(self.api.rv))
        self.assertNotIn("kind", body["items"][0])

    def test_all_namespaces(self):
        """/api/v1/pods lists every namespace, sorted by namespace then name."""
        self.assertEqual(self.names("/api/v1/pods"), ["a", "b", "c"])
        self.assertEqual(self.names(PODS), ["a", "b"])

    def test_label_selectors(self):
        """Equality, inequality, set and existence requirements."""
        self.assertEqual(self.names("/api/v1/pods?labelSelector=app%3Dweb"), ["a", "c"])
        self.assertEqual(self.names("/api/v1/pods?labelSelector=app!%3Dweb"), ["b"])
        self.assertEqual(self.names("/api/v1/pods?labelSelector=app%20in%20(db,x)"), ["b"])
        self.assertEqual(self.names("/api/v1/pods?labelSelector=app%20notin%20(db)"), ["a", "c"])
        self.assertEqual(self.names("/api/v1/pods?labelSelector=tier"), ["a"])
        self.assertEqual(self.names("/api/v1/pods?labelSelector=!tier,app%3Dweb"), ["c"])

    def test_field_selectors(self):
        """metadata.name and spec.nodeName selectors; unsupported fields are 400."""
        self.assertEqual(self.names("/api/v1/pods?fieldSelector=spec.nodeName%3Dn1"), ["a"])
        self.assertEqual(self.names("/api/v1/pods?fieldSelector=metadata.name!%3Da"), ["b", "c"])
        code, body = self.call("GET", "/api/v1/pods?fieldSelector=spec.foo%3Dx")
        self.assertEqual((code, body["reason"]), (400, "BadRequest"))

    def test_bad_label_selector(self):
        """An unparsable label selector: 400."""
        self.assertEqual(self.call("GET", PODS + "?labelSelector=a%3D%3D%3D")[0], 400)

    def test_paging(self):
        """limit + continue page through the list."""
        code, page = self.call("GET", "/api/v1/pods?limit=2")
        self.assertEqual([i["metadata"]["name"] for i in page["items"]], ["a", "b"])
        self.assertEqual(page["metadata"]["remainingItemCount"], 1)
        token = page["metadata"]["continue"]
        code, rest = self.call("GET", "/api/v1/pods?limit=2&continue=" + token)
        self.assertEqual([i["metadata"]["name"] for i in rest["items"]], ["c"])
        self.assertNotIn("continue", rest["metadata"])

    def test_expired_continue(self):
        """A continue token from before a compaction: 410 Expired."""
        code, page = self.call("GET", "/api/v1/pods?limit=1")
        self.create(pod("d"))
        self.api.compact()
        code, body = self.call("GET", "/api/v1/pods?limit=1&continue=" +
                               page["metadata"]["continue"])
        self.assertEqual((code, body["reason"]), (410, "Expired"))


class WatchTests(FakeTestCase):
    """Watch streams."""

    def test_watch_without_version_starts_with_added(self):
        """A watch without resourceVersion sends ADDED for what exists, then changes."""
        self.create(pod("a"))
        response, lines = self.watch(PODS + "?watch=true")
        self.assertEqual(response.code, 200)
        self.assertEqual([(e["type"], e["object"]["metadata"]["name"]) for e in lines.events],
                         [("ADDED", "a")])
        self.assertEqual(lines.events[0]["object"]["kind"], "Pod")
        self.create(pod("b"))
        self.stub.flush()
        self.assertEqual(lines.events[-1]["type"], "ADDED")

    def test_watch_from_version_replays_later_changes(self):
        """A watch from resourceVersion N gets exactly the changes after N, in order."""
        a = self.create(pod("a"))
        self.call("PUT", PODS + "/a", pod("a", labels={"x": "1"}))
        self.call("DELETE", PODS + "/a")
        _, lines = self.watch(PODS + "?watch=true&resourceVersion=" +
                              a["metadata"]["resourceVersion"])
        self.assertEqual([e["type"] for e in lines.events], ["MODIFIED", "DELETED"])
        versions = [int(e["object"]["metadata"]["resourceVersion"]) for e in lines.events]
        self.assertEqual(versions, sorted(versions))
        self.assertEqual(versions[-1], self.api.rv)

    def test_watch_compacted_version_is_expired(self):
        """A watch from a compacted resourceVersion: 200 with an ERROR 410 Expired event."""
        a = self.create(pod("a"))
        self.create(pod("b"))
        self.api.compact()
        response, lines = self.watch(PODS + "?watch=true&resourceVersion=" +
                                     a["metadata"]["resourceVersion"])
        self.assertEqual(response.code, 200)
        self.assertEqual(lines.events[0]["type"], "ERROR")
        self.assertEqual((lines.events[0]["object"]["code"], lines.events[0]["object"]["reason"]),
                         (410, "Expired"))
        self.assertIsNotNone(lines.ended)

    def test_selector_transitions(self):
        """An object entering the selection is ADDED, leaving it DELETED."""
        self.create(pod("a", labels={"app": "x"}))
        _, lines = self.watch(PODS + "?watch=true&labelSelector=app%3Dweb&resourceVersion=" +
                              str(self.api.rv))
        self.call("PUT", PODS + "/a", pod("a", labels={"app": "web"}))
        self.call("PUT", PODS + "/a", pod("a", labels={"app": "web", "v": "2"}))
        self.call("PUT", PODS + "/a", pod("a", labels={"app": "db"}))
        self.stub.flush()
        self.assertEqual([e["type"] for e in lines.events], ["ADDED", "MODIFIED", "DELETED"])
        self.assertEqual(lines.events[-1]["object"]["metadata"]["resourceVersion"],
                         str(self.api.rv))

    def test_namespace_scoped_watch(self):
        """A namespaced watch sees only its namespace."""
        _, lines = self.watch(PODS + "?watch=true")
        self.create(pod("x"), "/api/v1/namespaces/other/pods")
        self.create(pod("y"))
        self.stub.flush()
        self.assertEqual([e["object"]["metadata"]["name"] for e in lines.events], ["y"])

    def test_timeout_seconds_ends_watch(self):
        """timeoutSeconds ends the stream cleanly on the server's clock."""
        _, lines = self.watch(PODS + "?watch=true&timeoutSeconds=5")
        self.clock.advance(5)
        self.stub.flush()
        self.assertEqual(lines.ended.type.__name__, "ResponseDone")
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_controls(self):
        """expire_watches sends ERROR 410; drop_connections breaks the stream."""
        _, expired = self.watch(PODS + "?watch=true")
        self.api.expire_watches()
        self.stub.flush()
        self.assertEqual(expired.events[-1]["object"]["code"], 410)
        _, dropped = self.watch(PODS + "?watch=true")
        self.api.drop_connections()
        self.stub.flush()
        self.assertEqual(dropped.ended.type.__name__, "ResponseFailed")
        self.assertEqual(self.api.watchers, set())

    def test_bookmarks(self):
        """send_bookmarks reaches watches that asked for bookmarks only."""
        _, plain = self.watch(PODS + "?watch=true")
        _, marked = self.watch(PODS + "?watch=true&allowWatchBookmarks=true")
        self.create(pod("a"))
        self.api.send_bookmarks()
        self.stub.flush()
        self.assertEqual([e["type"] for e in plain.events], ["ADDED"])
        self.assertEqual(marked.events[-1], {"type": "BOOKMARK", "object": {
            "kind": "Pod", "apiVersion": "v1", "metadata": {"resourceVersion": str(self.api.rv)}}})

    def test_down_cuts_connections(self):
        """While down, requests get no response at all."""
        self.api.down = True
        d = self.stub.request("GET", "https://k8s" + PODS)
        self.stub.flush()
        self.failureResultOf(d)
