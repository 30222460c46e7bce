"""Node lifecycle: Unknown after the grace, taints by readiness, recovery, leases, and
eviction only when asked for."""

from twisted.trial.unittest import SynchronousTestCase

from kubeedge_tw.cloud.controlplane.util import format_time
from tests.cloud.controlplane.support import HarnessMixin, node, pod


def ready(h, name="n1"):
    """The node's Ready condition."""
    return next(c for c in h.get("nodes", name)["status"]["conditions"] if c["type"] == "Ready")


def condition_taints(h, name="n1"):
    """``(key, effect)`` of the node's taints."""
    return sorted((t["key"], t["effect"]) for t in h.get("nodes", name)["spec"].get("taints")
                  or ())


UNREACHABLE = [("node.kubernetes.io/unreachable", "NoExecute"),
               ("node.kubernetes.io/unreachable", "NoSchedule")]


class NodeLifecycleTests(HarnessMixin, SynchronousTestCase):
    """Against the fake API server, heartbeats posted by the test."""

    def setUp(self):
        self.h = self.harness()
        self.h.create("nodes", node("n1"))
        self.h.heartbeat("n1")

    def test_unknown_after_grace(self):
        """No heartbeat for the grace period: every condition Unknown (heartbeat time
        kept), unreachable taints, a NodeNotReady event."""
        h = self.h
        before = ready(h)["lastHeartbeatTime"]
        h.run(39)
        self.assertEqual(ready(h)["status"], "True")
        self.assertEqual(condition_taints(h), [])
        h.run(7)
        condition = ready(h)
        self.assertEqual((condition["status"], condition["reason"], condition["message"]),
                         ("Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status."))
        self.assertEqual(condition["lastHeartbeatTime"], before)
        self.assertEqual(condition_taints(h), UNREACHABLE)
        no_execute = next(t for t in h.get("nodes", "n1")["spec"]["taints"]
                          if t["effect"] == "NoExecute")
        self.assertTrue(no_execute["timeAdded"])
        [event] = h.events("NodeNotReady")
        self.assertEqual(event["message"], "Node n1 status is now: NodeNotReady")
        self.assertEqual(event["involvedObject"]["kind"], "Node")

    def test_heartbeats_keep_ready(self):
        """A node posting every 10 s stays Ready and untainted."""
        h = self.h
        for _ in range(10):
            h.run(10)
            h.heartbeat("n1")
        self.assertEqual(ready(h)["status"], "True")
        self.assertEqual(condition_taints(h), [])

    def test_recovers_when_heartbeats_resume(self):
        """After Unknown, the next status post makes it Ready, the taints go, and a
        NodeReady event says so."""
        h = self.h
        h.run(50)
        self.assertEqual(ready(h)["status"], "Unknown")
        h.heartbeat("n1")
        h.run(1)
        self.assertEqual(ready(h)["status"], "True")
        self.assertEqual(condition_taints(h), [])
        self.assertEqual(h.events("NodeReady")[0]["message"], "Node n1 status is now: NodeReady")
        h.run(30)
        self.assertEqual(ready(h)["status"], "True")

    def test_not_ready_taints(self):
        """An edge reporting Ready=False gets the not-ready taints."""
        h = self.h
        h.heartbeat("n1", status="False")
        h.run(1)
        self.assertEqual(condition_taints(h), [("node.kubernetes.io/not-ready", "NoExecute"),
                                               ("node.kubernetes.io/not-ready", "NoSchedule")])

    def test_lease_is_a_heartbeat(self):
        """Renewing the node Lease keeps the node alive without status posts."""
        h = self.h
        lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                 "metadata": {"name": "n1", "namespace": "kube-node-lease"},
                 "spec": {"holderIdentity": "n1", "renewTime": format_time(h.clock.seconds())}}
        h.create("leases", lease, namespace="kube-node-lease")
        for _ in range(6):
            h.run(10)
            h.call(h.client.patch("leases", "n1", {"spec": {"renewTime": format_time(
                h.clock.seconds())}}, namespace="kube-node-lease"))
        self.assertEqual(ready(h)["status"], "True")

    def test_skewed_heartbeat_times(self):
        """Heartbeat times are compared by when they changed, not by their value: an edge
        whose clock is a day behind stays Ready while it posts."""
        h = self.h
        for i in range(6):
            h.run(10)
            stamp = format_time(h.clock.seconds() - 86400)
            h.call(h.client.patch_status("nodes", "n1", {"status": {"conditions": [
                {"type": "Ready", "status": "True", "lastHeartbeatTime": stamp}]}},
                patch_type="strategic"))
        self.assertEqual(ready(h)["status"], "True")

    def test_never_posted(self):
        """A node that never posted a status gets Ready=Unknown NodeStatusNeverUpdated."""
        h = self.h
        h.create("nodes", node("silent", ready=None))
        h.run(46)
        condition = ready(h, "silent")
        self.assertEqual((condition["status"], condition["reason"], condition["message"]),
                         ("Unknown", "NodeStatusNeverUpdated",
                          "Kubelet never posted node status."))

    def test_other_taints_kept(self):
        """Taints that are not the controller's stay."""
        h = self.h
        h.call(h.client.patch("nodes", "n1", {"spec": {"taints": [
            {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]}}))
        h.run(50)
        self.assertEqual(condition_taints(h), [("dedicated", "NoSchedule")] + UNREACHABLE)
        h.heartbeat("n1")
        h.run(1)
        self.assertEqual(condition_taints(h), [("dedicated", "NoSchedule")])

    def test_no_eviction_by_default(self):
        """Pods of an unreachable node stay (edge autonomy)."""
        h = self.h
        h.create("pods", pod("p", node_name="n1"))
        h.run(600, step=10)
        self.assertIsNotNone(h.get("pods", "p"))
        self.assertIsNone(h.get("pods", "p")["metadata"].get("deletionTimestamp"))


    def test_pods_marked_not_ready_then_ready_again(self):
        """Ready leaving True marks the node's Ready pods not ready, with a NodeNotReady
        Warning each, once; other nodes' pods are untouched; the edge's next status posts
        make them Ready again."""
        h = self.h
        h.create("nodes", node("n2"))
        h.heartbeat("n2")
        h.create("pods", pod("here", node_name="n1"))
        h.create("pods", pod("there", node_name="n2"))
        h.kubelet()
        for _ in range(5):
            h.run(10)
            h.heartbeat("n2")
        self.assertEqual(ready(h)["status"], "Unknown")

        def pod_ready(name):
            return next(c for c in h.get("pods", name)["status"]["conditions"]
                        if c["type"] == "Ready")
        marked = pod_ready("here")
        self.assertEqual(marked["status"], "False")
        self.assertEqual(pod_ready("there")["status"], "True")
        self.assertEqual(h.get("pods", "here")["status"]["phase"], "Running")
        def pod_events():
            return [e for e in h.events("NodeNotReady") if e["involvedObject"]["kind"] == "Pod"]
        [event] = pod_events()
        self.assertEqual((event["type"], event["message"], event["involvedObject"]["name"]),
                         ("Warning", "Node is not ready", "here"))
        for _ in range(6):
            h.run(10)
            h.heartbeat("n2")
        self.assertEqual(len(pod_events()), 1)
        self.assertEqual(pod_events()[0].get("count", 1), 1)

        h.heartbeat("n1")
        h.run(1)
        h.call(h.client.patch_status("pods", "here", {"status": {"conditions": [
            {"type": "Ready", "status": "True"}]}}, namespace="default",
            patch_type="strategic"))
        h.run(30, step=5)
        h.heartbeat("n1")
        h.run(1)
        self.assertEqual(pod_ready("here")["status"], "True")


class EvictionTests(HarnessMixin, SynchronousTestCase):
    """With eviction_timeout set."""

    def test_evicts_untolerating_pods(self):
        """After the timeout, pods not tolerating the NoExecute taint for ever are deleted
        with a TaintManagerEviction event; tolerating ones stay."""
        h = self.harness(eviction_timeout=60)
        h.create("nodes", node("n1"))
        h.heartbeat("n1")
        h.create("pods", pod("plain", node_name="n1"))
        h.create("pods", pod("limited", node_name="n1", tolerations=[
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists",
             "effect": "NoExecute", "tolerationSeconds": 300}]))
        h.create("pods", pod("forever", node_name="n1", tolerations=[
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists",
             "effect": "NoExecute"}]))
        h.run(50)
        self.assertEqual(ready(h)["status"], "Unknown")
        h.run(50)
        self.assertIsNone(h.get("pods", "plain")["metadata"].get("deletionTimestamp"))
        h.run(20)
        self.assertTrue(h.get("pods", "plain")["metadata"].get("deletionTimestamp"))
        self.assertTrue(h.get("pods", "limited")["metadata"].get("deletionTimestamp"))
        self.assertIsNone(h.get("pods", "forever")["metadata"].get("deletionTimestamp"))
        self.assertEqual(len(h.events("TaintManagerEviction")), 2)
