"""Edged on a Clock with the verified FakeRuntime and a fake MetaManager: node
registration and status, pod lifecycle, restart policies and back-off, probes, graceful
deletion, adoption after a restart, bad specs, image pull policies, volumes and env,
garbage collection, and a clean stop."""

import base64
import os

from twisted.trial.unittest import SynchronousTestCase

from kubeedge_tw.common import names
from kubeedge_tw.common.message import new_message
from kubeedge_tw.edge.edged.runtime import (
    LABEL_CONTAINER_HASH, LABEL_CONTAINER_NAME, LABEL_GRACE_PERIOD, LABEL_MANAGED_BY,
    LABEL_NODE, LABEL_POD_NAME, LABEL_POD_NAMESPACE, LABEL_POD_UID, LABEL_RESTART_COUNT,
    ContainerConfig, ExecResult, FsUsage)
from tests.edge.edged.fakes import TEST_IMAGE, EdgedHarness, make_pod


def shell(script, **kw):
    """A busybox container running ``sh -c script``."""
    container = {"name": "main", "image": TEST_IMAGE, "imagePullPolicy": "IfNotPresent",
                 "command": ["sh", "-c", script]}
    container.update(kw)
    return container


class EdgedTestCase(SynchronousTestCase):
    """Builds a harness per test; its cleanup stops edged and checks that no timer of
    edged's is left on the clock."""

    def harness(self, start=True, **kw):
        """An EdgedHarness, started unless ``start`` is False, stopped at cleanup."""
        h = EdgedHarness(self, **kw)
        if start:
            h.start()
        self.addCleanup(self._stop, h)
        return h

    def _stop(self, h):
        if h.edged.running:
            self.successResultOf(h.stop())
        self.assertEqual(h.clock.getDelayedCalls(), [])

    def runs(self, h, pod):
        """The pod's containers in the runtime, oldest first."""
        return sorted((c for c in h.runtime.containers.values()
                       if c.config.labels.get(LABEL_POD_NAME) == pod), key=lambda c: c.created)

    def waiting_reason(self, h, pod, container="main"):
        """The waiting reason last reported for a container, or None."""
        status = h.meta.container_status(pod, container) or {}
        return status.get("state", {}).get("waiting", {}).get("reason")

    def publish(self, h, content):
        """The hub's node/connection broadcast with ``content``."""
        h.bus.send(names.EDGED, new_message("edgehub", names.META_GROUP, names.OP_PUBLISH,
                                            names.RES_NODE_CONNECTION, content))
        h.pump()


class NodeTests(EdgedTestCase):
    """Registration and node status."""

    def test_start_loads_registers_and_reports(self):
        """At start edged queries default/pod, registers the Node with a sync insert and
        then reports node status every nodeStatusUpdateFrequency seconds."""
        h = self.harness()
        queries = h.meta.sent(names.OP_QUERY)
        self.assertEqual(queries[0].resource, "default/pod")
        self.assertTrue(queries[0].sync)
        insert = h.meta.sent(names.OP_INSERT)[0]
        self.assertEqual(insert.resource, "default/node/edge-1")
        self.assertTrue(insert.sync)
        self.assertEqual((insert.source, insert.group), ("edged", "meta"))
        node = insert.content
        self.assertEqual(node["metadata"]["labels"]["node-role.kubernetes.io/edge"], "")
        self.assertEqual(node["status"]["nodeInfo"]["containerRuntimeVersion"],
                         "docker://20.10.24")
        statuses = h.meta.sent(names.OP_UPDATE, names.RES_NODESTATUS)
        self.assertEqual(len(statuses), 1)
        self.assertEqual(statuses[0].resource, "default/nodestatus/edge-1")
        self.assertEqual(set(statuses[0].content), {"UID", "Status", "ExtendResources"})
        self.assertIsNone(statuses[0].content["ExtendResources"])
        h.advance(10)
        self.assertEqual(len(h.meta.sent(names.OP_UPDATE, names.RES_NODESTATUS)), 2)

    def test_registration_retried_until_answered(self):
        """An error reply or no reply means retry with back-off; cloud_connected retries
        at once; the uid the cloud answers with is reported."""
        h = self.harness(start=False)
        h.meta.register_reply = ("error", "cloud is disconnected")
        h.start()
        self.assertEqual(len(h.meta.sent(names.OP_INSERT)), 1)
        self.assertEqual(h.meta.sent(names.OP_UPDATE, names.RES_NODESTATUS), [])
        h.advance(2)
        self.assertEqual(len(h.meta.sent(names.OP_INSERT)), 2)
        h.advance(3.5)
        self.assertEqual(len(h.meta.sent(names.OP_INSERT)), 2)
        h.advance(0.5)
        self.assertEqual(len(h.meta.sent(names.OP_INSERT)), 3)
        h.meta.register_reply = None  # no answer: the query times out (15 s)
        h.advance(8)
        self.assertEqual(len(h.meta.sent(names.OP_INSERT)), 4)
        h.meta.register_reply = {"Object": {"metadata": {"name": "edge-1", "uid": "n-1"}},
                                 "Err": None}
        h.advance(15)
        self.assertEqual(len(h.meta.sent(names.OP_INSERT)), 4)
        self.publish(h, names.CLOUD_CONNECTED)
        self.assertEqual(len(h.meta.sent(names.OP_INSERT)), 5)
        self.assertTrue(h.edged.registered)
        status = h.meta.sent(names.OP_UPDATE, names.RES_NODESTATUS)[-1]
        self.assertEqual(status.content["UID"], "n-1")

    def test_register_node_false(self):
        """With registerNode false there is no insert and node status starts at once."""
        h = self.harness(register_node=False)
        self.assertEqual(h.meta.sent(names.OP_INSERT), [])
        self.assertEqual(len(h.meta.sent(names.OP_UPDATE, names.RES_NODESTATUS)), 1)

    def test_not_ready_while_runtime_down(self):
        """While Docker does not answer the node is NotReady with the reason; it is
        Ready again when Docker is back."""
        h = self.harness()
        h.runtime.available = False
        h.advance(10)
        ready = [c for c in h.meta.sent(names.OP_UPDATE, names.RES_NODESTATUS)[-1]
                 .content["Status"]["conditions"] if c["type"] == "Ready"][0]
        self.assertEqual((ready["status"], ready["reason"]), ("False", "EdgeNotReady"))
        self.assertIn("fake outage", ready["message"])
        h.runtime.available = True
        h.advance(10)
        ready = [c for c in h.meta.sent(names.OP_UPDATE, names.RES_NODESTATUS)[-1]
                 .content["Status"]["conditions"] if c["type"] == "Ready"][0]
        self.assertEqual(ready["status"], "True")


class PodLifecycleTests(EdgedTestCase):
    """Pods start, report, change and go."""

    def test_pod_runs_and_reports(self):
        """A pod update starts a labelled container; its status is sent once, again
        periodically, and on reconnect; /pods lists it."""
        h = self.harness()
        h.meta.add_pod(make_pod("web", grace=7))
        h.pump()
        [run] = self.runs(h, "web")
        labels = run.config.labels
        self.assertEqual(
            {k: labels[k] for k in (LABEL_POD_NAME, LABEL_POD_NAMESPACE, LABEL_POD_UID,
                                    LABEL_CONTAINER_NAME, LABEL_RESTART_COUNT,
                                    LABEL_MANAGED_BY, LABEL_NODE, LABEL_GRACE_PERIOD)},
            {LABEL_POD_NAME: "web", LABEL_POD_NAMESPACE: "default", LABEL_POD_UID: "uid-web",
             LABEL_CONTAINER_NAME: "main", LABEL_RESTART_COUNT: "0",
             LABEL_MANAGED_BY: "edged", LABEL_NODE: "edge-1", LABEL_GRACE_PERIOD: "7"})
        self.assertTrue(labels[LABEL_CONTAINER_HASH])
        self.assertEqual(run.config.name, "k8s_main_web_default_uid-web_0")
        self.assertEqual(run.config.entrypoint, ["sleep", "3600"])
        statuses = h.meta.sent(names.OP_UPDATE, names.RES_PODSTATUS)
        self.assertEqual(len(statuses), 1)
        message = statuses[0]
        self.assertEqual(message.resource, "default/podstatus/web")
        self.assertEqual((message.content["UID"], message.content["Name"]), ("uid-web", "web"))
        status = message.content["Status"]
        self.assertEqual(status["phase"], "Running")
        self.assertEqual((status["podIP"], status["hostIP"]), ("192.0.2.10", "192.0.2.10"))
        self.assertEqual(status["startTime"], "1970-01-01T00:00:00Z")
        ready = {c["type"]: c["status"] for c in status["conditions"]}
        self.assertEqual(ready, {"Initialized": "True", "Ready": "True",
                                 "ContainersReady": "True", "PodScheduled": "True"})
        main = status["containerStatuses"][0]
        self.assertEqual(main["containerID"], "docker://" + run.id)
        self.assertIn("running", main["state"])
        h.advance(10)
        self.assertEqual(len(h.meta.sent(names.OP_UPDATE, names.RES_PODSTATUS)), 1)
        h.advance(50)
        self.assertEqual(len(h.meta.sent(names.OP_UPDATE, names.RES_PODSTATUS)), 2)
        self.publish(h, names.CLOUD_CONNECTED)
        self.assertEqual(len(h.meta.sent(names.OP_UPDATE, names.RES_PODSTATUS)), 3)
        listed = h.edged.pod_list()
        self.assertEqual(listed["kind"], "PodList")
        self.assertEqual(listed["items"][0]["status"]["phase"], "Running")

    def test_insert_works_like_update(self):
        """A pod ``insert`` (older clouds) starts the pod as an update does."""
        h = self.harness()
        h.meta.add_pod(make_pod("a"), operation=names.OP_INSERT)
        h.pump()
        self.assertEqual(h.meta.status("a")["phase"], "Running")

    def test_spec_change_recreates(self):
        """A changed container spec replaces the container (restart count + 1); a change
        elsewhere in the pod does not."""
        h = self.harness()
        pod = make_pod("web", grace=0)
        h.meta.add_pod(pod)
        h.pump()
        pod["metadata"]["labels"]["tier"] = "front"
        h.meta.add_pod(pod)
        h.pump()
        self.assertEqual(len(self.runs(h, "web")), 1)
        pod["spec"]["containers"][0]["command"] = ["sleep", "7200"]
        h.meta.add_pod(pod)
        h.pump()
        old, new = self.runs(h, "web")
        self.assertEqual(old.state, "exited")
        self.assertEqual(new.state, "running")
        self.assertEqual(new.config.labels[LABEL_RESTART_COUNT], "1")
        self.assertEqual(new.config.entrypoint, ["sleep", "7200"])

    def test_graceful_delete_then_delete(self):
        """A deletionTimestamp sends SIGTERM, waits the grace period on the clock, then
        SIGKILL; the status says so; delete then removes containers and volumes."""
        h = self.harness()
        pod = make_pod("web", volumes=[{"name": "scratch", "emptyDir": {}}])
        pod["spec"]["containers"][0]["volumeMounts"] = [{"name": "scratch",
                                                         "mountPath": "/scratch"}]
        h.meta.add_pod(pod)
        h.pump()
        pod_dir = os.path.join(h.volume_root, "pods", "uid-web")
        self.assertTrue(os.path.isdir(pod_dir))
        pod["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
        pod["metadata"]["deletionGracePeriodSeconds"] = 5
        h.meta.add_pod(pod)
        h.pump()
        [run] = self.runs(h, "web")
        self.assertEqual(run.state, "running")  # PID 1 ignores SIGTERM
        self.assertIn(("kill_container", (run.id, "SIGTERM")), h.runtime.calls)
        h.advance(4.5)
        self.assertEqual(run.state, "running")
        h.advance(1)
        self.assertEqual((run.state, run.exit_code), ("exited", 137))
        status = h.meta.status("web")
        self.assertEqual(status["phase"], "Failed")
        self.assertEqual(status["containerStatuses"][0]["state"]["terminated"]["exitCode"],
                         137)
        h.advance(30)
        self.assertEqual(len(self.runs(h, "web")), 1, "a terminating pod is not restarted")
        sent = len(h.meta.sent(names.OP_UPDATE, names.RES_PODSTATUS))
        h.meta.delete_pod("web", uid="uid-web")
        h.pump()
        self.assertEqual(self.runs(h, "web"), [])
        self.assertFalse(os.path.exists(pod_dir))
        self.assertEqual(h.edged.pod_list()["items"], [])
        h.advance(60)
        self.assertEqual(len(h.meta.sent(names.OP_UPDATE, names.RES_PODSTATUS)), sent)

    def test_trapped_sigterm_stops_at_once(self):
        """A container that handles SIGTERM stops without waiting for the grace period
        and the pod Succeeds."""
        h = self.harness()
        pod = make_pod("web", grace=30, containers=[
            shell("trap 'exit 0' TERM; sleep 3600 & wait")])
        h.meta.add_pod(pod)
        h.pump()
        pod["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
        h.meta.add_pod(pod)
        h.advance(1)
        self.assertEqual(h.meta.status("web")["phase"], "Succeeded")

    def test_delete_unknown_pod_removes_its_containers(self):
        """A delete for a pod edged does not know removes containers with its uid."""
        h = self.harness()
        cid = self.successResultOf(h.runtime.create_container(ContainerConfig(
            name="leftover", image=TEST_IMAGE, command=["sleep", "10"],
            labels={LABEL_MANAGED_BY: "edged", LABEL_NODE: "edge-1",
                    LABEL_POD_UID: "uid-old", LABEL_POD_NAME: "old",
                    LABEL_POD_NAMESPACE: "default", LABEL_CONTAINER_NAME: "main"})))
        h.bus.send(names.EDGED, new_message("edgecontroller", "resource", names.OP_DELETE,
                                            "default/pod/old",
                                            {"metadata": {"name": "old", "uid": "uid-old"}}))
        h.pump()
        self.assertNotIn(cid, h.runtime.containers)

    def test_uid_change_replaces_pod(self):
        """A pod recreated under the same name (new uid) replaces the old one."""
        h = self.harness()
        h.meta.add_pod(make_pod("web", grace=0, uid="uid-1"))
        h.pump()
        h.meta.add_pod(make_pod("web", grace=0, uid="uid-2"))
        h.pump()
        [run] = self.runs(h, "web")
        self.assertEqual(run.config.labels[LABEL_POD_UID], "uid-2")
        self.assertEqual(run.state, "running")

    def test_vanished_container_recreated(self):
        """A container removed behind edged's back is recreated at the next relist."""
        h = self.harness()
        h.meta.add_pod(make_pod("web"))
        h.pump()
        [run] = self.runs(h, "web")
        self.successResultOf(h.runtime.remove_container(run.id))
        h.advance(2)
        [again] = self.runs(h, "web")
        self.assertEqual(again.state, "running")
        self.assertNotEqual(again.id, run.id)

    def test_runtime_outage_during_sync(self):
        """A pod added while Docker is down is started once Docker answers again."""
        h = self.harness()
        h.runtime.available = False
        h.meta.add_pod(make_pod("web"))
        h.pump()
        self.assertEqual(self.runs(h, "web"), [])
        h.runtime.available = True
        h.advance(10)
        self.assertEqual(h.meta.status("web")["phase"], "Running")


class RestartPolicyTests(EdgedTestCase):
    """restartPolicy and kubelet's back-off."""

    def test_always_with_back_off(self):
        """A crashing container restarts at once, then 10, 20, 40 s after each death,
        waiting in CrashLoopBackOff meanwhile; the pod stays Running."""
        h = self.harness(container_gc_period=0)
        h.meta.add_pod(make_pod("crash", containers=[shell("exit 1")]))
        h.pump()
        h.advance(75)
        starts = [round(c.started) for c in self.runs(h, "crash")]
        self.assertEqual(starts, [0, 0, 10, 30, 70])
        self.assertEqual(self.waiting_reason(h, "crash"), "CrashLoopBackOff")
        status = h.meta.container_status("crash", "main")
        self.assertEqual(status["restartCount"], 4)
        self.assertIn("back-off 80s", status["state"]["waiting"]["message"])
        self.assertEqual(status["lastState"]["terminated"]["exitCode"], 1)
        self.assertEqual(h.meta.status("crash")["phase"], "Running")

    def test_never_and_on_failure(self):
        """Never leaves a failed container dead (Failed); OnFailure restarts a failure
        and leaves a success (Succeeded)."""
        h = self.harness()
        h.meta.add_pod(make_pod("never", restart_policy="Never", containers=[shell("exit 3")]))
        h.meta.add_pod(make_pod("fail", restart_policy="OnFailure",
                                containers=[shell("exit 3")]))
        h.meta.add_pod(make_pod("ok", restart_policy="OnFailure", containers=[shell("exit 0")]))
        h.advance(30)
        self.assertEqual(len(self.runs(h, "never")), 1)
        never = h.meta.status("never")
        self.assertEqual(never["phase"], "Failed")
        terminated = never["containerStatuses"][0]["state"]["terminated"]
        self.assertEqual((terminated["exitCode"], terminated["reason"]), (3, "Error"))
        self.assertGreater(len(self.runs(h, "fail")), 1)
        self.assertEqual(h.meta.status("fail")["phase"], "Running")
        self.assertEqual(len(self.runs(h, "ok")), 1)
        self.assertEqual(h.meta.status("ok")["phase"], "Succeeded")

    def test_start_failure_backs_off(self):
        """A command that cannot start is retried with back-off, shown as
        ContainerCannotRun in lastState."""
        h = self.harness()
        h.meta.add_pod(make_pod("bad", containers=[{
            "name": "main", "image": TEST_IMAGE, "imagePullPolicy": "IfNotPresent",
            "command": ["/no/such/program"]}]))
        h.advance(5)
        self.assertEqual(len(self.runs(h, "bad")), 2)
        status = h.meta.container_status("bad", "main")
        self.assertEqual(status["state"]["waiting"]["reason"], "CrashLoopBackOff")
        self.assertEqual(status["lastState"]["terminated"]["reason"], "ContainerCannotRun")
        self.assertIn("/no/such/program", status["lastState"]["terminated"]["message"])


class ProbeTests(EdgedTestCase):
    """Liveness restarts, readiness drives Ready."""

    def test_liveness_failure_restarts(self):
        """Failing liveness kills the container (grace period, then SIGKILL) and the
        restart policy restarts it."""
        h = self.harness()

        def handler(info, argv):
            return ExecResult(1 if h.clock.seconds() >= 5 else 0)
        h.runtime.exec_handler = handler
        h.meta.add_pod(make_pod("live", grace=3, containers=[shell("sleep 3600", livenessProbe={
            "exec": {"command": ["cat", "/tmp/healthy"]}, "periodSeconds": 1,
            "failureThreshold": 2})]))
        h.pump()
        h.advance(5.5)
        self.assertEqual(len(self.runs(h, "live")), 1)
        h.advance(4)
        first, second = self.runs(h, "live")[:2]
        self.assertEqual(first.exit_code, 137)
        self.assertEqual(round(first.started), 0)
        self.assertEqual(round(second.started), 9)
        status = h.meta.container_status("live", "main")
        self.assertEqual(status["restartCount"], 1)
        self.assertEqual(status["lastState"]["terminated"]["exitCode"], 137)

    def test_readiness_drives_ready(self):
        """Ready is False until readiness succeeds, and False again when it fails."""
        h = self.harness()
        answers = {"code": 1}
        h.runtime.exec_handler = lambda info, argv: ExecResult(answers["code"])
        h.meta.add_pod(make_pod("web", containers=[shell("sleep 3600", readinessProbe={
            "exec": {"command": ["true"]}, "periodSeconds": 1, "failureThreshold": 1})]))
        h.pump()

        def ready():
            conditions = h.meta.status("web")["conditions"]
            return [c["status"] for c in conditions if c["type"] == "Ready"][0]
        self.assertEqual(h.meta.status("web")["phase"], "Running")
        self.assertEqual(ready(), "False")
        h.advance(2)
        self.assertEqual(ready(), "False")
        answers["code"] = 0
        h.advance(1)
        self.assertEqual(ready(), "True")
        self.assertTrue(h.meta.container_status("web", "main")["ready"])
        answers["code"] = 1
        h.advance(1)
        self.assertEqual(ready(), "False")
        self.assertEqual(len(self.runs(h, "web")), 1, "readiness never restarts")


class AdoptionTests(EdgedTestCase):
    """An edged restart adopts what runs, recreates what is missing, removes orphans."""

    def orphan(self, h, uid="uid-gone", grace="0"):
        """A running container of a pod edged does not have."""
        cid = self.successResultOf(h.runtime.create_container(ContainerConfig(
            name="orphan-" + uid, image=TEST_IMAGE, command=["sleep", "3600"],
            labels={LABEL_MANAGED_BY: "edged", LABEL_NODE: "edge-1", LABEL_POD_UID: uid,
                    LABEL_POD_NAME: "gone", LABEL_POD_NAMESPACE: "default",
                    LABEL_CONTAINER_NAME: "main", LABEL_GRACE_PERIOD: grace})))
        self.successResultOf(h.runtime.start_container(cid))
        return cid

    def test_restart_adopts_running_containers(self):
        """After a restart running containers are kept (no create, same start time),
        a missing one is recreated and an orphan is stopped and removed."""
        first = self.harness()
        for name in ("a", "b"):
            first.meta.add_pod(make_pod(name))
        first.pump()
        self.successResultOf(first.stop())
        [a_run] = self.runs(first, "a")
        [b_run] = self.runs(first, "b")
        self.assertEqual(a_run.state, "running", "containers outlive edged")
        self.successResultOf(first.runtime.remove_container(b_run.id))
        orphan = self.orphan(first)
        creates = first.runtime.count("create_container")
        second = self.harness(start=False, clock=first.clock, runtime=first.runtime,
                              volume_root=first.volume_root)
        second.meta.store.update(first.meta.store)
        second.start()
        [a_again] = self.runs(second, "a")
        self.assertEqual(a_again.id, a_run.id)
        self.assertEqual(a_again.started, a_run.started)
        [b_again] = self.runs(second, "b")
        self.assertEqual(b_again.state, "running")
        self.assertEqual(second.runtime.count("create_container"), creates + 1)
        second.advance(2)
        self.assertNotIn(orphan, second.runtime.containers)
        self.assertEqual(second.meta.status("a")["containerStatuses"][0]["containerID"],
                         "docker://" + a_run.id)
        self.assertEqual(second.runtime.count("create_container"), creates + 1)

    def test_known_start_and_transition_times_kept(self):
        """A pod whose stored copy carries an earlier status keeps its startTime and the
        transition times of unchanged conditions."""
        h = self.harness()
        pod = make_pod("a")
        pod["status"] = {"phase": "Running", "startTime": "2020-01-01T00:00:00Z",
                         "conditions": [{"type": "Ready", "status": "True",
                                         "lastTransitionTime": "2020-01-01T00:00:05Z"}]}
        h.meta.add_pod(pod)
        h.pump()
        status = h.meta.status("a")
        self.assertEqual(status["startTime"], "2020-01-01T00:00:00Z")
        ready = [c for c in status["conditions"] if c["type"] == "Ready"][0]
        self.assertEqual(ready["lastTransitionTime"], "2020-01-01T00:00:05Z")

    def test_adopted_dead_container_restarts(self):
        """A container that died while edged was down restarts by its policy, with the
        next restart count."""
        first = self.harness()
        first.meta.add_pod(make_pod("a"))
        first.pump()
        self.successResultOf(first.stop())
        [run] = self.runs(first, "a")
        first.runtime.exit(run.id, 2)
        second = self.harness(start=False, clock=first.clock, runtime=first.runtime)
        second.meta.store.update(first.meta.store)
        second.start()
        old, new = self.runs(second, "a")
        self.assertEqual(new.config.labels[LABEL_RESTART_COUNT], "1")
        self.assertEqual(new.state, "running")

    def test_no_orphan_removal_before_pods_are_known(self):
        """Until MetaManager answered the pod query nothing is removed; the query is
        retried with back-off."""
        h = self.harness(start=False)
        h.meta.answer_queries = False
        orphan = self.orphan(h)
        h.start()
        h.advance(20)
        self.assertEqual(h.runtime.containers[orphan].state, "running")
        self.assertGreater(len([m for m in h.meta.sent(names.OP_QUERY)
                                if m.resource == "default/pod"]), 1)
        h.meta.answer_queries = True
        h.advance(20)
        self.assertNotIn(orphan, h.runtime.containers)
        self.assertTrue(h.edged.loaded)

    def test_orphan_grace_period(self):
        """An orphan is stopped with the grace period its label records."""
        h = self.harness()
        orphan = self.orphan(h, grace="5")
        h.advance(4)
        self.assertEqual(h.runtime.containers[orphan].state, "running")
        h.advance(3)
        self.assertNotIn(orphan, h.runtime.containers)


class BadInputTests(EdgedTestCase):
    """Specs edged cannot run become statuses; other pods are unaffected."""

    def test_bad_specs(self):
        """A bad image name, an unsupported volume and invalid resources give reasons;
        unusable messages are ignored; a good pod runs."""
        h = self.harness()
        h.meta.add_pod(make_pod("badname", containers=[{"name": "main", "image": "Bad Image!"}]))
        h.meta.add_pod(make_pod("nfs", volumes=[{"name": "d", "nfs": {"server": "s"}}]))
        h.meta.add_pod(make_pod("limits", containers=[shell(
            "sleep 1", resources={"limits": {"memory": "a lot"}})]))
        h.bus.send(names.EDGED, new_message("edgecontroller", "resource", "update",
                                            "default/pod/junk", "not a pod"))
        h.bus.send(names.EDGED, new_message("edgecontroller", "resource", "update",
                                            "bad-resource", {}))
        h.meta.add_pod(make_pod("good"))
        h.pump()
        self.assertEqual(self.waiting_reason(h, "badname"), "InvalidImageName")
        self.assertEqual(self.waiting_reason(h, "nfs"), "CreateContainerConfigError")
        self.assertIn("unsupported volume type nfs",
                      h.meta.container_status("nfs", "main")["state"]["waiting"]["message"])
        self.assertIn("unsupported volume type nfs", h.meta.status("nfs")["message"])
        self.assertEqual(self.waiting_reason(h, "limits"), "CreateContainerConfigError")
        for name in ("badname", "nfs", "limits"):
            self.assertEqual(self.runs(h, name), [])
            self.assertEqual(h.meta.status(name)["phase"], "Pending")
        self.assertEqual(h.meta.status("good")["phase"], "Running")

    def test_runtime_refuses_config(self):
        """A config Docker refuses (memory under 6 MB) is CreateContainerError, retried."""
        h = self.harness()
        h.meta.add_pod(make_pod("tiny", containers=[shell(
            "sleep 1", resources={"limits": {"memory": "1Mi"}})]))
        h.pump()
        self.assertEqual(self.waiting_reason(h, "tiny"), "CreateContainerError")
        self.assertIn("6MB", h.meta.container_status("tiny", "main")["state"]["waiting"][
            "message"])


class ImageTests(EdgedTestCase):
    """imagePullPolicy, pull failures and image GC."""

    def pod(self, name, image, policy):
        """A one-container pod with the given image and pull policy."""
        return make_pod(name, containers=[{"name": "main", "image": image,
                                           "imagePullPolicy": policy,
                                           "command": ["sleep", "3600"]}])

    def test_never_pull(self):
        """Never with the image absent is ErrImageNeverPull and never pulls."""
        h = self.harness()
        h.meta.add_pod(self.pod("p", "example/app:1", "Never"))
        h.advance(15)
        self.assertEqual(self.waiting_reason(h, "p"), "ErrImageNeverPull")
        self.assertEqual(h.runtime.count("pull_image"), 0)

    def test_pull_failure_backs_off(self):
        """A failed pull is ErrImagePull, then ImagePullBackOff; pulls are retried after
        10 s, then 20 s."""
        h = self.harness()
        h.meta.add_pod(self.pod("p", "example/app:1", "IfNotPresent"))
        h.pump()
        self.assertEqual(self.waiting_reason(h, "p"), "ErrImagePull")
        self.assertIn("no such host",
                      h.meta.container_status("p", "main")["state"]["waiting"]["message"])
        h.advance(1)
        self.assertEqual(self.waiting_reason(h, "p"), "ImagePullBackOff")
        self.assertEqual(h.runtime.count("pull_image"), 1)
        h.advance(9)
        self.assertEqual(h.runtime.count("pull_image"), 2)
        h.advance(19)
        self.assertEqual(h.runtime.count("pull_image"), 2)
        h.advance(1)
        self.assertEqual(h.runtime.count("pull_image"), 3)
        h.runtime.registry["example/app:1"] = 1000
        h.advance(40)
        self.assertEqual(h.meta.status("p")["phase"], "Running")

    def test_always_and_if_not_present(self):
        """IfNotPresent uses a local image without pulling; Always pulls even when it is
        local (and fails if the registry cannot serve it, as kubelet)."""
        h = self.harness()
        h.meta.add_pod(self.pod("local", TEST_IMAGE, "IfNotPresent"))
        h.pump()
        self.assertEqual(h.runtime.count("pull_image"), 0)
        h.meta.add_pod(self.pod("always", TEST_IMAGE, "Always"))
        h.pump()
        self.assertEqual(self.waiting_reason(h, "always"), "ErrImagePull")
        h.runtime.registry[TEST_IMAGE] = 1000
        h.meta.add_pod(self.pod("always2", TEST_IMAGE, "Always"))
        h.pump()
        self.assertEqual(h.meta.status("always2")["phase"], "Running")

    def test_image_gc(self):
        """Above the high threshold unused images go, oldest first; used ones stay."""
        h = self.harness()
        h.meta.add_pod(make_pod("web"))
        unused = h.runtime.add_image("old/unused:1", size=50 * 2 ** 30, created=1)
        h.runtime.fs = FsUsage(capacity=100 * 2 ** 30, available=10 * 2 ** 30)
        h.advance(300)
        self.assertNotIn(unused, h.runtime.images)
        self.assertEqual(len(h.runtime.images), 1)


class VolumeAndEnvTests(EdgedTestCase):
    """ConfigMap/Secret volumes and env through MetaManager."""

    def cm(self, value):
        """The ConfigMap cfg with ``key: value``."""
        return {"metadata": {"name": "cfg", "namespace": "default"}, "data": {"key": value}}

    def pod(self):
        """A pod mounting ConfigMap cfg at /etc/cfg."""
        return make_pod("web", volumes=[{"name": "c", "configMap": {"name": "cfg"}}],
                        containers=[shell("sleep 3600", volumeMounts=[
                            {"name": "c", "mountPath": "/etc/cfg"}])])

    def cat(self, h):
        """What /etc/cfg/key holds in the running container."""
        [run] = [c for c in self.runs(h, "web") if c.state == "running"]
        result = self.successResultOf(h.runtime.exec_in_container(run.id, ["cat",
                                                                           "/etc/cfg/key"], 1))
        return result.output

    def test_configmap_volume_updated_in_place(self):
        """The ConfigMap is asked of MetaManager, mounted read-only, and its update
        reaches the running container without a restart."""
        h = self.harness()
        h.meta.put_object("configmap", self.cm("v1"), push=False)
        h.meta.add_pod(self.pod())
        h.pump()
        self.assertIn("default/configmap/cfg",
                      [m.resource for m in h.meta.sent(names.OP_QUERY)])
        self.assertEqual(self.cat(h), b"v1")
        [run] = self.runs(h, "web")
        self.assertEqual(run.config.binds[0][1:], ("/etc/cfg", True))
        h.meta.put_object("configmap", self.cm("v2"))
        h.pump()
        self.assertEqual(self.cat(h), b"v2")
        self.assertEqual(len(self.runs(h, "web")), 1)

    def test_missing_configmap_waits(self):
        """A missing ConfigMap keeps the pod ContainerCreating with the reason; it starts
        when the ConfigMap arrives."""
        h = self.harness()
        h.meta.add_pod(self.pod())
        h.pump()
        status = h.meta.container_status("web", "main")
        self.assertEqual(status["state"]["waiting"]["reason"], "ContainerCreating")
        self.assertIn('configmap "cfg" not found', status["state"]["waiting"]["message"])
        self.assertEqual(self.runs(h, "web"), [])
        h.meta.put_object("configmap", self.cm("v1"))
        h.pump()
        self.assertEqual(h.meta.status("web")["phase"], "Running")

    def test_query_timeout_retries(self):
        """A query MetaManager does not answer fails the volume for now; it is retried."""
        h = self.harness()
        h.meta.answer_queries = False
        h.meta.put_object("configmap", self.cm("v1"), push=False)
        h.meta.add_pod(self.pod())
        h.advance(16)
        self.assertIn("could not be fetched", h.meta.container_status("web", "main")[
            "state"]["waiting"]["message"])
        h.meta.answer_queries = True
        h.advance(30)
        self.assertEqual(h.meta.status("web")["phase"], "Running")

    def test_secret_env(self):
        """env from a Secret key is resolved at creation; a missing Secret is
        CreateContainerConfigError."""
        h = self.harness()
        h.meta.put_object("secret", {"metadata": {"name": "s"}, "data": {
            "pw": base64.b64encode(b"hunter2").decode()}}, push=False)
        h.meta.add_pod(make_pod("web", containers=[shell("sleep 3600", env=[
            {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "s", "key": "pw"}}}])]))
        h.meta.add_pod(make_pod("missing", containers=[shell("sleep 3600", env=[
            {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "pw"}}}])]))
        h.pump()
        [run] = self.runs(h, "web")
        self.assertIn("PW=hunter2", run.config.env)
        self.assertEqual(self.waiting_reason(h, "missing"), "CreateContainerConfigError")


class HousekeepingTests(EdgedTestCase):
    """Container GC and stopping."""

    def test_container_gc_keeps_newest_dead(self):
        """Every minute dead runs beyond the newest dead one per container are removed;
        the restart count, kept in the newest run's labels, goes on."""
        h = self.harness()
        h.meta.add_pod(make_pod("crash", containers=[shell("exit 1")]))
        h.pump()
        h.advance(59)
        self.assertEqual(len(self.runs(h, "crash")), 4)
        h.advance(1)
        [kept] = self.runs(h, "crash")
        self.assertEqual(kept.config.labels[LABEL_RESTART_COUNT], "3")
        h.advance(10)
        self.assertEqual(h.meta.container_status("crash", "main")["restartCount"], 4)

    def test_stop_keeps_containers(self):
        """Stopping edged leaves containers running and stops the runtime's pool."""
        h = self.harness()
        h.meta.add_pod(make_pod("web"))
        h.pump()
        self.successResultOf(h.stop())
        self.assertFalse(h.runtime.started)
        [run] = self.runs(h, "web")
        self.assertEqual(run.state, "running")


class StartTurnTests(EdgedTestCase):
    """Creating and starting containers takes turns, so a burst of pods comes up one
    after another."""

    def created_names(self, h):
        """Pod names of the create calls edged made, in call order."""
        return [config.labels[LABEL_POD_NAME] for method, config in h.runtime.calls
                if method == "create_container"]

    def test_burst_comes_up_one_pod_after_another(self):
        """With two turns, only two pods' containers are created or started at once; the
        first pod is reported Running as soon as Docker started it, before the last
        pod's container is even created."""
        h = self.harness(concurrent_starts=2)
        h.runtime.hold("create_container", "start_container")
        for name in ("p0", "p1", "p2", "p3"):
            h.meta.add_pod(make_pod(name))
        h.pump()
        self.assertEqual(self.created_names(h), ["p0", "p1"])
        h.runtime.release(1)  # p0 created: its start goes in
        h.runtime.release(1)  # p1 created
        self.assertEqual([m for m, _ in h.runtime.in_flight()],
                         ["start_container", "start_container"])
        self.assertIsNone(h.meta.status("p0"))
        h.runtime.release(1)  # p0 started: reported, and p2 gets the turn
        h.pump()
        self.assertEqual(h.meta.status("p0")["phase"], "Running")
        self.assertTrue(h.meta.container_status("p0", "main")["ready"])
        self.assertEqual(self.created_names(h), ["p0", "p1", "p2"])
        self.assertEqual(self.runs(h, "p3"), [])
        h.runtime.release()
        h.pump()
        for name in ("p1", "p2", "p3"):
            self.assertEqual(h.meta.status(name)["phase"], "Running")
        self.assertEqual(self.created_names(h), ["p0", "p1", "p2", "p3"])

    def test_status_is_what_docker_says(self):
        """A container created but not started yet is not reported running; one that
        exits at once is never reported running or ready, and is restarted with
        back-off as before."""
        h = self.harness(concurrent_starts=1)
        h.runtime.hold("start_container")
        h.meta.add_pod(make_pod("quick", containers=[shell("exit 3")]))
        h.pump()
        self.assertIsNone(h.meta.status("quick"))
        h.runtime.release()
        h.pump()
        reported = [s["containerStatuses"][0] for s in h.meta.statuses("quick")]
        self.assertTrue(reported)
        self.assertEqual([c for c in reported if c["ready"] or "running" in c["state"]], [])
        state = h.meta.container_status("quick", "main")["lastState"]
        self.assertEqual(state["terminated"]["exitCode"], 3)
        self.assertEqual(self.waiting_reason(h, "quick"), "CrashLoopBackOff")
        self.assertEqual(len(self.runs(h, "quick")), 2)
        h.advance(10)
        self.assertEqual(len(self.runs(h, "quick")), 3)

    def test_pod_deleted_while_waiting_gets_no_container(self):
        """A pod removed while it waits for its turn never gets a container."""
        h = self.harness(concurrent_starts=1)
        h.runtime.hold("create_container")
        h.meta.add_pod(make_pod("first"))
        h.meta.add_pod(make_pod("second"))
        h.pump()
        self.assertEqual(self.created_names(h), ["first"])
        h.meta.delete_pod("second", uid="uid-second")
        h.pump()
        h.runtime.release()
        h.pump()
        self.assertEqual(self.created_names(h), ["first"])
        self.assertEqual(h.meta.status("first")["phase"], "Running")
        self.assertNotIn(("default", "second"), h.edged.pods)

    def test_stop_while_waiting_for_turns(self):
        """Stopping edged with pods in flight and waiting creates nothing more and
        leaves no timer behind."""
        h = self.harness(concurrent_starts=1)
        h.runtime.hold("create_container")
        h.meta.add_pod(make_pod("first"))
        h.meta.add_pod(make_pod("second"))
        h.pump()
        self.successResultOf(h.stop())
        self.assertEqual(h.runtime.release(), 0)
        self.assertEqual(self.created_names(h), ["first"])
        self.assertEqual(h.runtime.containers, {})
