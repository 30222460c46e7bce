"""The ReplicaSet controller: pods from the template, replacement, scale down order,
adoption, expectations and status."""

from twisted.trial.unittest import SynchronousTestCase

from kubeedge_tw.cloud.controlplane.replicaset import pods_to_delete, slow_start_batch
from tests.cloud.controlplane.support import HarnessMixin, node, pod


def replicaset(name="rs", replicas=2, min_ready=0):
    """A ReplicaSet selecting ``app: <name>``."""
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": name},
            "spec": {"replicas": replicas, "minReadySeconds": min_ready,
                     "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name},
                                               "annotations": {"note": "x"}},
                                  "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}


def live(h, app="rs"):
    """Pods of ``app`` not being deleted."""
    return [p for p in h.pods(app=app) if not p["metadata"].get("deletionTimestamp")]


class HelperTests(SynchronousTestCase):
    """Deletion order and slow start."""

    def test_delete_order(self):
        """Unassigned, then Pending, then not ready, then newest go first."""
        def p(name, node=None, phase="Running", ready=False, created="2024-01-01T00:00:00Z"):
            return {"metadata": {"name": name, "creationTimestamp": created},
                    "spec": {"nodeName": node} if node else {},
                    "status": {"phase": phase, "conditions": [
                        {"type": "Ready", "status": "True" if ready else "False",
                         "lastTransitionTime": created}]}}
        pods = [p("old-ready", "n", ready=True),
                p("new-ready", "n", ready=True, created="2024-02-01T00:00:00Z"),
                p("unready", "n"), p("pending", "n", phase="Pending"),
                p("unassigned", phase="Pending")]
        order = [x["metadata"]["name"] for x in pods_to_delete(pods, 5)]
        self.assertEqual(order, ["unassigned", "pending", "unready", "new-ready", "old-ready"])

    def test_slow_start(self):
        """Batches of 1, 2, 4 ...; the first failing batch stops the rest."""
        from twisted.internet import defer
        calls = []

        def ok():
            calls.append(1)
            return defer.succeed(None)
        self.assertEqual(self.successResultOf(defer.ensureDeferred(
            slow_start_batch(10, 1, ok))), (10, None))
        count = []

        def fail_fourth():
            count.append(1)
            if len(count) == 4:
                raise ValueError("boom")
        successes, error = self.successResultOf(defer.ensureDeferred(
            slow_start_batch(10, 1, fail_fourth)))
        self.assertEqual((successes, len(count), str(error)), (6, 7, "boom"))


class ReplicaSetTests(HarnessMixin, SynchronousTestCase):
    """Against the fake API server."""

    def test_creates_pods_from_template(self):
        """Pods get generateName <rs>-, the template's labels and annotations and a
        controller reference; a SuccessfulCreate event each; the status counts them."""
        h = self.harness()
        rs = h.create("replicasets", replicaset(replicas=3))
        h.run()
        pods = h.pods(app="rs")
        self.assertEqual(len(pods), 3)
        for p in pods:
            self.assertTrue(p["metadata"]["name"].startswith("rs-"))
            self.assertEqual(p["metadata"]["annotations"], {"note": "x"})
            self.assertEqual(p["metadata"]["ownerReferences"], [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs",
                "uid": rs["metadata"]["uid"], "controller": True,
                "blockOwnerDeletion": True}])
        self.assertEqual(sorted(e["message"] for e in h.events("SuccessfulCreate")),
                         sorted("Created pod: " + p["metadata"]["name"] for p in pods))
        status = h.get("replicasets", "rs")["status"]
        self.assertEqual((status["replicas"], status["fullyLabeledReplicas"],
                          status["readyReplicas"], status["observedGeneration"]), (3, 3, 0, 1))

    def test_replaces_deleted_pod(self):
        """A pod deleted by hand (or being deleted) is replaced at once."""
        h = self.harness()
        h.create("nodes", node("n1"))
        h.create("replicasets", replicaset(replicas=2))
        h.run()
        h.kubelet()
        victim = h.pods(app="rs")[0]["metadata"]["name"]
        h.call(h.client.delete("pods", victim, namespace="default"))
        h.run()
        self.assertTrue(h.get("pods", victim)["metadata"]["deletionTimestamp"])
        self.assertEqual(len(live(h)), 2)
        self.assertNotIn(victim, [p["metadata"]["name"] for p in live(h)])

    def test_scale_down_prefers_unready_and_unscheduled(self):
        """Scaling down deletes pending and not-ready pods before ready ones, with
        SuccessfulDelete events."""
        h = self.harness()
        h.create("nodes", node("n1"))
        h.create("replicasets", replicaset(replicas=2))
        h.run()
        h.kubelet()
        ready = {p["metadata"]["name"] for p in h.pods(app="rs")}
        h.call(h.client.patch("replicasets", "rs", {"spec": {"replicas": 4}},
                              namespace="default"))
        h.run()
        self.assertEqual(len(live(h)), 4)
        h.call(h.client.patch("replicasets", "rs", {"spec": {"replicas": 2}},
                              namespace="default"))
        h.run()
        self.assertEqual({p["metadata"]["name"] for p in live(h)}, ready)
        self.assertEqual(len(h.events("SuccessfulDelete")), 2)

    def test_adopts_and_releases(self):
        """An orphan pod with matching labels is adopted (and counted); a pod whose labels
        stop matching is released and replaced."""
        h = self.harness()
        h.create("pods", pod("stray", labels={"app": "rs"}))
        rs = h.create("replicasets", replicaset(replicas=2))
        h.run()
        stray = h.get("pods", "stray")
        self.assertEqual(stray["metadata"]["ownerReferences"][0]["uid"], rs["metadata"]["uid"])
        self.assertEqual(len(h.pods(app="rs")), 2)
        h.call(h.client.patch("pods", "stray", {"metadata": {"labels": {"app": "other"}}},
                              namespace="default"))
        h.run()
        self.assertFalse(h.get("pods", "stray")["metadata"].get("ownerReferences"))
        self.assertEqual(len(h.pods(app="rs")), 2)

    def test_expectations_prevent_double_creation(self):
        """While the cache has not shown the pods it created, a resync creates nothing."""
        h = self.harness()
        h.create("replicasets", replicaset(replicas=3))
        h.run()
        controller = h.cp.replicasets
        self.assertTrue(controller._satisfied("default/rs"))
        before = len(h.pods(app="rs"))
        controller.queue.add("default/rs")
        h.run()
        self.assertEqual((before, len(h.pods(app="rs"))), (3, 3))
        controller._expect("default/rs", adds=5)
        h.call(h.client.delete("pods", h.pods(app="rs")[0]["metadata"]["name"],
                               namespace="default"))
        h.run()
        self.assertEqual(len(h.pods(app="rs")), 2, "waits for the 5 expected pods")
        h.run(302, step=100)
        self.assertEqual(len(h.pods(app="rs")), 3, "expectations expire after 5 minutes")

    def test_create_failure(self):
        """A refused creation gives a FailedCreate event and the ReplicaFailure condition;
        the retry succeeds and clears it."""
        h = self.harness()
        h.api.fail_next(403, "Forbidden", "quota exceeded", matching="/pods")
        h.create("replicasets", replicaset(replicas=1))
        h.run()
        self.assertEqual(h.events("FailedCreate")[0]["message"],
                         "Error creating: quota exceeded")
        h.run(1)
        self.assertEqual(len(h.pods(app="rs")), 1)
        self.assertNotIn("conditions", h.get("replicasets", "rs")["status"])
        self.flushLoggedErrors()

    def test_available_after_min_ready(self):
        """availableReplicas counts pods ready for minReadySeconds."""
        h = self.harness()
        h.create("nodes", node("n1"))
        h.create("replicasets", replicaset(replicas=1, min_ready=10))
        h.run()
        h.kubelet()
        status = h.get("replicasets", "rs")["status"]
        self.assertEqual((status["readyReplicas"], status.get("availableReplicas", 0)), (1, 0))
        h.run(11)
        self.assertEqual(h.get("replicasets", "rs")["status"]["availableReplicas"], 1)

    def test_deleting_replicaset_makes_nothing(self):
        """A ReplicaSet being deleted creates no pods."""
        h = self.harness()
        h.create("replicasets", replicaset(replicas=1))
        h.run()
        h.call(h.client.delete("replicasets", "rs", namespace="default",
                               propagation_policy="Orphan"))
        h.run()
        for p in h.pods(app="rs"):
            h.call(h.client.delete("pods", p["metadata"]["name"], namespace="default"))
        h.run()
        self.assertEqual(h.pods(app="rs"), [])
