"""Integration: offline autonomy across an edge crash, with real processes, Docker and
kubectl — KubeEdge users' most common complaint (reference 7, item 2).

A cloud process (embedded API server) and a joined edge process run three pods as real
containers. The cloud is stopped, the edge is SIGKILLed and started again while the
cloud is still down: it reloads its pods from sqlite and adopts the running containers
(same container ids, /pods lists three). When the cloud comes back the edge reconnects
and its node and pods are reported Ready/Running again.
"""

import json
import os

import treq
import yaml
from twisted.internet import defer, reactor, threads
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from kubeedge_tw.edge.edged.runtime import LABEL_NODE
from tests.integration.parts import (
    BUSYBOX_IMAGE, LoopbackCloud, ensure_busybox_image, free_port, remove_labelled_containers,
    require_executable)
from tests.integration.test_processes import spawn, with_timeout

NODE = "offline-edge"


def _thd_container_ids(client):
    return sorted(c.id for c in client.containers.list(filters={"label": LABEL_NODE + "=" + NODE}))


def _sleep(seconds):
    d = defer.Deferred()
    reactor.callLater(seconds, d.callback, None)
    return d


class EdgeCrashWhileOfflineTests(TestCase):
    """SIGKILL the edge while the cloud is down; its pods survive and are adopted."""

    timeout = 240

    @defer.inlineCallbacks
    def setUp(self):
        self.kubectl = require_executable("kubectl", "kubernetes-client")
        self.docker = yield ensure_busybox_image(self)
        self.addCleanup(remove_labelled_containers, self.docker, {LABEL_NODE: NODE})
        self.base = os.path.abspath(self.mktemp())
        os.makedirs(self.base)
        cloud = LoopbackCloud(self.base, modules={
            "edgeController": {"nodeUpdateFrequency": 2}})
        self.ports = {"ws": cloud.ws, "https": cloud.https, "api": cloud.api,
                      "readonly": free_port()}
        self.cloud_config = cloud.path
        self.processes = {}
        self.addCleanup(self.stop_all)
        yield self.start("cloud")
        self.edge_config = yield cloud.join(node=NODE)
        with open(self.edge_config, "a") as f:  # edged is the file's last section
            f.write("    readOnlyPort: {}\n    nodeStatusUpdateFrequency: 2\n"
                    "  eventBus:\n    enable: false\n  deviceTwin:\n    enable: false\n"
                    .format(self.ports["readonly"]))
        self.kubeconfig = os.path.join(self.base, "cloud", "kubeconfig")

    def start(self, side):
        if side == "cloud":
            args = ["-m", "kubeedge_tw", "cloud", "--config", self.cloud_config]
        else:
            args = ["-m", "kubeedge_tw", "edge", "--config", self.edge_config]
        proto, transport = spawn(args, marker="kubeedge-{} started".format(side))
        self.processes[side] = (proto, transport)
        return with_timeout(proto.started, 60, side + " start")

    @defer.inlineCallbacks
    def stop(self, side, sig="TERM"):
        proto, transport = self.processes.pop(side)
        if transport.pid is not None:
            transport.signalProcess(sig)
        yield with_timeout(proto.ended, 60, side + " exit")

    @defer.inlineCallbacks
    def stop_all(self):
        for side in list(self.processes):
            yield self.stop(side)

    @defer.inlineCallbacks
    def kubectl_json(self, *args):
        out, err, code = yield getProcessOutputAndValue(
            self.kubectl, args + ("-o", "json"), env=dict(os.environ, KUBECONFIG=self.kubeconfig))
        self.assertEqual(code, 0, err)
        defer.returnValue(json.loads(out))

    @defer.inlineCallbacks
    def wait_for(self, what, check, seconds=90):
        for _ in range(int(seconds / 0.5)):
            ok = yield check()
            if ok:
                return
            yield _sleep(0.5)
        self.fail("timed out waiting for " + what)

    @defer.inlineCallbacks
    def pods_running(self):
        pods = yield self.kubectl_json("get", "pods")
        phases = [p.get("status", {}).get("phase") for p in pods["items"]]
        defer.returnValue(len(phases) == 3 and all(p == "Running" for p in phases))

    @defer.inlineCallbacks
    def node_ready(self):
        try:
            node = yield self.kubectl_json("get", "node", NODE)
        except Exception:
            defer.returnValue(False)
        conditions = {c["type"]: c["status"] for c in node["status"].get("conditions", [])}
        defer.returnValue(conditions.get("Ready") == "True")

    @defer.inlineCallbacks
    def local_pods(self):
        try:
            response = yield treq.get("http://127.0.0.1:{}/pods".format(self.ports["readonly"]),
                                      timeout=5, persistent=False)
            body = yield response.json()
        except Exception:
            defer.returnValue([])
        defer.returnValue(sorted(p["metadata"]["name"] for p in body.get("items", [])))

    @defer.inlineCallbacks
    def test_crash_while_cloud_down(self):
        """3 pods keep running and are adopted after SIGKILL + restart with the cloud
        down; after the cloud returns, node Ready and pods Running again."""
        yield self.start("edge")
        yield self.wait_for("node registration", self.node_ready)
        manifests = os.path.join(self.base, "pods.yaml")
        with open(manifests, "w") as f:
            yaml.safe_dump_all([
                {"apiVersion": "v1", "kind": "Pod",
                 "metadata": {"name": "p%d" % i, "namespace": "default"},
                 "spec": {"nodeName": NODE, "containers": [{
                     "name": "c", "image": BUSYBOX_IMAGE, "imagePullPolicy": "Never",
                     "command": ["sleep", "3600"]}]}} for i in range(3)], f)
        out, err, code = yield getProcessOutputAndValue(
            self.kubectl, ("apply", "-f", manifests),
            env=dict(os.environ, KUBECONFIG=self.kubeconfig))
        self.assertEqual(code, 0, err)
        yield self.wait_for("3 pods Running", self.pods_running)
        before = yield threads.deferToThread(_thd_container_ids, self.docker)
        self.assertEqual(len(before), 3)

        yield self.stop("cloud")
        yield self.stop("edge", sig="KILL")
        yield self.start("edge")  # the cloud is still down
        yield self.wait_for("/pods to list 3 pods",
                            lambda: self.local_pods().addCallback(
                                lambda names: names == ["p0", "p1", "p2"]), 60)
        yield _sleep(3)  # a few relists: nothing may be recreated
        after = yield threads.deferToThread(_thd_container_ids, self.docker)
        self.assertEqual(after, before, "the same containers keep running")

        yield self.start("cloud")
        yield self.wait_for("node Ready after reconnect", self.node_ready)
        yield self.wait_for("pods Running after reconnect", self.pods_running)
        final = yield threads.deferToThread(_thd_container_ids, self.docker)
        self.assertEqual(final, before)
