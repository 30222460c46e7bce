"""Integration: the real ``kubectl`` against the embedded API server, in-process on a free
loopback port with real TLS, client-certificate auth from the written kubeconfig, and a
real sqlite file.

kubectl runs as a child process (``getProcessOutputAndValue`` through
:func:`tests.integration.parts.run_command`, ``kubectl get -w`` through
``reactor.spawnProcess``) with ``KUBECONFIG`` set to the kubeconfig the server wrote and a
private ``HOME`` for its discovery cache; nothing blocks the reactor.
"""

import json
import os

from twisted.internet import defer, protocol, reactor, task
from twisted.trial.unittest import TestCase

from kubeedge_tw.cloud.apiserver import KUBECONFIG_NAME, create_apiserver
from kubeedge_tw.common.config import CLOUD, default_config
from kubeedge_tw.common.core import Core
from tests.integration.parts import LOOPBACK, free_port, require_executable, run_command

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
# Manifests of every kind the server must take, as kubectl sends them.
EXAMPLES = os.path.join(TOP, "tests", "integration", "manifests")
EXAMPLE_FILES = ("configmap.yaml", "secret.yaml", "node.yaml", "deployment.yaml", "pod.yaml")


class Watcher(protocol.ProcessProtocol):
    """A long-running ``kubectl get -w``: collects its output."""

    def __init__(self):
        self.out = b""
        self.ended = defer.Deferred()

    def outReceived(self, data):
        self.out += data

    errReceived = outReceived

    def processEnded(self, reason):
        self.ended.callback(None)


async def wait_for(predicate, what, timeout=15.0, interval=0.05):
    """Poll ``predicate()`` on the reactor until true; fail after ``timeout`` seconds."""
    for _ in range(int(timeout / interval)):
        if predicate():
            return
        await task.deferLater(reactor, interval, lambda: None)
    raise AssertionError("timed out waiting for " + what())


class KubectlTests(TestCase):
    """kubectl apply/get/describe/delete/watch against the embedded API server."""

    timeout = 90

    async def start_server(self):
        core = Core("kubeedge-cloud", reactor, self.config)
        service = create_apiserver(core, self.config)
        service.setServiceParent(core)
        core.startService()
        await service.ready
        self.assertIsNone(service.start_failure)
        self.core = core
        self.service = service

    async def stop_server(self):
        if self.core is not None:
            core, self.core = self.core, None
            await core.stopService()

    def setUp(self):
        self.kubectl = require_executable("kubectl", "kubernetes-client")
        self.state = os.path.abspath(self.mktemp())
        os.makedirs(self.state)
        self.home = os.path.join(self.state, "home")
        os.makedirs(self.home)
        self.port = free_port()
        self.config = default_config(CLOUD, overrides={
            "stateDir": self.state, "modules.apiServer.port": self.port,
            "modules.apiServer.address": LOOPBACK})
        self.core = None
        self.addCleanup(lambda: defer.Deferred.fromCoroutine(self.stop_server()))
        return defer.Deferred.fromCoroutine(self.start_server())

    def env(self, kubeconfig=None):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": self.home,
               "KUBECONFIG": kubeconfig or os.path.join(self.state, KUBECONFIG_NAME)}
        return env

    async def kubectl_run(self, *args, expect=0, kubeconfig=None):
        """Run kubectl; return (stdout, stderr) as text, checking the exit status."""
        out, err, code = await run_command([self.kubectl, "--request-timeout=20s"] +
                                           list(args), timeout=30, env=self.env(kubeconfig))
        out, err = out.decode(), err.decode()
        if expect is not None:
            self.assertEqual(code, expect, "kubectl {} exited {}:\n{}\n{}".format(
                " ".join(args), code, out, err))
        return out, err

    def example(self, name):
        return os.path.join(EXAMPLES, name)

    async def rows(self, *args):
        """``kubectl get`` output as lists of whitespace-separated cells (header first)."""
        out, _ = await self.kubectl_run("get", *args)
        return [line.split() for line in out.splitlines() if line.strip()]

    async def apply_examples(self):
        for name in EXAMPLE_FILES:
            out, _ = await self.kubectl_run("apply", "-f", self.example(name))
            self.assertIn("created", out)

    def test_kubeconfig_written(self):
        """The kubeconfig is 0600 and names this server over https."""
        path = os.path.join(self.state, KUBECONFIG_NAME)
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
        with open(path) as f:
            self.assertIn("https://127.0.0.1:{}".format(self.port), f.read())

    async def test_apply_get_describe_delete(self):
        """The example manifests apply, show in get/describe like a real cluster, re-apply
        unchanged and delete."""
        await self.apply_examples()
        nodes = await self.rows("nodes")
        self.assertEqual(nodes[0], ["NAME", "STATUS", "ROLES", "AGE", "VERSION"])
        self.assertEqual(nodes[1][:3], ["edge-1", "Ready", "agent,edge"])
        pods = await self.rows("pods", "-o", "wide")
        self.assertEqual(pods[0], ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE",
                                   "NOMINATED", "NODE", "READINESS", "GATES"])
        self.assertEqual(pods[1][:4] + pods[1][5:7],
                         ["sensor-reader", "0/1", "Pending", "0", "<none>", "edge-1"])
        deployments = await self.rows("deployments")
        self.assertEqual(deployments[0], ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"])
        self.assertEqual(deployments[1][:4], ["nginx", "0/2", "0", "0"])
        config = await self.rows("configmap", "app-config")
        self.assertEqual(config[1][:2], ["app-config", "2"])
        out, _ = await self.kubectl_run("get", "secret", "app-credentials", "-o", "json")
        self.assertEqual(sorted(json.loads(out)["data"]), ["password", "username"])
        out, _ = await self.kubectl_run("describe", "node", "edge-1")
        self.assertIn("Roles:              agent,edge", out)
        self.assertIn("sensor-reader", out)  # the node's non-terminated pods
        out, _ = await self.kubectl_run("describe", "pod", "sensor-reader")
        self.assertIn("Node:             edge-1", out)
        self.assertIn("busybox:1.36", out)
        out, _ = await self.kubectl_run("describe", "deployment", "nginx")
        self.assertIn("2 desired", out)
        for name in ("configmap.yaml", "node.yaml", "deployment.yaml"):
            out, _ = await self.kubectl_run("apply", "-f", self.example(name))
            self.assertIn("unchanged", out)
        out, _ = await self.kubectl_run("scale", "deployment", "nginx", "--replicas=3")
        self.assertIn("scaled", out)
        for name in EXAMPLE_FILES:
            flags = ["--grace-period=0", "--force"] if name == "pod.yaml" else []
            out, _ = await self.kubectl_run("delete", "-f", self.example(name), *flags)
            self.assertIn("deleted", out)
        _, err = await self.kubectl_run("get", "deployment", "nginx", expect=1)
        self.assertIn('Error from server (NotFound): deployments.apps "nginx" not found', err)

    async def test_watch_sees_changes(self):
        """kubectl get pods -w prints a pod created after it started."""
        await self.kubectl_run("apply", "-f", self.example("pod.yaml"))
        watcher = Watcher()
        process = reactor.spawnProcess(
            watcher, self.kubectl, [self.kubectl, "get", "pods", "-w", "--request-timeout=0"],
            env=self.env())
        self.addCleanup(lambda: watcher.ended)
        self.addCleanup(lambda: process.pid and process.signalProcess("TERM"))
        await wait_for(lambda: b"sensor-reader" in watcher.out,
                       lambda: "the initial list: " + watcher.out.decode())
        await self.kubectl_run("run", "late-pod", "--image=busybox:1.36", "--restart=Never")
        await wait_for(lambda: b"late-pod" in watcher.out,
                       lambda: "the new pod in the watch: " + watcher.out.decode())
        await self.kubectl_run("label", "pod", "sensor-reader", "seen=yes")
        await wait_for(lambda: watcher.out.count(b"sensor-reader") >= 2,
                       lambda: "the label change in the watch: " + watcher.out.decode())

    async def test_conflict_invalid_and_auth(self):
        """A stale replace is a Conflict, an invalid pod names its bad fields, a wrong
        token is Unauthorized and the admin token works."""
        await self.kubectl_run("apply", "-f", self.example("configmap.yaml"))
        out, _ = await self.kubectl_run("get", "configmap", "app-config", "-o", "json")
        stale = os.path.join(self.state, "stale.json")
        with open(stale, "w") as f:
            f.write(out)
        await self.kubectl_run("label", "configmap", "app-config", "changed=yes")
        _, err = await self.kubectl_run("replace", "-f", stale, expect=1)
        self.assertIn("Error from server (Conflict)", err)
        self.assertIn("the object has been modified", err)
        bad = os.path.join(self.state, "bad.yaml")
        with open(bad, "w") as f:
            f.write("apiVersion: v1\nkind: Pod\nmetadata:\n  name: Bad_Name\nspec:\n"
                    "  containers:\n  - name: c\n    ports:\n    - containerPort: 70000\n")
        _, err = await self.kubectl_run("apply", "-f", bad, expect=1)
        self.assertIn('The Pod "Bad_Name" is invalid', err)
        self.assertIn("spec.containers[0].image: Required value", err)
        self.assertIn("spec.containers[0].ports[0].containerPort: Invalid value: 70000", err)
        ca = os.path.join(self.state, "ca", "rootCA.crt")
        server = "https://127.0.0.1:{}".format(self.port)
        empty = os.path.join(self.state, "empty-kubeconfig")
        with open(empty, "w") as f:
            f.write("apiVersion: v1\nkind: Config\n")
        _, err = await self.kubectl_run("--server", server, "--certificate-authority", ca,
                                        "--token", "wrong", "get", "nodes", expect=1,
                                        kubeconfig=empty)
        self.assertIn("Unauthorized", err)
        with open(os.path.join(self.state, "apiserver", "token")) as f:
            token = f.read().strip()
        out, _ = await self.kubectl_run("--server", server, "--certificate-authority", ca,
                                        "--token", token, "get", "namespaces",
                                        kubeconfig=empty)
        self.assertIn("kube-system", out)

    async def test_restart_keeps_objects(self):
        """After a restart on the same sqlite file every object is there with the same
        resourceVersion, and new writes get higher ones."""
        await self.apply_examples()
        query = ["get", "configmaps,secrets,nodes,deployments,pods,namespaces", "-A", "-o",
                 "json"]

        def versions(out):
            return {(i["kind"], i["metadata"].get("namespace", ""), i["metadata"]["name"]):
                    i["metadata"]["resourceVersion"] for i in json.loads(out)["items"]}

        before = versions((await self.kubectl_run(*query))[0])
        await self.stop_server()
        await self.start_server()
        after = versions((await self.kubectl_run(*query))[0])
        self.assertEqual(after, before)
        await self.kubectl_run("label", "node", "edge-1", "restarted=yes")
        out, _ = await self.kubectl_run("get", "node", "edge-1", "-o", "json")
        self.assertGreater(int(json.loads(out)["metadata"]["resourceVersion"]),
                           max(int(v) for v in before.values()))

    async def test_imperative_commands(self):
        """kubectl's typed commands (protobuf bodies) create objects; deleting the
        namespace takes its contents."""
        await self.kubectl_run("create", "namespace", "team")
        await self.kubectl_run("-n", "team", "create", "configmap", "settings",
                               "--from-literal=mode=edge")
        await self.kubectl_run("-n", "team", "create", "secret", "generic", "token",
                               "--from-literal=key=s3cret")
        await self.kubectl_run("-n", "team", "create", "deployment", "web",
                               "--image=nginx:1.25", "--replicas=2", "--port=80")
        await self.kubectl_run("-n", "team", "expose", "deployment", "web", "--port=8080",
                               "--target-port=80")
        out, _ = await self.kubectl_run("-n", "team", "get", "configmap", "settings", "-o",
                                        "jsonpath={.data.mode}")
        self.assertEqual(out, "edge")
        services = await self.rows("-n", "team", "services")
        self.assertEqual(services[1][:2], ["web", "ClusterIP"])
        self.assertTrue(services[1][2].startswith("10."))
        self.assertEqual(services[1][4], "8080/TCP")
        out, _ = await self.kubectl_run("delete", "namespace", "team")
        self.assertIn("deleted", out)
        _, err = await self.kubectl_run("-n", "team", "get", "deployment", "web", expect=1)
        self.assertIn("NotFound", err)
