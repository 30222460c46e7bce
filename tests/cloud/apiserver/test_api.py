"""Unit tests for the verbs (create, update, patch, delete, subresources, list) on a real
sqlite store run synchronously, with time from a Clock."""

import copy
import json
import os

from twisted.trial.unittest import SynchronousTestCase

from kubeedge_tw.cloud.apiserver import errors
from kubeedge_tw.cloud.apiserver.api import (
    INITIAL_NAMESPACES, JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, DeleteOptions)
from kubeedge_tw.cloud.apiserver.selectors import parse_field_selector, parse_label_selector
from tests.cloud.apiserver.fakes import TestServer


def pod(name="p", node="", labels=None, finalizers=None):
    """A pod body."""
    meta = {"name": name, "labels": labels or {"app": "web"}}
    if finalizers:
        meta["finalizers"] = finalizers
    spec = {"containers": [{"name": "c", "image": "nginx:1.25"}]}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def deployment(name="web", replicas=2):
    """A deployment body."""
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": "x"}]}}}}


class VerbTests(SynchronousTestCase):
    """Create/get/update/patch/delete semantics."""

    def setUp(self):
        self.server = TestServer(os.path.abspath(self.mktemp()))
        self.addCleanup(self.server.close)
        self.api = self.server.api
        registry = self.server.registry
        self.pods = registry.get("", "v1", "pods")
        self.nodes = registry.get("", "v1", "nodes")
        self.namespaces = registry.get("", "v1", "namespaces")
        self.configmaps = registry.get("", "v1", "configmaps")
        self.deployments = registry.get("apps", "v1", "deployments")
        self.replicasets = registry.get("apps", "v1", "replicasets")

    def create(self, rtype, body, namespace="default"):
        return self.successResultOf(self.api.create(rtype, namespace, copy.deepcopy(body)))

    def fail(self, d, code):
        e = self.failureResultOf(d, errors.APIError).value
        self.assertEqual(e.code, code, e.message)
        return e

    def get(self, rtype, name, namespace="default"):
        return json.loads(self.successResultOf(self.api.get(rtype, namespace, name)))

    def test_bootstrap(self):
        """Start-up creates the system namespaces, their default service accounts and
        the KubeEdge CRDs, whose types are then served."""
        _, items, _ = self.successResultOf(self.api.list(
            self.namespaces, "", parse_label_selector(""), parse_field_selector("")))
        self.assertEqual(sorted(json.loads(t)["metadata"]["name"] for t, _ in items),
                         sorted(INITIAL_NAMESPACES))
        accounts = self.server.registry.get("", "v1", "serviceaccounts")
        self.assertEqual(self.get(accounts, "default", "kube-system")["metadata"]["name"],
                         "default")
        devices = self.server.registry.get("devices.kubeedge.io", "v1alpha2", "devices")
        self.assertTrue(devices.namespaced)
        sync = self.server.registry.get("reliablesyncs.kubeedge.io", "v1alpha1",
                                        "clusterobjectsyncs")
        self.assertFalse(sync.namespaced)
        self.assertIn("status", sync.subresources)

    def test_create_fills_metadata_and_defaults(self):
        """uid, creationTimestamp from the clock, resourceVersion, defaults, Pending."""
        created = self.create(self.pods, pod())
        meta = created["metadata"]
        self.assertEqual(meta["creationTimestamp"], "2024-05-01T12:00:00Z")
        self.assertEqual(len(meta["uid"]), 36)
        self.assertEqual(meta["namespace"], "default")
        self.assertTrue(meta["resourceVersion"].isdigit())
        self.assertEqual(created["status"]["phase"], "Pending")
        self.assertEqual(created["spec"]["restartPolicy"], "Always")
        self.assertEqual(self.get(self.pods, "p"), created)

    def test_generate_name(self):
        """generateName gets five random characters appended."""
        body = pod()
        del body["metadata"]["name"]
        body["metadata"]["generateName"] = "web-"
        created = self.create(self.pods, body)
        name = created["metadata"]["name"]
        self.assertTrue(name.startswith("web-") and len(name) == 9, name)

    def test_create_errors(self):
        """AlreadyExists, a missing namespace (404), invalid objects (422 with causes),
        a mismatched kind (400)."""
        self.create(self.pods, pod())
        e = self.fail(self.api.create(self.pods, "default", pod()), 409)
        self.assertEqual(e.reason, "AlreadyExists")
        e = self.fail(self.api.create(self.pods, "nope", pod()), 404)
        self.assertEqual(e.message, 'namespaces "nope" not found')
        bad = pod("Bad")
        bad["spec"]["containers"][0]["image"] = ""
        e = self.fail(self.api.create(self.pods, "default", bad), 422)
        self.assertEqual([c["field"] for c in e.details["causes"]],
                         ["metadata.name", "spec.containers[0].image"])
        self.assertEqual(e.details["kind"], "Pod")
        self.fail(self.api.create(self.pods, "default", {"kind": "Node", "metadata": {
            "name": "x"}}), 400)

    def test_dry_run(self):
        """A dry-run create returns the object but stores nothing."""
        rv = self.server.store.current_rv
        result = self.successResultOf(self.api.create(self.pods, "default", pod(),
                                                      dry_run=True))
        self.assertEqual(result["metadata"]["name"], "p")
        self.assertNotIn("resourceVersion", result["metadata"])
        self.assertEqual(self.server.store.current_rv, rv)
        self.fail(self.api.get(self.pods, "default", "p"), 404)
        created = self.create(self.pods, pod())
        patched = self.successResultOf(self.api.patch(
            self.pods, "default", "p", MERGE_PATCH, {"metadata": {"labels": {"x": "y"}}},
            dry_run=True))
        self.assertEqual(patched["metadata"]["labels"]["x"], "y")
        self.assertEqual(patched["metadata"]["resourceVersion"],
                         created["metadata"]["resourceVersion"])
        self.assertNotIn("x", self.get(self.pods, "p")["metadata"]["labels"])

    def test_update_conflict(self):
        """A stale resourceVersion is 409 Conflict; the current one succeeds."""
        created = self.create(self.configmaps, {"metadata": {"name": "c"}, "data": {"a": "1"}})
        first = copy.deepcopy(created)
        first["data"]["a"] = "2"
        updated = self.successResultOf(self.api.update(self.configmaps, "default", "c", first))
        stale = copy.deepcopy(created)
        stale["data"]["a"] = "3"
        e = self.fail(self.api.update(self.configmaps, "default", "c", stale), 409)
        self.assertEqual(e.reason, "Conflict")
        self.assertIn("the object has been modified", e.message)
        self.assertGreater(int(updated["metadata"]["resourceVersion"]),
                           int(created["metadata"]["resourceVersion"]))
        self.assertEqual(updated["metadata"]["uid"], created["metadata"]["uid"])

    def test_noop_update_keeps_version(self):
        """An update that changes nothing stores nothing and keeps the resourceVersion."""
        created = self.create(self.configmaps, {"metadata": {"name": "c"}, "data": {"a": "1"}})
        rv = self.server.store.current_rv
        same = self.successResultOf(self.api.update(self.configmaps, "default", "c",
                                                    copy.deepcopy(created)))
        self.assertEqual(same["metadata"]["resourceVersion"],
                         created["metadata"]["resourceVersion"])
        self.assertEqual(self.server.store.current_rv, rv)

    def test_status_subresource(self):
        """The main resource ignores status; /status changes only status."""
        created = self.create(self.pods, pod())
        body = copy.deepcopy(created)
        body["status"]["phase"] = "Running"
        body["metadata"]["labels"]["x"] = "y"
        main = self.successResultOf(self.api.update(self.pods, "default", "p", body))
        self.assertEqual(main["status"]["phase"], "Pending")
        self.assertEqual(main["metadata"]["labels"]["x"], "y")
        status = self.successResultOf(self.api.patch(
            self.pods, "default", "p", MERGE_PATCH,
            {"status": {"phase": "Running"}, "spec": {"nodeName": "sneaky"}},
            subresource="status"))
        self.assertEqual(status["status"]["phase"], "Running")
        self.assertNotIn("nodeName", status["spec"])

    def test_pod_spec_immutable(self):
        """Changing a pod's spec beyond its images is forbidden (422)."""
        self.create(self.pods, pod())
        e = self.fail(self.api.patch(self.pods, "default", "p", MERGE_PATCH,
                                     {"spec": {"restartPolicy": "Never"}}), 422)
        self.assertEqual(e.details["causes"][0]["field"], "spec")
        updated = self.successResultOf(self.api.patch(
            self.pods, "default", "p", STRATEGIC_MERGE_PATCH,
            {"spec": {"containers": [{"name": "c", "image": "nginx:1.26"}]}}))
        self.assertEqual(updated["spec"]["containers"][0]["image"], "nginx:1.26")

    def test_patch_formats(self):
        """Merge, strategic and JSON patches; SMP on a custom resource is 415; a
        resourceVersion in a patch is a precondition."""
        self.create(self.deployments, deployment())
        patched = self.successResultOf(self.api.patch(
            self.deployments, "default", "web", STRATEGIC_MERGE_PATCH,
            {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "y"}]}}}}))
        self.assertEqual(patched["spec"]["template"]["spec"]["containers"][0]["image"], "y")
        self.assertEqual(patched["metadata"]["generation"], 2)
        patched = self.successResultOf(self.api.patch(
            self.deployments, "default", "web", JSON_PATCH,
            [{"op": "replace", "path": "/spec/replicas", "value": 5}]))
        self.assertEqual(patched["spec"]["replicas"], 5)
        self.fail(self.api.patch(self.deployments, "default", "web", JSON_PATCH,
                                 [{"op": "test", "path": "/spec/replicas", "value": 1}]), 422)
        self.fail(self.api.patch(self.deployments, "default", "web", MERGE_PATCH,
                                 {"metadata": {"resourceVersion": "1"}, "spec": {}}), 409)
        devices = self.server.registry.get("devices.kubeedge.io", "v1alpha2", "devices")
        models = self.server.registry.get("devices.kubeedge.io", "v1alpha2", "devicemodels")
        self.create(models, {"metadata": {"name": "m"}, "spec": {"properties": []}})
        self.create(devices, {"apiVersion": "devices.kubeedge.io/v1alpha2", "kind": "Device",
                              "metadata": {"name": "d"},
                              "spec": {"a": 1, "deviceModelRef": {"name": "m"}}})
        self.fail(self.api.patch(devices, "default", "d", STRATEGIC_MERGE_PATCH,
                                 {"spec": {"a": 2}}), 415)
        self.fail(self.api.patch(self.deployments, "default", "nope", MERGE_PATCH, {}), 404)

    def test_selector_immutable(self):
        """A deployment's selector cannot change."""
        self.create(self.deployments, deployment())
        e = self.fail(self.api.patch(self.deployments, "default", "web", MERGE_PATCH, {
            "spec": {"selector": {"matchLabels": {"app": "x"}},
                     "template": {"metadata": {"labels": {"app": "x"}}}}}), 422)
        self.assertIn("field is immutable", e.message)

    def test_graceful_pod_delete(self):
        """A scheduled pod gets deletionTimestamp + grace and stays; deleting again with
        grace 0 removes it. An unscheduled pod goes at once."""
        self.create(self.pods, pod(node="edge-1"))
        obj, gone = self.successResultOf(self.api.delete(self.pods, "default", "p",
                                                         DeleteOptions()))
        self.assertFalse(gone)
        self.assertEqual(obj["metadata"]["deletionGracePeriodSeconds"], 30)
        self.assertEqual(obj["metadata"]["deletionTimestamp"], "2024-05-01T12:00:30Z")
        _, gone = self.successResultOf(self.api.delete(self.pods, "default", "p",
                                                       DeleteOptions(grace=0)))
        self.assertTrue(gone)
        self.fail(self.api.get(self.pods, "default", "p"), 404)
        self.create(self.pods, pod("q"))
        _, gone = self.successResultOf(self.api.delete(self.pods, "default", "q",
                                                       DeleteOptions()))
        self.assertTrue(gone)

    def test_finalizers(self):
        """An object with finalizers is only marked; removing the last one deletes it."""
        self.create(self.configmaps, {"metadata": {"name": "c", "finalizers": ["x.io/f"]}})
        obj, gone = self.successResultOf(self.api.delete(self.configmaps, "default", "c",
                                                         DeleteOptions()))
        self.assertFalse(gone)
        self.assertIn("deletionTimestamp", obj["metadata"])
        result = self.successResultOf(self.api.patch(
            self.configmaps, "default", "c", MERGE_PATCH, {"metadata": {"finalizers": None}}))
        self.assertIn("deletionTimestamp", result["metadata"])
        self.fail(self.api.get(self.configmaps, "default", "c"), 404)

    def test_propagation(self):
        """Background deletes dependents named by ownerReferences; Orphan strips the
        reference and keeps them."""
        owner = self.create(self.deployments, deployment())
        ref = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
               "uid": owner["metadata"]["uid"], "controller": True}
        rs = deployment("web-1")
        rs.update(kind="ReplicaSet")
        rs["metadata"]["ownerReferences"] = [ref]
        self.create(self.replicasets, rs)
        self.successResultOf(self.api.delete(self.deployments, "default", "web",
                                             DeleteOptions(policy="Background")))
        self.fail(self.api.get(self.replicasets, "default", "web-1"), 404)
        owner = self.create(self.deployments, deployment())
        ref["uid"] = owner["metadata"]["uid"]
        self.create(self.replicasets, rs)
        self.successResultOf(self.api.delete(self.deployments, "default", "web",
                                             DeleteOptions(policy="Orphan")))
        kept = self.get(self.replicasets, "web-1")
        self.assertNotIn("ownerReferences", kept["metadata"])

    def test_namespace_delete_cascades(self):
        """Deleting a namespace deletes its objects; system namespaces are protected."""
        self.create(self.namespaces, {"metadata": {"name": "team"}}, namespace="")
        self.create(self.configmaps, {"metadata": {"name": "c"}}, namespace="team")
        self.successResultOf(self.api.delete(self.namespaces, "", "team", DeleteOptions()))
        self.fail(self.api.get(self.configmaps, "team", "c"), 404)
        e = self.fail(self.api.delete(self.namespaces, "", "default", DeleteOptions()), 403)
        self.assertIn("may not be deleted", e.message)

    def test_crd_lifecycle(self):
        """A new CRD is served at once; deleting it removes its objects and its type."""
        crds = self.server.registry.get("apiextensions.k8s.io", "v1",
                                        "customresourcedefinitions")
        crd = {"metadata": {"name": "widgets.example.io"}, "spec": {
            "group": "example.io", "scope": "Namespaced",
            "names": {"plural": "widgets", "kind": "Widget"},
            "versions": [{"name": "v1", "served": True, "storage": True}]}}
        created = self.create(crds, crd, namespace="")
        self.assertEqual([c["type"] for c in created["status"]["conditions"]],
                         ["NamesAccepted", "Established"])
        widgets = self.server.registry.get("example.io", "v1", "widgets")
        self.assertIsNotNone(widgets)
        self.create(widgets, {"metadata": {"name": "w"}, "spec": {}})
        self.successResultOf(self.api.delete(crds, "", "widgets.example.io", DeleteOptions()))
        self.assertIsNone(self.server.registry.get("example.io", "v1", "widgets"))
        bad = copy.deepcopy(crd)
        bad["metadata"]["name"] = "wrong"
        self.fail(self.api.create(crds, "", bad), 422)

    def test_device_references(self):
        """A Device whose DeviceModel or node is missing, or whose twins are not model
        properties, is refused with 422 naming the field; a correct one is stored."""
        models = self.server.registry.get("devices.kubeedge.io", "v1alpha2", "devicemodels")
        devices = self.server.registry.get("devices.kubeedge.io", "v1alpha2", "devices")
        selector = {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": "", "operator": "In", "values": ["edge-1"]}]}]}
        device = {"metadata": {"name": "lamp"},
                  "spec": {"deviceModelRef": {"name": "bulb"}, "nodeSelector": selector},
                  "status": {"twins": [{"propertyName": "power",
                                        "desired": {"value": "ON"}}]}}
        e = self.fail(self.api.create(devices, "default", copy.deepcopy(device)), 422)
        self.assertIn("spec.deviceModelRef.name", e.message)
        self.assertIn("edge-1", e.message)
        self.create(models, {"metadata": {"name": "bulb"}, "spec": {"properties": [
            {"name": "power", "type": {"string": {"accessMode": "ReadWrite"}}}]}})
        e = self.fail(self.api.create(devices, "default", copy.deepcopy(device)), 422)
        self.assertNotIn("deviceModelRef", e.message)
        self.create(self.nodes, {"metadata": {"name": "edge-1"}}, namespace="")
        self.create(devices, device)
        wrong = copy.deepcopy(device)
        wrong["metadata"]["name"] = "lamp2"
        wrong["status"]["twins"][0]["propertyName"] = "colour"
        e = self.fail(self.api.create(devices, "default", wrong), 422)
        self.assertIn("status.twins[0].propertyName", e.message)

    def test_scale_and_binding(self):
        """The scale subresource reads and sets replicas; binding sets the node once."""
        self.create(self.deployments, deployment())
        scale = self.successResultOf(self.api.scale(self.deployments, "default", "web"))
        self.assertEqual((scale["kind"], scale["spec"]["replicas"], scale["status"]["selector"]),
                         ("Scale", 2, "app=web"))
        scale = self.successResultOf(self.api.scale(
            self.deployments, "default", "web", patch_type=MERGE_PATCH,
            patch={"spec": {"replicas": 4}}))
        self.assertEqual(self.get(self.deployments, "web")["spec"]["replicas"], 4)
        self.fail(self.api.scale(self.deployments, "default", "web",
                                 scale={"spec": {"replicas": -1}}), 422)
        self.create(self.pods, pod())
        bound = self.successResultOf(self.api.bind(self.pods, "default", "p", {
            "target": {"kind": "Node", "name": "edge-1"}}))
        self.assertEqual(bound["spec"]["nodeName"], "edge-1")
        self.assertEqual(bound["status"]["conditions"][0]["type"], "PodScheduled")
        self.fail(self.api.bind(self.pods, "default", "p", {"target": {"name": "edge-2"}}),
                  409)

    def test_list_selectors_and_pages(self):
        """Label and field selectors filter; limit/continue pages in key order."""
        for i in range(5):
            self.create(self.pods, pod("p{}".format(i), node="edge-1" if i % 2 else "",
                                       labels={"app": "web", "n": str(i)}))

        def names(label="", field="", limit=None, after=None, namespace="default"):
            _, items, next_key = self.successResultOf(self.api.list(
                self.pods, namespace, parse_label_selector(label), parse_field_selector(field),
                limit, after))
            return [json.loads(t)["metadata"]["name"] for t, _ in items], next_key

        self.assertEqual(names("n in (1,3)")[0], ["p1", "p3"])
        self.assertEqual(names(field="spec.nodeName=edge-1")[0], ["p1", "p3"])
        self.assertEqual(names(field="spec.nodeName!=edge-1,metadata.name!=p0")[0],
                         ["p2", "p4"])
        self.assertEqual(names(field="metadata.name=p2", namespace="")[0], ["p2"])
        page, next_key = names(limit=2)
        self.assertEqual(page, ["p0", "p1"])
        page, next_key = names(limit=2, after=next_key)
        self.assertEqual(page, ["p2", "p3"])
        page, next_key = names(limit=2, after=next_key)
        self.assertEqual((page, next_key), (["p4"], None))

    def test_versions_survive_restart(self):
        """After reopening the store objects keep their resourceVersions."""
        created = self.create(self.configmaps, {"metadata": {"name": "c"}})
        self.successResultOf(self.server.close())
        again = TestServer(self.server.path)
        self.addCleanup(again.close)
        cms = again.registry.get("", "v1", "configmaps")
        text = self.successResultOf(again.api.get(cms, "default", "c"))
        self.assertEqual(json.loads(text)["metadata"]["resourceVersion"],
                         created["metadata"]["resourceVersion"])
