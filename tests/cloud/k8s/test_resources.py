"""Resource paths, the resource table, and Status -> exception mapping."""

from twisted.trial.unittest import SynchronousTestCase

from kubeedge_tw.cloud.k8s import errors
from kubeedge_tw.cloud.k8s.resources import (
    DEFAULT_RESOURCES, ResourceTable, ResourceType, UnknownResource)

TABLE = ResourceTable()


class PathTests(SynchronousTestCase):
    """REST paths as kube-apiserver serves them."""

    def test_core_namespaced(self):
        """Core types live under /api/v1, namespaced ones under namespaces/<ns>."""
        pods = TABLE.resolve("pods")
        self.assertEqual(pods.path("default"), "/api/v1/namespaces/default/pods")
        self.assertEqual(pods.path("default", "web-1"), "/api/v1/namespaces/default/pods/web-1")
        self.assertEqual(pods.path("default", "web-1", "status"),
                         "/api/v1/namespaces/default/pods/web-1/status")
        self.assertEqual(pods.path("default", "web-1", "binding"),
                         "/api/v1/namespaces/default/pods/web-1/binding")

    def test_all_namespaces(self):
        """A namespaced collection without a namespace spans all namespaces."""
        self.assertEqual(TABLE.resolve("pods").path(), "/api/v1/pods")

    def test_cluster_scoped(self):
        """Nodes and namespaces have no namespace segment."""
        self.assertEqual(TABLE.resolve("nodes").path(name="edge-1", subresource="status"),
                         "/api/v1/nodes/edge-1/status")
        self.assertEqual(TABLE.resolve("namespaces").path(name="kubeedge"),
                         "/api/v1/namespaces/kubeedge")

    def test_group_types(self):
        """Other groups live under /apis/<group>/<version>."""
        self.assertEqual(TABLE.resolve("deployments").path("ns", "d", "scale"),
                         "/apis/apps/v1/namespaces/ns/deployments/d/scale")
        self.assertEqual(TABLE.resolve("leases").path("kube-node-lease", "edge-1"),
                         "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/edge-1")
        self.assertEqual(TABLE.resolve("devices").path("default"),
                         "/apis/devices.kubeedge.io/v1alpha2/namespaces/default/devices")
        self.assertEqual(TABLE.resolve("clusterobjectsyncs").path(name="x"),
                         "/apis/reliablesyncs.kubeedge.io/v1alpha1/clusterobjectsyncs/x")

    def test_names_are_quoted(self):
        """Names are percent-encoded; '/' and '..' cannot smuggle in another path."""
        pods = TABLE.resolve("pods")
        self.assertEqual(pods.path("ns", "a b"), "/api/v1/namespaces/ns/pods/a%20b")
        for bad in ("a/b", "..", "."):
            self.assertRaises(ValueError, pods.path, "ns", bad)

    def test_scope_errors(self):
        """Missing or unexpected namespaces and unknown subresources are ValueErrors."""
        self.assertRaises(ValueError, TABLE.resolve("pods").path, None, "x")
        self.assertRaises(ValueError, TABLE.resolve("nodes").path, "default")
        self.assertRaises(ValueError, TABLE.resolve("configmaps").path, "ns", "x", "status")
        self.assertRaises(ValueError, TABLE.resolve("pods").path, "ns", None, "status")


class TableTests(SynchronousTestCase):
    """Looking types up."""

    def test_lookup_by_plural_kind_and_group(self):
        """A type is found by plural, kind, and plural.group."""
        deployments = TABLE.resolve("deployments")
        self.assertIs(TABLE.resolve("Deployment"), deployments)
        self.assertIs(TABLE.resolve("deployments.apps"), deployments)
        self.assertEqual(deployments.api_version, "apps/v1")
        self.assertEqual(TABLE.resolve("Pod").api_version, "v1")

    def test_every_needed_type_is_present(self):
        """The table has every type KubeEdge's cloud side uses."""
        needed = {"pods", "nodes", "configmaps", "secrets", "services", "endpoints", "events",
                  "namespaces", "serviceaccounts", "deployments", "replicasets", "leases",
                  "devices", "devicemodels", "objectsyncs", "clusterobjectsyncs"}
        self.assertEqual({t.plural for t in DEFAULT_RESOURCES}, needed)

    def test_unknown(self):
        """An unknown name raises UnknownResource listing what is known."""
        e = self.assertRaises(UnknownResource, TABLE.resolve, "widgets")
        self.assertIn("pods", str(e))

    def test_custom_type_passes_through(self):
        """A ResourceType is used as is."""
        custom = ResourceType("example.com", "v1", "widgets", "Widget", True)
        self.assertIs(TABLE.resolve(custom), custom)

    def test_ambiguous_names_are_refused(self):
        """A name two types share resolves to neither."""
        a = ResourceType("a.io", "v1", "things", "Thing", True)
        b = ResourceType("b.io", "v1", "things", "Thing", True)
        table = ResourceTable([a, b])
        self.assertRaises(UnknownResource, table.resolve, "things")
        self.assertIs(table.resolve("things.b.io"), b)


class StatusMappingTests(SynchronousTestCase):
    """Kubernetes Status objects become the matching exception."""

    def status(self, code, reason, message="m", **extra):
        return dict(errors.status_object(code, reason, message), **extra)

    def test_by_reason(self):
        """reason picks the class: 409 AlreadyExists vs Conflict, 410 Expired and Gone."""
        cases = [
            (404, "NotFound", errors.NotFound), (409, "AlreadyExists", errors.AlreadyExists),
            (409, "Conflict", errors.Conflict), (410, "Expired", errors.Gone),
            (410, "Gone", errors.Gone), (422, "Invalid", errors.Invalid),
            (401, "Unauthorized", errors.Unauthorized), (403, "Forbidden", errors.Forbidden),
            (400, "BadRequest", errors.BadRequest),
        ]
        for code, reason, cls in cases:
            e = errors.error_from_status(self.status(code, reason), code)
            self.assertIs(type(e), cls, (code, reason))
            self.assertEqual((e.code, e.reason, e.message), (code, reason, "m"))

    def test_already_exists_is_a_conflict(self):
        """AlreadyExists is caught by ``except Conflict`` too (both are 409)."""
        e = errors.error_from_status(self.status(409, "AlreadyExists"), 409)
        self.assertIsInstance(e, errors.Conflict)

    def test_unknown_reason_uses_code(self):
        """An unknown reason falls back to the HTTP code."""
        e = errors.error_from_status(self.status(404, "SomethingNew"), 404)
        self.assertIsInstance(e, errors.NotFound)
        self.assertEqual(e.reason, "SomethingNew")

    def test_watch_error_status_uses_its_code(self):
        """A watch ERROR object has no HTTP code; Status.code is used."""
        e = errors.error_from_status({"kind": "Status", "code": 410, "reason": "Expired",
                                      "message": "too old resource version: 1 (5)"})
        self.assertIsInstance(e, errors.Gone)
        self.assertEqual(e.code, 410)

    def test_status_and_causes_are_kept(self):
        """The whole Status travels with the error; Invalid exposes the causes."""
        causes = [{"field": "metadata.name", "reason": "FieldValueRequired", "message": "x"}]
        st = self.status(422, "Invalid", details={"name": "p", "causes": causes})
        e = errors.error_from_status(st, 422)
        self.assertIs(e.status, st)
        self.assertEqual(e.causes, causes)
        self.assertEqual(e.details["name"], "p")

    def test_non_status_body(self):
        """A body that is not a Status (a proxy page) gives a generic error for the code."""
        e = errors.error_from_response(503, b"<html>upstream down</html>")
        self.assertIsInstance(e, errors.ServiceUnavailable)
        self.assertIn("upstream down", e.message)
        e = errors.error_from_response(418, b"")
        self.assertIs(type(e), errors.K8sError)
        self.assertEqual(e.code, 418)

    def test_str(self):
        """str() shows code, reason and message."""
        e = errors.error_from_status(self.status(404, "NotFound", 'pods "x" not found'), 404)
        self.assertEqual(str(e), '404 NotFound: pods "x" not found')
        self.assertEqual(str(errors.K8sConnectionError("refused")), "ConnectionError: refused")
