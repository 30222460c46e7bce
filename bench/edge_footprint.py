"""Benchmark of the edge's footprint with Edged running real containers (issue 8,
"Benchmark").

Run from the repository root inside the virtualenv, as a user who may use Docker::

    .venv/bin/python bench/edge_footprint.py [--pods 10] [--idle-seconds 30] [--window 20]

What runs (bench/README.md rules: figures are printed, never judged; loopback only):

* a real **cloud** process (``python -m kubeedge_tw cloud``) with CloudHub on free
  loopback ports, its CA made by ``certs init`` and an edge certificate by
  ``certs issue-edge``;
* a real **mosquitto** on a free loopback port for EventBus, when ``mosquitto`` is
  installed (else EventBus keeps retrying its broker, and the output says so);
* the **edge** process: this script with ``--edge-child``. It builds exactly the service
  tree ``twistd kubeedge-edge`` builds (``create_edge_service``: EdgeHub, MetaManager,
  Edged, DeviceTwin, EventBus as the config enables them), logs at info level to a file
  and connects to the cloud over mutual TLS. Its stdin/stdout carry JSON lines from this
  orchestrator: a pod is injected into the edge's bus exactly where EdgeHub puts a cloud
  message (an ``update`` on ``default/pod/<name>`` to the ``meta`` group), so MetaManager
  persists it in sqlite and forwards it to Edged, which runs it in Docker.

Figures: edge RSS and CPU (share of one core) idle ``--idle-seconds`` after start with 0
pods (CPU over the last ``--window`` seconds of that), the time from a pod update arriving
at the edge to Edged reporting its container running (image present; pods deployed one
after another, percentiles), and RSS and CPU with ``--pods`` pods running after the
same settling time. The Docker daemon's own CPU and memory are not counted.

Bounded: every wait has a time limit and the run a deadline. Everything started is stopped
by PID; the pods' containers are removed (by their node label, whatever happens) and the
busybox test image, when this run imported it, is removed again. Exit status 0 means the
benchmark ran; 1 that it could not run at all.
"""

import argparse
import json
import os
import platform
import select
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
# Measure the working tree, not whatever copy of the package is installed.
sys.path.insert(0, TOP)
from _common import (  # noqa: E402
    BenchError, Figures, percentile, say, stop_process)

IMAGE_REPO = "kubeedge-tw-test/busybox"
IMAGE = IMAGE_REPO + ":latest"
APPLETS = ("sh", "sleep", "echo", "cat", "true", "false", "env", "test")
#: Issue 8's targets, printed next to the figures.
TARGETS = {"idle_rss_mb": 50, "pods_rss_mb": 60, "idle_cpu_percent": 1.0,
           "insert_to_running_ms": 500}
#: Real KubeEdge on this kind of machine (issue 8): edgecore v1.15.4 with edged.
KUBEEDGE_1_15_IDLE_MIB = 82.6
KUBEEDGE_1_15_10_PODS_MIB = 89.0


def free_port():
    """A TCP port on 127.0.0.1 the kernel just picked."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the edge child ------------------------------------------------------------------------------

def edge_child(config_path, log_path):
    """Run the edge service tree on the reactor, driven by JSON lines on stdin."""
    from twisted.internet import defer, reactor, stdio
    from twisted.logger import globalLogBeginner
    from twisted.protocols.basic import LineReceiver

    from kubeedge_tw.common import log as klog
    from kubeedge_tw.common import names
    from kubeedge_tw.common.config import EDGE, load_config
    from kubeedge_tw.common.message import new_message
    from kubeedge_tw.edge.tap import create_edge_service

    log_file = open(log_path, "a", encoding="utf-8")
    globalLogBeginner.beginLoggingTo([klog.text_observer(log_file)],
                                     redirectStandardIO=False)
    config = load_config(config_path, EDGE)
    core = create_edge_service(config, reactor)
    waits = {}
    real_send = core.bus.send

    def observing_send(module, message):
        # Edged's status reports pass here on their way to MetaManager: the first one
        # saying the pod's containers run ends that pod's latency measurement.
        if module == names.METAMANAGER and message.operation == names.OP_UPDATE \
                and "/{}/".format(names.RES_PODSTATUS) in message.resource:
            name = message.resource.rsplit("/", 1)[1]
            status = (message.content or {}).get("Status") or {}
            containers = status.get("containerStatuses") or [{}]
            if name in waits and status.get("phase") == "Running" and \
                    all("running" in (c.get("state") or {}) for c in containers):
                started, d = waits.pop(name)
                d.callback((time.monotonic() - started) * 1000.0)
        return real_send(module, message)
    core.bus.send = observing_send

    def pod(name):
        return {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": "default", "uid": str(uuid.uuid4()),
                             "resourceVersion": "1"},
                "spec": {"terminationGracePeriodSeconds": 0, "restartPolicy": "Always",
                         "nodeName": config.modules.edged.hostnameOverride,
                         "containers": [{"name": "main", "image": IMAGE,
                                         "imagePullPolicy": "IfNotPresent",
                                         "command": ["sleep", "3600"]}]}}

    class Control(LineReceiver):
        """The control channel: one JSON command per line, one reply each."""
        delimiter = b"\n"

        def reply(self, **values):
            """Write one JSON line."""
            self.sendLine(json.dumps(values).encode())

        def lineReceived(self, line):
            """Run ``do_<cmd>`` and reply with its result or error."""
            request = json.loads(line)
            d = defer.maybeDeferred(getattr(self, "do_" + request["cmd"]), request)
            d.addCallbacks(lambda result: self.reply(id=request["id"], **(result or {})),
                           lambda f: self.reply(id=request["id"], error=f.getErrorMessage()))

        def do_connected(self, request):
            """Reply once EdgeHub's websocket is open."""
            hub = core.bus.module(names.EDGEHUB)
            return hub.wait_connected().addTimeout(request.get("timeout", 30), reactor) \
                .addCallback(lambda _: {"connected": True})

        def do_deploy(self, request):
            """Inject a pod update where EdgeHub would; reply with the ms until running."""
            name = request["name"]
            d = defer.Deferred()
            waits[name] = (time.monotonic(), d)
            core.bus.send_to_group(names.META_GROUP, new_message(
                "edgecontroller", names.WIRE_GROUP_RESOURCE, names.OP_UPDATE,
                "default/pod/" + name, pod(name), resource_version="1"))
            return d.addTimeout(request.get("timeout", 60), reactor).addCallback(
                lambda ms: {"pod": name, "ms": ms})

        @defer.inlineCallbacks
        def do_delete(self, request):
            """Inject pod deletes; reply when edged has removed them."""
            edged = core.bus.module(names.EDGED)
            for name in request["names"]:
                core.bus.send_to_group(names.META_GROUP, new_message(
                    "edgecontroller", names.WIRE_GROUP_RESOURCE, names.OP_DELETE,
                    "default/pod/" + name, {"metadata": {"name": name,
                                                         "namespace": "default"}}))
            deadline = time.monotonic() + request.get("timeout", 60)
            while edged.pods and time.monotonic() < deadline:
                d = defer.Deferred()
                reactor.callLater(0.1, d.callback, None)
                yield d
            return {"left": len(edged.pods)}

        def do_quit(self, request):
            """Stop the reactor (the service tree stops first)."""
            reactor.callLater(0.1, reactor.stop)
            return {"bye": True}

        def connectionLost(self, reason):
            """The orchestrator went away: stop."""
            if reactor.running:
                reactor.stop()

    control = Control()

    def started():
        stdio.StandardIO(control)
        control.reply(id=0, ready=True, pid=os.getpid(),
                      modules=core.module_names())
    core.startService()
    reactor.addSystemEventTrigger("before", "shutdown", core.stopService)
    reactor.callWhenRunning(started)
    reactor.run()
    return 0


# -- the orchestrator ----------------------------------------------------------------------------

class Child:
    """The edge child, driven over JSON lines on its stdin/stdout."""

    def __init__(self, argv, log_path):
        self._stderr = open(log_path + ".stderr", "wb")
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._stderr, bufsize=0, close_fds=True,
                                     cwd=TOP)
        self.pid = self.proc.pid
        self.log_path = log_path
        self._buffer = b""
        self._next = 0

    def read(self, timeout):
        """The next JSON line, within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BenchError("the edge (pid {}) did not answer in time; its log: {}"
                                 .format(self.pid, self.log_path))
            ready, _, _ = select.select([self.proc.stdout], [], [], remaining)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 1 << 16)
                if not chunk:
                    raise BenchError("the edge (pid {}) exited ({}); its log: {}".format(
                        self.pid, self.proc.poll(), self.log_path))
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def call(self, cmd, timeout=60, **values):
        """Send one command and wait for its reply."""
        self._next += 1
        values.update(cmd=cmd, id=self._next, timeout=timeout)
        self.proc.stdin.write((json.dumps(values) + "\n").encode())
        reply = self.read(timeout + 5)
        if reply.get("error"):
            raise BenchError("edge {}: {}".format(cmd, reply["error"]))
        return reply

    def stop(self):
        """Quit (then TERM, then KILL) by PID."""
        if self.proc.poll() is None:
            try:
                self.call("quit", timeout=5)
            except (BenchError, OSError):
                pass
        stop_process(self.proc)
        self._stderr.close()


def wait_for_line(path, marker, proc, timeout):
    """Wait until ``marker`` shows up in the log file ``path``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                if marker in f.read():
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise BenchError("{!r} not seen in {} (process {})".format(marker, path,
                                                               proc.poll()))


def run(argv, what):
    """Run a short command to completion; its output."""
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=TOP)
    if result.returncode:
        raise BenchError("{} failed ({}): {}".format(what, result.returncode,
                                                     result.stderr.strip()[-2000:]))
    return result.stdout


def ensure_image(client, workdir):
    """Import the busybox test image from /bin/busybox when missing; its id if this run
    imported it, else None."""
    import docker
    try:
        client.images.get(IMAGE)
        return None
    except docker.errors.ImageNotFound:
        pass
    busybox = shutil.which("busybox") or "/bin/busybox"
    if not os.path.exists(busybox):
        raise BenchError("no busybox: install busybox-static")
    root = os.path.join(workdir, "rootfs")
    os.makedirs(os.path.join(root, "bin"))
    for empty in ("tmp", "etc", "proc", "sys", "dev"):
        os.makedirs(os.path.join(root, empty))
    shutil.copy2(busybox, os.path.join(root, "bin", "busybox"))
    for applet in APPLETS:
        os.symlink("busybox", os.path.join(root, "bin", applet))
    tarpath = os.path.join(workdir, "rootfs.tar")
    with tarfile.open(tarpath, "w") as tar:
        tar.add(root, arcname=".")
    client.api.import_image_from_file(tarpath, repository=IMAGE_REPO, tag="latest",
                                      changes=['CMD ["/bin/sh"]'])
    return client.images.get(IMAGE).id


def remove_node_containers(client, node):
    """Remove every container Edged made for ``node``; how many."""
    from kubeedge_tw.edge.edged.runtime import LABEL_NODE
    found = client.api.containers(all=True, filters={"label": "{}={}".format(LABEL_NODE,
                                                                             node)})
    for summary in found:
        client.api.remove_container(summary["Id"], force=True, v=True)
    return len(found)


def sample(process):
    """(RSS bytes, user+system CPU seconds) of a psutil process."""
    times = process.cpu_times()
    return process.memory_info().rss, times.user + times.system


def measure(process, window):
    """RSS at the end of ``window`` seconds and the CPU share of one core over it."""
    _, cpu0 = sample(process)
    t0 = time.monotonic()
    time.sleep(window)
    rss, cpu1 = sample(process)
    return rss, 100.0 * (cpu1 - cpu0) / (time.monotonic() - t0)


def write_configs(base, node, ports, mqtt_port):
    """cloudcore.yaml and edgecore.yaml for loopback; their paths."""
    cloud_dir, edge_dir = os.path.join(base, "cloud"), os.path.join(base, "edge")
    cloud = os.path.join(base, "cloudcore.yaml")
    with open(cloud, "w") as f:
        f.write("apiVersion: cloudcore.config.kubeedge.io/v1alpha1\nkind: CloudCore\n"
                "stateDir: {}\nmodules:\n  apiServer: {{enable: false}}\n  cloudHub:\n"
                "    advertiseAddress: [127.0.0.1]\n"
                "    websocket: {{address: 127.0.0.1, port: {}}}\n"
                "    https: {{address: 127.0.0.1, port: {}}}\n".format(
                    cloud_dir, ports["ws"], ports["https"]))
    edge = os.path.join(base, "edgecore.yaml")
    with open(edge, "w") as f:
        f.write("apiVersion: edgecore.config.kubeedge.io/v1alpha1\nkind: EdgeCore\n"
                "stateDir: {}\nmodules:\n  edgeHub:\n"
                "    httpServer: https://127.0.0.1:{}\n"
                "    websocket: {{server: '127.0.0.1:{}'}}\n"
                "  edged:\n    hostnameOverride: {}\n    readOnlyPort: {}\n"
                "  eventBus:\n    mqttServerExternal: tcp://127.0.0.1:{}\n".format(
                    edge_dir, ports["https"], ports["ws"], node, ports["readonly"],
                    mqtt_port))
    return cloud, cloud_dir, edge, edge_dir


def orchestrate(args):
    """Set up cloud, broker and edge; measure; clean up."""
    import docker
    import psutil

    figures = Figures()
    say("edge footprint benchmark: {} pods, idle {} s, CPU window {} s; python {}, {} {}"
        .format(args.pods, args.idle_seconds, args.window, platform.python_version(),
                platform.system(), platform.machine()))
    client = docker.from_env(timeout=30)
    client.ping()
    base = tempfile.mkdtemp(prefix="kubeedge-tw-edge-footprint-")
    node = "bench-edge-" + uuid.uuid4().hex[:6]
    processes, child, imported = [], None, None
    try:
        imported = ensure_image(client, base)
        say("image {} {}".format(IMAGE, "imported for this run" if imported else "present"))
        ports = {"ws": free_port(), "https": free_port(), "readonly": free_port()}
        mqtt_port = free_port()
        mosquitto = shutil.which("mosquitto") or shutil.which("mosquitto",
                                                               path="/usr/sbin:/sbin")
        if mosquitto:
            conf = os.path.join(base, "mosquitto.conf")
            with open(conf, "w") as f:
                f.write("listener {} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                        .format(mqtt_port))
            broker_log = open(os.path.join(base, "mosquitto.log"), "wb")
            processes.append(subprocess.Popen([mosquitto, "-c", conf], stdout=broker_log,
                                              stderr=broker_log))
            say("mosquitto on 127.0.0.1:{}".format(mqtt_port))
        else:
            say("mosquitto not installed: EventBus runs but has no broker")
        cloud_cfg, cloud_dir, edge_cfg, edge_dir = write_configs(base, node, ports, mqtt_port)
        py = [sys.executable, "-m", "kubeedge_tw"]
        run(py + ["certs", "init", "--config", cloud_cfg], "certs init")
        certs_out = os.path.join(base, "issued")
        run(py + ["certs", "issue-edge", "--config", cloud_cfg, "--node", node, "--out",
                  certs_out], "certs issue-edge")
        os.makedirs(os.path.join(edge_dir, "ca"))
        os.makedirs(os.path.join(edge_dir, "certs"))
        shutil.copy(os.path.join(cloud_dir, "ca", "rootCA.crt"),
                    os.path.join(edge_dir, "ca", "rootCA.crt"))
        shutil.copy(os.path.join(certs_out, node + ".crt"),
                    os.path.join(edge_dir, "certs", "edge.crt"))
        shutil.copy(os.path.join(certs_out, node + ".key"),
                    os.path.join(edge_dir, "certs", "edge.key"))
        cloud_log_path = os.path.join(base, "cloud.log")
        cloud_log = open(cloud_log_path, "wb")
        cloud = subprocess.Popen(py + ["cloud", "--config", cloud_cfg], stdout=cloud_log,
                                 stderr=cloud_log, cwd=TOP)
        processes.append(cloud)
        wait_for_line(cloud_log_path, "kubeedge-cloud started", cloud, 60)
        say("cloud runs (pid {}), CloudHub on 127.0.0.1:{}".format(cloud.pid, ports["ws"]))

        edge_log = os.path.join(base, "edge.log")
        started = time.monotonic()
        child = Child([sys.executable, os.path.abspath(__file__), "--edge-child",
                       "--config", edge_cfg, "--log", edge_log], edge_log)
        hello = child.read(60)
        if not hello.get("ready"):
            raise BenchError("the edge did not start: {}".format(hello))
        say("edge runs (pid {}), modules: {}".format(child.pid, ", ".join(hello["modules"])))
        child.call("connected", timeout=30)
        say("edge connected to the cloud after {:.1f} s".format(time.monotonic() - started))
        process = psutil.Process(child.pid)
        wait = started + args.idle_seconds - args.window - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        rss, cpu = measure(process, args.window)
        figures.add("edge_rss_idle", rss / 2 ** 20, "MiB",
                    "{} s after start, 0 pods; target <= {} MB; KubeEdge v1.15.4 edgecore "
                    "{} MiB".format(args.idle_seconds, TARGETS["idle_rss_mb"],
                                    KUBEEDGE_1_15_IDLE_MIB))
        figures.add("edge_cpu_idle", cpu, "% of a core",
                    "over {} s, 0 pods; target <= {}".format(args.window,
                                                             TARGETS["idle_cpu_percent"]))

        latencies = []
        names = ["bench-{}".format(i) for i in range(args.pods)]
        for name in names:
            latencies.append(child.call("deploy", timeout=60, name=name)["ms"])
        deployed = time.monotonic()
        figures.add("insert_to_running_p50", percentile(latencies, 0.5), "ms",
                    "pod update at the edge -> container running, image present; target "
                    "<= {} ms".format(TARGETS["insert_to_running_ms"]))
        figures.add("insert_to_running_p90", percentile(latencies, 0.9), "ms")
        figures.add("insert_to_running_max", max(latencies), "ms")
        figures.add("insert_to_running_first", latencies[0], "ms", "first pod")
        running = client.api.containers(filters={"label": "io.kubeedge-tw.node=" + node,
                                                 "status": "running"})
        figures.add("containers_running", len(running), "", "docker ps for the node")
        wait = deployed + args.idle_seconds - args.window - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        rss, cpu = measure(process, args.window)
        figures.add("edge_rss_{}_pods".format(args.pods), rss / 2 ** 20, "MiB",
                    "{} s after the last deploy; target <= {} MB; KubeEdge v1.15.4 {} MiB"
                    .format(args.idle_seconds, TARGETS["pods_rss_mb"],
                            KUBEEDGE_1_15_10_PODS_MIB))
        figures.add("edge_cpu_{}_pods".format(args.pods), cpu, "% of a core",
                    "over {} s".format(args.window))
        left = child.call("delete", timeout=60, names=names)["left"]
        say("pods deleted through the bus ({} left in edged)".format(left))
    finally:
        if child is not None:
            child.stop()
        for proc in reversed(processes):
            stop_process(proc)
        removed = remove_node_containers(client, node)
        if removed:
            say("removed {} leftover containers".format(removed))
        if imported:
            client.images.remove(imported)
        client.close()
        shutil.rmtree(base, ignore_errors=True)
    print(json.dumps({"bench": "edge_footprint", "figures": figures.values}), flush=True)
    return 0


def main():
    """Parse the options; run the orchestrator, or the edge child with --edge-child."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pods", type=int, default=10, help="pods to run (default 10)")
    parser.add_argument("--idle-seconds", type=float, default=30.0,
                        help="settling time before each measurement (default 30)")
    parser.add_argument("--window", type=float, default=20.0,
                        help="CPU measurement window, ending at the settling time")
    parser.add_argument("--edge-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--log", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.edge_child:
        return edge_child(args.config, args.log)
    if args.window > args.idle_seconds:
        parser.error("--window must not exceed --idle-seconds")
    try:
        return orchestrate(args)
    except BenchError as e:
        print("edge_footprint: cannot run: {}".format(e), file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
