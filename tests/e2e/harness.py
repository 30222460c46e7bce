"""What the end-to-end tests drive, each the way a user would.

:class:`WalkthroughCase` gives every test its own cloud and edge: the shipped
``conf/cloudcore.yaml`` with free loopback ports, ``twistd -n kubeedge-cloud`` as a child
process, a token from ``python -m kubeedge_tw gettoken``, ``python -m kubeedge_tw join`` for
the edge, the joined ``edgecore.yaml`` adjusted as a user edits it (its own ports, the
internal MQTT broker), and ``twistd -n kubeedge-edge``. Checks go through kubectl with the
cloud's kubeconfig, the docker CLI (containers carry the edge's node label, which the
cleanup removes by), mosquitto_pub/mosquitto_sub and HTTP to the apps.

The node name is new for every test, so tests never see each other's containers. Every
wait is a poll on the reactor with a deadline and says what it waited for when it fails.
"""

import json
import os
import secrets
import sys

import treq
import yaml
from twisted.internet import defer, error, protocol, reactor, task
from twisted.trial.unittest import TestCase

from tests.integration.parts import (
    LOOPBACK, free_port, missing_part, require_executable, run_command)

__all__ = ["WalkthroughCase", "SideProcess", "MqttWatch", "EXAMPLES", "SAMPLE_IMAGE",
           "example_documents", "sleep", "twistd_command", "command"]

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
EXAMPLES = os.path.join(TOP, "conf", "examples")
SAMPLE_IMAGE = "kubeedge-tw/sample-app:1.0"
#: The label edged puts on every container it creates, valued with its node name.
NODE_LABEL = "io.kubeedge-tw.node"
POD_NAME_LABEL = "io.kubernetes.pod.name"

#: Seconds a side gets to start, and to exit after SIGTERM before it is killed.
START_TIMEOUT = 60
STOP_TIMEOUT = 20


def sleep(seconds):
    """A Deferred firing after ``seconds`` on the reactor."""
    return task.deferLater(reactor, seconds, lambda: None)


def example_documents(name):
    """The YAML documents of ``conf/examples/<name>`` (a list; JSON files are YAML too)."""
    with open(os.path.join(EXAMPLES, name)) as f:
        return [doc for doc in yaml.safe_load_all(f) if doc]


async def command(args, timeout=60):
    """Run a command to its end: (exit code, stdout text, stderr text)."""
    out, err, code = await run_command(args, timeout=timeout)
    return code, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def twistd_command():
    """twistd as installed next to this Python (the virtualenv's), else through -c, with
    the project's info-level text logger (as the README and scripts/demo.sh run it)."""
    path = os.path.join(os.path.dirname(sys.executable), "twistd")
    if os.access(path, os.X_OK):
        command = [path]
    else:
        command = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]
    return command + ["--logger", "kubeedge_tw.common.log.text_observer"]


class SideProcess(protocol.ProcessProtocol):
    """One side as a child process: its output goes to ``log_path`` and is kept for
    checks; ``ended`` fires with the exit code (``-signal`` when killed by one)."""

    def __init__(self, name, log_path):
        self.name = name
        self.log_path = log_path
        self._log = open(log_path, "ab")
        self.output = bytearray()
        self.ended = defer.Deferred()
        self.exited = False
        self.exit_code = None
        self.transport = None

    def outReceived(self, data):
        self.output += data
        self._log.write(data)
        self._log.flush()

    errReceived = outReceived

    def processEnded(self, reason):
        code = reason.value.exitCode
        if code is None:
            code = -(reason.value.signal or 0)
        self.exited, self.exit_code = True, code
        self._log.close()
        self.ended.callback(code)

    @property
    def pid(self):
        return self.transport.pid if self.transport is not None else None

    def text(self, since=0):
        return bytes(self.output[since:]).decode("utf-8", errors="replace")

    def tail(self, lines=30):
        return "\n".join(self.text().splitlines()[-lines:]) or "(no output)"

    def signal(self, name):
        try:
            self.transport.signalProcess(name)
        except (error.ProcessExitedAlready, OSError):
            pass

    async def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM, then SIGKILL after ``timeout`` seconds; the exit code."""
        if not self.exited:
            self.signal("TERM")
            timer = reactor.callLater(timeout, self.signal, "KILL")
            try:
                await self.ended
            finally:
                if timer.active():
                    timer.cancel()
        return self.exit_code

    async def kill(self):
        """SIGKILL (as ``kill -9`` would); the exit code."""
        if not self.exited:
            self.signal("KILL")
            await self.ended
        return self.exit_code


class MqttWatch(protocol.ProcessProtocol):
    """A ``mosquitto_sub -v -d`` on some topics; collects ``(topic, payload)`` pairs."""

    def __init__(self):
        self.buffer = b""
        self.messages = []
        self.subscribed = defer.Deferred()
        self.ended = defer.Deferred()
        self.exited = False
        self.debug = []

    def outReceived(self, data):
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        for raw in lines:
            line = raw.decode("utf-8", errors="replace")
            if line.startswith("Client ") or line.startswith("Subscribed"):
                self.debug.append(line)
                if "received SUBACK" in line and not self.subscribed.called:
                    self.subscribed.callback(None)
                continue
            topic, _, payload = line.partition(" ")
            self.messages.append((topic, payload))

    def errReceived(self, data):
        self.debug.append(data.decode("utf-8", errors="replace"))

    def processEnded(self, reason):
        self.exited = True
        if not self.subscribed.called:
            self.subscribed.errback(AssertionError(
                "mosquitto_sub ended before subscribing: " + "\n".join(self.debug)))
        self.ended.callback(None)

    def on(self, topic):
        """Payloads seen on ``topic``, decoded from JSON where they are JSON."""
        found = []
        for seen, payload in self.messages:
            if seen == topic:
                try:
                    found.append(json.loads(payload))
                except ValueError:
                    found.append(payload)
        return found


class WalkthroughCase(TestCase):
    """A test with its own cloud and edge processes on free loopback ports.

    ``setUp`` checks the real parts (kubectl, docker, the sample image) and writes the cloud
    config; tests call :meth:`start_cloud`, :meth:`join_edge` and :meth:`start_edge` (or
    :meth:`start_both`). Cleanups stop both sides and remove the node's containers.
    """

    timeout = 420
    #: Seconds after a disconnect before the cloud marks the node NotReady (the cloud's
    #: modules.edgeController.nodeUpdateFrequency; 10 in the shipped config).
    node_update_frequency = 10

    def setUp(self):
        return defer.Deferred.fromCoroutine(self._set_up())

    async def _set_up(self):
        self.kubectl_path = require_executable("kubectl", "kubernetes-client")
        self.docker_path = require_executable("docker", "docker.io")
        code, out, err = await command([self.docker_path, "info", "--format",
                                            "{{.ServerVersion}}"], timeout=30)
        if code != 0:
            raise missing_part("the Docker engine does not answer `docker info` ({}): "
                               "scripts/test.sh starts dockerd as root".format(
                                   err.strip()))
        await ensure_sample_image()
        self.base = os.path.abspath(self.mktemp())
        os.makedirs(self.base)
        self.node = "e2e-" + secrets.token_hex(4)
        self.cloud_dir = os.path.join(self.base, "cloud")
        self.edge_dir = os.path.join(self.base, "edge")
        self.ports = {name: free_port() for name in ("api", "ws", "https", "mqtt", "edged")}
        self.cloud = self.edge = None
        self.cloud_config = self.write_cloud_config()
        self.kubeconfig = os.path.join(self.cloud_dir, "kubeconfig")
        # Cleanups run last-in first-out: the containers go after both sides stopped.
        self.addCleanup(self.remove_node_containers)
        self.addCleanup(lambda: defer.Deferred.fromCoroutine(self._stop_sides()))

    async def _stop_sides(self):
        for side in (self.edge, self.cloud):
            if side is not None and not side.exited:
                await side.stop()

    # -- configs ---------------------------------------------------------------------------

    def write_cloud_config(self):
        """The shipped conf/cloudcore.yaml with this test's ports on 127.0.0.1."""
        with open(os.path.join(TOP, "conf", "cloudcore.yaml")) as f:
            data = yaml.safe_load(f)
        modules = data["modules"]
        modules["cloudHub"]["websocket"].update(address=LOOPBACK, port=self.ports["ws"])
        modules["cloudHub"]["https"].update(address=LOOPBACK, port=self.ports["https"])
        modules["apiServer"].update(address=LOOPBACK, port=self.ports["api"])
        modules["edgeController"]["nodeUpdateFrequency"] = self.node_update_frequency
        path = os.path.join(self.base, "cloudcore.yaml")
        with open(path, "w") as f:
            yaml.safe_dump(data, f)
        return path

    def edit_edge_config(self, path):
        """What a user changes in the joined edgecore.yaml for a shared host: the internal
        MQTT broker (mode 0) and edged's read-only port on free ports."""
        with open(path) as f:
            data = yaml.safe_load(f)
        modules = data.setdefault("modules", {})
        modules.setdefault("eventBus", {}).update(
            mqttMode=0, mqttServerInternal="tcp://{}:{}".format(LOOPBACK, self.ports["mqtt"]))
        modules.setdefault("edged", {})["readOnlyPort"] = self.ports["edged"]
        with open(path, "w") as f:
            yaml.safe_dump(data, f)

    # -- processes -------------------------------------------------------------------------

    async def _start_side(self, side, args):
        state = self.cloud_dir if side == "cloud" else self.edge_dir
        os.makedirs(state, exist_ok=True)
        name = "kubeedge-" + side
        proc = SideProcess(name, os.path.join(state, name + ".log"))
        argv = twistd_command() + ["-n", name, "--state-dir", state] + list(args)
        proc.transport = reactor.spawnProcess(proc, argv[0], argv, env=dict(os.environ),
                                              path=self.base)
        marker = name + " started"
        for _ in range(START_TIMEOUT * 10):
            if marker in proc.text():
                return proc
            if proc.exited:
                break
            await sleep(0.1)
        await proc.stop()
        self.fail("{} did not start (exit {}); its output:\n{}".format(
            name, proc.exit_code, proc.tail()))

    async def start_cloud(self):
        """``twistd -n kubeedge-cloud`` with this test's config; returns once kubectl
        answers through the kubeconfig it wrote."""
        self.cloud = await self._start_side("cloud", ["--config", self.cloud_config])
        await self.wait_until(self._kubectl_answers, 60, "kubectl to answer")
        return self.cloud

    async def _kubectl_answers(self):
        if not os.path.exists(self.kubeconfig):
            return False
        code, _, _ = await self.kubectl_result("get", "namespaces")
        return code == 0

    async def get_token(self):
        code, out, err = await self.kubeedge("gettoken", "--config", self.cloud_config,
                                             "--state-dir", self.cloud_dir)
        self.assertEqual(code, 0, err)
        return out.strip()

    async def join_edge(self, token=None, node=None, state_dir=None, expect=0):
        """``python -m kubeedge_tw join`` with a fresh token (or ``token``); the edge config
        path, adjusted by :meth:`edit_edge_config`. With ``expect`` non-zero, returns the
        join's stderr instead."""
        if token is None:
            token = await self.get_token()
        state_dir = state_dir or self.edge_dir
        code, out, err = await self.kubeedge(
            "join", "--cloud", "{}:{}".format(LOOPBACK, self.ports["ws"]), "--https-port",
            str(self.ports["https"]), "--token", token, "--node", node or self.node,
            "--state-dir", state_dir)
        self.assertEqual(code, expect, "join: {}{}".format(out, err))
        if expect:
            return err
        path = os.path.join(state_dir, "edgecore.yaml")
        self.edit_edge_config(path)
        return path

    async def start_edge(self, wait_ready=True):
        """``twistd -n kubeedge-edge`` on the joined config; by default returns once
        ``kubectl get node`` shows the node Ready."""
        self.edge = await self._start_side(
            "edge", ["--config", os.path.join(self.edge_dir, "edgecore.yaml")])
        if wait_ready:
            await self.wait_node_ready()
        return self.edge

    async def start_both(self):
        await self.start_cloud()
        await self.join_edge()
        await self.start_edge()

    async def kubeedge(self, *args, timeout=120):
        """``python -m kubeedge_tw ARGS``: (exit code, stdout, stderr)."""
        return await command([sys.executable, "-m", "kubeedge_tw"] + list(args),
                                 timeout=timeout)

    # -- kubectl ---------------------------------------------------------------------------

    async def kubectl_result(self, *args, timeout=60):
        return await command([self.kubectl_path, "--kubeconfig", self.kubeconfig,
                                  "--request-timeout=20s"] + list(args), timeout=timeout)

    async def kubectl(self, *args, expect=0):
        """kubectl ARGS; its stdout, after checking its exit code is ``expect``."""
        code, out, err = await self.kubectl_result(*args)
        self.assertEqual(code, expect, "kubectl {}: {}{}".format(" ".join(args), out, err))
        return out if expect == 0 else err

    async def kubectl_json(self, *args):
        return json.loads(await self.kubectl(*(list(args) + ["-o", "json"])))

    async def apply(self, *documents):
        """``kubectl apply -f`` of the given objects (written to a file first)."""
        path = os.path.join(self.base, "apply-{}.yaml".format(secrets.token_hex(4)))
        with open(path, "w") as f:
            yaml.safe_dump_all(list(documents), f)
        return await self.kubectl("apply", "-f", path)

    def for_this_node(self, document):
        """An example object with the example node name ``edge-node`` replaced by this
        test's node (device bindings, node.json)."""
        return json.loads(json.dumps(document).replace('"edge-node"', json.dumps(self.node)))

    async def node_condition(self, kind="Ready"):
        code, out, _ = await self.kubectl_result("get", "node", self.node, "-o", "json")
        if code != 0:
            return None
        for condition in json.loads(out).get("status", {}).get("conditions") or []:
            if condition.get("type") == kind:
                return condition.get("status")
        return None

    async def wait_node_ready(self, status="True", timeout=60):
        async def ready():
            return await self.node_condition() == status
        await self.wait_until(ready, timeout, "node {} Ready={}".format(self.node, status))

    async def pods(self, selector=None):
        args = ["get", "pods"] + (["-l", selector] if selector else [])
        return (await self.kubectl_json(*args))["items"]

    async def wait_pods_running(self, selector, count, timeout=120):
        """Wait until ``count`` pods match ``selector``, all Running and Ready on this
        node; returns them."""
        async def running():
            pods = await self.pods(selector)
            if len(pods) != count:
                return None
            for pod in pods:
                if pod["spec"].get("nodeName") != self.node or \
                        pod.get("status", {}).get("phase") != "Running" or \
                        pod["metadata"].get("deletionTimestamp"):
                    return None
                ready = [c for c in pod["status"].get("conditions") or []
                         if c.get("type") == "Ready"]
                if not ready or ready[0].get("status") != "True":
                    return None
            return pods
        return await self.wait_until(running, timeout, "{} pod(s) {} Running and Ready".format(
            count, selector))

    # -- docker ----------------------------------------------------------------------------

    async def docker(self, *args, expect=0):
        code, out, err = await command([self.docker_path] + list(args), timeout=60)
        self.assertEqual(code, expect, "docker {}: {}{}".format(" ".join(args), out, err))
        return out

    async def containers(self, pod=None, running_only=True):
        """``docker inspect`` of this node's containers (of ``pod`` if given)."""
        args = ["ps", "-q", "--no-trunc", "--filter", "label={}={}".format(NODE_LABEL,
                                                                            self.node)]
        if not running_only:
            args.insert(1, "-a")
        if pod:
            args += ["--filter", "label={}={}".format(POD_NAME_LABEL, pod)]
        ids = (await self.docker(*args)).split()
        if not ids:
            return []
        code, out, err = await command([self.docker_path, "inspect"] + ids, timeout=60)
        if code != 0:   # one went away between ps and inspect; ask again
            return await self.containers(pod, running_only)
        return json.loads(out)

    async def container_ids(self, pod=None):
        return sorted(c["Id"] for c in await self.containers(pod))

    async def docker_exec(self, container_id, *command):
        return await self.docker("exec", container_id, *command)

    async def remove_node_containers(self):
        ids = (await self.docker("ps", "-aq", "--filter", "label={}={}".format(
            NODE_LABEL, self.node))).split()
        if ids:
            await command([self.docker_path, "rm", "-f"] + ids, timeout=60)

    # -- MQTT and HTTP ---------------------------------------------------------------------

    async def mqtt_watch(self, *topics):
        """A mosquitto_sub on the edge's internal broker, subscribed (QoS 1) when this
        returns; stopped by a cleanup."""
        sub = require_executable("mosquitto_sub", "mosquitto-clients")
        # Line-buffered: mosquitto_sub's stdio holds its debug lines (the SUBACK) in a pipe.
        stdbuf = require_executable("stdbuf", "coreutils")
        watch = MqttWatch()
        argv = [stdbuf, "-oL", sub, "-h", LOOPBACK, "-p", str(self.ports["mqtt"]), "-q", "1",
                "-v", "-d", "-i", "e2e-watch-" + secrets.token_hex(3)]
        for topic in topics:
            argv += ["-t", topic]
        transport = reactor.spawnProcess(watch, stdbuf, argv, env=dict(os.environ))

        def stop():
            if not watch.exited:
                try:
                    transport.signalProcess("TERM")
                except error.ProcessExitedAlready:
                    pass
                return watch.ended
            return None
        self.addCleanup(stop)
        await watch.subscribed.addTimeout(20, reactor)
        return watch

    async def mqtt_publish(self, topic, payload):
        """mosquitto_pub (QoS 1) of ``payload`` (JSON-encoded unless bytes/str)."""
        pub = require_executable("mosquitto_pub", "mosquitto-clients")
        if not isinstance(payload, (bytes, str)):
            payload = json.dumps(payload)
        code, out, err = await command(
            [pub, "-h", LOOPBACK, "-p", str(self.ports["mqtt"]), "-q", "1", "-t", topic,
             "-m", payload], timeout=30)
        self.assertEqual(code, 0, "mosquitto_pub: {}{}".format(out, err))

    async def http_get(self, port, path="/"):
        """(status code, body text) of GET http://127.0.0.1:port/path, or None when
        nothing answers."""
        try:
            # No keep-alive: a pooled connection would outlive the test.
            response = await treq.get("http://{}:{}{}".format(LOOPBACK, port, path),
                                      timeout=5, persistent=False)
            body = await response.text()
        except Exception:   # refused, reset or timed out: the app is not there (yet)
            return None
        return response.code, body

    # -- waiting ---------------------------------------------------------------------------

    async def wait_until(self, check, timeout, what, interval=0.5):
        """Call async ``check`` until it returns something truthy (returned) or ``timeout``
        seconds passed (the test fails naming ``what``)."""
        deadline = reactor.seconds() + timeout
        while True:
            value = await check()
            if value:
                return value
            if reactor.seconds() >= deadline:
                self.fail("timed out after {}s waiting for {}".format(timeout, what) +
                          self._side_tails())
            await sleep(interval)

    def _side_tails(self):
        parts = []
        for side in (self.cloud, self.edge):
            if side is not None:
                parts.append("\n--- {} (pid {}, exited {}) ---\n{}".format(
                    side.name, side.pid, side.exit_code, side.tail(15)))
        return "".join(parts)


_image_ready = None


async def ensure_sample_image():
    """scripts/sample_image.sh, once per test run: the walkthrough's image exists."""
    global _image_ready
    if _image_ready is None:
        code, out, err = await command(
            ["bash", os.path.join(TOP, "scripts", "sample_image.sh")], timeout=300)
        if code != 0:
            raise missing_part("scripts/sample_image.sh failed: " + (err or out).strip())
        _image_ready = out.strip()
    return _image_ready
