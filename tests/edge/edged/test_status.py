"""Pod status computation: container states, phase, conditions and QoS class."""

from twisted.trial.unittest import SynchronousTestCase

from kubeedge_tw.edge.edged.runtime import LABEL_RESTART_COUNT, ContainerInfo
from kubeedge_tw.edge.edged.status import (
    build_pod_status, container_status, pod_conditions, pod_phase, qos_class)


def run(cid, state="running", code=0, restart=0, **kw):
    return ContainerInfo(id=cid, name="n", labels={LABEL_RESTART_COUNT: str(restart)},
                         image="img", image_id="sha256:abc", state=state, exit_code=code,
                         started_at="2026-01-01T00:00:00Z",
                         finished_at="" if state == "running" else "2026-01-01T00:00:05Z",
                         **kw)


def cs(state, last=None, ready=False):
    return {"name": "c", "state": state, "lastState": last or {}, "ready": ready}


class ContainerStatusTests(SynchronousTestCase):
    """container_status for each situation a container can be in."""

    def test_running(self):
        """A running run gives state running, ids with docker://, the restart count and
        the previous run as lastState."""
        status = container_status("c", "img", [run("new", restart=2),
                                               run("old", "exited", 1, restart=1)], ready=True)
        self.assertEqual(status["state"], {"running": {"startedAt": "2026-01-01T00:00:00Z"}})
        self.assertEqual(status["restartCount"], 2)
        self.assertEqual(status["containerID"], "docker://new")
        self.assertEqual(status["imageID"], "docker://sha256:abc")
        self.assertTrue(status["ready"] and status["started"])
        self.assertEqual(status["lastState"]["terminated"]["exitCode"], 1)

    def test_terminated_reasons(self):
        """Exit 0 is Completed, non-zero Error, OOM OOMKilled, a failed start
        ContainerCannotRun with the runtime's message."""
        def reason(info):
            return container_status("c", "i", [info])["state"]["terminated"]["reason"]
        self.assertEqual(reason(run("a", "exited", 0)), "Completed")
        self.assertEqual(reason(run("a", "exited", 2)), "Error")
        self.assertEqual(reason(run("a", "exited", 137, oom_killed=True)), "OOMKilled")
        cannot = ContainerInfo(id="a", name="n", labels={}, image="i", image_id="",
                               state="created", exit_code=127, error="no such file")
        state = container_status("c", "i", [cannot])["state"]["terminated"]
        self.assertEqual((state["reason"], state["message"]), ("ContainerCannotRun",
                                                               "no such file"))

    def test_waiting(self):
        """A waiting reason shows with the last run as lastState; nothing yet is
        ContainerCreating."""
        status = container_status("c", "i", [run("a", "exited", 1)],
                                  waiting=("CrashLoopBackOff", "back-off 10s"))
        self.assertEqual(status["state"]["waiting"]["reason"], "CrashLoopBackOff")
        self.assertEqual(status["lastState"]["terminated"]["exitCode"], 1)
        self.assertFalse(status["ready"])
        self.assertEqual(container_status("c", "i", [])["state"],
                         {"waiting": {"reason": "ContainerCreating"}})
        self.assertEqual(container_status("c", "i", [])["restartCount"], 0)


class PhaseTests(SynchronousTestCase):
    """kubelet's getPhase."""

    def test_table(self):
        """Phase by restart policy and container states."""
        running = cs({"running": {}})
        ok = cs({"terminated": {"exitCode": 0}})
        bad = cs({"terminated": {"exitCode": 1}})
        waiting = cs({"waiting": {"reason": "ContainerCreating"}})
        backoff = cs({"waiting": {"reason": "CrashLoopBackOff"}},
                     last={"terminated": {"exitCode": 1}})
        cases = [
            ("Always", [running], "Running"),
            ("Always", [waiting, running], "Pending"),
            ("Always", [ok], "Running"),
            ("Never", [ok, ok], "Succeeded"),
            ("Never", [ok, bad], "Failed"),
            ("OnFailure", [ok], "Succeeded"),
            ("OnFailure", [bad], "Running"),
            ("Always", [backoff], "Running"),
            ("Never", [], "Pending"),
        ]
        for policy, statuses, phase in cases:
            self.assertEqual(pod_phase(policy, statuses), phase, (policy, statuses))


class ConditionTests(SynchronousTestCase):
    """Pod conditions and their transition times."""

    def test_ready_and_transitions(self):
        """Ready follows the containers; a transition time stays while the condition
        does not change."""
        first = pod_conditions("Running", [cs({}, ready=False) | {"name": "a"}], "T1")
        by_type = {c["type"]: c for c in first}
        self.assertEqual([c["type"] for c in first],
                         ["Initialized", "Ready", "ContainersReady", "PodScheduled"])
        self.assertEqual(by_type["Ready"]["status"], "False")
        self.assertEqual(by_type["Ready"]["reason"], "ContainersNotReady")
        self.assertIn("[a]", by_type["Ready"]["message"])
        second = {c["type"]: c for c in pod_conditions(
            "Running", [{"name": "a", "ready": True}], "T2", first)}
        self.assertEqual(second["Ready"]["status"], "True")
        self.assertEqual(second["Ready"]["lastTransitionTime"], "T2")
        self.assertEqual(second["PodScheduled"]["lastTransitionTime"], "T1")
        done = {c["type"]: c for c in pod_conditions("Succeeded", [{"name": "a"}], "T3")}
        self.assertEqual(done["Ready"]["reason"], "PodCompleted")

    def test_qos(self):
        """Guaranteed when limits equal requests for cpu and memory, BestEffort with no
        resources, else Burstable."""
        self.assertEqual(qos_class([{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]),
                         "Guaranteed")
        self.assertEqual(qos_class([{}]), "BestEffort")
        self.assertEqual(qos_class([{"resources": {"requests": {"cpu": "1"}}}]), "Burstable")

    def test_build(self):
        """The pod status carries phase, IPs, start time, QoS and a pod message."""
        status = build_pod_status("Always", [cs({"running": {}}, ready=True) | {"name": "c"}],
                                  [{}], "192.0.2.10", "T0", "T1", message="m")
        self.assertEqual(status["phase"], "Running")
        self.assertEqual((status["hostIP"], status["podIP"]), ("192.0.2.10", "192.0.2.10"))
        self.assertEqual(status["podIPs"], [{"ip": "192.0.2.10"}])
        self.assertEqual((status["startTime"], status["qosClass"], status["message"]),
                         ("T0", "BestEffort", "m"))
