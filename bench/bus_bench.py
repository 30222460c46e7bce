"""Benchmark of the message codec and the in-process module bus.

Run from the repository root inside the virtualenv::

    .venv/bin/python bench/bus_bench.py [--messages N] [--sync-calls N] [--seconds S]

What it measures (bench/README.md rules: figures are printed, never judged):

* codec: ``kubeedge_tw.common.message.encode`` and ``decode`` rates for a keepalive (the
  smallest frame, sent every heartbeat) and for a ~4 KB pod update (the typical
  cloud-to-edge frame);
* bus: messages/s from ``Bus.send`` until a counting ``Module`` has handled all of them,
  on the real reactor, the sender filling the module's inbox up to its bound so that
  ``QueueFull`` never happens;
* send_sync: sequential request/reply round trips/s through ``Bus.send_sync`` to a module
  answering with ``send_resp``, and their latency percentiles;
* the process's peak RSS and CPU time.

Every loop is bounded by a count and by ``--seconds`` per measurement; a loop cut short by
time reports the count it reached. Exit status 0 means the benchmark ran.
"""

import argparse
import json
import os
import platform
import resource
import sys
import time

# Measure the working tree, not whatever copy of the package is installed.
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))
from _common import Figures, percentile  # noqa: E402

import twisted  # noqa: E402
from twisted.internet import defer, task  # noqa: E402

from kubeedge_tw.common import message as m  # noqa: E402
from kubeedge_tw.common import names  # noqa: E402
from kubeedge_tw.common.bus import Bus  # noqa: E402
from kubeedge_tw.common.module import Module  # noqa: E402

try:
    import psutil
except ImportError:  # the bench extra is optional; fall back to getrusage
    psutil = None


class Memory:
    """Peak resident set size: psutil samples taken after every phase when psutil is
    installed, else the kernel's high-water mark from ``getrusage``."""

    def __init__(self):
        self.peak = 0
        self.process = psutil.Process() if psutil is not None else None

    def sample(self):
        """Take one sample (psutil only; getrusage keeps its own maximum)."""
        if self.process is not None:
            self.peak = max(self.peak, self.process.memory_info().rss)

    def peak_mib(self):
        """The peak in MiB and where the figure comes from."""
        if self.process is not None:
            return self.peak / 2**20, "psutil rss, max of samples after each phase"
        # ru_maxrss is KiB on Linux.
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "getrusage ru_maxrss"


def keepalive_message():
    """The edge hub's keepalive, as a v1.15 edge sends it every heartbeat."""
    return m.new_message(names.EDGEHUB, names.WIRE_GROUP_RESOURCE, names.OP_KEEPALIVE,
                         "node", "ping")


def pod_dict(name="nginx-deployment-6b474476c4-x7k2p", namespace="default"):
    """A realistic v1.Pod as the API server returns it (~4 KB as compact JSON)."""
    labels = {"app": "nginx", "pod-template-hash": "6b474476c4", "tier": "frontend",
              "app.kubernetes.io/managed-by": "kubeedge-tw-bench"}
    container = {
        "name": "nginx",
        "image": "docker.io/library/nginx:1.25.3",
        "imagePullPolicy": "IfNotPresent",
        "command": ["/docker-entrypoint.sh"],
        "args": ["nginx", "-g", "daemon off;"],
        "ports": [{"name": "http", "containerPort": 80, "hostPort": 8080,
                   "protocol": "TCP"}],
        "env": [{"name": "NGINX_ENTRYPOINT_QUIET_LOGS", "value": "1"},
                {"name": "EDGE_NODE", "valueFrom": {"fieldRef": {
                    "apiVersion": "v1", "fieldPath": "spec.nodeName"}}},
                {"name": "POD_IP", "valueFrom": {"fieldRef": {
                    "apiVersion": "v1", "fieldPath": "status.podIP"}}}],
        "resources": {"limits": {"cpu": "500m", "memory": "128Mi"},
                      "requests": {"cpu": "100m", "memory": "64Mi"}},
        "volumeMounts": [
            {"name": "config", "mountPath": "/etc/nginx/conf.d", "readOnly": True},
            {"name": "kube-api-access-9z7xq",
             "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": True}],
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": 80, "scheme": "HTTP"},
                          "initialDelaySeconds": 5, "timeoutSeconds": 1, "periodSeconds": 10,
                          "successThreshold": 1, "failureThreshold": 3},
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "generateName": "nginx-deployment-6b474476c4-",
            "namespace": namespace,
            "uid": "3f0c9a52-6d1e-4b8a-9a57-2c4e1f7d0b11",
            "resourceVersion": "183457",
            "creationTimestamp": "2024-05-02T09:14:27Z",
            "labels": labels,
            "annotations": {
                "kubernetes.io/config.seen": "2024-05-02T09:14:27.524113201Z",
                "kubernetes.io/config.source": "api",
                "prometheus.io/scrape": "true",
                "prometheus.io/port": "9113",
            },
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "name": "nginx-deployment-6b474476c4",
                "uid": "a1b2c3d4-e5f6-4711-8899-aabbccddeeff",
                "controller": True, "blockOwnerDeletion": True}],
        },
        "spec": {
            "volumes": [
                {"name": "config", "configMap": {"name": "nginx-config", "defaultMode": 420}},
                {"name": "kube-api-access-9z7xq", "projected": {
                    "defaultMode": 420, "sources": [
                        {"serviceAccountToken": {"expirationSeconds": 3607,
                                                 "path": "token"}},
                        {"configMap": {"name": "kube-root-ca.crt",
                                       "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {
                            "apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}}],
            "containers": [container],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default",
            "serviceAccount": "default",
            "nodeName": "edge-node-01",
            "hostNetwork": True,
            "securityContext": {},
            "schedulerName": "default-scheduler",
            "nodeSelector": {"node-role.kubernetes.io/edge": ""},
            "tolerations": [
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                 "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                 "effect": "NoExecute", "tolerationSeconds": 300}],
            "priority": 0,
            "enableServiceLinks": True,
            "preemptionPolicy": "PreemptLowerPriority",
        },
        "status": {
            "phase": "Running",
            "conditions": [
                {"type": kind, "status": "True", "lastProbeTime": None,
                 "lastTransitionTime": "2024-05-02T09:14:3{}Z".format(i)}
                for i, kind in enumerate(("Initialized", "Ready", "ContainersReady",
                                          "PodScheduled"))],
            "hostIP": "192.168.10.21",
            "podIP": "192.168.10.21",
            "podIPs": [{"ip": "192.168.10.21"}],
            "startTime": "2024-05-02T09:14:27Z",
            "containerStatuses": [{
                "name": "nginx",
                "state": {"running": {"startedAt": "2024-05-02T09:14:31Z"}},
                "lastState": {},
                "ready": True,
                "restartCount": 0,
                "image": "docker.io/library/nginx:1.25.3",
                "imageID": "docker-pullable://nginx@sha256:"
                           "4c0fdaa8b6341bfdeca5f18f7837462c80cff90527ee35ef185571e1c327beac",
                "containerID": "docker://"
                               "9b3f1c2d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9",
                "started": True}],
            "qosClass": "Burstable",
        },
    }


def pod_update_message():
    """An EdgeController pod update as the cloud sends it to the edge."""
    pod = pod_dict()
    resource = "{}/{}/{}".format(pod["metadata"]["namespace"], "pod", pod["metadata"]["name"])
    return m.new_message(names.EDGECONTROLLER, names.WIRE_GROUP_RESOURCE, names.OP_UPDATE,
                         resource, pod, resource_version=pod["metadata"]["resourceVersion"])


def rate(fn, arg, count, seconds):
    """Call ``fn(arg)`` up to ``count`` times or for ``seconds``; (calls, elapsed s)."""
    deadline = time.perf_counter() + seconds
    done = 0
    start = time.perf_counter()
    while done < count:
        step = min(256, count - done)
        for _ in range(step):
            fn(arg)
        done += step
        if time.perf_counter() >= deadline:
            break
    return done, time.perf_counter() - start


def bench_codec(figures, label, message, count, seconds):
    """Encode and decode rates for one message."""
    frame = m.encode(message)
    figures.add("codec_{}_frame_size".format(label), len(frame), "bytes")
    if m.decode(frame) != message:
        raise SystemExit("codec round trip changed the {} message".format(label))
    n, elapsed = rate(m.encode, message, count, seconds)
    figures.add("codec_{}_encode".format(label), n / elapsed, "msgs/s",
                "{} msgs in {:.2f} s".format(n, elapsed))
    n, elapsed = rate(m.decode, frame, count, seconds)
    figures.add("codec_{}_decode".format(label), n / elapsed, "msgs/s",
                "{} msgs in {:.2f} s".format(n, elapsed))


class Counter(Module):
    """Counts handled messages; fires ``done`` once it has handled ``expected`` of them."""

    def __init__(self, clock):
        super().__init__(clock, name="benchCounter", group="bench")
        self.count = 0
        self.expected = None
        self.done = defer.Deferred()

    def handle(self, message):
        self.count += 1
        if self.count == self.expected:
            self.done.callback(self.count)

    def expect(self, total):
        """Fire ``done`` when ``total`` messages have been handled (maybe already)."""
        self.expected = total
        if self.count >= total and not self.done.called:
            self.done.callback(self.count)


class Responder(Module):
    """Answers every sync request at once with ``send_resp``."""

    def __init__(self, clock):
        super().__init__(clock, name="benchResponder", group="bench")

    def handle(self, message):
        self.send_resp(m.new_response(message, "OK", source=self.name))


async def bench_bus(reactor, figures, count, seconds, chunk=1000):
    """Messages/s from the first ``Bus.send`` until the module handled all of them."""
    bus = Bus(reactor)
    counter = Counter(reactor)
    bus.register(counter)
    counter.startService()
    message = keepalive_message()
    state = {"sent": 0}
    finished_sending = defer.Deferred()
    start = time.perf_counter()
    deadline = start + seconds

    def pump():
        # Fill the inbox up to its bound, at most ``chunk`` per reactor turn, so that the
        # bus never refuses (QueueFull) and the module's drain keeps pace.
        free = counter.queue_size - counter.pending
        batch = min(chunk, free, count - state["sent"])
        for _ in range(batch):
            bus.send(counter.name, message)
        state["sent"] += batch
        if state["sent"] < count and time.perf_counter() < deadline:
            reactor.callLater(0, pump)
        else:
            finished_sending.callback(state["sent"])

    pump()
    sent = await finished_sending
    counter.expect(sent)
    handled = await counter.done
    elapsed = time.perf_counter() - start
    await counter.stopService()
    refused = counter.stats["refused"]
    figures.add("bus_send_throughput", handled / elapsed, "msgs/s",
                "{} msgs in {:.2f} s, inbox {}, drain batch {}, refused {}".format(
                    handled, elapsed, counter.queue_size, counter.drain_batch, refused))


async def bench_send_sync(reactor, figures, count, seconds):
    """Sequential send_sync round trips: rate and latency percentiles."""
    bus = Bus(reactor)
    responder = Responder(reactor)
    bus.register(responder)
    responder.startService()
    latencies = []
    start = time.perf_counter()
    deadline = start + seconds
    for i in range(count):
        request = m.new_message("benchClient", "bench", names.OP_QUERY, "default/pod/bench")
        t0 = time.perf_counter()
        reply = await bus.send_sync(responder.name, request, timeout=10)
        latencies.append(time.perf_counter() - t0)
        if reply.parent_msg_id != request.msg_id:
            raise RuntimeError("reply {} does not answer {}".format(reply.msg_id,
                                                                     request.msg_id))
        if i % 256 == 255 and time.perf_counter() >= deadline:
            break
    elapsed = time.perf_counter() - start
    await responder.stopService()
    bus.stop()
    latencies.sort()
    figures.add("send_sync_round_trips", len(latencies) / elapsed, "calls/s",
                "{} sequential calls in {:.2f} s".format(len(latencies), elapsed))
    for name, fraction in (("p50", 0.50), ("p90", 0.90), ("p99", 0.99)):
        figures.add("send_sync_latency_" + name, percentile(latencies, fraction) * 1e6, "us")


def parse_args(argv):
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200000,
                        help="messages per codec and bus measurement (default 200000)")
    parser.add_argument("--sync-calls", type=int, default=50000,
                        help="send_sync round trips (default 50000)")
    parser.add_argument("--seconds", type=float, default=5.0,
                        help="time cap of each measurement in seconds (default 5)")
    args = parser.parse_args(argv)
    if args.messages < 1 or args.sync_calls < 1 or args.seconds <= 0:
        parser.error("--messages and --sync-calls must be >= 1 and --seconds > 0")
    return args


def main(reactor, argv):
    """Run every measurement, print the figures and the JSON summary."""
    args = parse_args(argv)
    figures = Figures()
    memory = Memory()
    print("machine: {} cpus, {} {}, Python {} ({}), Twisted {}, reactor {}".format(
        os.cpu_count(), platform.system(), platform.machine(), platform.python_version(),
        platform.python_implementation(), twisted.__version__, type(reactor).__name__),
        flush=True)
    print("settings: messages {}, sync calls {}, cap {} s per measurement".format(
        args.messages, args.sync_calls, args.seconds), flush=True)
    cpu_start = time.process_time()

    bench_codec(figures, "keepalive", keepalive_message(), args.messages, args.seconds)
    memory.sample()
    bench_codec(figures, "pod_update", pod_update_message(), args.messages, args.seconds)
    memory.sample()

    async def reactor_phases():
        await bench_bus(reactor, figures, args.messages, args.seconds)
        memory.sample()
        await bench_send_sync(reactor, figures, args.sync_calls, args.seconds)
        memory.sample()
        peak, source = memory.peak_mib()
        figures.add("peak_rss", peak, "MiB", source)
        figures.add("cpu_time", time.process_time() - cpu_start, "s")
        print(json.dumps({"bench": "bus", "figures": figures.values}, sort_keys=True),
              flush=True)

    return defer.Deferred.fromCoroutine(reactor_phases())


if __name__ == "__main__":
    task.react(main, (sys.argv[1:],))
