"""The Deployment controller: ReplicaSets by template hash, rolling updates within
maxSurge/maxUnavailable, Recreate, scaling, revisions, status and conditions."""

from twisted.trial.unittest import SynchronousTestCase

from kubeedge_tw.cloud.controlplane.deployment import (
    DESIRED_REPLICAS, HASH_LABEL, MAX_REPLICAS, REVISION, compute_hash, max_surge,
    max_unavailable, resolve_fenceposts)
from kubeedge_tw.cloud.controlplane.util import pod_is_ready
from tests.cloud.controlplane.support import HarnessMixin, deployment, node


def live_pods(h, app="web"):
    """Pods of the Deployment not being deleted."""
    return [p for p in h.pods(app=app) if not p["metadata"].get("deletionTimestamp")]


def replicasets(h):
    """ReplicaSets by name."""
    return {rs["metadata"]["name"]: rs for rs in h.objects("replicasets")}


def set_image(h, image, name="web"):
    """Change the template (what kubectl set image does)."""
    h.call(h.client.patch("deployments", name, {"spec": {"template": {"spec": {
        "containers": [{"name": "c", "image": image}]}}}}, namespace="default",
        patch_type="strategic"))


def scale(h, replicas, name="web"):
    """The scale subresource, as kubectl scale uses it."""
    current = h.call(h.client.get("deployments", name, namespace="default",
                                  subresource="scale"))
    current["spec"]["replicas"] = replicas
    h.call(h.client.update("deployments", current, namespace="default", subresource="scale"))


def rollout_done(d):
    """kubectl rollout status's test of a Deployment."""
    status = d.get("status") or {}
    replicas = d["spec"]["replicas"]
    return d["metadata"]["generation"] <= status.get("observedGeneration", 0) and \
        status.get("updatedReplicas", 0) >= replicas and \
        status.get("replicas", 0) <= status.get("updatedReplicas", 0) and \
        status.get("availableReplicas", 0) >= status.get("updatedReplicas", 0)


class FunctionTests(SynchronousTestCase):
    """Hashing and fenceposts."""

    def test_hash_stable(self):
        """The hash depends on the template and the collision count only, and uses the
        safe alphabet."""
        template = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": []}}
        same = {"spec": {"containers": []}, "metadata": {"labels": {"app": "web"}}}
        self.assertEqual(compute_hash(template), compute_hash(same))
        self.assertNotEqual(compute_hash(template), compute_hash(template, 1))
        self.assertTrue(set(compute_hash(template)) <= set("bcdfghjklmnpqrstvwxz2456789"))

    def test_fenceposts(self):
        """25 %/25 % of 4 is 1/1; of 1 is 1/0; 0/0 becomes 0/1; absolute values pass."""
        self.assertEqual(resolve_fenceposts(None, None, 4), (1, 1))
        self.assertEqual(resolve_fenceposts(None, None, 1), (1, 0))
        self.assertEqual(resolve_fenceposts(0, "0%", 10), (0, 1))
        self.assertEqual(resolve_fenceposts("50%", 2, 3), (2, 2))
        recreate = {"spec": {"replicas": 4, "strategy": {"type": "Recreate"}}}
        self.assertEqual((max_surge(recreate), max_unavailable(recreate)), (0, 0))
        too_many = {"spec": {"replicas": 2, "strategy": {"rollingUpdate": {
            "maxUnavailable": 5}}}}
        self.assertEqual(max_unavailable(too_many), 2)


class DeploymentTests(HarnessMixin, SynchronousTestCase):
    """Against the fake API server, with a kubelet stand-in making pods ready."""

    def setUp(self):
        self.h = self.harness()
        self.h.create("nodes", node("n1", cpu="64", memory="64Gi"))

    def settle(self, rounds=20):
        """Let the kubelet stand-in and the controllers run until nothing changes."""
        for _ in range(rounds):
            self.h.kubelet()
            self.h.run(1)

    def test_replicaset_from_template(self):
        """The ReplicaSet is <deployment>-<hash> with the hash label on itself, its
        selector and template, revision 1, replicas annotations and an owner reference."""
        h = self.h
        d = h.create("deployments", deployment("web", replicas=2))
        h.run()
        [rs] = h.objects("replicasets")
        pod_hash = rs["metadata"]["labels"][HASH_LABEL]
        self.assertEqual(rs["metadata"]["name"], "web-" + pod_hash)
        self.assertEqual(rs["spec"]["selector"]["matchLabels"],
                         {"app": "web", HASH_LABEL: pod_hash})
        self.assertEqual(rs["spec"]["template"]["metadata"]["labels"][HASH_LABEL], pod_hash)
        self.assertEqual(rs["metadata"]["annotations"][REVISION], "1")
        self.assertEqual(rs["metadata"]["annotations"][DESIRED_REPLICAS], "2")
        self.assertEqual(rs["metadata"]["annotations"][MAX_REPLICAS], "3")
        self.assertEqual(rs["metadata"]["ownerReferences"][0]["uid"], d["metadata"]["uid"])
        self.assertEqual(h.get("deployments", "web")["metadata"]["annotations"][REVISION], "1")
        [event] = h.events("ScalingReplicaSet")
        self.assertEqual(event["message"], "Scaled up replica set {} to 2".format(
            rs["metadata"]["name"]))
        self.assertEqual(len(live_pods(h)), 2)

    def test_status_and_conditions(self):
        """Once the pods are ready the status is complete and Progressing says
        NewReplicaSetAvailable, which is what kubectl rollout status waits for."""
        h = self.h
        h.create("deployments", deployment("web", replicas=2))
        h.run()
        d = h.get("deployments", "web")
        self.assertFalse(rollout_done(d))
        self.assertEqual(d["status"]["unavailableReplicas"], 2)
        self.settle(3)
        d = h.get("deployments", "web")
        status = d["status"]
        self.assertTrue(rollout_done(d))
        self.assertEqual((status["replicas"], status["updatedReplicas"],
                          status["readyReplicas"], status["availableReplicas"],
                          status.get("unavailableReplicas", 0),
                          status["observedGeneration"]), (2, 2, 2, 2, 0, 1))
        conditions = {c["type"]: c for c in status["conditions"]}
        self.assertEqual((conditions["Available"]["status"], conditions["Available"]["reason"]),
                         ("True", "MinimumReplicasAvailable"))
        self.assertEqual(conditions["Progressing"]["reason"], "NewReplicaSetAvailable")
        self.assertIn("has successfully progressed", conditions["Progressing"]["message"])

    def test_rolling_update_bounds(self):
        """An image change rolls pods over keeping total <= replicas + maxSurge and ready
        >= replicas - maxUnavailable at every step, ending with only new pods."""
        h = self.h
        h.create("deployments", deployment("web", replicas=4))
        self.settle(3)
        old_names = {p["metadata"]["name"] for p in live_pods(h)}
        set_image(h, "nginx:2")
        for _ in range(30):
            h.run(1)
            pods = live_pods(h)
            self.assertLessEqual(len(pods), 5)
            self.assertGreaterEqual(sum(1 for p in pods if pod_is_ready(p)), 3)
            h.kubelet()
            if rollout_done(h.get("deployments", "web")):
                break
        d = h.get("deployments", "web")
        self.assertTrue(rollout_done(d))
        pods = live_pods(h)
        self.assertEqual(len(pods), 4)
        self.assertFalse(old_names & {p["metadata"]["name"] for p in pods})
        self.assertEqual({p["spec"]["containers"][0]["image"] for p in pods}, {"nginx:2"})
        self.assertEqual(d["metadata"]["annotations"][REVISION], "2")
        sizes = sorted((rs["metadata"]["annotations"][REVISION], rs["spec"]["replicas"])
                       for rs in h.objects("replicasets"))
        self.assertEqual(sizes, [("1", 0), ("2", 4)])

    def test_max_surge_zero(self):
        """maxSurge 0, maxUnavailable 1: never more pods than replicas."""
        h = self.h
        h.create("deployments", deployment("web", replicas=3, strategy={
            "type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}))
        self.settle(3)
        set_image(h, "nginx:2")
        for _ in range(30):
            h.run(1)
            self.assertLessEqual(len(live_pods(h)), 3)
            self.assertGreaterEqual(sum(1 for p in live_pods(h) if pod_is_ready(p)), 2)
            h.kubelet()
            if rollout_done(h.get("deployments", "web")):
                break
        self.assertTrue(rollout_done(h.get("deployments", "web")))

    def test_recreate(self):
        """Recreate scales the old ReplicaSet to 0 and waits for its pods to go before
        making new ones."""
        h = self.h
        h.create("deployments", deployment("web", replicas=2, strategy={"type": "Recreate"}))
        self.settle(3)
        set_image(h, "nginx:2")
        h.run(1)
        self.assertEqual({rs["spec"]["replicas"] for rs in h.objects("replicasets")}, {0})
        self.assertEqual(len(h.objects("replicasets")), 1, "no new ReplicaSet yet")
        self.assertEqual(len(h.pods(app="web")), 2, "old pods still terminating")
        self.settle(5)
        d = h.get("deployments", "web")
        self.assertTrue(rollout_done(d))
        self.assertEqual({p["spec"]["containers"][0]["image"] for p in h.pods(app="web")},
                         {"nginx:2"})

    def test_scale_subresource(self):
        """kubectl scale 1 -> 3 -> 1 resizes the ReplicaSet, with events."""
        h = self.h
        h.create("deployments", deployment("web", replicas=1))
        self.settle(2)
        scale(h, 3)
        self.settle(3)
        self.assertEqual(len(live_pods(h)), 3)
        self.assertTrue(rollout_done(h.get("deployments", "web")))
        scale(h, 1)
        self.settle(3)
        self.assertEqual(len(live_pods(h)), 1)
        [rs] = h.objects("replicasets")
        self.assertEqual(rs["metadata"]["annotations"][DESIRED_REPLICAS], "1")
        messages = [e["message"] for e in h.events("ScalingReplicaSet")]
        name = rs["metadata"]["name"]
        self.assertIn("Scaled up replica set {} to 3 from 1".format(name), messages)
        self.assertIn("Scaled down replica set {} to 1 from 3".format(name), messages)

    def test_proportional_scaling_during_rollout(self):
        """Scaling in the middle of a rollout spreads the change over both ReplicaSets."""
        h = self.h
        h.create("deployments", deployment("web", replicas=10, strategy={
            "type": "RollingUpdate", "rollingUpdate": {"maxSurge": 3, "maxUnavailable": 0}}))
        self.settle(3)
        set_image(h, "nginx:2")
        h.run(1)  # the new ReplicaSet exists with 3 pods that never get ready
        sizes = sorted(rs["spec"]["replicas"] for rs in h.objects("replicasets"))
        self.assertEqual(sizes, [3, 10])
        scale(h, 20)
        h.run(1)
        sizes = sorted(rs["spec"]["replicas"] for rs in h.objects("replicasets"))
        self.assertEqual(sum(sizes), 23)
        self.assertEqual(sizes, [5, 18])  # 3 * 23 / 13 and 10 * 23 / 13, rounded

    def test_rollback_reuses_replicaset(self):
        """Going back to an old template reuses its ReplicaSet with the next revision."""
        h = self.h
        h.create("deployments", deployment("web", replicas=1, image="nginx:1"))
        self.settle(2)
        first = set(replicasets(h))
        set_image(h, "nginx:2")
        self.settle(4)
        set_image(h, "nginx:1")
        self.settle(4)
        self.assertEqual(len(replicasets(h)), 2)
        [reused] = first
        rs = replicasets(h)[reused]
        self.assertEqual(rs["metadata"]["annotations"][REVISION], "3")
        self.assertEqual(rs["spec"]["replicas"], 1)
        self.assertEqual(h.get("deployments", "web")["metadata"]["annotations"][REVISION], "3")

    def test_revision_history_limit(self):
        """Old empty ReplicaSets beyond revisionHistoryLimit are deleted."""
        h = self.h
        h.create("deployments", deployment("web", replicas=1, revision_limit=1))
        self.settle(2)
        for tag in ("2", "3", "4"):
            set_image(h, "nginx:" + tag)
            self.settle(4)
        revisions = sorted(rs["metadata"]["annotations"][REVISION]
                           for rs in h.objects("replicasets"))
        self.assertEqual(revisions, ["3", "4"])

    def test_progress_deadline(self):
        """Without progress for progressDeadlineSeconds, Progressing turns False with
        ProgressDeadlineExceeded."""
        h = self.h
        h.create("deployments", deployment("web", replicas=1, deadline=30))
        h.run(1)
        h.run(40, step=5)
        conditions = {c["type"]: c for c in h.get("deployments", "web")["status"]["conditions"]}
        self.assertEqual((conditions["Progressing"]["status"],
                          conditions["Progressing"]["reason"]),
                         ("False", "ProgressDeadlineExceeded"))
        self.assertEqual(conditions["Available"]["status"], "False")

    def test_hash_collision(self):
        """A foreign ReplicaSet holding the hash name bumps collisionCount and a new name
        is used."""
        h = self.h
        manifest = deployment("web", replicas=1)
        pod_hash = compute_hash(manifest["spec"]["template"])
        h.create("replicasets", {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {
            "name": "web-" + pod_hash, "labels": {"app": "other"}}, "spec": {
            "replicas": 0, "selector": {"matchLabels": {"app": "other"}},
            "template": {"metadata": {"labels": {"app": "other"}},
                         "spec": {"containers": [{"name": "x", "image": "y"}]}}}})
        h.create("deployments", manifest)
        h.run(2)
        d = h.get("deployments", "web")
        self.assertEqual(d["status"]["collisionCount"], 1)
        ours = [rs for rs in h.objects("replicasets")
                if rs["metadata"].get("ownerReferences")]
        self.assertEqual([rs["metadata"]["name"] for rs in ours],
                         ["web-" + compute_hash(manifest["spec"]["template"], 1)])
        self.flushLoggedErrors()
