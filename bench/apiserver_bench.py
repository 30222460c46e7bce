"""Benchmark of the embedded Kubernetes API server (``kubeedge_tw.cloud.apiserver``).

Run from the repository root inside the virtualenv::

    .venv/bin/python bench/apiserver_bench.py [--pods 10000] [--concurrency 32]
        [--watchers 10] [--updates 300] [--seconds 120]

The server runs in a child process of this script (``--serve`` mode: only the API
server, its sqlite file in a temporary state dir, durable as in production:
``journal_mode=WAL``, ``synchronous=FULL``, every write acknowledged after its COMMIT). The
client is this process: treq over HTTPS on 127.0.0.1 with the admin bearer token.

What it measures (bench/README.md rules: figures are printed, never judged):

* creates: pods/s for the first ``--creates`` pod creations (POST, ~1.3 KB bodies) with
  ``--concurrency`` requests in flight, and their latency percentiles; then the namespace
  is filled up to ``--pods`` pods;
* list: latency of listing all ``--pods`` pods (JSON, body fully read), and of the same list
  as a server-side Table (what ``kubectl get pods`` asks for);
* watch: ``--watchers`` concurrent watches on the pods; ``--updates`` label patches, one
  at a time; latency from sending the PATCH to each watcher receiving its event (p50/p99
  over watchers x updates);
* the server process's RSS (psutil) after each phase and at the end, and its peak
  (``VmHWM``), which includes the transient memory of the big lists.

Every loop is bounded by a count and by ``--seconds`` per phase; a phase cut short by time
reports the count it reached. Exit status 0 means the benchmark ran.
"""

import argparse
import json
import os
import platform
import signal
import socket
import sys
import tempfile
import time

# Measure the working tree, not whatever copy of the package is installed.
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))
from _common import Figures, percentile  # noqa: E402

try:
    import psutil
except ImportError:  # the bench extra is optional
    psutil = None

TARGETS = {
    "creates_per_s": ">= 500 pod creates/s (durable sqlite)",
    "list_10000_pods_s": "<= 1 s",
    "watch_p99_ms": "<= 50 ms",
    "server_rss_mib": "<= 70 MB",
}


# -- server mode ----------------------------------------------------------------------------


def serve(state_dir, port):
    """Run only the embedded API server (the ``--serve`` child)."""
    from twisted.internet import reactor
    from twisted.logger import (
        FilteringLogObserver, LogLevel, LogLevelFilterPredicate, globalLogBeginner,
        textFileLogObserver)

    from kubeedge_tw.cloud.apiserver import create_apiserver
    from kubeedge_tw.common.config import CLOUD, default_config
    from kubeedge_tw.common.core import Core

    predicate = LogLevelFilterPredicate(defaultLogLevel=LogLevel.warn)
    predicate.setLogLevelForNamespace("kubeedge_tw.cloud.apiserver.APIServerService",
                                      LogLevel.info)
    globalLogBeginner.beginLoggingTo(
        [FilteringLogObserver(textFileLogObserver(sys.stderr), [predicate])],
        redirectStandardIO=False)
    config = default_config(CLOUD, overrides={
        "stateDir": state_dir, "modules.apiServer.port": port,
        "modules.apiServer.address": "127.0.0.1"})
    core = Core("kubeedge-cloud", reactor, config)
    create_apiserver(core, config).setServiceParent(core)
    reactor.callWhenRunning(core.startService)
    reactor.addSystemEventTrigger("before", "shutdown", core.stopService)
    reactor.run()


# -- client helpers --------------------------------------------------------------------------


def free_port():
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pod_body(name, namespace):
    """A pod as a controller would create it (~1.3 KB of JSON)."""
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {"app": "bench", "tier": "edge", "shard": name[-1]},
                     "annotations": {"kubeedge.io/bench": "true"}},
        "spec": {
            "nodeName": "edge-{}".format(int(name.rsplit("-", 1)[1]) % 20),
            "containers": [{
                "name": "app", "image": "docker.io/library/nginx:1.25.3",
                "ports": [{"name": "http", "containerPort": 80}],
                "env": [{"name": "MODE", "value": "edge"}, {"name": "NODE", "valueFrom": {
                    "fieldRef": {"fieldPath": "spec.nodeName"}}}],
                "resources": {"limits": {"cpu": "500m", "memory": "128Mi"},
                              "requests": {"cpu": "100m", "memory": "64Mi"}},
                "volumeMounts": [{"name": "config", "mountPath": "/etc/app"}]}],
            "volumes": [{"name": "config", "configMap": {"name": "bench-config"}}],
            "tolerations": [{"key": "node-role.kubernetes.io/edge", "operator": "Exists",
                             "effect": "NoSchedule"}],
        },
    }


class Client:
    """treq over HTTPS to the server with the admin token."""

    def __init__(self, reactor, base, token, ca_pem, concurrency):
        import treq
        from twisted.internet import ssl
        from twisted.web.client import Agent, HTTPConnectionPool
        from twisted.web.iweb import IPolicyForHTTPS
        from zope.interface import implementer

        trust = ssl.Certificate.loadPEM(ca_pem)

        @implementer(IPolicyForHTTPS)
        class Policy:
            def creatorForNetloc(self, hostname, port):
                return ssl.optionsForClientTLS(hostname.decode(), trustRoot=trust)

        pool = HTTPConnectionPool(reactor, persistent=True)
        pool.maxPersistentPerHost = concurrency
        self.treq = treq
        self.http = treq.client.HTTPClient(Agent(reactor, contextFactory=Policy(), pool=pool))
        self.stream_http = treq.client.HTTPClient(Agent(
            reactor, contextFactory=Policy(), pool=HTTPConnectionPool(reactor,
                                                                      persistent=False)))
        self.pool = pool
        self.base = base
        self.headers = {"Authorization": ["Bearer " + token]}

    async def request(self, method, path, body=None, content_type="application/json",
                      accept=None):
        """One request; ``(code, body bytes)``."""
        headers = dict(self.headers)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = [content_type]
        if accept:
            headers["Accept"] = [accept]
        response = await self.http.request(method, self.base + path, data=data,
                                           headers=headers)
        content = await self.treq.content(response)
        return response.code, content

    async def watch(self, path, on_line):
        """Open a watch; returns when the response headers arrived; ``on_line(bytes)``
        gets each event line. Returns the response (close with its transport)."""
        response = await self.stream_http.get(self.base + path, headers=self.headers)
        buffer = [b""]

        def collect(data):
            buffer[0] += data
            while b"\n" in buffer[0]:
                line, buffer[0] = buffer[0].split(b"\n", 1)
                if line.strip():
                    on_line(line)

        done = self.treq.collect(response, collect)
        done.addErrback(lambda f: None)  # the watch is cut at the end
        return response


# -- the benchmark ---------------------------------------------------------------------------


async def run(reactor, args, figures):
    """Start the server child, run the phases, record figures, stop the child."""
    from twisted.internet import defer, task

    state = tempfile.mkdtemp(prefix="apiserver-bench-")
    port = free_port()
    server = await start_server(reactor, state, port)
    samples = []
    proc = psutil.Process(server.pid) if psutil is not None else None

    def sample():
        if proc is not None:
            samples.append(proc.memory_info().rss)

    try:
        with open(os.path.join(state, "apiserver", "token")) as f:
            token = f.read().strip()
        with open(os.path.join(state, "ca", "rootCA.crt"), "rb") as f:
            ca_pem = f.read()
        client = Client(reactor, "https://127.0.0.1:{}".format(port), token, ca_pem,
                        args.concurrency)
        sample()
        figures.add("server_rss_idle_mib", samples[-1] / 2**20 if samples else float("nan"),
                    "MiB", "after start-up, empty store")
        ns = "bench"
        code, _ = await client.request("POST", "/api/v1/namespaces",
                                       {"metadata": {"name": ns}})
        assert code == 201, code

        # -- creates
        async def create_range(start, stop, latencies, deadline):
            counter = iter(range(start, stop))
            done = [0]

            async def worker():
                for i in counter:
                    if time.monotonic() > deadline:
                        return
                    t0 = time.monotonic()
                    name = "bench-{:05d}".format(i)
                    code, body = await client.request(
                        "POST", "/api/v1/namespaces/{}/pods".format(ns), pod_body(name, ns))
                    if code != 201:
                        raise RuntimeError("create {} failed: {} {}".format(name, code,
                                                                            body[:200]))
                    latencies.append(time.monotonic() - t0)
                    done[0] += 1

            await defer.gatherResults([defer.Deferred.fromCoroutine(worker())
                                       for _ in range(args.concurrency)])
            return done[0]

        latencies = []
        t0 = time.monotonic()
        created = await create_range(0, args.creates, latencies, t0 + args.seconds)
        elapsed = time.monotonic() - t0
        figures.add("creates_per_s", created / elapsed, "pods/s",
                    "{} creates, {} in flight".format(created, args.concurrency))
        figures.add("create_latency_p50_ms", percentile(latencies, 0.5) * 1000, "ms")
        figures.add("create_latency_p99_ms", percentile(latencies, 0.99) * 1000, "ms")
        sample()
        fill = []
        t0 = time.monotonic()
        filled = await create_range(created, args.pods, fill, t0 + args.seconds * 3)
        total = created + filled
        figures.add("pods_stored", total, "pods")
        sample()
        figures.add("server_rss_after_creates_mib", samples[-1] / 2**20 if samples else
                    float("nan"), "MiB")

        # -- list
        list_times, table_times = [], []
        size = 0
        deadline = time.monotonic() + args.seconds
        for _ in range(5):
            if time.monotonic() > deadline:
                break
            t0 = time.monotonic()
            code, body = await client.request("GET", "/api/v1/namespaces/{}/pods".format(ns))
            list_times.append(time.monotonic() - t0)
            size = len(body)
            items = len(json.loads(body)["items"])
            assert code == 200 and items == total, (code, items)
        figures.add("list_{}_pods_s".format(total) if total != 10000 else "list_10000_pods_s",
                    percentile(list_times, 0.5), "s",
                    "median of {}, JSON {:.1f} MiB, body read".format(len(list_times),
                                                                      size / 2**20))
        for _ in range(3):
            if time.monotonic() > deadline:
                break
            t0 = time.monotonic()
            code, body = await client.request(
                "GET", "/api/v1/namespaces/{}/pods".format(ns),
                accept="application/json;as=Table;v=v1;g=meta.k8s.io,application/json")
            table_times.append(time.monotonic() - t0)
            assert code == 200, code
        figures.add("list_table_{}_pods_s".format(total), percentile(table_times, 0.5), "s",
                    "median of {}, what kubectl get pods asks".format(len(table_times)))
        code, body = await client.request(
            "GET", "/api/v1/namespaces/{}/pods?labelSelector=shard%3D7".format(ns))
        t0 = time.monotonic()
        code, body = await client.request(
            "GET", "/api/v1/namespaces/{}/pods?labelSelector=shard%3D7".format(ns))
        figures.add("list_label_selected_s", time.monotonic() - t0, "s",
                    "{} of {} pods match".format(len(json.loads(body)["items"]), total))
        sample()
        figures.add("server_rss_after_lists_mib", samples[-1] / 2**20 if samples else
                    float("nan"), "MiB")

        # -- watch
        code, body = await client.request("GET", "/api/v1/namespaces/{}/pods?limit=1"
                                          .format(ns))
        rv = json.loads(body)["metadata"]["resourceVersion"]
        sent = {}
        watch_latencies = []
        arrived = [0]

        def on_line(line):
            now = time.monotonic()
            event = json.loads(line)
            seq = ((event["object"].get("metadata") or {}).get("labels") or {}).get("seq")
            if event["type"] == "MODIFIED" and seq in sent:
                watch_latencies.append(now - sent[seq])
                arrived[0] += 1

        responses = []
        for _ in range(args.watchers):
            responses.append(await client.watch(
                "/api/v1/namespaces/{}/pods?watch=1&resourceVersion={}".format(ns, rv),
                on_line))
        deadline = time.monotonic() + args.seconds
        updates = 0
        for i in range(min(args.updates, total)):
            if time.monotonic() > deadline:
                break
            seq = str(i)
            expected = (i + 1) * args.watchers
            sent[seq] = time.monotonic()
            code, body = await client.request(
                "PATCH", "/api/v1/namespaces/{}/pods/bench-{:05d}".format(ns, i),
                {"metadata": {"labels": {"seq": seq}}}, "application/merge-patch+json")
            assert code == 200, (code, body[:200])
            updates += 1
            # One update at a time: wait until every watcher saw it (bounded).
            for _ in range(2000):
                if arrived[0] >= expected:
                    break
                await task.deferLater(reactor, 0.001, lambda: None)
        figures.add("watch_events", len(watch_latencies), "events",
                    "{} watchers x {} updates".format(args.watchers, updates))
        figures.add("watch_p50_ms", percentile(watch_latencies, 0.5) * 1000, "ms",
                    "PATCH sent -> event received")
        figures.add("watch_p99_ms", percentile(watch_latencies, 0.99) * 1000, "ms")
        # The watches end when the server stops.
        sample()
        if samples:
            figures.add("server_rss_mib", samples[-1] / 2**20, "MiB",
                        "at the end, {} pods stored, psutil".format(total))
            figures.add("server_rss_peak_mib", max(samples) / 2**20, "MiB",
                        "max of samples after each phase")
        hwm = _vm_hwm(server.pid)
        if hwm is not None:
            figures.add("server_rss_hwm_mib", hwm / 2**20, "MiB",
                        "kernel VmHWM: the true peak, transients of the 10,000-pod lists "
                        "included")
        await client.pool.closeCachedConnections()
    finally:
        await stop_server(reactor, server)
        db = os.path.join(state, "apiserver.db")
        if os.path.exists(db):
            figures.add("sqlite_file_mib", os.path.getsize(db) / 2**20, "MiB")


def _vm_hwm(pid):
    """The peak resident set size of ``pid`` in bytes (Linux ``VmHWM``), or None."""
    try:
        with open("/proc/{}/status".format(pid)) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class _ServerProcess:
    """The ``--serve`` child: its output and exit."""

    def __init__(self):
        from twisted.internet import defer, protocol

        parent = self

        class Proto(protocol.ProcessProtocol):
            def outReceived(self, data):
                parent.output += data

            errReceived = outReceived

            def processEnded(self, reason):
                parent.ended.callback(None)

        self.output = b""
        self.ended = defer.Deferred()
        self.protocol = Proto()
        self.transport = None

    @property
    def pid(self):
        return self.transport.pid


async def start_server(reactor, state, port):
    """Spawn the server child and wait until it serves."""
    from twisted.internet import task
    server = _ServerProcess()
    env = dict(os.environ)
    server.transport = reactor.spawnProcess(
        server.protocol, sys.executable,
        [sys.executable, os.path.abspath(__file__), "--serve", state, str(port)], env=env)
    for _ in range(300):
        if b"apiserver serving" in server.output:
            return server
        if server.ended.called:
            break
        await task.deferLater(reactor, 0.05, lambda: None)
    raise RuntimeError("the API server did not start:\n" + server.output.decode(
        errors="replace"))


async def stop_server(reactor, server):
    """SIGTERM the child, SIGKILL it after 10 s."""
    from twisted.internet import error, task
    if server.ended.called:
        return
    try:
        server.transport.signalProcess("TERM")
    except error.ProcessExitedAlready:
        return
    for _ in range(200):
        if server.ended.called:
            return
        await task.deferLater(reactor, 0.05, lambda: None)
    try:
        server.transport.signalProcess("KILL")
    except error.ProcessExitedAlready:
        pass
    await server.ended


def main():
    """Parse the command line; serve (child) or run the benchmark (parent)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pods", type=int, default=10000, help="pods stored for the list")
    parser.add_argument("--creates", type=int, default=2000, help="creates timed")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight")
    parser.add_argument("--watchers", type=int, default=10)
    parser.add_argument("--updates", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=120, help="time bound per phase")
    parser.add_argument("--serve", nargs=2, metavar=("STATE_DIR", "PORT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]))
        return 0
    args.creates = min(args.creates, args.pods)
    from twisted.internet import defer, task
    figures = Figures(TARGETS)
    print("apiserver_bench on {} ({} CPUs), Python {}, sqlite WAL synchronous=FULL".format(
        platform.platform(), os.cpu_count(), platform.python_version()), flush=True)

    def go(reactor):
        return defer.Deferred.fromCoroutine(run(reactor, args, figures))

    task.react(lambda reactor: go(reactor).addCallback(lambda _: print(json.dumps(
        {"bench": "apiserver", "figures": figures.values}), flush=True)))


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.exit(main())
