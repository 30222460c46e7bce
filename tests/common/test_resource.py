"""Tests for resource string helpers (reference 2.5)."""

from twisted.trial.unittest import SynchronousTestCase

from kubeedge_tw.common import resource as r


class ResourceTests(SynchronousTestCase):
    """Edge-local and cloud-internal resource forms and their conversions."""

    def test_edge_resource(self):
        """Edge-local strings are <ns>/<type>[/<name>]."""
        self.assertEqual(r.edge_resource("default", "pod", "nginx"), "default/pod/nginx")
        self.assertEqual(r.edge_resource("default", "podstatus"), "default/podstatus")

    def test_cloud_resource(self):
        """Cloud-internal strings are node/<node>/<ns>/<type>[/<name>]."""
        self.assertEqual(r.cloud_resource("n1", "default", "pod", "nginx"),
                         "node/n1/default/pod/nginx")

    def test_parse_round_trip(self):
        """Parsing a cloud resource gives its parts and builds both forms back."""
        res = r.parse_cloud_resource("node/n1/kube-system/configmap/c1")
        self.assertEqual((res.node, res.namespace, res.type, res.name),
                         ("n1", "kube-system", "configmap", "c1"))
        self.assertEqual(res.edge(), "kube-system/configmap/c1")
        self.assertEqual(res.cloud(), "node/n1/kube-system/configmap/c1")
        edge = r.parse_edge_resource("default/pod/nginx")
        self.assertEqual(edge.cloud("n2"), "node/n2/default/pod/nginx")

    def test_name_keeps_slashes(self):
        """Names with further segments (device twin paths) stay whole."""
        self.assertEqual(r.parse_edge_resource("device/d1/twin/edge_updated").name,
                         "twin/edge_updated")

    def test_prepend_and_strip(self):
        """CloudHub's prepend/strip are inverse, strip only touches node/<id>/... forms."""
        res = "default/pod/nginx"
        self.assertEqual(r.strip_node(r.prepend_node("n1", res)), res)
        self.assertEqual(r.strip_node("membership"), "membership")
        self.assertEqual(r.strip_node("node/n1"), "node/n1")
        self.assertEqual(r.strip_node("node/n1/membership"), "membership")

    def test_node_of_and_type(self):
        """node_of and resource_type read either form."""
        self.assertEqual(r.node_of("node/n1/default/pod/x"), "n1")
        self.assertEqual(r.node_of("default/pod/x"), "")
        self.assertEqual(r.resource_type("node/n1/default/pod/x"), "pod")
        self.assertEqual(r.resource_type("default/podstatus"), "podstatus")
        self.assertEqual(r.resource_type("node/n1"), "")
        self.assertEqual(r.resource_type("node"), "")

    def test_bad_input(self):
        """Malformed strings and parts raise ResourceError."""
        for bad in ("", "default", "/pod", 5):
            self.assertRaises(r.ResourceError, r.parse_edge_resource, bad)
        for bad in ("default/pod/x", "node/n1/default", "node//default/pod"):
            self.assertRaises(r.ResourceError, r.parse_cloud_resource, bad)
        self.assertRaises(r.ResourceError, r.edge_resource, "a/b", "pod", "x")
        self.assertRaises(r.ResourceError, r.edge_resource, "default", "", "x")
        self.assertRaises(r.ResourceError, r.cloud_resource, "", "default", "pod")
        self.assertRaises(r.ResourceError, r.prepend_node, "a/b", "default/pod")

    def test_valid_node_name(self):
        """Node names are lowercase DNS-1123 subdomains of at most 253 characters."""
        for good in ("edge-1", "a", "edge.site-2", "1edge"):
            self.assertTrue(r.valid_node_name(good), good)
        for bad in ("", "Edge", "-edge", "edge-", "e_1", "a" * 254, "a..b", None, 5):
            self.assertFalse(r.valid_node_name(bad), bad)
