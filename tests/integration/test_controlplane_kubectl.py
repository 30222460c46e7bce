"""Integration: the embedded control plane driven by the real ``kubectl`` against the real
embedded API server (TLS on a free loopback port, sqlite, the kubeconfig it writes).

The cloud side runs in-process: the API server from ``create_apiserver``, a
:class:`~kubeedge_tw.cloud.kube.KubeContext` on the kubeconfig, and the
:class:`~kubeedge_tw.cloud.controlplane.ControlPlane` with a short node grace period (4 s)
so that the heartbeat test takes seconds. There are no edges: :class:`EdgeStandIn` does
what edged reports through EdgeController, over the same API: node heartbeats every
second, bound pods Running and Ready, pods being deleted removed once "stopped". Every
check is made with kubectl (``get``, ``describe``, ``rollout status``, ``scale``, ``set
image``, ``delete``, ``patch --subresource=status``); nothing blocks the reactor.
"""

import json
import os
import time

from twisted.internet import defer, reactor, task
from twisted.logger import Logger
from twisted.trial.unittest import SkipTest, TestCase

from kubeedge_tw.cloud.controlplane import ControlPlane
from kubeedge_tw.cloud.controlplane.util import format_time
from kubeedge_tw.cloud.k8s import NotFound, load_kubeconfig, make_kube_client
from kubeedge_tw.cloud.kube import KubeContext
from kubeedge_tw.common.config import CLOUD, default_config
from kubeedge_tw.common.core import Core
from tests.integration.parts import LOOPBACK, free_port, require_executable, run_command

try:
    from kubeedge_tw.cloud.apiserver import KUBECONFIG_NAME, create_apiserver
except ImportError:  # the embedded API server is not in this build
    create_apiserver = None

#: Seconds without a heartbeat before a node is Unknown, and how often nodes are checked.
GRACE = 4.0
MONITOR = 0.5

NODES = """
apiVersion: v1
kind: Node
metadata:
  name: edge-a
  labels: {zone: a, node-role.kubernetes.io/edge: ""}
status:
  allocatable: {cpu: "4", memory: 8Gi, pods: "110"}
  capacity: {cpu: "4", memory: 8Gi, pods: "110"}
  conditions: [{type: Ready, status: "True", reason: EdgeReady}]
---
apiVersion: v1
kind: Node
metadata:
  name: edge-b
  labels: {zone: b, node-role.kubernetes.io/edge: ""}
spec:
  taints: [{key: dedicated, value: gpu, effect: NoSchedule}]
status:
  allocatable: {cpu: "4", memory: 8Gi, pods: "110"}
  capacity: {cpu: "4", memory: 8Gi, pods: "110"}
  conditions: [{type: Ready, status: "True", reason: EdgeReady}]
"""

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      nodeSelector: {zone: a}
      containers: [{name: c, image: "nginx:1"}]
"""


def pod_manifest(name, zone=None, toleration=False, cpu=None):
    """A one-container pod, optionally selecting a zone, tolerating the gpu taint and
    requesting cpu."""
    spec = {"containers": [{"name": "c", "image": "busybox"}]}
    if zone:
        spec["nodeSelector"] = {"zone": zone}
    if toleration:
        spec["tolerations"] = [{"key": "dedicated", "operator": "Equal", "value": "gpu",
                                "effect": "NoSchedule"}]
    if cpu:
        spec["containers"][0]["resources"] = {"requests": {"cpu": cpu}}
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                       "spec": spec})


class EdgeStandIn:
    """What the edges would report: heartbeats for ``heartbeating`` nodes every second,
    bound pods Running/Ready, pods being deleted removed."""

    log = Logger()

    def __init__(self, kube):
        self.kube = kube
        self.heartbeating = set()
        self.loop = None
        self.pods = None

    def start(self):
        self.pods = self.kube.informer("pods")
        self.pods.add_handler(self.on_pod, lambda old, new: self.on_pod(new), None)
        self.loop = task.LoopingCall(self.beat)
        self.loop.start(1.0)

    def stop(self):
        if self.loop is not None and self.loop.running:
            self.loop.stop()

    def _report(self, d, what):
        d.addErrback(lambda f: None if f.check(NotFound) else self.log.failure(what, f))

    def beat(self):
        now = format_time(time.time())
        for name in sorted(self.heartbeating):
            self._report(self.kube.client.patch_status("nodes", name, {"status": {
                "conditions": [{"type": "Ready", "status": "True", "reason": "EdgeReady",
                                "message": "edge is posting ready status",
                                "lastHeartbeatTime": now}]}}, patch_type="strategic"),
                "heartbeat")

    def on_pod(self, pod):
        meta, spec = pod["metadata"], pod.get("spec") or {}
        if meta.get("deletionTimestamp"):
            self._report(self.kube.client.delete("pods", meta["name"],
                                                 namespace=meta["namespace"],
                                                 grace_period_seconds=0), "finalize")
            return
        if not spec.get("nodeName") or (pod.get("status") or {}).get("phase") == "Running":
            return
        now = format_time(time.time())
        self._report(self.kube.client.patch_status("pods", meta["name"], {"status": {
            "phase": "Running", "podIP": "127.0.0.1", "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": now},
                {"type": "ContainersReady", "status": "True", "lastTransitionTime": now}]}},
            namespace=meta["namespace"], patch_type="strategic"), "pod status")


class ControlPlaneKubectlTests(TestCase):
    """kubectl against the embedded API server with the control plane running."""

    timeout = 180

    def setUp(self):
        if create_apiserver is None:
            raise SkipTest("this build has no embedded API server "
                           "(kubeedge_tw.cloud.apiserver.create_apiserver)")
        self.kubectl = require_executable("kubectl", "kubernetes-client")
        self.state = os.path.abspath(self.mktemp())
        self.home = os.path.join(self.state, "home")
        os.makedirs(self.home)
        self.port = free_port()
        self.config = default_config(CLOUD, overrides={
            "stateDir": self.state, "modules.apiServer.port": self.port,
            "modules.apiServer.address": LOOPBACK})
        self.core = None
        self.edges = None
        self.addCleanup(lambda: defer.Deferred.fromCoroutine(self.stop_cloud()))
        return defer.Deferred.fromCoroutine(self.start_cloud())

    async def start_cloud(self):
        core = Core("kubeedge-cloud", reactor, self.config)
        apiserver = create_apiserver(core, self.config)
        apiserver.setServiceParent(core)

        def client():
            # The API server started first (it is the first child), so ready exists.
            d = defer.Deferred()
            apiserver.ready.addBoth(lambda r: (d.callback(None), r)[1])
            d.addCallback(lambda _: make_kube_client(
                reactor, load_kubeconfig(apiserver.kubeconfig_path), qps=200, burst=400))
            return d
        kube = KubeContext(reactor, client)
        kube.setServiceParent(core)
        self.cp = ControlPlane(reactor, kube, node_grace_period=GRACE,
                               node_monitor_period=MONITOR)
        self.cp.setServiceParent(core)
        core.startService()
        self.core = core
        await kube.when_ready()
        self.assertIsNone(apiserver.start_failure)
        self.edges = EdgeStandIn(kube)
        self.edges.start()

    async def stop_cloud(self):
        if self.edges is not None:
            self.edges.stop()
        if self.core is not None:
            core, self.core = self.core, None
            await core.stopService()

    # -- kubectl ---------------------------------------------------------------------------

    def env(self):
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": self.home,
                "KUBECONFIG": os.path.join(self.state, KUBECONFIG_NAME)}

    async def kubectl_run(self, *args, expect=0, stdin=None, timeout=60):
        """Run kubectl; (stdout, stderr) as text, the exit status checked."""
        argv = [self.kubectl, "--request-timeout=20s"] + list(args)
        if stdin is not None:
            path = os.path.join(self.state, "manifest-{}.yaml".format(time.monotonic_ns()))
            with open(path, "w") as f:
                f.write(stdin)
            argv += ["-f", path]
        out, err, code = await run_command(argv, timeout=timeout, env=self.env())
        out, err = out.decode(), err.decode()
        if expect is not None:
            self.assertEqual(code, expect, "kubectl {} exited {}:\n{}\n{}".format(
                " ".join(args), code, out, err))
        return out, err

    async def get_json(self, *args):
        out, _ = await self.kubectl_run("get", "-o", "json", *args)
        return json.loads(out)

    async def live_pods(self, selector="app=web"):
        """Pods of ``selector`` not being deleted."""
        items = (await self.get_json("pods", "-l", selector))["items"]
        return [p for p in items if not p["metadata"].get("deletionTimestamp")]

    async def wait_for(self, check, what, timeout=30.0, interval=0.3):
        """Poll the coroutine function ``check`` until it returns something true."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = await check()
            if last:
                return last
            await task.deferLater(reactor, interval, lambda: None)
        raise AssertionError("timed out waiting for {} (last: {!r})".format(what, last))

    async def nodes_up(self):
        await self.kubectl_run("apply", stdin=NODES)
        self.edges.heartbeating.update({"edge-a", "edge-b"})

    # -- tests ------------------------------------------------------------------------------

    async def test_placement(self):
        """nodeSelector puts a Deployment on the matching node only; a pod needing a
        toleration lands only with it; an oversize pod stays Pending and kubectl describe
        says why."""
        await self.nodes_up()
        await self.kubectl_run("apply", stdin=DEPLOYMENT)
        await self.kubectl_run("rollout", "status", "deployment/web", "--timeout=60s")
        self.assertEqual({p["spec"]["nodeName"] for p in await self.live_pods()}, {"edge-a"})
        await self.kubectl_run("apply", stdin=pod_manifest("no-toleration", zone="b"))
        await self.kubectl_run("apply", stdin=pod_manifest("tolerated", zone="b",
                                                           toleration=True))
        await self.kubectl_run("apply", stdin=pod_manifest("huge", cpu="64"))

        async def placed():
            pod = await self.get_json("pod", "tolerated")
            return pod["spec"].get("nodeName")
        self.assertEqual(await self.wait_for(placed, "pod tolerated to be bound"), "edge-b")

        async def described(name, text):
            out, _ = await self.kubectl_run("describe", "pod", name)
            return out if text in out else None
        out = await self.wait_for(lambda: described("huge", "FailedScheduling"),
                                  "FailedScheduling on huge")
        # Filters stop at the first failure: the tainted node counts for its taint only.
        self.assertIn("0/2 nodes are available: 1 Insufficient cpu, 1 node(s) had "
                      "untolerated taint {dedicated: gpu}.", " ".join(out.split()))
        huge = await self.get_json("pod", "huge")
        self.assertEqual(huge["status"]["phase"], "Pending")
        self.assertNotIn("nodeName", huge["spec"])
        out = await self.wait_for(lambda: described("no-toleration", "FailedScheduling"),
                                  "FailedScheduling on no-toleration")
        self.assertIn("0/2 nodes are available: 1 node(s) didn't match Pod's node "
                      "affinity/selector, 1 node(s) had untolerated taint {dedicated: gpu}.",
                      " ".join(out.split()))
        self.assertNotIn("nodeName", (await self.get_json("pod", "no-toleration"))["spec"])
        events, _ = await self.kubectl_run("get", "events")
        for reason in ("Scheduled", "FailedScheduling", "ScalingReplicaSet",
                       "SuccessfulCreate"):
            self.assertIn(reason, events)

    async def test_deployment_lifecycle(self):
        """Scale 1 -> 3 -> 1, an image change rolls the pods, a deleted pod is replaced,
        kubectl rollout status returns, and deleting the Deployment removes its
        ReplicaSet and pods."""
        await self.nodes_up()
        await self.kubectl_run("create", "deployment", "web", "--image=nginx:1",
                               "--replicas=1")
        await self.kubectl_run("rollout", "status", "deployment/web", "--timeout=60s")
        for replicas in (3, 1):
            await self.kubectl_run("scale", "deployment/web", "--replicas={}".format(replicas))
            await self.kubectl_run("rollout", "status", "deployment/web", "--timeout=60s")

            async def settled(n=replicas):
                pods = await self.live_pods()
                return pods if len(pods) == n else None
            await self.wait_for(settled, "{} pods".format(replicas))
        rows, _ = await self.kubectl_run("get", "deployment", "web", "--no-headers")
        self.assertEqual(rows.split()[:4], ["web", "1/1", "1", "1"])

        old = {p["metadata"]["name"] for p in await self.live_pods()}
        await self.kubectl_run("set", "image", "deployment/web", "nginx=nginx:2")
        out, _ = await self.kubectl_run("rollout", "status", "deployment/web",
                                        "--timeout=60s")
        self.assertIn("successfully rolled out", out)

        async def rolled():
            pods = await self.live_pods()
            images = {p["spec"]["containers"][0]["image"] for p in pods}
            return pods if len(pods) == 1 and images == {"nginx:2"} else None
        pods = await self.wait_for(rolled, "the rolled pod")
        self.assertFalse(old & {p["metadata"]["name"] for p in pods})
        revisions = (await self.get_json("deployment", "web"))["metadata"]["annotations"]
        self.assertEqual(revisions["deployment.kubernetes.io/revision"], "2")

        victim = pods[0]["metadata"]["name"]
        await self.kubectl_run("delete", "pod", victim, "--wait=false")

        async def replaced():
            names = {p["metadata"]["name"] for p in await self.live_pods()}
            return names if names and victim not in names else None
        await self.wait_for(replaced, "a replacement pod")
        await self.kubectl_run("rollout", "status", "deployment/web", "--timeout=60s")

        await self.kubectl_run("delete", "deployment", "web")

        async def gone():
            rs = (await self.get_json("replicasets", "-l", "app=web"))["items"]
            pods = (await self.get_json("pods", "-l", "app=web"))["items"]
            return not rs and not pods
        await self.wait_for(gone, "the ReplicaSets and pods to go")

    async def test_cascade_options(self):
        """--cascade=orphan leaves the ReplicaSet and pods; --cascade=foreground removes
        everything."""
        await self.nodes_up()
        for name in ("keep", "drop"):
            await self.kubectl_run("create", "deployment", name, "--image=nginx:1",
                                   "--replicas=2")
            await self.kubectl_run("rollout", "status", "deployment/" + name,
                                   "--timeout=60s")
        await self.kubectl_run("delete", "deployment", "keep", "--cascade=orphan")
        await self.kubectl_run("delete", "deployment", "drop", "--cascade=foreground")
        kept = (await self.get_json("replicasets", "-l", "app=keep"))["items"]
        self.assertEqual(len(kept), 1)
        self.assertNotIn("ownerReferences", kept[0]["metadata"])
        self.assertEqual(len(await self.live_pods("app=keep")), 2)

        async def dropped():
            return not (await self.get_json("replicasets", "-l", "app=drop"))["items"] and \
                not (await self.get_json("pods", "-l", "app=drop"))["items"]
        await self.wait_for(dropped, "foreground deletion")

    async def test_node_heartbeats(self):
        """A node whose heartbeats stop is NotReady within the grace (plus one monitor
        period), tainted unreachable, with a NodeNotReady event; a heartbeat posted with
        kubectl makes it Ready again and the taints go."""
        await self.nodes_up()
        await self.kubectl_run("get", "nodes")
        self.edges.heartbeating.discard("edge-b")
        stopped = time.monotonic()

        async def status(name):
            out, _ = await self.kubectl_run("get", "node", name, "--no-headers")
            return out.split()[1]

        async def not_ready():
            return await status("edge-b") == "NotReady"
        await self.wait_for(not_ready, "edge-b NotReady", timeout=GRACE + 10, interval=0.2)
        elapsed = time.monotonic() - stopped
        self.assertLessEqual(elapsed, GRACE + MONITOR + 1.5)
        self.assertEqual(await status("edge-a"), "Ready")

        async def tainted():
            node = await self.get_json("node", "edge-b")
            keys = {(t["key"], t["effect"]) for t in node["spec"].get("taints") or ()}
            return keys if ("node.kubernetes.io/unreachable", "NoSchedule") in keys else None
        keys = await self.wait_for(tainted, "the unreachable taints")
        self.assertIn(("node.kubernetes.io/unreachable", "NoExecute"), keys)
        self.assertIn(("dedicated", "NoSchedule"), keys)
        out, _ = await self.kubectl_run("describe", "node", "edge-b")
        self.assertIn("Kubelet stopped posting node status.", out)
        events, _ = await self.kubectl_run("get", "events", "--field-selector",
                                           "involvedObject.name=edge-b")
        self.assertIn("NodeNotReady", events)

        heartbeat = json.dumps({"status": {"conditions": [{
            "type": "Ready", "status": "True", "reason": "EdgeReady",
            "message": "edge is posting ready status",
            "lastHeartbeatTime": format_time(time.time())}]}})
        await self.kubectl_run("patch", "node", "edge-b", "--subresource=status",
                               "--type=strategic", "-p", heartbeat)
        self.edges.heartbeating.add("edge-b")

        async def ready_again():
            node = await self.get_json("node", "edge-b")
            taints = {t["key"] for t in node["spec"].get("taints") or ()}
            return await status("edge-b") == "Ready" and \
                "node.kubernetes.io/unreachable" not in taints
        await self.wait_for(ready_again, "edge-b Ready and untainted", timeout=10)

