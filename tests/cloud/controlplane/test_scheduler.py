"""The scheduler against the fake API server: filters, scoring, messages, retries."""

from twisted.trial.unittest import SynchronousTestCase

from kubeedge_tw.cloud.controlplane.scheduler import (
    failure_message, node_affinity_matches, num_feasible_nodes_to_find, pod_info, tolerates)
from tests.cloud.controlplane.support import HarnessMixin, node, pod

GPU_TAINT = [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]


def bound(h, name):
    """The node a pod is bound to (None when pending)."""
    return h.get("pods", name)["spec"].get("nodeName")


def scheduled_condition(h, name):
    """The pod's PodScheduled condition."""
    return next(c for c in h.get("pods", name)["status"].get("conditions") or ()
                if c["type"] == "PodScheduled")


class PureFunctionTests(SynchronousTestCase):
    """Filters and helpers as functions."""

    def test_affinity_operators(self):
        """In, NotIn, Exists, DoesNotExist, Gt, Lt and matchFields, terms ORed."""
        labels = {"zone": "a", "cores": "8"}

        def spec(*expressions, fields=()):
            term = {"matchExpressions": list(expressions)}
            if fields:
                term["matchFields"] = list(fields)
            return {"affinity": {"nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [term]}}}}
        cases = [
            ({"key": "zone", "operator": "In", "values": ["a", "b"]}, True),
            ({"key": "zone", "operator": "NotIn", "values": ["a"]}, False),
            ({"key": "gpu", "operator": "NotIn", "values": ["x"]}, True),
            ({"key": "zone", "operator": "Exists"}, True),
            ({"key": "zone", "operator": "DoesNotExist"}, False),
            ({"key": "cores", "operator": "Gt", "values": ["4"]}, True),
            ({"key": "cores", "operator": "Lt", "values": ["4"]}, False),
            ({"key": "zone", "operator": "Gt", "values": ["4"]}, False),
        ]
        for expression, expected in cases:
            self.assertEqual(node_affinity_matches(spec(expression), labels, "n1"), expected,
                             expression)
        by_name = {"key": "metadata.name", "operator": "In", "values": ["n1"]}
        self.assertTrue(node_affinity_matches(spec(fields=[by_name]), labels, "n1"))
        self.assertFalse(node_affinity_matches(spec(fields=[by_name]), labels, "n2"))
        two_terms = {"affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z"]}]},
                {"matchExpressions": [{"key": "cores", "operator": "Exists"}]}]}}}}
        self.assertTrue(node_affinity_matches(two_terms, labels, "n1"))
        self.assertFalse(node_affinity_matches({"nodeSelector": {"zone": "b"}}, labels, "n"))

    def test_tolerations(self):
        """Equal compares values, Exists does not, an empty effect matches all, an empty
        key with Exists matches every taint."""
        self.assertTrue(tolerates([{"key": "k", "value": "v"}], "k", "v", "NoSchedule"))
        self.assertFalse(tolerates([{"key": "k", "value": "w"}], "k", "v", "NoSchedule"))
        self.assertTrue(tolerates([{"key": "k", "operator": "Exists"}], "k", "v", "NoExecute"))
        self.assertFalse(tolerates([{"key": "k", "operator": "Exists", "effect": "NoExecute"}],
                                   "k", "v", "NoSchedule"))
        self.assertTrue(tolerates([{"operator": "Exists"}], "any", "", "NoSchedule"))

    def test_pod_requests(self):
        """Requests sum over containers, at least each init container's, plus overhead; a
        missing request is the limit; containerPorts count as host ports."""
        info = pod_info({"spec": {
            "containers": [
                {"resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                 "ports": [{"containerPort": 80}, {"containerPort": 53, "protocol": "UDP",
                                                   "hostIP": "10.0.0.1"}]},
                {"resources": {"limits": {"cpu": "200m", "nvidia.com/gpu": "1"}}}],
            "initContainers": [{"resources": {"requests": {"cpu": "1", "memory": "1Mi"}}}],
            "overhead": {"cpu": "10m"}}})
        self.assertEqual(info.cpu, 1010)
        self.assertEqual(info.mem, 64 * 2 ** 20)
        self.assertEqual(info.scalar, {"nvidia.com/gpu": 1})
        self.assertEqual(info.nz_mem, 64 * 2 ** 20 + 200 * 2 ** 20)
        self.assertEqual(info.ports, (("TCP", "0.0.0.0", 80), ("UDP", "10.0.0.1", 53)))

    def test_feasible_nodes_to_find(self):
        """All of a small cluster; 42 % of 1,000 nodes; never fewer than 100."""
        self.assertEqual(num_feasible_nodes_to_find(50), 50)
        self.assertEqual(num_feasible_nodes_to_find(1000), 420)
        self.assertEqual(num_feasible_nodes_to_find(150), 100)
        self.assertEqual(num_feasible_nodes_to_find(10000, 10), 1000)

    def test_message_form(self):
        """Counts and reasons sorted as text, then a full stop; no nodes is its own text."""
        from collections import Counter
        self.assertEqual(failure_message(3, Counter({
            "node(s) didn't match Pod's node affinity/selector": 2,
            "node(s) had untolerated taint {dedicated: gpu}": 1})),
            "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, "
            "2 node(s) didn't match Pod's node affinity/selector.")
        self.assertEqual(failure_message(0, Counter()), "no nodes available to schedule pods")


class SchedulingTests(HarnessMixin, SynchronousTestCase):
    """Pods are bound where they fit, through pods/binding, with events."""

    def test_node_selector(self):
        """A nodeSelector pod lands on the matching node, with a Scheduled event and the
        PodScheduled condition."""
        h = self.harness()
        h.create("nodes", node("n1", {"zone": "a"}))
        h.create("nodes", node("n2", {"zone": "b"}))
        h.create("pods", pod("p", node_selector={"zone": "b"}))
        h.run()
        self.assertEqual(bound(h, "p"), "n2")
        self.assertEqual(scheduled_condition(h, "p")["status"], "True")
        [event] = h.events("Scheduled")
        self.assertEqual(event["message"], "Successfully assigned default/p to n2")
        self.assertEqual(event["source"]["component"], "default-scheduler")
        self.assertIn(("POST", "/api/v1/namespaces/default/pods/p/binding"), h.api.requests)

    def test_taint_needs_toleration(self):
        """A tainted node only gets pods tolerating its taint."""
        h = self.harness()
        h.create("nodes", node("gpu", {"zone": "a"}, taints=GPU_TAINT))
        h.create("pods", pod("plain"))
        h.create("pods", pod("tolerant", tolerations=[
            {"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]))
        h.run()
        self.assertIsNone(bound(h, "plain"))
        self.assertEqual(bound(h, "tolerant"), "gpu")
        self.assertEqual(scheduled_condition(h, "plain")["message"],
                         "0/1 nodes are available: 1 node(s) had untolerated taint "
                         "{dedicated: gpu}.")

    def test_prefer_no_schedule_ignored(self):
        """PreferNoSchedule taints do not filter."""
        h = self.harness()
        h.create("nodes", node("n1", taints=[{"key": "k", "effect": "PreferNoSchedule"}]))
        h.create("pods", pod("p"))
        h.run()
        self.assertEqual(bound(h, "p"), "n1")

    def test_unschedulable_message_condition_event(self):
        """A pod fitting nowhere gets PodScheduled=False/Unschedulable with the counted
        reasons, and a FailedScheduling warning."""
        h = self.harness()
        h.create("nodes", node("a", {"zone": "a"}))
        h.create("nodes", node("b", {"zone": "b"}))
        h.create("nodes", node("c", {"zone": "c"}, taints=GPU_TAINT))
        h.create("pods", pod("p", node_selector={"zone": "c"}))
        h.run()
        message = ("0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu},"
                   " 2 node(s) didn't match Pod's node affinity/selector.")
        condition = scheduled_condition(h, "p")
        self.assertEqual((condition["status"], condition["reason"], condition["message"]),
                         ("False", "Unschedulable", message))
        [event] = h.events("FailedScheduling")
        self.assertEqual((event["type"], event["message"]), ("Warning", message))

    def test_unschedulable_and_not_ready_nodes(self):
        """Cordoned and not-Ready nodes get no pods unless tolerated."""
        h = self.harness()
        h.create("nodes", node("cordoned", unschedulable=True))
        h.create("nodes", node("down", ready="False"))
        h.create("nodes", node("lost", ready="Unknown"))
        h.create("pods", pod("p"))
        h.run()
        self.assertEqual(scheduled_condition(h, "p")["message"],
                         "0/3 nodes are available: 1 node(s) had untolerated taint "
                         "{node.kubernetes.io/not-ready: }, 1 node(s) had untolerated taint "
                         "{node.kubernetes.io/unreachable: }, 1 node(s) were unschedulable.")
        h.create("pods", pod("daemon", tolerations=[
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists"}]))
        h.run()
        self.assertEqual(bound(h, "daemon"), "down")

    def test_resources_fit_least_requested(self):
        """Pods go to the least requested node and only where the requests fit."""
        h = self.harness()
        h.create("nodes", node("small", cpu="2", memory="4Gi"))
        h.create("nodes", node("big", cpu="4", memory="8Gi"))
        h.create("pods", pod("a", cpu="1500m", memory="1Gi"))
        h.run()
        self.assertEqual(bound(h, "a"), "big")
        h.create("pods", pod("b", cpu="1000m", memory="1Gi"))
        h.run()
        self.assertEqual(bound(h, "b"), "small")
        h.create("pods", pod("c", cpu="1500m", memory="1Gi"))
        h.run()
        self.assertEqual(bound(h, "c"), "big")
        h.create("pods", pod("d", cpu="1500m"))
        h.run()
        self.assertEqual(scheduled_condition(h, "d")["message"],
                         "0/2 nodes are available: 2 Insufficient cpu.")

    def test_assumed_pods_count(self):
        """Pods created together never overcommit a node: each is counted as soon as it
        is chosen, before its bind returns."""
        h = self.harness()
        h.create("nodes", node("n1", cpu="4"))
        for name in ("a", "b", "c"):
            h.call(h.client.create("pods", pod(name, cpu="1500m"), namespace="default"))
        h.run()
        self.assertEqual(sorted(bound(h, n) or "-" for n in "abc"), ["-", "n1", "n1"])

    def test_too_many_pods_and_extended_resources(self):
        """allocatable pods and extended resources are limits too."""
        h = self.harness()
        h.create("nodes", node("n1", pods="1"))
        h.create("pods", pod("a"))
        h.create("pods", pod("b"))
        h.run()
        pending = "a" if bound(h, "b") else "b"
        self.assertEqual(scheduled_condition(h, pending)["message"],
                         "0/1 nodes are available: 1 Too many pods.")
        gpu_pod = pod("g")
        gpu_pod["spec"]["containers"][0]["resources"] = {"limits": {"nvidia.com/gpu": "1"}}
        h.create("nodes", node("n2"))
        h.create("pods", gpu_pod)
        h.run()
        self.assertIn("Insufficient nvidia.com/gpu", scheduled_condition(h, "g")["message"])

    def test_host_ports(self):
        """Pods listening on the same port go to different nodes (host networking)."""
        h = self.harness()
        h.create("nodes", node("n1"))
        h.create("nodes", node("n2"))
        for name in ("a", "b", "c"):
            h.create("pods", pod(name, ports=[80]))
        h.create("pods", pod("udp", ports=[{"containerPort": 80, "protocol": "UDP"}]))
        h.run()
        self.assertEqual(sorted(filter(None, (bound(h, n) for n in "abc"))), ["n1", "n2"])
        self.assertTrue(bound(h, "udp"))
        pending = next(n for n in "abc" if not bound(h, n))
        self.assertEqual(scheduled_condition(h, pending)["message"],
                         "0/2 nodes are available: 2 node(s) didn't have free ports for the "
                         "requested pod ports.")

    def test_no_nodes(self):
        """Without nodes the message says so."""
        h = self.harness()
        h.create("pods", pod("p"))
        h.run()
        self.assertEqual(scheduled_condition(h, "p")["message"],
                         "no nodes available to schedule pods")

    def test_other_schedulers_and_bound_pods(self):
        """Pods for another scheduler are left alone; pods created bound count."""
        h = self.harness()
        h.create("nodes", node("n1", cpu="2"))
        h.create("pods", pod("mine", cpu="1500m", node_name="n1"))
        h.create("pods", pod("theirs", scheduler_name="other"))
        h.create("pods", pod("p", cpu="1"))
        h.run()
        self.assertIsNone(bound(h, "theirs"))
        self.assertEqual(h.get("pods", "theirs")["status"].get("conditions"), None)
        self.assertIn("Insufficient cpu", scheduled_condition(h, "p")["message"])


class RetryTests(HarnessMixin, SynchronousTestCase):
    """Unschedulable pods are retried when the cluster changes, with backoff."""

    def test_retried_when_node_added(self):
        """A pending pod is bound once a fitting node appears."""
        h = self.harness()
        h.create("nodes", node("n1", {"zone": "a"}))
        h.create("pods", pod("p", node_selector={"zone": "b"}))
        h.run()
        self.assertIsNone(bound(h, "p"))
        h.create("nodes", node("n2", {"zone": "b"}))
        h.run(2)
        self.assertEqual(bound(h, "p"), "n2")

    def test_heartbeats_do_not_retry(self):
        """A node update that changes nothing for scheduling does not retry pods."""
        h = self.harness()
        h.create("nodes", node("n1", {"zone": "a"}))
        h.create("pods", pod("p", node_selector={"zone": "b"}))
        h.run()
        for _ in range(3):
            h.heartbeat("n1")
            h.run(2)
        self.assertEqual(h.events("FailedScheduling")[0]["count"], 1)
        h.call(h.client.patch("nodes", "n1", {"metadata": {"labels": {"zone": "b"}}}))
        h.run(2)
        self.assertEqual(bound(h, "p"), "n1")

    def test_retried_when_bound_pod_deleted(self):
        """Freed resources retry the pods that did not fit."""
        h = self.harness()
        h.create("nodes", node("n1", cpu="1"))
        h.create("pods", pod("first", cpu="800m"))
        h.run()
        h.create("pods", pod("second", cpu="800m"))
        h.run()
        self.assertIsNone(bound(h, "second"))
        h.call(h.client.delete("pods", "first", namespace="default", grace_period_seconds=0))
        h.run(2)
        self.assertEqual(bound(h, "second"), "n1")

    def test_periodic_retry_and_backoff(self):
        """An unschedulable pod is retried every ``unschedulable_timeout`` anyway; a
        cluster change retries it only after its backoff."""
        h = self.harness()
        h.create("pods", pod("p", node_selector={"zone": "x"}))
        h.run()
        h.run(59)
        self.assertEqual(h.events("FailedScheduling")[0]["count"], 1)
        h.run(2)
        self.assertEqual(h.events("FailedScheduling")[0]["count"], 2)
        h.create("nodes", node("n1", {"zone": "x"}))
        h.run()
        self.assertIsNone(bound(h, "p"), "attempt 2 backs off 2 s")
        h.run(2)
        self.assertEqual(bound(h, "p"), "n1")

    def test_bind_refused_forgets_assumption(self):
        """A pod bound by someone else meanwhile is not retried and its node is counted
        once."""
        h = self.harness()
        h.create("nodes", node("n1", cpu="1"))
        h.api.fail_next(409, "Conflict", "already assigned", matching="/binding")
        h.create("pods", pod("p", cpu="600m"))
        h.run(5)
        self.assertIsNone(bound(h, "p"))
        h.call(h.client.create("pods", {"apiVersion": "v1", "kind": "Binding", "metadata": {
            "name": "p"}, "target": {"name": "n1"}}, namespace="default",
            subresource="binding"))
        h.create("pods", pod("q", cpu="300m"))
        h.run()
        self.assertEqual(bound(h, "q"), "n1")
        info = h.cp.scheduler.node_infos["n1"]
        self.assertEqual((info.req_cpu, sorted(info.pods)), (900, ["default/p", "default/q"]))

    def test_server_error_retried(self):
        """A failing bind (500) is retried with backoff and succeeds."""
        h = self.harness()
        h.create("nodes", node("n1"))
        h.api.fail_next(500, "InternalError", matching="/binding")
        h.create("pods", pod("p"))
        h.run(1)
        self.assertEqual(bound(h, "p"), "n1")

    def test_terminal_pods_free_resources(self):
        """A Succeeded pod's requests no longer count."""
        h = self.harness()
        h.create("nodes", node("n1", cpu="1"))
        h.create("pods", pod("job", cpu="800m"))
        h.run()
        h.create("pods", pod("next", cpu="800m"))
        h.run()
        self.assertIsNone(bound(h, "next"))
        h.call(h.client.patch_status("pods", "job", {"status": {"phase": "Succeeded"}},
                                     namespace="default"))
        h.run(2)
        self.assertEqual(bound(h, "next"), "n1")
