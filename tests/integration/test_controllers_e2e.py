"""Integration: EdgeController and SyncController against the embedded API server, with
real CloudHub, a real edge (EdgeHub + MetaManager over mutual TLS) and a scripted edged,
checked with real kubectl.

The scripted edged registers the node like a v1.15 edge, answers nothing by itself, and
records what MetaManager forwards to it; the test makes it report pod and node status.
"""

import os

from twisted.internet import defer, reactor
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from kubeedge_tw.cloud.tap import create_cloud_service
from kubeedge_tw.common import message as m
from kubeedge_tw.common import names
from kubeedge_tw.common.config import CLOUD, EDGE, load_config
from kubeedge_tw.common.module import Module
from kubeedge_tw.edge.tap import create_edge_service
from tests.integration.parts import LoopbackCloud, require_executable
from tests.integration.test_cloud_edge import poll


class ScriptedEdged(Module):
    """Stands in for edged: records what MetaManager forwards; reports on request."""

    def __init__(self, clock):
        super().__init__(clock, name=names.EDGED, group=names.EDGED_GROUP)
        self.seen = []

    def handle(self, message):
        self.seen.append(message)
        if message.resource == names.RES_NODE_CONNECTION and \
                message.content == names.CLOUD_CONNECTED:
            self.report_node()

    def of(self, resource, operation=None):
        return [x for x in self.seen if x.resource == resource
                and (operation is None or x.operation == operation)]

    def register(self):
        node = {"metadata": {"name": "edge-1", "labels": {
            "node-role.kubernetes.io/agent": ""}},
            "status": {"conditions": [{"type": "Ready", "status": "True",
                                       "reason": "EdgeReady"}],
                       "nodeInfo": {"kubeletVersion": "v1.26.15-kubeedge-tw"},
                       "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}]}}
        return self.bus.send_sync(names.METAMANAGER, m.new_message(
            names.EDGED, names.META_GROUP, names.OP_INSERT, "default/node/edge-1", node), 15)

    def report_node(self):
        self.send(names.METAMANAGER, m.new_message(
            names.EDGED, names.META_GROUP, names.OP_UPDATE, "default/nodestatus/edge-1",
            {"UID": "", "Status": {"conditions": [{"type": "Ready", "status": "True",
                                                   "reason": "EdgeReady",
                                                   "message": "edge is posting ready status"}]},
             "ExtendResources": None}))

    def report_running(self, pod):
        meta = pod["metadata"]
        status = {"phase": "Running", "podIP": "127.0.0.1", "hostIP": "127.0.0.1",
                  "conditions": [{"type": t, "status": "True"} for t in
                                 ("PodScheduled", "Initialized", "ContainersReady", "Ready")],
                  "containerStatuses": [{"name": "c", "ready": True, "restartCount": 0,
                                         "image": "busybox", "imageID": "",
                                         "containerID": "docker://abc",
                                         "state": {"running": {
                                             "startedAt": "2026-11-25T00:00:00Z"}}}]}
        self.send(names.METAMANAGER, m.new_message(
            names.EDGED, names.META_GROUP, names.OP_UPDATE,
            "{}/podstatus/{}".format(meta["namespace"], meta["name"]),
            {"UID": meta["uid"], "Name": meta["name"], "Status": status}))

    def query(self, resource):
        return self.bus.send_sync(names.METAMANAGER, m.new_message(
            names.EDGED, names.META_GROUP, names.OP_QUERY, resource, None), 15)


def pod(name, cm=None):
    spec = {"nodeName": "edge-1", "containers": [{"name": "c", "image": "busybox"}]}
    if cm:
        spec["volumes"] = [{"name": "v", "configMap": {"name": cm}}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": spec}


class ControllersEndToEndTests(TestCase):
    """The whole path: API -> controllers -> CloudHub -> EdgeHub -> MetaManager -> edged."""

    timeout = 120

    @defer.inlineCallbacks
    def setUp(self):
        self.kubectl = require_executable("kubectl", "kubernetes-client")
        self.base = os.path.abspath(self.mktemp())
        os.makedirs(self.base)
        cloud = LoopbackCloud(self.base, modules={
            "edgeController": {"nodeUpdateFrequency": 2},
            "syncController": {"resyncPeriod": 1}, "deviceController": {"enable": False}})
        self.cloud = create_cloud_service(load_config(cloud.path, CLOUD), reactor)
        self.cloud.startService()
        self.addCleanup(self._stop, "cloud")
        yield self.cloud.apiserver.when_ready()
        self.kubeconfig = self.cloud.apiserver.kubeconfig_path
        yield poll(lambda: self.cloud.bus.module(names.EDGECONTROLLER)._ready, 30)
        self.edge_config = yield cloud.join()
        self.edge = None
        yield self.start_edge()
        self.addCleanup(self._stop, "edge")
        reply = yield self.edged.register()
        self.assertIsNone(reply.content_object().get("Err"))

    @defer.inlineCallbacks
    def start_edge(self):
        config = load_config(self.edge_config, EDGE, overrides={
            "modules.edged.enable": False, "modules.eventBus.enable": False,
            "modules.deviceTwin.enable": False})
        self.edge = create_edge_service(config, reactor)
        self.edged = ScriptedEdged(reactor)
        self.edge.add_module(self.edged)
        self.edge.startService()
        yield self.edge.bus.module(names.EDGEHUB).wait_connected().addTimeout(20, reactor)
        metamanager = self.edge.bus.module(names.METAMANAGER)
        yield poll(lambda: metamanager.cloud_connected, 10)

    @defer.inlineCallbacks
    def _stop(self, which):
        service = getattr(self, which, None)
        if service is not None and service.running:
            yield service.stopService()

    @defer.inlineCallbacks
    def kubectl_run(self, *args):
        out, err, code = yield getProcessOutputAndValue(
            self.kubectl, args, env=dict(os.environ, KUBECONFIG=self.kubeconfig))
        self.assertEqual(code, 0, (args, err))
        defer.returnValue(out.decode())

    @property
    def client(self):
        return self.cloud.kube.client

    @defer.inlineCallbacks
    def test_delivery_offline_resync_and_status(self):
        """Pods and configmaps reach the edge; changes made while it is away arrive once
        after reconnect; the node goes NotReady and back; pod status shows in kubectl."""
        nodes = yield self.kubectl_run("get", "nodes")
        self.assertRegex(nodes, r"edge-1\s+Ready\s+agent,edge")
        yield self.client.create("configmaps", {"metadata": {"name": "cfg"},
                                                "data": {"k": "1"}}, namespace="default")
        web = yield self.client.create("pods", pod("web", cm="cfg"), namespace="default")
        yield self.client.create("pods", pod("gone"), namespace="default")
        # pod placed on the node -> the edge receives it (stored by MetaManager first)
        yield poll(lambda: self.edged.of("default/pod/web") and self.edged.of("default/pod/gone"))
        self.assertEqual(self.edged.of("default/pod/web")[0].content["metadata"]["uid"],
                         web["metadata"]["uid"])
        # the edge asks for the configmap the pod needs: delivered from the cloud
        reply = yield self.edged.query("default/configmap/cfg")
        self.assertIn('"k":"1"', reply.content[0])
        # configmap update -> update delivered
        yield self.client.patch("configmaps", "cfg", {"data": {"k": "2"}}, namespace="default")
        yield poll(lambda: any(x.content["data"] == {"k": "2"}
                               for x in self.edged.of("default/configmap/cfg", "update")))
        # edge status -> kubectl get pods shows Running 1/1, IP and NODE
        self.edged.report_running(web)
        wide = ""
        for _ in range(50):
            wide = yield self.kubectl_run("get", "pods", "-o", "wide")
            if "Running" in wide:
                break
            yield _sleep(0.2)
        self.assertRegex(wide, r"web\s+1/1\s+Running\s+0\s+\S+\s+127\.0\.0\.1\s+edge-1")
        yield _sleep(2)  # let the ACKs be recorded as ObjectSyncs
        # the edge goes away; a pod is deleted and the configmap changes meanwhile
        yield self.edge.stopService()
        yield self.client.delete("pods", "gone", namespace="default", grace_period_seconds=0)
        yield self.client.patch("configmaps", "cfg", {"data": {"k": "3"}}, namespace="default")
        # the node goes NotReady after nodeUpdateFrequency (2 s)
        for _ in range(50):
            nodes = yield self.kubectl_run("get", "nodes")
            if "NotReady" in nodes:
                break
            yield _sleep(0.2)
        self.assertIn("NotReady", nodes)
        # the edge comes back: exactly the delete and the update, once each
        yield self.start_edge()
        yield poll(lambda: self.edged.of("default/pod/gone", "delete")
                   and self.edged.of("default/configmap/cfg", "update"), 20)
        yield _sleep(3)  # several resync periods: nothing more may arrive
        self.assertEqual(len(self.edged.of("default/pod/gone", "delete")), 1)
        updates = self.edged.of("default/configmap/cfg", "update")
        self.assertEqual([x.content["data"] for x in updates], [{"k": "3"}])
        self.assertEqual(self.edged.of("default/pod/web", "update"), [],
                         "an unchanged pod is not resent")
        for _ in range(50):
            nodes = yield self.kubectl_run("get", "nodes")
            if "NotReady" not in nodes:
                break
            yield _sleep(0.2)
        self.assertRegex(nodes, r"edge-1\s+Ready")


def _sleep(seconds):
    d = defer.Deferred()
    reactor.callLater(seconds, d.callback, None)
    return d
