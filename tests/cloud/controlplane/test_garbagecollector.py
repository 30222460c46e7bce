"""The garbage collector: dangling owners, background cascade, foreground and orphan
deletion, partial owners and owners of types that are not watched."""

from twisted.trial.unittest import SynchronousTestCase

from tests.cloud.controlplane.support import HarnessMixin, deployment, pod


def owned_pod(name, *owners):
    """A pod with owner references ``(kind, apiVersion, name, uid)``."""
    manifest = pod(name)
    manifest["metadata"]["ownerReferences"] = [
        {"kind": kind, "apiVersion": api_version, "name": owner, "uid": uid,
         "controller": i == 0, "blockOwnerDeletion": True}
        for i, (kind, api_version, owner, uid) in enumerate(owners)]
    return manifest


class GarbageCollectorTests(HarnessMixin, SynchronousTestCase):
    """Against the fake API server (foreground/orphan finalizers from the extension)."""

    def setUp(self):
        self.h = self.harness()

    def test_dangling_owner(self):
        """A pod whose only owner does not exist is deleted."""
        h = self.h
        h.create("pods", owned_pod("p", ("ReplicaSet", "apps/v1", "gone", "uid-gone")))
        h.run()
        self.assertIsNone(h.get("pods", "p"))

    def test_background_cascade(self):
        """Deleting a Deployment removes its ReplicaSet and then their pods."""
        h = self.h
        h.create("deployments", deployment("web", replicas=2))
        h.run()
        self.assertEqual((len(h.objects("replicasets")), len(h.pods(app="web"))), (1, 2))
        h.call(h.client.delete("deployments", "web", namespace="default"))
        h.run()
        self.assertEqual((h.objects("replicasets"), h.pods(app="web")), ([], []))

    def test_foreground(self):
        """Foreground deletion keeps the Deployment until its dependents are gone, then
        the finalizer goes and so does the Deployment."""
        h = self.h
        h.create("deployments", deployment("web", replicas=2))
        h.run()
        seen = []
        h.call(h.client.delete("deployments", "web", namespace="default",
                               propagation_policy="Foreground"))
        h.run()
        for change in h.api.history:
            if change.type.plural == "deployments" and change.new is not None and \
                    change.new["metadata"].get("deletionTimestamp"):
                seen.append(change.new["metadata"].get("finalizers"))
        self.assertIn(["foregroundDeletion"], seen)
        self.assertIsNone(h.get("deployments", "web"))
        self.assertEqual((h.objects("replicasets"), h.pods(app="web")), ([], []))
        deletions = [c.type.plural for c in h.api.history if c.event == "DELETED"]
        self.assertEqual(deletions[-1], "deployments", "the owner goes last")

    def test_orphan(self):
        """Orphan deletion strips the owner reference from dependents, then the owner
        goes: the ReplicaSet of an orphaned Deployment stays, with its pods."""
        h = self.h
        h.create("deployments", deployment("web", replicas=2))
        h.run()
        h.call(h.client.delete("deployments", "web", namespace="default",
                               propagation_policy="Orphan"))
        h.run(1)
        self.assertIsNone(h.get("deployments", "web"))
        [rs] = h.objects("replicasets")
        self.assertNotIn("ownerReferences", rs["metadata"])
        self.assertEqual(len(h.pods(app="web")), 2)

    def test_orphan_pods(self):
        """A ReplicaSet deleted with Orphan leaves its pods, without owner references."""
        h = self.h
        h.create("replicasets", {"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                 "metadata": {"name": "rs"},
                                 "spec": {"replicas": 2,
                                          "selector": {"matchLabels": {"app": "rs"}},
                                          "template": {"metadata": {"labels": {"app": "rs"}},
                                                       "spec": {"containers": [
                                                           {"name": "c", "image": "x"}]}}}})
        h.run()
        h.call(h.client.delete("replicasets", "rs", namespace="default",
                               propagation_policy="Orphan"))
        h.run(1)
        self.assertEqual(h.objects("replicasets"), [])
        pods = h.pods(app="rs")
        self.assertEqual([p["metadata"].get("ownerReferences") for p in pods], [None, None])

    def test_partial_owners(self):
        """When one of two owners is gone only its reference is removed."""
        h = self.h
        cm = h.create("configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                     "metadata": {"name": "cfg"}})
        h.create("pods", owned_pod("p", ("ConfigMap", "v1", "cfg", cm["metadata"]["uid"]),
                                   ("ReplicaSet", "apps/v1", "gone", "uid-gone")))
        h.run(1)
        refs = h.get("pods", "p")["metadata"]["ownerReferences"]
        self.assertEqual([r["name"] for r in refs], ["cfg"])

    def test_owner_of_unwatched_type(self):
        """An owner of a type not watched is checked with a GET: kept while it exists,
        and a unknown kind is never taken as gone."""
        h = self.h
        cm = h.create("configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                     "metadata": {"name": "cfg"}})
        h.create("pods", owned_pod("kept", ("ConfigMap", "v1", "cfg", cm["metadata"]["uid"])))
        h.create("pods", owned_pod("stale", ("ConfigMap", "v1", "cfg", "old-uid")))
        h.create("pods", owned_pod("job", ("Job", "batch/v1", "j", "uid-j")))
        h.run()
        self.assertIsNotNone(h.get("pods", "kept"))
        self.assertIsNone(h.get("pods", "stale"))
        self.assertIsNotNone(h.get("pods", "job"))

    def test_late_owner_not_collected(self):
        """A dependent seen before its owner (informers are independent) is kept: the
        live GET finds the owner."""
        h = self.h
        rs = h.api.put("replicasets", {"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                       "metadata": {"name": "rs"},
                                       "spec": {"replicas": 0, "selector": {
                                           "matchLabels": {"x": "y"}}, "template": {
                                           "metadata": {"labels": {"x": "y"}}}}})
        h.run()
        gc = self.h.cp.gc
        del gc._uids[rs["metadata"]["uid"]]  # as if the ReplicaSet informer were late
        h.create("pods", owned_pod("p", ("ReplicaSet", "apps/v1", "rs",
                                         rs["metadata"]["uid"])))
        h.run()
        self.assertIsNotNone(h.get("pods", "p"))
