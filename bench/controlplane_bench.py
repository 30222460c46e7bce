"""Benchmark of the embedded control plane: scheduling throughput and a large Deployment.

Run from the repository root inside the virtualenv::

    .venv/bin/python bench/controlplane_bench.py [--nodes N] [--pods N] [--replicas N]
                                                 [--qps Q --burst B] [--seconds S]

Everything runs in this one process on the real reactor, as in ``twistd kubeedge-cloud``:
the embedded API server (``create_apiserver``: TLS on a free loopback port, sqlite in a
temporary state dir), a :class:`~kubeedge_tw.cloud.kube.KubeContext` client made from the
kubeconfig it writes (rate limit ``--qps``/``--burst``, by default the config's
``kubeAPIConfig`` 100/200) and the :class:`~kubeedge_tw.cloud.controlplane.ControlPlane`.
When this build has no embedded API server, the fake API server of the unit tests
(``tests.cloud.controlplane.fake_extensions``) is served over real HTTP on loopback
instead, and the output says so.

What it measures (bench/README.md rules: figures are printed, never judged):

0. *decisions*: the scheduler's own speed, in memory, no API: ``--pods`` pods placed (filter,
   score, assume) on ``--nodes`` nodes, so the cost of the API round trips in 1. shows;
1. *scheduling*: ``--nodes`` Ready nodes and ``--pods`` pending pods are created through a
   second, unthrottled client while the control plane is stopped; then it starts and the
   time until the scheduler has bound every pod gives pods bound per second (from the
   scheduler's start, the informers' initial list of every pod included, and from its
   first bind);
   The nodes get no heartbeats unless ``--heartbeat S`` (then the loader posts a status for
   every node every S seconds and the grace is the default 40 s); without, the node grace
   is set longer than the run;
2. *deployment*: a Deployment of ``--replicas`` pods is created; the time until all its
   pods exist and until all are bound;
3. RSS of the process (API server + control plane + load generator; psutil when installed,
   else the kernel's high-water mark) after each phase.

Every wait is bounded by ``--seconds``; a phase cut short reports how far it got.
"""

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time

# Measure the working tree, not whatever copy of the package is installed.
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))
from _common import Figures  # noqa: E402

from twisted.internet import defer, task  # noqa: E402

from kubeedge_tw.cloud.controlplane import ControlPlane  # noqa: E402
from kubeedge_tw.cloud.k8s import load_kubeconfig, make_kube_client  # noqa: E402
from kubeedge_tw.cloud.kube import KubeContext  # noqa: E402
from kubeedge_tw.common.config import CLOUD, default_config  # noqa: E402

try:
    import psutil
except ImportError:  # the bench extra is optional; fall back to getrusage
    psutil = None

TARGET_RATE = 200        # pods/s, issue 6
TARGET_RSS = 90          # MiB for API server + controllers, issue 6


def rss_mib():
    """Current RSS in MiB (psutil), else the peak from getrusage."""
    if psutil is not None:
        return psutil.Process().memory_info().rss / 2 ** 20, "psutil rss"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "getrusage peak"


def node_manifest(i):
    """A Ready edge node with room for many pods."""
    name = "edge-{:04d}".format(i)
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name,
                                                  "node-role.kubernetes.io/edge": ""}},
            "status": {"allocatable": {"cpu": "8", "memory": "16Gi", "pods": "110"},
                       "capacity": {"cpu": "8", "memory": "16Gi", "pods": "110"},
                       "conditions": [{"type": "Ready", "status": "True",
                                       "reason": "EdgeReady"}]}}


def pod_manifest(i):
    """A small pending pod."""
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "bench-{:05d}".format(i), "labels": {"bench": "sched"}},
            "spec": {"containers": [{"name": "c", "image": "busybox",
                                     "resources": {"requests": {"cpu": "10m",
                                                                "memory": "16Mi"}}}]}}


def deployment_manifest(replicas):
    """A Deployment of ``replicas`` small pods."""
    labels = {"app": "bench-deploy"}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "bench-deploy", "labels": labels},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{
                                      "name": "c", "image": "nginx",
                                      "resources": {"requests": {"cpu": "10m",
                                                                 "memory": "16Mi"}}}]}}}}


async def create_all(client, resource, manifests, namespace, concurrency=10):
    """Create every manifest with ``concurrency`` requests in flight (the client pool keeps
    10 connections per host; more would each pay a TLS handshake)."""
    semaphore = defer.DeferredSemaphore(concurrency)
    await defer.gatherResults([
        semaphore.run(client.create, resource, m, namespace=namespace) for m in manifests],
        consumeErrors=True)


async def heartbeat_all(client, count):
    """One status post with a fresh heartbeat per node (what 1,000 edges send through
    EdgeController), 10 in flight."""
    from kubeedge_tw.cloud.controlplane.util import format_time
    stamp = format_time(time.time())
    patch = {"status": {"conditions": [{"type": "Ready", "status": "True",
                                        "reason": "EdgeReady", "lastHeartbeatTime": stamp}]}}
    semaphore = defer.DeferredSemaphore(10)
    await defer.gatherResults([
        semaphore.run(client.patch_status, "nodes", "edge-{:04d}".format(i), patch,
                      patch_type="strategic") for i in range(count)], consumeErrors=True)


async def wait_until(reactor, predicate, seconds, interval=0.05):
    """Poll ``predicate()`` until true or ``seconds`` pass; returns whether it was."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        await task.deferLater(reactor, interval, lambda: None)
    return predicate()


def _free_port():
    """A TCP port on 127.0.0.1 that nothing listened on a moment ago."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Backend:
    """The embedded API server, or the fake over loopback HTTP when there is none."""

    def __init__(self, reactor, state):
        self.reactor = reactor
        self.state = state
        self.service = None
        self.port = None
        self.description = None

    async def start(self):
        """Start serving; returns a function making a KubeClient with given qps/burst."""
        try:
            from kubeedge_tw.cloud.apiserver import create_apiserver
        except ImportError:
            create_apiserver = None
        if create_apiserver is not None:
            config = default_config(CLOUD, overrides={
                "stateDir": self.state, "modules.apiServer.port": _free_port(),
                "modules.apiServer.address": "127.0.0.1"})

            class _Core:
                clock = self.reactor
            self.service = create_apiserver(_Core(), config)
            self.service.startService()
            await self.service.ready
            if self.service.start_failure is not None:
                self.service.start_failure.raiseException()
            self.description = "embedded API server (kubeedge_tw.cloud.apiserver), HTTPS"
            path = self.service.kubeconfig_path
            return lambda qps, burst: make_kube_client(
                self.reactor, load_kubeconfig(path), qps=qps, burst=burst)
        from twisted.web.server import Site
        from kubeedge_tw.cloud.k8s import KubeClient
        from tests.cloud.controlplane.fake_extensions import ControlPlaneFakeAPI
        import treq
        api = ControlPlaneFakeAPI(self.reactor)
        self.port = self.reactor.listenTCP(0, Site(api), interface="127.0.0.1")
        url = "http://127.0.0.1:{}".format(self.port.getHost().port)
        self.description = ("NO embedded API server in this build: the unit tests' fake API "
                            "server over plain HTTP on loopback")
        return lambda qps, burst: KubeClient(treq, url, self.reactor, qps=qps, burst=burst)

    async def stop(self):
        """Stop serving."""
        if self.service is not None:
            await self.service.stopService()
        if self.port is not None:
            await self.port.stopListening()


def decisions(options, figures):
    """Phase 0: in-memory scheduling decisions per second."""
    from twisted.internet.task import Clock
    from kubeedge_tw.cloud.controlplane.scheduler import Scheduler, pod_info
    clock = Clock()
    scheduler = Scheduler(clock, KubeContext(clock, lambda: None))
    for i in range(options.nodes):
        scheduler.on_add_nodes(node_manifest(i))
    pods = [pod_manifest(i) for i in range(options.pods)]
    started = time.perf_counter()
    placed = 0
    for i, pod in enumerate(pods):
        info = pod_info(pod)
        node, _ = scheduler.find_node(pod, info)
        if node is not None:
            scheduler._account("default/{}".format(i), node.name, pod, info)
            placed += 1
    elapsed = time.perf_counter() - started
    figures.add("sched_decisions_in_memory", placed / elapsed, "pods/s",
                "{} pods on {} nodes, no API".format(placed, options.nodes))


async def run(reactor, options, figures):
    decisions(options, figures)
    state = tempfile.mkdtemp(prefix="cp-bench-")
    backend = Backend(reactor, state)
    cp = kube = loader = heartbeats = None
    try:
        make_client = await backend.start()
        print("backend: " + backend.description, flush=True)
        figures.add("client_rate_limit", "{}/{}".format(options.qps, options.burst),
                    "qps/burst", "the control plane's shared client")
        loader = make_client(None, None)
        started = time.monotonic()
        await create_all(loader, "nodes", [node_manifest(i) for i in range(options.nodes)],
                         None)
        figures.add("create_nodes_s", time.monotonic() - started, "s",
                    "{} nodes, unthrottled loader".format(options.nodes))
        started = time.monotonic()
        await create_all(loader, "pods", [pod_manifest(i) for i in range(options.pods)],
                         "default")
        figures.add("create_pods_s", time.monotonic() - started, "s",
                    "{} pending pods".format(options.pods))
        rss, how = rss_mib()
        figures.add("rss_after_load_mib", rss, "MiB", how + ", API server + loaded objects")

        # -- 1: scheduling ----------------------------------------------------------------
        kube = KubeContext(reactor, lambda: make_client(options.qps, options.burst))
        # The bench nodes have no edges behind them: unless --heartbeat posts for them, a
        # grace longer than the run keeps the node lifecycle controller from (rightly)
        # marking them all Unknown and tainted half-way.
        grace = 40.0 if options.heartbeat else 24 * 3600.0
        figures.add("node_grace_period", grace, "s", "heartbeats every {}s by the loader"
                    .format(options.heartbeat) if options.heartbeat else "no heartbeats")
        if options.heartbeat:
            heartbeats = task.LoopingCall(lambda: defer.Deferred.fromCoroutine(
                heartbeat_all(loader, options.nodes)))
            heartbeats.start(options.heartbeat, now=False)
        cp = ControlPlane(reactor, kube, node_grace_period=grace)
        scheduler = cp.scheduler
        first_bind = {}

        def progress():
            if scheduler.bound and "t" not in first_bind:
                first_bind["t"] = time.monotonic()
        watcher = task.LoopingCall(progress)
        watcher.start(0.01)
        t0 = time.monotonic()
        kube.startService()
        cp.startService()
        done = await wait_until(reactor, lambda: scheduler.bound >= options.pods,
                                options.seconds)
        elapsed = time.monotonic() - t0
        watcher.stop()
        bound = scheduler.bound
        figures.add("sched_pods_bound", bound, "pods", "of {}{}".format(
            options.pods, "" if done else ", cut short by --seconds"))
        figures.add("sched_total_s", elapsed, "s", "control plane start to last bind, "
                    "informer list of all pods included")
        figures.add("sched_rate_overall", bound / elapsed, "pods/s",
                    "target >= {}".format(TARGET_RATE))
        if "t" in first_bind and bound > 1:
            figures.add("sched_rate_binding", bound / (elapsed - (first_bind["t"] - t0)),
                        "pods/s", "from the first bind, target >= {}".format(TARGET_RATE))
        figures.add("events_written", cp.events.written, "events",
                    "dropped {}".format(cp.events.dropped))
        rss, how = rss_mib()
        figures.add("rss_after_scheduling_mib", rss, "MiB", how)

        # -- 2: a large Deployment -------------------------------------------------------------
        pods = kube.informer("pods")

        def deploy_pods():
            return [p for p in pods.list()
                    if (p["metadata"].get("labels") or {}).get("app") == "bench-deploy"]
        t0 = time.monotonic()
        await kube.client.create("deployments", deployment_manifest(options.replicas),
                                 namespace="default")
        created = await wait_until(reactor, lambda: len(deploy_pods()) >= options.replicas,
                                   options.seconds)
        t_created = time.monotonic() - t0
        all_bound = await wait_until(
            reactor, lambda: sum(1 for p in deploy_pods() if p["spec"].get("nodeName"))
            >= options.replicas, max(options.seconds - t_created, 1))
        t_bound = time.monotonic() - t0
        have = sum(1 for p in deploy_pods() if p["spec"].get("nodeName"))
        figures.add("deploy_pods_created_s", t_created, "s", "{} replicas{}".format(
            options.replicas, "" if created else ", cut short"))
        figures.add("deploy_all_bound_s", t_bound, "s", "{} of {} bound{}".format(
            have, options.replicas, "" if all_bound else ", cut short"))
        rss, how = rss_mib()
        figures.add("rss_after_deployment_mib", rss, "MiB",
                    how + "; API server + control plane + load generator in one process; "
                    "target <= {} for API + controllers".format(TARGET_RSS))
    finally:
        if heartbeats is not None and heartbeats.running:
            heartbeats.stop()
        if cp is not None and cp.running:
            await cp.stopService()
        if kube is not None and kube.running:
            await kube.stopService()
        if loader is not None:
            await loader.close()
        await backend.stop()
        shutil.rmtree(state, ignore_errors=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    defaults = default_config(CLOUD).kubeAPIConfig
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--pods", type=int, default=10000)
    parser.add_argument("--replicas", type=int, default=1000)
    parser.add_argument("--qps", type=float, default=defaults.qps)
    parser.add_argument("--burst", type=int, default=defaults.burst)
    parser.add_argument("--heartbeat", type=float, default=0,
                        help="post a heartbeat for every node every this many seconds "
                             "(0: none; the node grace is then longer than the run)")
    parser.add_argument("--seconds", type=float, default=300.0,
                        help="upper bound of each wait")
    options = parser.parse_args(argv)
    figures = Figures()
    print("controlplane_bench: python {} on {} ({} CPUs)".format(
        platform.python_version(), platform.platform(), os.cpu_count()), flush=True)

    def go(reactor):
        d = defer.Deferred.fromCoroutine(run(reactor, options, figures))
        d.addCallback(lambda _: print(json.dumps({"bench": "controlplane",
                                                  "figures": figures.values}), flush=True))
        return d
    task.react(go, [])


if __name__ == "__main__":
    main()
