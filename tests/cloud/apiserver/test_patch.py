"""Unit tests for JSON merge patch, JSON patch and strategic merge patch."""

from twisted.trial.unittest import SynchronousTestCase

from kubeedge_tw.cloud.apiserver.patch import (
    PatchError, json_patch, merge_patch, strategic_merge_patch)
from kubeedge_tw.cloud.apiserver.resources import NODE_PATCH_META, POD_PATCH_META


def pod(containers, **spec):
    """A pod object with ``containers``."""
    spec["containers"] = containers
    return {"metadata": {"name": "p", "labels": {"a": "1"}}, "spec": spec}


class MergePatchTests(SynchronousTestCase):
    """RFC 7386 merge patch."""

    def test_merge_and_delete(self):
        """Objects merge recursively, null deletes, lists and scalars replace."""
        target = {"a": {"b": 1, "c": 2}, "l": [1, 2], "x": 1}
        result = merge_patch(target, {"a": {"b": None, "d": 3}, "l": [3], "x": None})
        self.assertEqual(result, {"a": {"c": 2, "d": 3}, "l": [3]})
        self.assertEqual(target["a"], {"b": 1, "c": 2})

    def test_non_object_patch_replaces(self):
        """A patch that is not an object replaces the target."""
        self.assertEqual(merge_patch({"a": 1}, [1]), [1])


class JSONPatchTests(SynchronousTestCase):
    """RFC 6902 JSON patch."""

    def test_operations(self):
        """add, remove, replace, move, copy and test on objects and arrays."""
        doc = {"a": {"b": [1, 2]}, "c": 1, "k~/x": 5}
        result = json_patch(doc, [
            {"op": "add", "path": "/a/b/-", "value": 3},
            {"op": "add", "path": "/a/b/0", "value": 0},
            {"op": "remove", "path": "/a/b/1"},
            {"op": "replace", "path": "/c", "value": 2},
            {"op": "copy", "from": "/c", "path": "/d"},
            {"op": "move", "from": "/d", "path": "/e"},
            {"op": "test", "path": "/k~0~1x", "value": 5},
        ])
        self.assertEqual(result, {"a": {"b": [0, 2, 3]}, "c": 2, "e": 2, "k~/x": 5})
        self.assertEqual(doc["a"]["b"], [1, 2])

    def test_failures(self):
        """A failing test, a missing path or a bad operation raises PatchError."""
        doc = {"a": [1]}
        for ops in ([{"op": "test", "path": "/a/0", "value": 2}],
                    [{"op": "remove", "path": "/nope"}],
                    [{"op": "replace", "path": "/a/5", "value": 1}],
                    [{"op": "frobnicate", "path": "/a"}],
                    [{"op": "add", "path": "a", "value": 1}],
                    [{"op": "add", "path": "/a/01", "value": 1}],
                    {"op": "add"}, [{"path": "/a"}]):
            self.assertRaises(PatchError, json_patch, doc, ops)


class StrategicMergePatchTests(SynchronousTestCase):
    """Kubernetes' strategic merge patch with the built-in merge keys."""

    def test_containers_merge_by_name(self):
        """Containers merge by name; ports by containerPort; env by name."""
        current = pod([{"name": "a", "image": "x:1", "env": [{"name": "E", "value": "1"}],
                        "ports": [{"containerPort": 80}]},
                       {"name": "b", "image": "y:1"}])
        patch = {"spec": {"containers": [{"name": "a", "image": "x:2",
                                          "env": [{"name": "F", "value": "2"}],
                                          "ports": [{"containerPort": 80, "name": "http"}]}]}}
        result = strategic_merge_patch(current, patch, POD_PATCH_META)
        a, b = result["spec"]["containers"]
        self.assertEqual(a["image"], "x:2")
        self.assertEqual([e["name"] for e in a["env"]], ["E", "F"])
        self.assertEqual(a["ports"], [{"containerPort": 80, "name": "http"}])
        self.assertEqual(b, {"name": "b", "image": "y:1"})

    def test_conditions_merge_by_type(self):
        """Status conditions merge by type (what a kubelet-style status patch sends)."""
        node = {"status": {"conditions": [{"type": "Ready", "status": "False"},
                                          {"type": "MemoryPressure", "status": "False"}]}}
        patch = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
        result = strategic_merge_patch(node, patch, NODE_PATCH_META)
        self.assertEqual(result["status"]["conditions"],
                         [{"type": "Ready", "status": "True"},
                          {"type": "MemoryPressure", "status": "False"}])

    def test_delete_directives(self):
        """$patch: delete removes list items and maps; null removes keys."""
        current = pod([{"name": "a", "image": "x"}, {"name": "b", "image": "y"}])
        patch = {"metadata": {"labels": {"a": None}},
                 "spec": {"containers": [{"name": "a", "$patch": "delete"}]}}
        result = strategic_merge_patch(current, patch, POD_PATCH_META)
        self.assertEqual([c["name"] for c in result["spec"]["containers"]], ["b"])
        self.assertEqual(result["metadata"]["labels"], {})
        result = strategic_merge_patch(current, {"metadata": {"$patch": "delete"}},
                                       POD_PATCH_META)
        self.assertNotIn("metadata", result)

    def test_replace_directive(self):
        """$patch: replace in a list replaces the whole list; in a map the whole map."""
        current = pod([{"name": "a", "image": "x"}, {"name": "b", "image": "y"}])
        patch = {"spec": {"containers": [{"name": "c", "image": "z"}, {"$patch": "replace"}]}}
        result = strategic_merge_patch(current, patch, POD_PATCH_META)
        self.assertEqual(result["spec"]["containers"], [{"name": "c", "image": "z"}])
        result = strategic_merge_patch(current, {"metadata": {"$patch": "replace",
                                                              "name": "q"}}, POD_PATCH_META)
        self.assertEqual(result["metadata"], {"name": "q"})

    def test_set_element_order_and_primitive_lists(self):
        """$setElementOrder orders merged items; finalizers merge as a set and
        $deleteFromPrimitiveList removes from it."""
        current = pod([{"name": "a", "image": "x"}, {"name": "b", "image": "y"}])
        current["metadata"]["finalizers"] = ["f1", "f2"]
        patch = {"metadata": {"finalizers": ["f3"], "$deleteFromPrimitiveList/finalizers":
                              ["f1"]},
                 "spec": {"$setElementOrder/containers": [{"name": "c"}, {"name": "b"},
                                                          {"name": "a"}],
                          "containers": [{"name": "c", "image": "z"}]}}
        result = strategic_merge_patch(current, patch, POD_PATCH_META)
        self.assertEqual([c["name"] for c in result["spec"]["containers"]], ["c", "b", "a"])
        self.assertEqual(result["metadata"]["finalizers"], ["f2", "f3"])

    def test_retain_keys(self):
        """$retainKeys drops the keys it does not list."""
        current = {"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"x": 1}}}}
        patch = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}
        result = strategic_merge_patch(current, patch, {})
        self.assertEqual(result["spec"]["strategy"], {"type": "Recreate"})

    def test_unlisted_lists_replace(self):
        """Lists without a merge key (tolerations) are replaced."""
        current = pod([], tolerations=[{"key": "a"}, {"key": "b"}])
        result = strategic_merge_patch(current, {"spec": {"tolerations": [{"key": "c"}]}},
                                       POD_PATCH_META)
        self.assertEqual(result["spec"]["tolerations"], [{"key": "c"}])

    def test_errors(self):
        """A missing merge key, a non-object patch or an unknown directive raise."""
        current = pod([{"name": "a", "image": "x"}])
        self.assertRaises(PatchError, strategic_merge_patch, current,
                          {"spec": {"containers": [{"image": "x"}]}}, POD_PATCH_META)
        self.assertRaises(PatchError, strategic_merge_patch, current, [1], POD_PATCH_META)
        self.assertRaises(PatchError, strategic_merge_patch, current,
                          {"spec": {"$patch": "explode"}}, POD_PATCH_META)
        self.assertRaises(PatchError, strategic_merge_patch, current,
                          {"spec": {"containers": ["x"]}}, POD_PATCH_META)
