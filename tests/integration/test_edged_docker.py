"""Integration: edged with the real Docker engine.

First the runtime contract (``tests.edge.edged.contract``) against ``DockerRuntime`` — the
same tests the in-memory fake passes. Then a real :class:`Edged` on the real reactor, its
docker SDK calls on its ``docker`` thread pool, driven through the module bus by a small
fake MetaManager (``tests.edge.edged.fakes.FakeMetaManager``) that answers queries from
an in-memory store and records the statuses edged reports: deploy/list/delete, two pods,
restart policies, probes, ConfigMap volumes and their update, Secret env, resource limits,
hostPort, bad specs and pull failures, node registration, and an edged restart that
adopts the running containers.

Every container carries ``io.kubeedge-tw.test=1`` and a per-test node label and is
removed by label afterwards. Images are the offline busybox test image
(``tests.integration.parts.ensure_busybox_image``); no registry is reachable.
"""

import base64
import json
import os
import time
import uuid

import treq
from twisted.internet import defer, reactor, task, threads
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.trial.unittest import TestCase

from kubeedge_tw.common import names
from kubeedge_tw.common.bus import Bus
from kubeedge_tw.edge.edged import BlockingPool, DockerRuntime, Edged, Prober
from kubeedge_tw.edge.edged.runtime import LABEL_NODE, LABEL_POD_UID
from tests.edge.edged.contract import RuntimeContract
from tests.edge.edged.fakes import FakeMetaManager, make_pod
from tests.integration.parts import (
    BUSYBOX_IMAGE, LOOPBACK, TEST_LABEL, ensure_busybox_image, free_port,
    remove_labelled_containers)


def _sleep(seconds):
    return task.deferLater(reactor, seconds, lambda: None)


async def poll(condition, seconds=20, interval=0.1, what="condition"):
    """Wait on the reactor until ``condition()`` is truthy; its value."""
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("{} not met within {}s".format(what, seconds))
        await _sleep(interval)


class DockerRuntimeContractTests(RuntimeContract, TestCase):
    """The runtime contract, run against DockerRuntime and the real engine."""

    timeout = 60

    def setUp(self):
        d = ensure_busybox_image(self)

        def ready(client):
            self.client = client
            self.runtime = DockerRuntime(BlockingPool(reactor, "docker-contract"))
            self.runtime.start()
            self.addCleanup(self.runtime.stop)
            self.image = BUSYBOX_IMAGE
            self.labels = {TEST_LABEL: "1", "io.kubeedge-tw.case": uuid.uuid4().hex[:12]}
            self.addCleanup(remove_labelled_containers, client, self.labels)
        return d.addCallback(ready)

    def settle(self):
        """A tenth of a second on the reactor."""
        return _sleep(0.1)


def _b64(text):
    return base64.b64encode(text.encode()).decode()


class EdgedDockerTests(TestCase):
    """A real Edged running pods on the real engine."""

    timeout = 90

    def setUp(self):
        self.node = "edged-it-" + uuid.uuid4().hex[:8]
        self.state = os.path.abspath(self.mktemp())
        os.makedirs(self.state)
        self.port = free_port()
        self.edged = None
        d = ensure_busybox_image(self)

        def ready(client):
            self.client = client
            self.addCleanup(remove_labelled_containers, client,
                            {TEST_LABEL: "1", LABEL_NODE: self.node})
            self.meta_store = {}
            self.start_edged()
            self.addCleanup(self.stop_edged)
        return d.addCallback(ready)

    # -- harness -------------------------------------------------------------------------------

    def start_edged(self):
        """A fresh bus, fake MetaManager (sharing the store) and Edged for the node."""
        self.bus = Bus(reactor)
        self.meta = FakeMetaManager(reactor)
        self.meta.store = self.meta_store
        self.bus.register(self.meta)
        pool = BlockingPool(reactor)
        self.runtime = DockerRuntime(pool)
        self.edged = Edged(
            reactor, runtime=self.runtime, pool=pool, prober=Prober(reactor, self.runtime),
            node_name=self.node, volume_root=os.path.join(self.state, "edged"),
            node_status_frequency=1, query_timeout=5, relist_period=0.5,
            http_endpoint=TCP4ServerEndpoint(reactor, self.port, interface=LOOPBACK),
            extra_labels={TEST_LABEL: "1"})
        self.bus.register(self.edged)
        self.meta.startService()
        self.edged.startService()

    @defer.inlineCallbacks
    def stop_edged(self):
        """Stop edged (its containers keep running) and the fake MetaManager."""
        if self.edged is not None and self.edged.running:
            yield self.edged.stopService()
        if self.meta.running:
            yield self.meta.stopService()
        self.bus.stop()

    def status(self, name):
        """The last pod status reported for ``name`` ({} if none)."""
        return self.meta.status(name) or {}

    def cstatus(self, pod, container="main"):
        """The last container status reported ({} if none)."""
        return self.meta.container_status(pod, container) or {}

    def phase(self, name):
        """The last reported phase."""
        return self.status(name).get("phase")

    def ready(self, name):
        """Whether the last reported Ready condition is True."""
        for condition in self.status(name).get("conditions") or ():
            if condition["type"] == "Ready":
                return condition["status"] == "True"
        return False

    def wait(self, condition, seconds=20, what="condition"):
        """A Deferred firing once ``condition()`` holds."""
        return defer.Deferred.fromCoroutine(poll(condition, seconds, what=what))

    def running_pod(self, name, seconds=20):
        """Wait until the pod runs and reports its container running."""
        return self.wait(lambda: self.phase(name) == "Running"
                         and "running" in self.cstatus(name).get("state", {}),
                         seconds, "pod {} running".format(name))

    def container_ids(self, uid):
        """Ids of the pod's containers that the engine has (any state)."""
        return threads.deferToThread(
            lambda: sorted(c["Id"] for c in self.client.api.containers(
                all=True, filters={"label": ["{}={}".format(LABEL_POD_UID, uid),
                                             "{}={}".format(LABEL_NODE, self.node)]})))

    def inspect(self, cid):
        """``docker inspect`` of a container, on a thread."""
        return threads.deferToThread(self.client.api.inspect_container, cid)

    def exec_output(self, pod, argv, container="main"):
        """Run ``argv`` in the pod's container; its output as text."""
        cid = self.cstatus(pod, container)["containerID"].split("://", 1)[1]
        d = self.runtime.exec_in_container(cid, argv, 5)
        return d.addCallback(lambda r: r.output.decode())

    @defer.inlineCallbacks
    def get_json(self, path):
        """``(code, text)`` of a GET on the read-only API."""
        response = yield treq.get("http://{}:{}{}".format(LOOPBACK, self.port, path),
                                persistent=False)
        body = yield response.text()
        return response.code, body

    # -- tests ---------------------------------------------------------------------------------

    @defer.inlineCallbacks
    def test_deploy_list_delete(self):
        """A pod runs as a labelled host-network container, shows in /pods, stops on a
        graceful delete and is removed on delete."""
        pod = make_pod("web", grace=5, containers=[{
            "name": "main", "image": BUSYBOX_IMAGE, "imagePullPolicy": "IfNotPresent",
            "command": ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]}])
        self.meta.add_pod(pod)
        yield self.running_pod("web")
        status = self.status("web")
        self.assertTrue(self.ready("web"))
        self.assertTrue(status["podIP"])
        main = self.cstatus("web")
        self.assertEqual(main["restartCount"], 0)
        self.assertTrue(main["containerID"].startswith("docker://"))
        self.assertTrue(main["imageID"].startswith("docker://sha256:"))
        data = yield self.inspect(main["containerID"][9:])
        self.assertEqual(data["HostConfig"]["NetworkMode"], "host")
        labels = data["Config"]["Labels"]
        self.assertEqual((labels["io.kubernetes.pod.name"], labels["io.kubernetes.pod.uid"],
                          labels["io.kubernetes.container.name"]), ("web", "uid-web", "main"))
        code, body = yield self.get_json("/pods")
        self.assertEqual(code, 200)
        listed = json.loads(body)
        self.assertEqual(listed["kind"], "PodList")
        self.assertEqual([p["metadata"]["name"] for p in listed["items"]], ["web"])
        self.assertEqual(listed["items"][0]["status"]["phase"], "Running")
        code, body = yield self.get_json("/healthz")
        self.assertEqual((code, body), (200, "ok"))
        # Graceful delete: the trap exits 0 on SIGTERM.
        deleting = dict(pod, metadata=dict(pod["metadata"],
                                           deletionTimestamp="2026-01-01T00:00:00Z",
                                           deletionGracePeriodSeconds=5))
        self.meta.add_pod(deleting)
        yield self.wait(lambda: self.phase("web") == "Succeeded", what="graceful stop")
        terminated = self.cstatus("web")["state"]["terminated"]
        self.assertEqual(terminated["exitCode"], 0)
        self.meta.delete_pod("web", uid="uid-web")
        yield self.wait(lambda: "web" not in [r.name for r in self.edged.pods.values()],
                        what="pod forgotten")
        ids = yield self.container_ids("uid-web")
        self.assertEqual(ids, [])
        code, body = yield self.get_json("/pods")
        self.assertEqual(json.loads(body)["items"], [])

    @defer.inlineCallbacks
    def test_two_pods(self):
        """Two pods run side by side, each in its own container."""
        self.meta.add_pod(make_pod("one", grace=0))
        self.meta.add_pod(make_pod("two", grace=0))
        yield self.running_pod("one")
        yield self.running_pod("two")
        one = yield self.container_ids("uid-one")
        two = yield self.container_ids("uid-two")
        self.assertEqual((len(one), len(two)), (1, 1))
        self.assertNotEqual(one, two)

    @defer.inlineCallbacks
    def test_restart_policies(self):
        """Never keeps a failed container dead, OnFailure restarts it, OnFailure lets a
        success be, Always restarts even a success."""
        def pod(name, policy, code):
            return make_pod(name, restart_policy=policy, grace=0, containers=[{
                "name": "main", "image": BUSYBOX_IMAGE, "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", "exit {}".format(code)]}])
        self.meta.add_pod(pod("never", "Never", 3))
        self.meta.add_pod(pod("onfailure", "OnFailure", 3))
        self.meta.add_pod(pod("onfailure-ok", "OnFailure", 0))
        self.meta.add_pod(pod("always", "Always", 0))
        yield self.wait(lambda: self.phase("never") == "Failed", what="never failed")
        never = self.cstatus("never")
        self.assertEqual(never["state"]["terminated"]["exitCode"], 3)
        self.assertEqual(never["state"]["terminated"]["reason"], "Error")
        self.assertEqual(never["restartCount"], 0)
        yield self.wait(lambda: self.cstatus("onfailure").get("restartCount", 0) >= 1,
                        what="onfailure restarted")
        yield self.wait(lambda: self.phase("onfailure-ok") == "Succeeded",
                        what="onfailure-ok succeeded")
        self.assertEqual(self.cstatus("onfailure-ok")["restartCount"], 0)
        yield self.wait(lambda: self.cstatus("always").get("restartCount", 0) >= 1,
                        what="always restarted")
        yield self.wait(lambda: self.cstatus("always").get("state", {}).get(
            "waiting", {}).get("reason") == "CrashLoopBackOff", what="always back-off")
        self.assertEqual(self.phase("always"), "Running")
        last = self.cstatus("always")["lastState"]["terminated"]
        self.assertEqual((last["exitCode"], last["reason"]), (0, "Completed"))

    @defer.inlineCallbacks
    def test_liveness_failure_restarts(self):
        """A container whose liveness probe starts failing is killed and restarted."""
        self.meta.add_pod(make_pod("live", grace=1, containers=[{
            "name": "main", "image": BUSYBOX_IMAGE, "imagePullPolicy": "IfNotPresent",
            "command": ["sh", "-c", "echo ok > /tmp/healthy; sleep 2; rm /tmp/healthy; "
                                    "sleep 3600"],
            "livenessProbe": {"exec": {"command": ["cat", "/tmp/healthy"]},
                              "periodSeconds": 1, "failureThreshold": 1}}]))
        yield self.running_pod("live")
        yield self.wait(lambda: self.cstatus("live").get("restartCount", 0) >= 1, 20,
                        "liveness restart")
        last = self.cstatus("live")["lastState"]["terminated"]
        self.assertEqual(last["exitCode"], 137)

    @defer.inlineCallbacks
    def test_readiness_gates_ready(self):
        """Ready stays False until the readiness probe succeeds, then turns True."""
        self.meta.add_pod(make_pod("ready", grace=0, containers=[{
            "name": "main", "image": BUSYBOX_IMAGE, "imagePullPolicy": "IfNotPresent",
            "command": ["sh", "-c", "sleep 2; echo > /tmp/ready; sleep 3600"],
            "readinessProbe": {"exec": {"command": ["test", "-f", "/tmp/ready"]},
                               "periodSeconds": 1}}]))
        yield self.running_pod("ready")
        self.assertFalse(self.ready("ready"))
        self.assertFalse(self.cstatus("ready")["ready"])
        yield self.wait(lambda: self.ready("ready"), what="ready")
        self.assertTrue(self.cstatus("ready")["ready"])

    @defer.inlineCallbacks
    def test_configmap_volume_and_update(self):
        """A ConfigMap volume shows its items with their modes and follows an update in
        place, without a restart."""
        self.meta.put_object("configmap", {
            "metadata": {"name": "cfg", "namespace": "default"},
            "data": {"key": "v1", "other": "x"}}, push=False)
        self.meta.add_pod(make_pod("cm", grace=0, volumes=[{
            "name": "config", "configMap": {
                "name": "cfg", "defaultMode": 0o644,
                "items": [{"key": "key", "path": "conf/key", "mode": 0o400}]}}],
            containers=[{"name": "main", "image": BUSYBOX_IMAGE,
                         "imagePullPolicy": "IfNotPresent", "command": ["sleep", "3600"],
                         "volumeMounts": [{"name": "config", "mountPath": "/etc/cfg"}]}]))
        yield self.running_pod("cm")
        text = yield self.exec_output("cm", ["cat", "/etc/cfg/conf/key"])
        self.assertEqual(text, "v1")
        host = os.path.join(self.state, "edged", "pods", "uid-cm", "volumes", "configmap",
                            "config", "conf", "key")
        self.assertEqual(os.stat(host).st_mode & 0o777, 0o400)
        first_id = self.cstatus("cm")["containerID"]
        self.meta.put_object("configmap", {
            "metadata": {"name": "cfg", "namespace": "default"},
            "data": {"key": "v2", "other": "x"}})
        deadline = time.monotonic() + 15
        while True:
            text = yield self.exec_output("cm", ["cat", "/etc/cfg/conf/key"])
            if text == "v2" or time.monotonic() > deadline:
                break
            yield _sleep(0.2)
        self.assertEqual(text, "v2")
        self.assertEqual(self.cstatus("cm")["containerID"], first_id)

    @defer.inlineCallbacks
    def test_secret_and_configmap_env(self):
        """env from a Secret key and envFrom a ConfigMap reach the container."""
        self.meta.put_object("secret", {"metadata": {"name": "creds"},
                                        "data": {"password": _b64("s3cret")}}, push=False)
        self.meta.put_object("configmap", {"metadata": {"name": "settings"},
                                           "data": {"MODE": "edge"}}, push=False)
        self.meta.add_pod(make_pod("env", grace=0, containers=[{
            "name": "main", "image": BUSYBOX_IMAGE, "imagePullPolicy": "IfNotPresent",
            "command": ["sleep", "3600"],
            "env": [{"name": "PASSWORD",
                     "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
                    {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "GREETING", "value": "hi $(POD)"}],
            "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "CFG_"}]}]))
        yield self.running_pod("env")
        env = yield self.exec_output("env", ["env"])
        self.assertIn("PASSWORD=s3cret\n", env)
        self.assertIn("CFG_MODE=edge\n", env)
        self.assertIn("GREETING=hi env\n", env)

    @defer.inlineCallbacks
    def test_resource_limits_and_working_dir(self):
        """Memory and CPU limits, workingDir, command and args reach Docker."""
        self.meta.add_pod(make_pod("limits", grace=0, containers=[{
            "name": "main", "image": BUSYBOX_IMAGE, "imagePullPolicy": "IfNotPresent",
            "command": ["sh", "-c"], "args": ["sleep 3600"], "workingDir": "/tmp",
            "resources": {"limits": {"memory": "64Mi", "cpu": "500m"},
                          "requests": {"cpu": "250m"}}}]))
        yield self.running_pod("limits")
        data = yield self.inspect(self.cstatus("limits")["containerID"][9:])
        self.assertEqual(data["HostConfig"]["Memory"], 64 * 1024 * 1024)
        self.assertEqual(data["HostConfig"]["NanoCpus"], 500000000)
        self.assertEqual(data["HostConfig"]["CpuShares"], 256)
        self.assertEqual(data["Config"]["WorkingDir"], "/tmp")
        self.assertEqual(data["Config"]["Entrypoint"], ["sh", "-c"])
        self.assertEqual(data["Config"]["Cmd"], ["sleep 3600"])
        self.assertEqual(self.status("limits")["qosClass"], "Burstable")

    @defer.inlineCallbacks
    def test_host_port_reachable(self):
        """A busybox httpd with hostPort == containerPort answers on 127.0.0.1; httpGet
        readiness and tcpSocket liveness probes pass."""
        port = free_port()
        self.meta.add_pod(make_pod("httpd", grace=0, containers=[{
            "name": "main", "image": BUSYBOX_IMAGE, "imagePullPolicy": "IfNotPresent",
            "command": ["sh", "-c", "mkdir -p /www && echo hello-edge > /www/index.html && "
                                    "exec httpd -f -p {} -h /www".format(port)],
            "ports": [{"name": "http", "containerPort": port, "hostPort": port}],
            "readinessProbe": {"httpGet": {"path": "/index.html", "port": "http",
                                           "host": LOOPBACK}, "periodSeconds": 1},
            "livenessProbe": {"tcpSocket": {"port": port, "host": LOOPBACK},
                              "periodSeconds": 1}}]))
        yield self.wait(lambda: self.ready("httpd"), what="httpd ready")
        response = yield treq.get("http://{}:{}/index.html".format(LOOPBACK, port),
                                  persistent=False)
        body = yield response.text()
        self.assertEqual((response.code, body), (200, "hello-edge\n"))
        yield _sleep(2)
        self.assertEqual(self.cstatus("httpd")["restartCount"], 0)

    @defer.inlineCallbacks
    def test_bad_specs_and_pull_failures(self):
        """Bad image names, unsupported volumes and failing pulls become pod status
        reasons; a good pod next to them runs."""
        def pod(name, image=BUSYBOX_IMAGE, policy="IfNotPresent", **kw):
            return make_pod(name, grace=0, containers=[{
                "name": "main", "image": image, "imagePullPolicy": policy,
                "command": ["sleep", "3600"]}], **kw)
        self.meta.add_pod(pod("badname", image="Bad Image!!"))
        self.meta.add_pod(pod("nfs", volumes=[{"name": "data",
                                               "nfs": {"server": "x", "path": "/"}}]))
        self.meta.add_pod(pod("unpullable", image="registry.invalid/app:1"))
        self.meta.add_pod(pod("neverpull", image="registry.invalid/app:1", policy="Never"))
        self.meta.add_pod(pod("fine"))
        yield self.running_pod("fine")

        def reason(name):
            return self.cstatus(name).get("state", {}).get("waiting", {}).get("reason")
        yield self.wait(lambda: reason("badname") == "InvalidImageName", what="badname")
        yield self.wait(lambda: reason("nfs") == "CreateContainerConfigError", what="nfs")
        self.assertIn("unsupported volume type nfs",
                      self.cstatus("nfs")["state"]["waiting"]["message"])
        yield self.wait(lambda: reason("neverpull") == "ErrImageNeverPull", what="never")
        yield self.wait(lambda: reason("unpullable") in ("ErrImagePull", "ImagePullBackOff"),
                        what="pull failure")
        self.assertIn("registry.invalid/app:1",
                      self.cstatus("unpullable")["state"]["waiting"].get("message", ""))
        yield self.wait(lambda: reason("unpullable") == "ImagePullBackOff", what="back-off")
        for name in ("badname", "nfs", "unpullable", "neverpull"):
            self.assertEqual(self.phase(name), "Pending")
        self.assertEqual(self.phase("fine"), "Running")

    @defer.inlineCallbacks
    def test_node_registration_and_status(self):
        """The node is registered with the edge role labels and reports Ready with the
        engine's version."""
        insert = yield self.meta.wait_for(lambda m: m.operation == names.OP_INSERT)
        self.assertEqual(insert.resource, "default/node/" + self.node)
        labels = insert.content["metadata"]["labels"]
        self.assertEqual(labels["node-role.kubernetes.io/edge"], "")
        self.assertEqual(labels["node-role.kubernetes.io/agent"], "")
        update = yield self.meta.wait_for(
            lambda m: m.resource == "default/nodestatus/" + self.node)
        status = update.content["Status"]
        version = yield threads.deferToThread(lambda: self.client.version()["Version"])
        self.assertEqual(status["nodeInfo"]["containerRuntimeVersion"], "docker://" + version)
        ready = [c for c in status["conditions"] if c["type"] == "Ready"][0]
        self.assertEqual((ready["status"], ready["reason"]), ("True", "EdgeReady"))
        self.assertEqual(status["capacity"]["pods"], "110")

    @defer.inlineCallbacks
    def test_restart_adopts_running_containers(self):
        """After edged restarts, its pods' containers are adopted: same container ids,
        nothing recreated, /pods lists them all running."""
        for name in ("a", "b", "c"):
            self.meta.add_pod(make_pod(name, grace=0))
        for name in ("a", "b", "c"):
            yield self.running_pod(name)
        before = {}
        for name in ("a", "b", "c"):
            before[name] = yield self.container_ids("uid-" + name)
        started = {name: self.cstatus(name)["state"]["running"]["startedAt"]
                   for name in ("a", "b", "c")}
        yield self.stop_edged()
        for name in ("a", "b", "c"):
            self.assertEqual(len(before[name]), 1)
            data = yield self.inspect(before[name][0])
            self.assertTrue(data["State"]["Running"], "containers outlive edged")
        self.start_edged()
        for name in ("a", "b", "c"):
            yield self.running_pod(name)
        code, body = yield self.get_json("/pods")
        items = json.loads(body)["items"]
        self.assertEqual(sorted(p["metadata"]["name"] for p in items), ["a", "b", "c"])
        self.assertTrue(all(p["status"]["phase"] == "Running" for p in items))
        yield _sleep(1.5)  # a few relists: nothing may be recreated
        for name in ("a", "b", "c"):
            after = yield self.container_ids("uid-" + name)
            self.assertEqual(after, before[name])
            self.assertEqual(self.cstatus(name)["containerID"], "docker://" + after[0])
            self.assertEqual(self.cstatus(name)["restartCount"], 0)
            self.assertEqual(self.cstatus(name)["state"]["running"]["startedAt"],
                             started[name])
