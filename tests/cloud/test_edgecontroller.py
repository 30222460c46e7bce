"""Tests for EdgeController and SyncController against the verified fake API server
(``tests.cloud.k8s.fake_apiserver``), on Clocks, with a CloudHub stand-in that records
what would go to the edges and can ACK it."""

import json

from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase

from kubeedge_tw.cloud.edgecontroller import EdgeController
from kubeedge_tw.cloud.edgecontroller.refs import pod_references
from kubeedge_tw.cloud.kube import KubeContext
from kubeedge_tw.cloud.synccontroller import SyncController
from kubeedge_tw.cloud.cloudhub.session import object_key
from kubeedge_tw.common import message as m
from kubeedge_tw.common import names
from kubeedge_tw.common.bus import Bus
from kubeedge_tw.common.module import Module
from kubeedge_tw.common.resource import strip_node
from tests.cloud.k8s.fake_apiserver import FakeCluster


class FakeHub(Module):
    """CloudHub's interface to the controllers: records what is sent, ACKs on demand."""

    def __init__(self, clock):
        super().__init__(clock, name=names.CLOUDHUB, group=names.CLOUDHUB_GROUP)
        self.sent = []
        self.observers = []
        self.nodes = set()

    def handle(self, message):
        self.sent.append(message)

    def add_observer(self, observer):
        self.observers.append(observer)

    def is_connected(self, node):
        return node in self.nodes

    def connected_nodes(self):
        return sorted(self.nodes)

    def ack(self, message):
        """What CloudHub does when the edge ACKs ``message``."""
        node = message.resource.split("/")[1]
        edge = message.replace(resource=strip_node(message.resource))
        for observer in self.observers:
            observer.node_acked(node, edge, object_key(edge))


class Harness:
    """Fake API server, shared informers, EdgeController, SyncController, fake hub."""

    def __init__(self, with_sync=True):
        self.cluster = FakeCluster()
        self.clock = self.cluster.clock
        self.client = self.cluster.client()
        self.bus = Bus(self.clock)
        self.hub = FakeHub(self.clock)
        self.kube = KubeContext(self.clock, lambda: self.client)
        self.ec = EdgeController(self.clock, self.kube, node_update_frequency=10)
        self.bus.register(self.hub)
        self.bus.register(self.ec)
        self.sync = None
        if with_sync:
            self.sync = SyncController(self.clock, self.kube, self.ec, self.hub,
                                       resync_period=5)
            self.bus.register(self.sync)
        self.kube.startService()
        for module in (self.hub, self.ec, self.sync):
            if module is not None:
                module.startService()
        self.run()

    def run(self, seconds=0):
        self.clock.advance(seconds)
        for _ in range(30):
            self.cluster.flush()
            self.clock.advance(0)

    def call(self, d):
        result = []
        d.addBoth(result.append)
        self.run()
        if result and isinstance(result[0], Exception):
            raise result[0]
        value = result[0]
        if hasattr(value, "raiseException"):
            value.raiseException()
        return value

    def create(self, resource, obj, namespace="default"):
        return self.call(self.client.create(resource, obj,
                                            namespace=None if resource == "nodes" else namespace))

    def connect(self, node):
        self.hub.nodes.add(node)
        self.bus.send(names.EDGECONTROLLER, m.new_message(
            names.CLOUDHUB, "resource", names.OP_CONNECTED, "node/" + node,
            json.dumps({"event_type": "connected", "client_id": node})))
        self.run()

    def disconnect(self, node):
        self.hub.nodes.discard(node)
        self.bus.send(names.EDGECONTROLLER, m.new_message(
            names.CLOUDHUB, "resource", names.OP_DISCONNECTED, "node/" + node, "{}"))
        self.run()

    def from_edge(self, node, op, resource, content, source="edged"):
        msg = m.new_message(source, "meta", op, "node/{}/{}".format(node, resource), content)
        self.bus.send(names.EDGECONTROLLER, msg)
        self.run()
        return msg

    def sent_to(self, node, resource=None, operation=None):
        prefix = "node/{}/".format(node)
        return [x for x in self.hub.sent if x.resource.startswith(prefix)
                and (resource is None or strip_node(x.resource) == resource)
                and (operation is None or x.operation == operation)]

    def replies(self, request):
        return [x for x in self.hub.sent if x.parent_msg_id == request.msg_id]


def pod(name="web", node="edge-1", cm=None, secret_env=None, labels=None):
    spec = {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]}
    if cm:
        spec["volumes"] = [{"name": "v", "configMap": {"name": cm}}]
    if secret_env:
        spec["containers"][0]["env"] = [{"name": "S", "valueFrom": {"secretKeyRef": {
            "name": secret_env, "key": "k"}}}]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": labels or {}}, "spec": spec}


def node_obj(name="edge-1", edge=True):
    labels = {"node-role.kubernetes.io/edge": ""} if edge else {}
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}}


class RefsTests(SynchronousTestCase):
    """pod_references finds every way a pod uses a configmap or secret."""

    def test_all_kinds_of_reference(self):
        """Volumes, projected sources, env, envFrom and imagePullSecrets are found."""
        spec = {"volumes": [{"configMap": {"name": "a"}}, {"secret": {"secretName": "b"}},
                            {"projected": {"sources": [{"configMap": {"name": "c"}},
                                                       {"secret": {"name": "d"}}]}}],
                "initContainers": [{"envFrom": [{"configMapRef": {"name": "e"}}]}],
                "containers": [{"env": [{"valueFrom": {"configMapKeyRef": {"name": "f"}}},
                                        {"valueFrom": {"secretKeyRef": {"name": "g"}}},
                                        {"value": "plain"}],
                                "envFrom": [{"secretRef": {"name": "h"}}]}],
                "imagePullSecrets": [{"name": "i"}]}
        self.assertEqual(pod_references({"spec": spec}), {
            ("configmap", "a"), ("secret", "b"), ("configmap", "c"), ("secret", "d"),
            ("configmap", "e"), ("configmap", "f"), ("secret", "g"), ("secret", "h"),
            ("secret", "i")})


class DownstreamTests(SynchronousTestCase):
    """Pods, configmaps and secrets go to the right edge nodes."""

    def test_pod_to_edge_node(self):
        """A pod bound to a connected edge node is sent as update with its rv."""
        h = Harness()
        h.connect("edge-1")
        created = h.create("pods", pod())
        sent = h.sent_to("edge-1", "default/pod/web")
        self.assertEqual([x.operation for x in sent], ["update"])
        self.assertEqual(sent[0].resource_version, created["metadata"]["resourceVersion"])
        self.assertEqual(sent[0].content["kind"], "Pod")
        self.assertEqual(sent[0].group, "resource")
        self.assertEqual(sent[0].source, "edgecontroller")

    def test_labelled_node_counts_as_edge(self):
        """A node labelled node-role.kubernetes.io/edge gets pods even before it connects;
        a pod on an ordinary node goes nowhere."""
        h = Harness()
        h.create("nodes", node_obj("edge-2"))
        h.create("nodes", node_obj("worker", edge=False))
        h.create("pods", pod("a", node="edge-2"))
        h.create("pods", pod("b", node="worker"))
        self.assertEqual(len(h.sent_to("edge-2", "default/pod/a")), 1)
        self.assertEqual(h.sent_to("worker"), [])

    def test_status_change_not_resent_spec_change_is(self):
        """A status-only change is not sent back; a label change is."""
        h = Harness()
        h.connect("edge-1")
        created = h.create("pods", pod())
        h.call(h.client.patch_status("pods", "web", {"status": {"phase": "Running"}},
                                     namespace="default"))
        self.assertEqual(len(h.sent_to("edge-1", "default/pod/web")), 1)
        h.call(h.client.patch("pods", "web", {"metadata": {"labels": {"x": "y"}}},
                              namespace="default"))
        self.assertEqual(len(h.sent_to("edge-1", "default/pod/web")), 2)
        self.assertIsNotNone(created)

    def test_pod_delete(self):
        """A pod removed from the API is sent as delete."""
        h = Harness()
        h.connect("edge-1")
        h.create("pods", pod())
        h.call(h.client.delete("pods", "web", namespace="default", grace_period_seconds=0))
        self.assertEqual([x.operation for x in h.sent_to("edge-1", "default/pod/web")],
                         ["update", "delete"])

    def test_configmap_only_where_referenced(self):
        """Configmap updates go to nodes whose pods use it, deletes carry the identity."""
        h = Harness(with_sync=False)
        h.connect("edge-1")
        h.connect("edge-2")
        h.create("configmaps", {"metadata": {"name": "cfg"}, "data": {"k": "1"}})
        h.create("pods", pod("a", node="edge-1", cm="cfg"))
        h.create("pods", pod("b", node="edge-2"))
        h.call(h.client.patch("configmaps", "cfg", {"data": {"k": "2"}}, namespace="default"))
        updates = h.sent_to("edge-1", "default/configmap/cfg", "update")
        self.assertEqual([x.content["data"] for x in updates], [{"k": "2"}])
        self.assertEqual(h.sent_to("edge-2", "default/configmap/cfg"), [])
        h.call(h.client.delete("configmaps", "cfg", namespace="default"))
        delete = h.sent_to("edge-1", "default/configmap/cfg", "delete")[0]
        self.assertEqual(set(delete.content["metadata"]), {"name", "namespace", "uid"})


class QueryTests(SynchronousTestCase):
    """Edge queries are answered at once in cloudcore's shapes."""

    def test_configmap_object(self):
        """An existing configmap comes back bare, with kind and the rv header."""
        h = Harness()
        h.create("configmaps", {"metadata": {"name": "cfg"}, "data": {"k": "v"}})
        q = h.from_edge("edge-1", "query", "default/configmap/cfg", None)
        reply = h.replies(q)[0]
        self.assertEqual((reply.operation, reply.source, reply.group),
                         ("response", "edgecontroller", "resource"))
        self.assertEqual(reply.content["kind"], "ConfigMap")
        self.assertEqual(reply.content["data"], {"k": "v"})
        self.assertTrue(reply.resource_version)
        self.assertEqual(reply.resource, "node/edge-1/default/configmap/cfg")

    def test_not_found_shapes(self):
        """A missing node answers {"ErrStatus": 404}; a missing lease the wrapper."""
        h = Harness()
        q = h.from_edge("edge-1", "query", "default/node/edge-1", None)
        self.assertEqual(h.replies(q)[0].content["ErrStatus"]["code"], 404)
        self.assertEqual(h.replies(q)[0].content["ErrStatus"]["reason"], "NotFound")
        q = h.from_edge("edge-1", "query", "kube-node-lease/lease/edge-1", None)
        content = h.replies(q)[0].content
        self.assertIsNone(content["Object"])
        self.assertEqual(content["Err"]["ErrStatus"]["code"], 404)


class UpstreamTests(SynchronousTestCase):
    """Registration and status from the edges."""

    def test_v115_registration(self):
        """insert on default/node/<n> creates the Node with the edge label, replies with
        the {Object, Err} wrapper."""
        h = Harness()
        node = {"metadata": {"name": "edge-1", "labels": {"node-role.kubernetes.io/agent": ""}},
                "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
        q = h.from_edge("edge-1", "insert", "default/node/edge-1", node)
        reply = h.replies(q)[0]
        self.assertIsNone(reply.content["Err"])
        stored = h.call(h.client.get("nodes", "edge-1"))
        self.assertIn("node-role.kubernetes.io/edge", stored["metadata"]["labels"])
        self.assertIn("node-role.kubernetes.io/agent", stored["metadata"]["labels"])
        self.assertEqual(stored["status"]["conditions"][0]["status"], "True")
        again = h.from_edge("edge-1", "insert", "default/node/edge-1", node)
        self.assertIsNone(h.replies(again)[0].content["Err"])

    def test_v12_registration_and_status(self):
        """insert on nodestatus answers OK; a v1.0-style status update patches the status
        with fresh heartbeats."""
        h = Harness()
        q = h.from_edge("edge-1", "insert", "default/nodestatus/edge-1",
                        {"metadata": {"name": "edge-1"}})
        self.assertEqual(h.replies(q)[0].content, "OK")
        h.clock.advance(100)
        u = h.from_edge("edge-1", "update", "default/nodestatus/edge-1", {
            "UID": "x", "Status": {"conditions": [{"type": "Ready", "status": "True",
                                                   "reason": "EdgeReady"}],
                                   "capacity": {"cpu": "2"}}, "ExtendResources": None})
        self.assertEqual(h.replies(u)[0].content, "OK")
        stored = h.call(h.client.get("nodes", "edge-1"))
        self.assertEqual(stored["status"]["capacity"], {"cpu": "2"})
        self.assertEqual(stored["status"]["conditions"][0]["reason"], "EdgeReady")
        self.assertTrue(stored["status"]["conditions"][0]["lastHeartbeatTime"])

    def test_pod_status_and_orphans(self):
        """A pod status lands in the API keeping transition times; a status for a pod
        that does not exist makes the edge delete it."""
        h = Harness()
        h.connect("edge-1")
        h.create("pods", pod())
        status = {"phase": "Running", "podIP": "127.0.0.1", "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
        h.from_edge("edge-1", "update", "default/podstatus/web",
                    {"UID": "", "Name": "web", "Status": status})
        stored = h.call(h.client.get("pods", "web", namespace="default"))
        self.assertEqual(stored["status"]["phase"], "Running")
        later = dict(status, conditions=[dict(status["conditions"][0],
                                              lastTransitionTime="2026-06-01T00:00:00Z")])
        h.from_edge("edge-1", "update", "default/podstatus", [
            {"UID": "", "Name": "web", "Status": later}])
        stored = h.call(h.client.get("pods", "web", namespace="default"))
        self.assertEqual(stored["status"]["conditions"][0]["lastTransitionTime"],
                         "2026-01-01T00:00:00Z")
        h.from_edge("edge-1", "update", "default/podstatus/ghost",
                    {"UID": "u-ghost", "Name": "ghost", "Status": status})
        gone = h.sent_to("edge-1", "default/pod/ghost", "delete")
        self.assertEqual(gone[0].content["metadata"]["uid"], "u-ghost")

    def test_terminating_pod_finalized(self):
        """A gracefully deleted pod stays until the edge reports its containers
        terminated, then it is deleted for good."""
        h = Harness()
        h.connect("edge-1")
        h.create("pods", pod())
        h.call(h.client.delete("pods", "web", namespace="default", grace_period_seconds=30))
        terminating = h.call(h.client.get("pods", "web", namespace="default"))
        self.assertTrue(terminating["metadata"]["deletionTimestamp"])
        self.assertTrue(h.sent_to("edge-1", "default/pod/web")[-1].content["metadata"]
                        ["deletionTimestamp"])
        h.from_edge("edge-1", "update", "default/podstatus/web", {
            "UID": terminating["metadata"]["uid"], "Name": "web", "Status": {
                "phase": "Running", "containerStatuses": [
                    {"name": "c", "state": {"terminated": {"exitCode": 0}}}]}})
        self.assertRaises(Exception, h.call, h.client.get("pods", "web", namespace="default"))


class DisconnectTests(SynchronousTestCase):
    """A disconnected node goes Unknown after the grace; nothing is evicted."""

    def test_unknown_after_grace(self):
        """Ready becomes Unknown nodeUpdateFrequency seconds after the disconnect."""
        h = Harness()
        h.create("nodes", node_obj())
        h.create("pods", pod())
        h.connect("edge-1")
        h.disconnect("edge-1")
        h.run(9)
        ready = h.call(h.client.get("nodes", "edge-1"))["status"]["conditions"][0]
        self.assertEqual(ready["status"], "True")
        h.run(1)
        ready = h.call(h.client.get("nodes", "edge-1"))["status"]["conditions"][0]
        self.assertEqual((ready["status"], ready["reason"]), ("Unknown", "NodeStatusUnknown"))
        self.assertTrue(h.call(h.client.get("pods", "web", namespace="default")))

    def test_reconnect_within_grace(self):
        """A node back within the grace never goes Unknown."""
        h = Harness()
        h.create("nodes", node_obj())
        h.connect("edge-1")
        h.disconnect("edge-1")
        h.run(5)
        h.connect("edge-1")
        h.run(20)
        ready = h.call(h.client.get("nodes", "edge-1"))["status"]["conditions"][0]
        self.assertEqual(ready["status"], "True")


class SyncTests(SynchronousTestCase):
    """ObjectSync records and the reconnect resync."""

    def ack_all(self, h):
        for message in list(h.hub.sent):
            if message.operation in ("update", "delete") and message.msg_id not in h.acked:
                h.acked.add(message.msg_id)
                h.hub.ack(message)
        h.run()

    def test_ack_records_objectsync(self):
        """An ACKed pod is recorded as ObjectSync <node>.<uid> with its resourceVersion."""
        h = Harness()
        h.acked = set()
        h.connect("edge-1")
        created = h.create("pods", pod())
        self.ack_all(h)
        record = h.call(h.client.get("objectsyncs", "edge-1." + created["metadata"]["uid"],
                                     namespace="default"))
        self.assertEqual(record["spec"], {"objectAPIVersion": "v1", "objectKind": "Pod",
                                          "objectName": "web"})
        self.assertEqual(record["status"]["objectResourceVersion"],
                         created["metadata"]["resourceVersion"])

    def test_offline_changes_delivered_once(self):
        """Changes made while a node was away (a pod deleted, a configmap updated) reach it
        after reconnect exactly once; unchanged objects are not resent."""
        h = Harness()
        h.acked = set()
        h.connect("edge-1")
        h.create("configmaps", {"metadata": {"name": "cfg"}, "data": {"k": "1"}})
        h.create("pods", pod("keep", cm="cfg"))
        h.create("pods", pod("gone"))
        h.run(5)   # the resync delivers the referenced configmap
        self.ack_all(h)
        h.run(5)
        before = len(h.hub.sent)
        h.disconnect("edge-1")
        h.call(h.client.delete("pods", "gone", namespace="default", grace_period_seconds=0))
        h.call(h.client.patch("configmaps", "cfg", {"data": {"k": "2"}}, namespace="default"))
        # What was sent while disconnected never arrived.
        for message in h.hub.sent[before:]:
            h.acked.add(message.msg_id)
            for observer in h.hub.observers:
                observer.node_undelivered("edge-1", message.replace(
                    resource=strip_node(message.resource)), "node not connected")
        h.run()
        mark = len(h.hub.sent)
        h.connect("edge-1")
        h.run(1)
        after = h.hub.sent[mark:]
        self.assertEqual(sorted((strip_node(x.resource), x.operation) for x in after),
                         [("default/configmap/cfg", "update"), ("default/pod/gone", "delete")])
        self.ack_all(h)
        h.run(15)
        self.assertEqual(len(h.hub.sent), mark + 2, "nothing is sent twice")
