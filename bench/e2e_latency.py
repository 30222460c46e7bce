"""End-to-end pod latency: create at the API -> delivered at the edge -> Running at the API
(issue 7, "Benchmark").

Run from the repository root inside the virtualenv::

    .venv/bin/python bench/e2e_latency.py [--nodes N] [--rate R] [--quick] [--docker]

**Simulated edges (the default).** One **cloud process** (``bench/_e2e_cloud.py``): the
whole cloud side as ``twistd kubeedge-cloud`` builds it — ``create_cloud_service`` from a
generated cloudcore.yaml: embedded API server, CloudHub, EdgeController, SyncController,
the embedded control plane — on free 127.0.0.1 ports, ``allowAnyNodeCert: true`` so the
swarm can share one client certificate, ``kubeAPIConfig`` qps/burst at cloudcore's
defaults unless ``--kube-qps``/``--kube-burst`` say otherwise. ``--swarms`` **swarm
processes** (``bench/_e2e_swarm.py``, built on ``bench/_hub_swarm.py``) hold N simulated
v1.15 edges that register their node, ACK every cloud message and, the moment a pod
arrives, report it Running. This **orchestrator** waits until every node is registered
and the cloud is idle, watches pods, then creates one pod per node (``spec.nodeName``
set) at ``--rate`` pods/s through the API (``KubeClient`` over the cloud's kubeconfig,
without a client-side rate limit) and prints, per pod, create -> delivered at the edge
(the edge's receive time; all clocks are this machine's CLOCK_MONOTONIC) and create ->
Running at the API (the watch event whose ``status.phase`` is Running), plus counts (none
may be lost), the cloud's RSS and CPU and the peak depths of the queues a pod passes.

**Real edge, real Docker** (``--docker``, when ``kubeedge_tw.edge.edged`` exists and a
Docker engine answers). The same cloud process (own node certificates, no
``allowAnyNodeCert``), one edge process — ``python -m kubeedge_tw edge`` joined with a
token (``gettoken`` + ``join``), edged on, eventBus and deviceTwin off — and
``--docker-pods`` (20) pods created at once with a local image (a busybox-static rootfs
imported with ``docker import`` as ``kubeedge-tw-bench/busybox:latest``,
``imagePullPolicy: Never``, ``sleep 3600``, host network). Prints create -> Running at
the API, create -> container started (Docker's ``State.StartedAt``) and container
started -> Running at the API (the status path back to the cloud). The pods and
their containers are removed afterwards, and the image too if this run imported it.

bench/README.md rules: figures are printed next to the issue's targets, never judged;
loopback only; every wait is bounded (``--deadline``, 600 s, for the whole run); every
process started is stopped by its PID on exit, error or Ctrl-C. Exit status 0 means the
benchmark ran; 1 that it could not run.
"""

import argparse
import datetime
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid

# Measure the working tree, not whatever copy of the package is installed.
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))
from _common import (  # noqa: E402
    BenchError, Figures, percentile, say, say_tail, stop_process)

import psutil  # noqa: E402
import twisted  # noqa: E402
import yaml  # noqa: E402
from twisted.internet import defer, task, threads  # noqa: E402

from hub_bench import (  # noqa: E402
    CLIENT_CERT_NAME, FD_MARGIN, Child, local_port_count, machine_cpu, raise_nofile)
from kubeedge_tw.common import tls  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
NAMESPACE = "default"
POD_LABEL = "kubeedge-tw-bench"
BENCH_IMAGE_REPO = "kubeedge-tw-bench/busybox"
BENCH_IMAGE = BENCH_IMAGE_REPO + ":latest"
#: Applets linked into the bench image (busybox dispatches on argv[0]).
BUSYBOX_APPLETS = ("sh", "sleep", "true", "echo", "cat", "ls")
#: Seconds a child process outlives the deadline before it stops by itself.
CHILD_GRACE = 120
#: Most pod creations in flight at once (what the orchestrator allows itself).
MAX_CREATES_IN_FLIGHT = 256

#: The issue's targets and what real KubeEdge v1.15.4 measured on this kind of machine.
SIM_TARGETS = {
    "delivered": "target p99 <= 1000 ms; KubeEdge v1.15.4 p99 5600 ms at 1,000 nodes",
    "running": "target p99 <= 2000 ms; KubeEdge v1.15.4 p99 7900 ms at 1,000 nodes",
}
DOCKER_TARGETS = {
    "p50": "target <= 1000 ms; KubeEdge v1.15.4 p50 5900 ms",
    "p99": "target <= 2000 ms; KubeEdge v1.15.4 max 6800 ms",
    "max": "KubeEdge v1.15.4 max 6800 ms",
}


def free_port():
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sleep(reactor, seconds):
    """A Deferred firing after ``seconds`` on the reactor."""
    return task.deferLater(reactor, seconds, lambda: None)


def add_percentiles(fig, name, seconds, unit_note=None):
    """p50/p90/p99/max of ``seconds`` as ``<name>_<p>`` figures in ms."""
    ordered = sorted(seconds)
    for label, fraction in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0)):
        note = (unit_note or {}).get(label, "")
        fig.add("{}_{}".format(name, label), percentile(ordered, fraction) * 1000, "ms", note)


def parse_args(argv):
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=1000,
                        help="simulated edges, one pod each (default 1000)")
    parser.add_argument("--rate", type=float, default=100.0,
                        help="pod creations per second (default 100)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 100 nodes")
    parser.add_argument("--swarms", type=int, default=2,
                        help="swarm processes holding the edges (default 2)")
    parser.add_argument("--inflight", type=int, default=200,
                        help="TLS handshakes in flight at once over all swarms (default 200)")
    parser.add_argument("--kube-qps", type=int, default=None,
                        help="cloudcore kubeAPIConfig.qps (default: cloudcore's default)")
    parser.add_argument("--kube-burst", type=int, default=None,
                        help="cloudcore kubeAPIConfig.burst (default: cloudcore's default)")
    parser.add_argument("--settle", type=float, default=120.0,
                        help="seconds to wait after the last create for the stragglers "
                             "(default 120)")
    parser.add_argument("--profile", action="store_true",
                        help="run cProfile in the cloud during the pod phase and print its "
                             "top functions (slows the cloud: figures are not comparable)")
    parser.add_argument("--docker", action="store_true",
                        help="one real edge (edged + Docker) instead of simulated edges")
    parser.add_argument("--docker-pods", type=int, default=20,
                        help="pods created at once in --docker mode (default 20)")
    parser.add_argument("--keep", metavar="DIR",
                        help="copy the logs and configs of the run (cloud.log, edge.log, "
                             "cloudcore.yaml ...) into DIR")
    parser.add_argument("--deadline", type=float, default=600.0,
                        help="wall-clock bound of the whole run in seconds (default 600)")
    args = parser.parse_args(argv)
    if args.quick:
        args.nodes = 100
    if (args.nodes < 1 or args.rate <= 0 or args.swarms < 1 or args.inflight < 1
            or args.settle <= 0 or args.docker_pods < 1 or args.deadline < 60
            or (args.kube_qps is not None and args.kube_qps < 1)
            or (args.kube_burst is not None and args.kube_burst < 1)):
        parser.error("--nodes, --swarms, --inflight, --docker-pods must be >= 1, --rate and "
                     "--settle > 0, --kube-qps >= 1, --kube-burst >= 1, "
                     "--deadline >= 60")
    args.swarms = min(args.swarms, args.nodes)
    return args


def cloud_config_text(tmp, pki, ports, node_limit, allow_any_node_cert, qps, burst):
    """The generated cloudcore.yaml: every module on loopback, free ports, the bench's PKI."""
    kube = {}
    if qps is not None:
        kube["qps"] = qps
    if burst is not None:
        kube["burst"] = burst
    if qps is not None and burst is None:
        kube["burst"] = max(qps, 200)
    data = {
        "apiVersion": "cloudcore.config.kubeedge.io/v1alpha1", "kind": "CloudCore",
        "stateDir": os.path.join(tmp, "cloud"),
        "modules": {
            "apiServer": {"enable": True, "address": "127.0.0.1", "port": ports["api"]},
            "cloudHub": {
                "nodeLimit": node_limit, "allowAnyNodeCert": allow_any_node_cert,
                "advertiseAddress": ["127.0.0.1"], "dnsNames": ["localhost"],
                "tlsCAFile": pki["ca"], "tlsCAKeyFile": pki["ca_key"],
                "tlsCertFile": pki["server_cert"], "tlsPrivateKeyFile": pki["server_key"],
                "websocket": {"address": "127.0.0.1", "port": ports["ws"]},
                "https": {"address": "127.0.0.1", "port": ports["https"]}},
            "edgeController": {"enable": True},
            "syncController": {"enable": True},
            "deviceController": {"enable": False},
        },
    }
    if kube:
        data["kubeAPIConfig"] = kube
    return yaml.safe_dump(data, sort_keys=False)


class PodWatch:
    """Watches the bench's pods; records when each is first seen Running.

    A watch that ends early is resumed from the last resourceVersion seen."""

    def __init__(self, reactor, client, clock=time.monotonic):
        self.reactor = reactor
        self.client = client
        self.clock = clock
        self.running_at = {}     # name -> monotonic time of the first Running event
        self.events = 0
        self.restarts = 0
        self.last_rv = None
        self.watch = None
        self.stopped = False

    def _event(self, etype, obj):
        now = self.clock()
        self.events += 1
        meta = obj.get("metadata") or {}
        self.last_rv = meta.get("resourceVersion") or self.last_rv
        name = meta.get("name")
        if etype in ("ADDED", "MODIFIED") and name not in self.running_at \
                and (obj.get("status") or {}).get("phase") == "Running":
            self.running_at[name] = now

    async def start(self):
        listing = await self.client.list("pods", namespace=NAMESPACE,
                                         label_selector="app=" + POD_LABEL)
        self.last_rv = listing["metadata"]["resourceVersion"]
        await self._open()

    async def _open(self):
        self.watch = await self.client.watch("pods", self._event, namespace=NAMESPACE,
                                             label_selector="app=" + POD_LABEL,
                                             resource_version=self.last_rv)
        self.watch.done.addBoth(self._ended)

    def _ended(self, result):
        if self.stopped:
            return None
        self.restarts += 1
        say("pod watch ended ({}); resuming from resourceVersion {}".format(
            getattr(result, "getErrorMessage", lambda: "end of stream")(), self.last_rv))
        d = defer.Deferred.fromCoroutine(self._open())
        d.addErrback(lambda f: say("pod watch could not resume: {}".format(
            f.getErrorMessage())))
        return None

    def stop(self):
        self.stopped = True
        if self.watch is not None:
            self.watch.stop()


def make_pod(index, node, image):
    """Pod ``e2e-<index>`` bound to ``node``: one container, ``sleep 3600``, host network."""
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "e2e-{:05d}".format(index), "namespace": NAMESPACE,
                         "labels": {"app": POD_LABEL}},
            "spec": {"nodeName": node, "hostNetwork": True,
                     "terminationGracePeriodSeconds": 0,
                     "containers": [{"name": "c", "image": image,
                                     "imagePullPolicy": "Never",
                                     "command": ["sleep", "3600"]}]}}


class Bench:
    """One run: the children, the deadline, the API client and the figures."""

    def __init__(self, reactor, args):
        self.reactor = reactor
        self.args = args
        self.figures = Figures()
        self.start = time.monotonic()
        self.deadline = self.start + args.deadline
        self.cloud = None
        self.swarms = []
        self.edge = None          # (Popen, log file) in --docker mode
        self.client = None
        self.watch = None
        self.tmp = None
        self.docker_leftovers = None

    def left(self):
        """Seconds before the global deadline, less 45 s kept for teardown."""
        return self.deadline - time.monotonic() - 45

    # -- processes --------------------------------------------------------------------------

    def start_cloud(self, node_limit, allow_any_node_cert):
        """Write cloudcore.yaml, start the cloud process, wait until it serves."""
        args, tmp = self.args, self.tmp
        self.pki = tls.write_test_pki(os.path.join(tmp, "pki"),
                                      node_names=(CLIENT_CERT_NAME,),
                                      server_ips=("127.0.0.1",), server_dns=("localhost",))
        self.ports = {"api": free_port(), "ws": free_port(), "https": free_port()}
        self.config_path = os.path.join(tmp, "cloudcore.yaml")
        with open(self.config_path, "w") as f:
            f.write(cloud_config_text(tmp, self.pki, self.ports, node_limit,
                                      allow_any_node_cert, args.kube_qps, args.kube_burst))
        self.cloud = Child("cloud", [
            sys.executable, os.path.join(HERE, "_e2e_cloud.py"), "--config", self.config_path,
            "--log-file", os.path.join(tmp, "cloud.log"),
            "--max-seconds", str(int(args.deadline + CHILD_GRACE))],
            os.path.join(tmp, "cloud.stderr"))
        ready = self.cloud.ready(120)
        status = self.cloud.call("status")
        limiter = status["limiter"] or {}
        say("cloud process pid {}: embedded API server https://127.0.0.1:{}, CloudHub "
            "wss://127.0.0.1:{}, https :{}, nodeLimit {}, allowAnyNodeCert {}, "
            "kubeAPIConfig qps {} burst {}, RLIMIT_NOFILE {}/{}, {}".format(
                ready["pid"], self.ports["api"], ready["cloudhub_port"], self.ports["https"],
                node_limit, str(allow_any_node_cert).lower(), limiter.get("qps", "none"),
                limiter.get("burst", "none"), ready["nofile_soft"], ready["nofile_hard"],
                ready["reactor"]))
        if args.kube_qps is None and not args.docker:
            say("kubeAPIConfig is at kubeedge-tw's defaults; KubeEdge v1.15 cloudcore sets "
                "qps 5 x nodeLimit and burst 10 x nodeLimit (5000/10000 at nodeLimit 1000): "
                "compare with --kube-qps 5000 --kube-burst 10000")
        return ready

    def make_client(self, kubeconfig):
        """The orchestrator's own API client: no client-side rate limit."""
        from kubeedge_tw.cloud.k8s import load_kubeconfig, make_kube_client
        self.client = make_kube_client(self.reactor, load_kubeconfig(kubeconfig), qps=0)
        return self.client

    def start_swarms(self, nodes):
        args = self.args
        share, first = [], 0
        for k in range(args.swarms):
            count = nodes // args.swarms + (1 if k < nodes % args.swarms else 0)
            share.append((first, count))
            first += count
        for k, (first, count) in enumerate(share):
            self.swarms.append(Child("swarm{}".format(k), [
                sys.executable, os.path.join(HERE, "_e2e_swarm.py"), "--ca", self.pki["ca"],
                "--cert", self.pki[CLIENT_CERT_NAME + "_cert"],
                "--key", self.pki[CLIENT_CERT_NAME + "_key"],
                "--port", str(self.ports["ws"]), "--first", str(first),
                "--count", str(count), "--keepalive", "15",
                "--max-seconds", str(int(args.deadline + CHILD_GRACE))],
                os.path.join(self.tmp, "swarm{}.stderr".format(k))))
        for k, swarm in enumerate(self.swarms):
            ready = swarm.ready(60)
            say("swarm{} pid {}: nodes bench-{}..bench-{} ({})".format(
                k, ready["pid"], share[k][0], share[k][0] + share[k][1] - 1, share[k][1]))

    def all_swarms(self, cmd, timeout=30, **fields):
        """Send ``cmd`` to every swarm first, then collect the replies."""
        ids = [(s, s.send(cmd, **fields)) for s in self.swarms]
        return [s.wait(i, timeout) for s, i in ids]

    def swarm_cpu(self):
        return sum(s["cpu_user"] + s["cpu_system"] for s in self.all_swarms("status"))

    async def stop_everything(self):
        """The API client and watch, then every child by its PID: edge, swarms, cloud."""
        if self.watch is not None:
            self.watch.stop()
        if self.client is not None:
            try:
                await self.client.close()
            except Exception as e:  # keep stopping the rest; say what went wrong
                say("closing the API client: {}".format(e))
        self.stop_children()

    def stop_children(self):
        if self.edge is not None:
            self.stop_edge()
        for child in self.swarms + ([self.cloud] if self.cloud else []):
            try:
                child.stop()
            except Exception as e:  # keep stopping the others; say what went wrong
                say("stopping {} (pid {}): {}".format(child.name, child.pid, e))
        self.swarms, self.cloud = [], None

    # -- simulated edges ---------------------------------------------------------------------

    def plan(self):
        """Check limits; maybe reduce N."""
        soft, hard = raise_nofile()
        nodes = self.args.nodes
        if hard < nodes + FD_MARGIN:
            nodes = max(1, hard - FD_MARGIN)
            say("REDUCED N to {}: hard RLIMIT_NOFILE {} is too low".format(nodes, hard))
        ports = local_port_count()
        if ports is not None and nodes > ports - 1000:
            nodes = max(1, ports - 1000)
            say("REDUCED N to {}: only {} ephemeral ports".format(nodes, ports))
        return nodes

    async def connect_and_register(self, nodes):
        """Open every edge's connection; each registers its node on open. Returns the
        names of the registered nodes."""
        fig, args = self.figures, self.args
        per_swarm = max(1, -(-args.inflight // len(self.swarms)))
        budget = min(300.0, self.left() - 60)
        t0 = time.monotonic()
        self.all_swarms("ramp", inflight=per_swarm)
        last_report, last_progress, last_done = t0, t0, -1
        while True:
            await sleep(self.reactor, 0.5)
            states = self.all_swarms("status")
            opened = sum(s["opened"] for s in states)
            failed = sum(s["failed"] for s in states)
            registered = sum(s["registered"] for s in states)
            reg_errors = sum(sum(s["register_errors"].values()) for s in states)
            done = opened + failed + registered + reg_errors
            now = time.monotonic()
            if done != last_done:
                last_progress, last_done = now, done
            if opened + failed >= nodes and registered + reg_errors >= opened:
                break
            if now - t0 > budget or now - last_progress > 60:
                say("connect/register stopped after {:.0f} s: {} open, {} failed, {} "
                    "registered".format(now - t0, opened, failed, registered))
                break
            if now - last_report >= 5:
                say("{:.0f} s: {} connected, {} failed, {} registered".format(
                    now - t0, opened, failed, registered))
                last_report = now
        elapsed = time.monotonic() - t0
        for s in states:
            if s["fail_reasons"]:
                say("connect failures: {}".format(s["fail_reasons"]))
            if s["register_errors"]:
                say("registration errors: {}".format(s["register_errors"]))
        reports = self.all_swarms("report", timeout=60)
        register_seconds = sorted(x for r in reports for x in r["register_seconds"])
        fig.add("edges_connected", opened, "conn", "of {}".format(nodes))
        fig.add("nodes_registered", registered, "nodes",
                "insert default/node/<node> answered {{Object, Err: null}}; {} errors".format(
                    reg_errors))
        fig.add("connect_and_register_time", elapsed, "s",
                "all edges connected and registered, {} handshakes in flight".format(
                    per_swarm * len(self.swarms)))
        if register_seconds:
            fig.add("register_latency_p50", percentile(register_seconds, 0.5) * 1000, "ms")
            fig.add("register_latency_p99", percentile(register_seconds, 0.99) * 1000, "ms")
        # Which nodes registered: the API is the authority.
        listing = await self.client.list("nodes", label_selector="node-role.kubernetes.io/edge")
        names = sorted(n["metadata"]["name"] for n in listing.get("items", []))
        fig.add("edge_nodes_in_api", len(names), "nodes")
        return names

    async def wait_cloud_idle(self, seconds, after="registration"):
        """Until the cloud's queues (Kubernetes client, controllers, CloudHub) are empty;
        how long that took, or None."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            depths = self.cloud.call("status")["depths"]
            if not any(v for k, v in depths.items() if k != "cloudhub_awaiting_ack"):
                took = time.monotonic() - t0
                say("cloud idle {:.1f} s after {}".format(took, after))
                return took
            await sleep(self.reactor, 0.2)
        say("cloud still busy {:.0f} s after {}: {}".format(seconds, after, depths))
        return None

    async def create_pods(self, nodes, rate, image):
        """Create one pod per node at ``rate`` per second; returns (create times, POST
        latencies, failures, wall times)."""
        created_at, wall_at, post_seconds, failures = {}, {}, [], {}
        semaphore = defer.DeferredSemaphore(MAX_CREATES_IN_FLIGHT)
        behind = 0.0
        pending = []
        t0 = time.monotonic() + 0.05
        for index, node in enumerate(nodes):
            target = t0 + index / rate
            delay = target - time.monotonic()
            if delay > 0:
                await sleep(self.reactor, delay)
            else:
                behind = max(behind, -delay)
            await semaphore.acquire()
            pod = make_pod(index, node, image)
            name = pod["metadata"]["name"]
            started = time.monotonic()
            created_at[name] = started
            wall_at[name] = time.time()
            d = self.client.create("pods", pod, namespace=NAMESPACE)

            def done(result, name=name, started=started):
                post_seconds.append(time.monotonic() - started)
                return result

            def failed(failure, name=name):
                failures[name] = failure.getErrorMessage()[:200]
                created_at.pop(name, None)
                return None

            d.addCallbacks(done, failed)
            d.addBoth(lambda result: semaphore.release() or result)
            pending.append(d)
        await defer.DeferredList(pending)
        return created_at, wall_at, post_seconds, failures, behind

    async def wait_running(self, names, seconds):
        """Until every pod in ``names`` was seen Running, or ``seconds`` passed."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            if all(n in self.watch.running_at for n in names):
                return True
            await sleep(self.reactor, 0.1)
        return False

    async def run_simulated(self):
        args, fig = self.args, self.figures
        nodes = self.plan()
        print("settings: simulated edges {}{}, swarm processes {}, {} pods/s, one pod per "
              "node, deadline {:.0f} s".format(
                  nodes, " (asked {})".format(args.nodes) if nodes != args.nodes else "",
                  args.swarms, args.rate, args.deadline), flush=True)
        say("processes: 1 cloud + {} swarm + this orchestrator on {} cores; the edges' "
            "own work competes with the cloud for CPU".format(args.swarms, os.cpu_count()))
        ready = self.start_cloud(nodes + 100, True)
        self.make_client(ready["kubeconfig"])
        self.start_swarms(nodes)
        registered = await self.connect_and_register(nodes)
        if not registered:
            raise BenchError("no node registered")
        await self.wait_cloud_idle(min(120.0, max(10.0, self.left() - 120)))
        self.watch = PodWatch(self.reactor, self.client)
        await self.watch.start()
        c0 = self.cloud.call("status")
        self.cloud.call("track_start")
        swarm_cpu0 = self.swarm_cpu()
        busy0 = machine_cpu()[0]
        own0 = psutil.Process().cpu_times()
        if args.profile:
            self.cloud.call("profile_start")
        say("creating {} pods at {} pods/s (POSTs not waited for; at most {} in flight)"
            .format(len(registered), args.rate, MAX_CREATES_IN_FLIGHT))
        t_start = time.monotonic()
        created_at, _, post_seconds, failures, behind = await self.create_pods(
            registered, args.rate, "busybox")
        t_created = time.monotonic()
        settle = max(5.0, min(args.settle, self.left() - 30))
        all_running = await self.wait_running(list(created_at), settle)
        t_end = time.monotonic()
        # The measurement is over: from here on, talking to the children is harmless.
        c1 = self.cloud.call("status")
        swarm_cpu = self.swarm_cpu() - swarm_cpu0
        busy = machine_cpu()[0] - busy0
        own1 = psutil.Process().cpu_times()
        own = (own1.user + own1.system) - (own0.user + own0.system)
        if args.profile:
            text = self.cloud.call("profile_stop", top=25, timeout=120)["text"]
        reports = self.all_swarms("report", timeout=60)
        states = self.all_swarms("status")
        # Let the cloud finish what it still owes (ObjectSync records) so that it stops
        # cleanly, and say how long that took.
        idle_after = await self.wait_cloud_idle(min(120.0, max(5.0, self.left() - 30)),
                                                "the last Running")
        c2 = self.cloud.call("status")
        delivered_at = {}
        for report in reports:
            for key, (t, _) in report["delivered"].items():
                delivered_at[key.split("/", 1)[1]] = t
        names = sorted(created_at)
        delivered = [delivered_at[n] - created_at[n] for n in names if n in delivered_at]
        running = [self.watch.running_at[n] - created_at[n] for n in names
                   if n in self.watch.running_at]
        status_path = [self.watch.running_at[n] - delivered_at[n] for n in names
                       if n in self.watch.running_at and n in delivered_at]
        window = t_created - t_start
        fig.add("pods_created", len(created_at), "pods", "of {} asked; {} POSTs failed".format(
            len(registered), len(failures)))
        for name, error in list(failures.items())[:3]:
            say("create {} failed: {}".format(name, error))
        fig.add("create_rate", len(created_at) / max(1e-9, window), "pods/s",
                "asked {}; at most {:.0f} ms behind schedule".format(args.rate, behind * 1000))
        add_percentiles(fig, "api_create_latency", post_seconds)
        fig.add("pods_delivered", len(delivered), "pods",
                "first copies received by the edges; lost {}".format(
                    len(names) - len(delivered)))
        fig.add("pods_delivered_twice", sum(s["pod_copies"] for s in states), "copies",
                "ACK-timeout resends the edges saw")
        add_percentiles(fig, "create_to_delivered", delivered,
                        {"p99": SIM_TARGETS["delivered"]})
        fig.add("pods_running", len(running), "pods",
                "watch saw status.phase Running; lost {}{}".format(
                    len(names) - len(running),
                    "" if all_running else " (waited {:.0f} s after the last create)".format(
                        settle)))
        add_percentiles(fig, "create_to_running", running, {"p99": SIM_TARGETS["running"]})
        add_percentiles(fig, "delivered_to_running", status_path)
        say("delivered_to_running: the edge reports Running the moment the pod arrives, so "
            "this is the status path: CloudHub -> EdgeController -> API -> watch")
        fig.add("last_running_after_last_create",
                (max(self.watch.running_at[n] for n in names if n in self.watch.running_at)
                 - t_created) if running else float("nan"), "s")
        wall = c1["now"] - c0["now"]
        cpu = (c1["cpu_user"] + c1["cpu_system"]) - (c0["cpu_user"] + c0["cpu_system"])
        fig.add("cloud_cpu_pod_phase", 100 * cpu / max(1e-9, wall), "% of one core",
                "over {:.1f} s from the first create to the last Running{}".format(
                    wall, " (cProfile on)" if args.profile else ""))
        fig.add("swarm_cpu_pod_phase", 100 * swarm_cpu / max(1e-9, wall), "% of one core",
                "all swarm processes")
        fig.add("orchestrator_cpu_pod_phase", 100 * own / max(1e-9, wall), "% of one core",
                "this process: POSTs and the pod watch")
        fig.add("other_cpu_pod_phase", 100 * max(0.0, busy - cpu - swarm_cpu - own)
                / max(1e-9, wall), "% of one core",
                "everything else on the machine (other users, the kernel's softirqs)")
        fig.add("objectsync_records_written",
                c2["modules"].get("synccontroller", {}).get("records_written", 0), "records",
                "SyncController's ACK records for the {} pods; written {} at the last "
                "Running, all of them {}".format(
                    len(delivered),
                    c1["modules"].get("synccontroller", {}).get("records_written", 0),
                    "{:.1f} s later".format(idle_after) if idle_after is not None
                    else "not within the wait"))
        fig.add("cloud_rss_before_pods", c0["rss"] / 2**20, "MiB",
                "{} nodes connected and registered".format(c0["connected"]))
        fig.add("cloud_rss_after_pods", c1["rss"] / 2**20, "MiB")
        fig.add("cloud_gc_full_max_pause", c1["gc"]["2"][2] * 1000, "ms")
        peaks = c1["peaks"]
        say("peak queue depths during the pod phase (sampled every 0.1 s): {}".format(
            ", ".join("{} {}".format(k, v) for k, v in sorted(peaks.items()))))
        fig.add("peak_kube_client_waiting", peaks.get("kube_limiter_waiting", 0), "requests",
                "cloud API requests queued behind kubeAPIConfig qps/burst; at most "
                "EdgeController's 16 handlers + SyncController's 8 writers can wait there")
        say("cloud module counters: {}".format(json.dumps(c1["modules"], sort_keys=True)))
        say("swarm ops seen: {}; errors: {}".format(
            [s["ops_seen"] for s in states], [s["errors"] for s in states if s["errors"]]))
        say("pod watch: {} events, {} restarts".format(self.watch.events,
                                                      self.watch.restarts))
        self.summary = {"mode": "simulated", "nodes": nodes, "rate": args.rate}
        if args.profile:
            say("cloud profile of the pod phase (cProfile on; not a timed figure):")
            for line in text.splitlines():
                line = line.replace(TOP + os.sep, "").replace(
                    os.path.dirname(twisted.__path__[0]) + os.sep, "")
                if line.strip():
                    say("  " + line)
        return t_end

    # -- real edge, real Docker ---------------------------------------------------------------

    @staticmethod
    def docker_available():
        """(True, client) when edged exists and a Docker engine answers, else (False, why)."""
        try:
            import kubeedge_tw.edge.edged  # noqa: F401
        except ImportError as e:
            return False, "kubeedge_tw.edge.edged is missing ({})".format(e)
        try:
            import docker
            client = docker.from_env(timeout=30)
            client.ping()
        except Exception as e:  # no SDK, no socket, no permission: say which
            return False, "no Docker engine answers ({}: {})".format(type(e).__name__, e)
        return True, client

    def ensure_image(self, docker_client):
        """The bench image; imported from /bin/busybox (busybox-static) when missing.
        Returns the image id if this run imported it (to remove afterwards), else None."""
        import shutil
        import tarfile

        import docker
        try:
            docker_client.images.get(BENCH_IMAGE)
            say("image {} already there; left in place".format(BENCH_IMAGE))
            return None
        except docker.errors.ImageNotFound:
            pass
        busybox = shutil.which("busybox") or "/bin/busybox"
        if not os.path.exists(busybox):
            raise BenchError("no busybox binary to build {} from (apt install busybox-static)"
                             .format(BENCH_IMAGE))
        root = os.path.join(self.tmp, "rootfs")
        for directory in ("bin", "tmp", "etc", "proc", "sys", "dev"):
            os.makedirs(os.path.join(root, directory))
        os.chmod(os.path.join(root, "tmp"), 0o1777)
        shutil.copy2(busybox, os.path.join(root, "bin", "busybox"))
        os.chmod(os.path.join(root, "bin", "busybox"), 0o755)
        for applet in BUSYBOX_APPLETS:
            os.symlink("busybox", os.path.join(root, "bin", applet))
        tarpath = os.path.join(self.tmp, "rootfs.tar")
        with tarfile.open(tarpath, "w") as tar:
            tar.add(root, arcname=".")
        # What `docker import rootfs.tar kubeedge-tw-bench/busybox:latest` does.
        docker_client.api.import_image_from_file(tarpath, repository=BENCH_IMAGE_REPO,
                                                 tag="latest", changes=['CMD ["/bin/sh"]'])
        image_id = docker_client.images.get(BENCH_IMAGE).id
        say("imported {} ({}) from {}".format(BENCH_IMAGE, image_id[:19], busybox))
        return image_id

    def run_cli(self, argv, timeout=60):
        """Run ``python -m kubeedge_tw ...`` to completion; its stdout."""
        proc = subprocess.run([sys.executable, "-m", "kubeedge_tw"] + argv, cwd=TOP,
                              env=dict(os.environ, PYTHONPATH=TOP), capture_output=True,
                              text=True, timeout=timeout)
        if proc.returncode != 0:
            raise BenchError("kubeedge_tw {} failed (exit {}): {}".format(
                argv[0], proc.returncode, (proc.stderr or proc.stdout).strip()[-500:]))
        return proc.stdout

    def start_edge(self, node):
        """gettoken, join, then ``python -m kubeedge_tw edge`` with edged on and eventBus
        and deviceTwin off."""
        token = self.run_cli(["gettoken", "--config", self.config_path]).strip()
        state = os.path.join(self.tmp, "edge")
        self.run_cli(["join", "--cloud", "127.0.0.1:{}".format(self.ports["ws"]),
                      "--https-port", str(self.ports["https"]), "--token", token,
                      "--node", node, "--state-dir", state])
        path = os.path.join(state, "edgecore.yaml")
        with open(path) as f:
            data = yaml.safe_load(f)
        modules = data.setdefault("modules", {})
        modules.setdefault("edged", {}).update(enable=True, readOnlyPort=free_port())
        modules["eventBus"] = {"enable": False}
        modules["deviceTwin"] = {"enable": False}
        with open(path, "w") as f:
            yaml.safe_dump(data, f, sort_keys=False)
        log = open(os.path.join(self.tmp, "edge.log"), "wb")
        proc = subprocess.Popen([sys.executable, "-m", "kubeedge_tw", "edge", "--config",
                                 path], cwd=TOP, env=dict(os.environ, PYTHONPATH=TOP),
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                close_fds=True)
        self.edge = (proc, log)
        say("edge process pid {}: node {}, edged on (Docker), eventBus and deviceTwin off"
            .format(proc.pid, node))

    def stop_edge(self):
        """SIGTERM to the edge's PID, then SIGKILL if it does not stop."""
        proc, log = self.edge
        self.edge = None
        stop_process(proc, 30)
        log.close()

    async def wait_node_ready(self, node, seconds):
        t0 = time.monotonic()
        from kubeedge_tw.cloud.k8s import NotFound
        while time.monotonic() - t0 < seconds:
            if self.edge[0].poll() is not None:
                raise BenchError("the edge process exited (status {}); see {}".format(
                    self.edge[0].returncode, os.path.join(self.tmp, "edge.log")))
            try:
                obj = await self.client.get("nodes", node)
                conditions = (obj.get("status") or {}).get("conditions") or []
                if any(c.get("type") == "Ready" and c.get("status") == "True"
                       for c in conditions):
                    return time.monotonic() - t0
            except NotFound:
                pass
            await sleep(self.reactor, 0.2)
        raise BenchError("node {} not Ready within {:.0f} s".format(node, seconds))

    async def run_docker(self):
        """The --docker mode; None when edged or a Docker engine is missing here."""
        args, fig = self.args, self.figures
        ok, docker_client = await threads.deferToThread(self.docker_available)
        if not ok:
            say("--docker not run: {}".format(docker_client))
            return None
        from kubeedge_tw.edge.edged.runtime import LABEL_NODE
        node = "e2e-bench-" + uuid.uuid4().hex[:8]
        print("settings: one real edge (node {}), edged with Docker, {} pods created at "
              "once, image {} (imagePullPolicy Never), deadline {:.0f} s".format(
                  node, args.docker_pods, BENCH_IMAGE, args.deadline), flush=True)
        imported = await threads.deferToThread(self.ensure_image, docker_client)
        labels = ["{}={}".format(LABEL_NODE, node)]
        # What an interrupted run still has to remove (see interrupted_cleanup).
        self.docker_leftovers = (docker_client, labels, imported)
        try:
            ready = self.start_cloud(100, False)
            self.make_client(ready["kubeconfig"])
            self.start_edge(node)
            seconds = await self.wait_node_ready(node, 90)
            fig.add("edge_start_to_node_ready", seconds, "s",
                    "edge process started -> node Ready in the API")
            await self.wait_cloud_idle(30)
            self.watch = PodWatch(self.reactor, self.client)
            await self.watch.start()
            c0 = self.cloud.call("status")
            say("creating {} pods at once on {}".format(args.docker_pods, node))
            created_at, wall_at, calls = {}, {}, []
            for index in range(args.docker_pods):
                pod = make_pod(index, node, BENCH_IMAGE)
                name = pod["metadata"]["name"]
                created_at[name] = time.monotonic()
                wall_at[name] = time.time()
                calls.append(self.client.create("pods", pod, namespace=NAMESPACE))
            results = await defer.DeferredList(calls, consumeErrors=True)
            failed = [r.getErrorMessage() for ok_, r in results if not ok_]
            for error in failed[:3]:
                say("create failed: {}".format(error))
            names = [n for (ok_, _), n in zip(results, created_at) if ok_]
            all_running = await self.wait_running(names, max(10.0, min(120.0,
                                                                         self.left() - 60)))
            c1 = self.cloud.call("status")
            running = [self.watch.running_at[n] - created_at[n] for n in names
                       if n in self.watch.running_at]
            fig.add("docker_pods_created", len(names), "pods", "{} POSTs failed".format(
                len(failed)))
            fig.add("docker_pods_running", len(running), "pods",
                    "lost {}{}".format(len(names) - len(running),
                                       "" if all_running else " (gave up waiting)"))
            add_percentiles(fig, "docker_create_to_running", running, DOCKER_TARGETS)
            started = await threads.deferToThread(self._thd_started_at, docker_client,
                                                  labels)
            to_started = [started[n] - wall_at[n] for n in names if n in started]
            add_percentiles(fig, "docker_create_to_container_started", to_started)
            say("container started: Docker's State.StartedAt against the wall-clock time "
                "of the POST; {} containers".format(len(started)))
            # The watch's monotonic time of Running, on the wall clock of the POST.
            status_path = [wall_at[n] + (self.watch.running_at[n] - created_at[n])
                           - started[n] for n in names
                           if n in started and n in self.watch.running_at]
            add_percentiles(fig, "docker_container_started_to_running", status_path)
            say("container started -> Running at the API: edged seeing the container run, "
                "its status through MetaManager, EdgeHub, CloudHub and EdgeController into "
                "the API, and the watch event; the rest of create -> Running is the pod's "
                "way to the edge and Docker's create and start")
            wall = c1["now"] - c0["now"]
            cpu = (c1["cpu_user"] + c1["cpu_system"]) - (c0["cpu_user"] + c0["cpu_system"])
            fig.add("docker_cloud_cpu", 100 * cpu / max(1e-9, wall), "% of one core",
                    "over {:.1f} s".format(wall))
            fig.add("docker_cloud_rss", c1["rss"] / 2**20, "MiB")
            edge_rss = psutil.Process(self.edge[0].pid).memory_info().rss
            fig.add("docker_edge_rss", edge_rss / 2**20, "MiB")
            self.summary = {"mode": "docker", "pods": args.docker_pods, "node": node}
            await self.delete_pods(names, docker_client, labels)
        finally:
            if self.edge is not None:
                self.stop_edge()
            removed = await threads.deferToThread(self._thd_remove_containers,
                                                  docker_client, labels)
            say("removed {} leftover container(s) of node {}".format(removed, node))
            if imported:
                await threads.deferToThread(self._thd_remove_image, docker_client, imported)
                say("removed image {}".format(BENCH_IMAGE))
            await threads.deferToThread(docker_client.close)
            self.docker_leftovers = None
        return True

    def interrupted_cleanup(self):
        """After Ctrl-C or SIGTERM stopped the reactor: the children, then (blocking, the
        reactor is gone) the containers and image of a --docker run."""
        self.stop_children()
        leftovers, self.docker_leftovers = self.docker_leftovers, None
        if leftovers is not None:
            docker_client, labels, imported = leftovers
            say("removed {} container(s) of the interrupted run".format(
                self._thd_remove_containers(docker_client, labels)))
            if imported:
                self._thd_remove_image(docker_client, imported)
            docker_client.close()

    async def delete_pods(self, names, docker_client, labels):
        """Delete the pods (grace 0); wait (bounded) for them to leave the API and for
        their containers to go."""
        from kubeedge_tw.cloud.k8s import NotFound
        for name in names:
            try:
                await self.client.delete("pods", name, namespace=NAMESPACE,
                                         grace_period_seconds=0)
            except NotFound:
                pass
        t0 = time.monotonic()
        while time.monotonic() - t0 < 30:
            listing = await self.client.list("pods", namespace=NAMESPACE,
                                             label_selector="app=" + POD_LABEL)
            left = await threads.deferToThread(self._thd_count_running, docker_client,
                                               labels)
            if not listing.get("items") and not left:
                say("pods deleted and their containers stopped in {:.1f} s".format(
                    time.monotonic() - t0))
                return
            await sleep(self.reactor, 0.5)
        say("after 30 s: {} pods in the API, {} containers running; removing them by label"
            .format(len(listing.get("items", [])), left))

    @staticmethod
    def _thd_started_at(docker_client, labels):
        """Pod name -> container start time (epoch seconds) from Docker."""
        from kubeedge_tw.edge.edged.runtime import LABEL_POD_NAME
        result = {}
        for summary in docker_client.api.containers(all=True, filters={"label": labels}):
            info = docker_client.api.inspect_container(summary["Id"])
            name = (info["Config"]["Labels"] or {}).get(LABEL_POD_NAME)
            text = info["State"].get("StartedAt") or ""
            if not name or text.startswith("0001"):
                continue
            stamp, _, fraction = text.rstrip("Z").partition(".")
            when = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S").replace(
                tzinfo=datetime.timezone.utc).timestamp() + float("0." + (fraction or "0"))
            result[name] = min(when, result.get(name, when))
        return result

    @staticmethod
    def _thd_count_running(docker_client, labels):
        return len(docker_client.api.containers(filters={"label": labels}))

    @staticmethod
    def _thd_remove_containers(docker_client, labels):
        import docker
        found = docker_client.api.containers(all=True, filters={"label": labels})
        for summary in found:
            try:
                docker_client.api.remove_container(summary["Id"], force=True, v=True)
            except docker.errors.NotFound:
                pass
        return len(found)

    @staticmethod
    def _thd_remove_image(docker_client, image_id):
        import docker
        try:
            docker_client.images.remove(image_id)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as e:
            if e.status_code != 409:  # still used by someone else's container: leave it
                raise

    # -- the run -------------------------------------------------------------------------------

    async def run(self):
        args, fig = self.args, self.figures
        print("machine: {} cpus, {} {}, Python {} ({}), Twisted {}".format(
            os.cpu_count(), platform.system(), platform.machine(), platform.python_version(),
            platform.python_implementation(), twisted.__version__), flush=True)
        machine0 = machine_cpu()
        self.summary = {}
        status = 0
        tmp = self.tmp  # made and removed by main(), whatever happens here
        try:
            if args.docker:
                await self.run_docker()  # None: not available here (it says why)
            else:
                await self.run_simulated()
        except Exception as e:  # BenchError, or a bug: report it, keep what was measured
            say("benchmark stopped: {}: {}".format(type(e).__name__, e))
            for name in ("cloud.stderr", "cloud.log", "swarm0.stderr", "edge.log"):
                say_tail(os.path.join(tmp, name))
            status = 0 if self.figures.values else 1
        finally:
            await self.stop_everything()
            self._log_summary(os.path.join(tmp, "cloud.log"))
            if args.keep:
                self._keep(tmp, args.keep)
        busy, steal = machine_cpu()
        fig.add("wall_time", time.monotonic() - self.start, "s",
                "machine CPU busy {:.0f} s, steal {:.1f} s; load average now {}".format(
                    busy - machine0[0], steal - machine0[1],
                    "/".join("{:.2f}".format(x) for x in os.getloadavg())))
        print(json.dumps({"bench": "e2e_latency", **self.summary, "figures": fig.values},
                         sort_keys=True), flush=True)
        return status

    @staticmethod
    def _keep(tmp, target):
        """Copy the run's logs and configs (not its keys or databases) to ``target``."""
        import shutil
        os.makedirs(target, exist_ok=True)
        for name in ("cloud.log", "cloud.stderr", "cloudcore.yaml", "edge.log",
                     "edge/edgecore.yaml", "swarm0.stderr", "swarm1.stderr"):
            if os.path.exists(os.path.join(tmp, name)):
                shutil.copy(os.path.join(tmp, name), os.path.join(target, name.replace(
                    "/", "-")))
        say("logs kept in {}".format(target))

    @staticmethod
    def _log_summary(path):
        """How many cloud log lines of each level, and the commonest warnings."""
        counts, warnings = {}, {}
        try:
            with open(path, errors="replace") as f:
                for line in f:
                    start = line.find("#")
                    end = line.find("]", start)
                    if start != -1 and end != -1:
                        level = line[start + 1:end]
                        counts[level] = counts.get(level, 0) + 1
                        if level in ("warn", "error", "critical"):
                            text = line[end + 1:].strip()[:90]
                            warnings[text] = warnings.get(text, 0) + 1
        except OSError:
            return
        say("cloud log lines by level: {}".format(counts))
        for text, count in sorted(warnings.items(), key=lambda kv: -kv[1])[:5]:
            say("  {} x {}".format(count, text))


def main(argv):
    """Run the benchmark on a reactor of our own; exit status 0 when it ran."""
    from twisted.internet import reactor
    args = parse_args(argv)
    bench = Bench(reactor, args)
    outcome = {}

    def interrupted(signum, frame):
        # Twisted's main loop would swallow a KeyboardInterrupt: stop the reactor instead;
        # main() then stops what the run started.
        if "signal" not in outcome:
            outcome["signal"] = signum
            say("{}: stopping".format(signal.Signals(signum).name))
            if bench.watch is not None:
                bench.watch.stopped = True  # its stream breaks on the way down: let it
            reactor.callFromThread(reactor.stop)

    signal.signal(signal.SIGINT, interrupted)
    signal.signal(signal.SIGTERM, interrupted)

    def finished(result):
        outcome["status"] = result
        if reactor.running:
            reactor.stop()

    def crashed(failure):
        outcome["status"] = 1
        say("benchmark failed: {}".format(failure.getTraceback()))
        if reactor.running:
            reactor.stop()

    def begin():
        defer.Deferred.fromCoroutine(bench.run()).addCallbacks(finished, crashed)

    reactor.callWhenRunning(begin)
    with tempfile.TemporaryDirectory(prefix="e2e-bench-") as tmp:
        bench.tmp = tmp
        reactor.run(installSignalHandlers=False)
        if "status" not in outcome:
            say("interrupted; stopping the child processes")
            bench.interrupted_cleanup()
            return 1
    return outcome["status"]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
