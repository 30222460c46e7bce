"""Cloud process of ``bench/hub_bench.py``: one real CloudHub behind real TLS on loopback.

Started by the orchestrator, never by hand. It builds what ``create_cloudhub`` builds: a
``Bus``, ``tls.server_options``, an ``SSL4ServerEndpoint`` on 127.0.0.1 and a free port
(with production's listen backlog, ``LISTEN_BACKLOG``, unless ``--backlog`` says otherwise),
``CloudHub`` with the given node limit and keepalive interval and its ``LongLivedFreezer``,
and production's info-level text log (to a file). Added: a sink ``Module`` in the
``edgecontroller`` group that counts what CloudHub hands the controllers.

Control channel: one JSON object per line on stdin, one JSON reply per line on stdout
(``{"id": <request id>, ...}``); the first line written is ``{"id": 0, "ready": ...}``.
Commands: ``status``, ``fanout`` (``seq``), ``sink``, ``sink_queue`` (``size``),
``sessions``, ``profile_start``, ``profile_stop``, ``quit``. End of stdin,
``quit`` or ``--max-seconds`` stop the reactor.
"""

import argparse
import cProfile
import gc
import io
import json
import os
import pstats
import resource
import sys
import time

# Measure the working tree, not whatever copy of the package is installed.
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

import psutil  # noqa: E402
from twisted.internet import defer, endpoints, stdio, task  # noqa: E402
from twisted.logger import globalLogBeginner  # noqa: E402
from twisted.protocols.basic import LineReceiver  # noqa: E402

from kubeedge_tw.cloud.cloudhub.hub import CloudHub  # noqa: E402
from kubeedge_tw.cloud.cloudhub import LISTEN_BACKLOG  # noqa: E402
from kubeedge_tw.cloud.cloudhub.longlived import LongLivedFreezer  # noqa: E402
from kubeedge_tw.common.tap import freeze_startup_objects  # noqa: E402
from kubeedge_tw.common import log as klog  # noqa: E402
from kubeedge_tw.common import message as m  # noqa: E402
from kubeedge_tw.common import names, tls  # noqa: E402
from kubeedge_tw.common.bus import Bus  # noqa: E402
from kubeedge_tw.common.module import Module, QueueFull  # noqa: E402


def raise_nofile():
    """Soft RLIMIT_NOFILE up to the hard limit; returns (soft, hard) after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


class Sink(Module):
    """Stands in for the EdgeController: counts what it is handed, per tag.

    The tag is the operation for ``connected``/``disconnected`` events, else the last
    segment of the resource (the bench sends ``default/podstatus/<tag>``). Each tag keeps
    ``[count, first arrival, last arrival]`` on ``time.monotonic`` (system-wide on Linux,
    so comparable with the swarm processes)."""

    def __init__(self, clock, queue_size):
        super().__init__(clock, name="benchSink", group=names.EDGECONTROLLER_GROUP,
                         queue_size=queue_size)
        self.by_tag = {}

    def handle(self, message):
        now = time.monotonic()
        if message.operation in (names.OP_CONNECTED, names.OP_DISCONNECTED):
            tag = message.operation
        else:
            tag = message.resource.rsplit("/", 1)[-1]
        entry = self.by_tag.get(tag)
        if entry is None:
            self.by_tag[tag] = [1, now, now]
        else:
            entry[0] += 1
            entry[2] = now


class Undelivered:
    """CloudHub observer counting undelivered reports by reason."""

    def __init__(self):
        self.reasons = {}

    def node_undelivered(self, node, message, reason):
        self.reasons[reason] = self.reasons.get(reason, 0) + 1


class GCPauses:
    """Times every garbage collection (``gc.callbacks``): count, total and longest pause
    per generation. A full (generation 2) pass walks every tracked object, and with
    thousands of connections that is millions of them."""

    def __init__(self):
        self.stats = {gen: [0, 0.0, 0.0] for gen in range(3)}
        self._start = None
        gc.callbacks.append(self._callback)

    def _callback(self, phase, info):
        if phase == "start":
            self._start = time.perf_counter()
        elif self._start is not None:
            pause = time.perf_counter() - self._start
            entry = self.stats[info["generation"]]
            entry[0] += 1
            entry[1] += pause
            entry[2] = max(entry[2], pause)
            self._start = None


class Cloud:
    """The hub, the bus, the sink and the commands the orchestrator may send."""

    def __init__(self, reactor, args, stop):
        self.reactor = reactor
        self.args = args
        self.stop = stop
        self.process = psutil.Process()
        self.bus = Bus(reactor)
        options = tls.server_options(args.ca, args.cert, args.key)
        # As create_cloudhub does: SSL4ServerEndpoint with its listen backlog.
        endpoint = endpoints.SSL4ServerEndpoint(reactor, 0, options, interface="127.0.0.1",
                                                backlog=args.backlog)
        self.hub = CloudHub(reactor, listen=endpoint.listen, address="127.0.0.1", port=0,
                            node_limit=args.node_limit,
                            keepalive_interval=args.keepalive_interval,
                            allow_any_node_cert=True,
                            long_lived=LongLivedFreezer(reactor))
        self.undelivered = Undelivered()
        self.hub.add_observer(self.undelivered)
        self.sink = Sink(reactor, args.sink_queue)
        self.bus.register(self.hub)
        self.bus.register(self.sink)
        self.gc = GCPauses()
        self.profiler = None

    def start(self):
        self.sink.startService()
        return self.hub.startService()

    # -- commands ---------------------------------------------------------------------------

    def cmd_status(self, request):
        cpu = self.process.cpu_times()
        return {"connected": len(self.hub.connected_nodes()),
                "rss": self.process.memory_info().rss,
                "cpu_user": cpu.user, "cpu_system": cpu.system,
                "num_fds": self.process.num_fds(),
                "hub_inbox": self.hub.pending, "hub_stats": dict(self.hub.stats),
                "sink_stats": dict(self.sink.stats), "sink_inbox": self.sink.pending,
                "gc": {str(gen): list(v) for gen, v in self.gc.stats.items()},
                "gc_objects": len(gc.get_objects()) if request.get("objects") else None,
                "gc_frozen": gc.get_freeze_count(),
                "long_lived": dict(self.hub.long_lived.stats),
                "encoder": dict(self.hub.encoder.stats),
                "now": time.monotonic()}

    def cmd_sink(self, request):
        return {"by_tag": self.sink.by_tag, "stats": dict(self.sink.stats),
                "undelivered": self.undelivered.reasons}

    def cmd_sink_queue(self, request):
        """Change the sink's inbox bound (to tell CloudHub's own ingest rate apart from
        what a module's default inbox lets through)."""
        self.sink.queue_size = int(request["size"])
        return {"size": self.sink.queue_size}

    def cmd_sessions(self, request):
        """Delivery counters summed over the connected nodes' sessions."""
        total = {}
        for node in self.hub.connected_nodes():
            session = self.hub.session(node)
            if session is None:
                continue
            for key, value in session.stats.items():
                total[key] = total.get(key, 0) + value
            total["queued"] = total.get("queued", 0) + session.queued
            total["awaiting_ack"] = total.get("awaiting_ack", 0) + session.awaiting_ack
        return {"sessions": total}

    def cmd_fanout(self, request):
        """One ``update`` of ``default/pod/bench`` to every connected node through
        ``bus.send("cloudhub", ...)``, as the EdgeController sends a pod update; the
        content carries the send time (taken before anything else)."""
        seq = int(request["seq"])
        t0 = time.monotonic()
        content = {"metadata": {"name": "bench", "namespace": "default",
                                "resourceVersion": str(1000 + seq)},
                   "bench_fanout": seq, "sent": t0}
        sent = refused = 0
        for node in self.hub.connected_nodes():
            message = m.new_message(names.EDGECONTROLLER, names.WIRE_GROUP_RESOURCE,
                                    names.OP_UPDATE, "node/{}/default/pod/bench".format(node),
                                    content, resource_version=str(1000 + seq))
            try:
                self.bus.send(names.CLOUDHUB, message)
                sent += 1
            except QueueFull:
                refused += 1
        return {"sent": sent, "refused": refused, "t0": t0,
                "loop_seconds": time.monotonic() - t0}

    def cmd_profile_start(self, request):
        """Start cProfile on this process (slows it down; figures taken meanwhile are not
        comparable)."""
        self.profiler = cProfile.Profile()
        self.profiler.enable()
        return {"profiling": True}

    def cmd_profile_stop(self, request):
        """Stop cProfile; the top functions by own time and by cumulative time, as text."""
        self.profiler.disable()
        out = io.StringIO()
        stats = pstats.Stats(self.profiler, stream=out)
        stats.sort_stats("tottime").print_stats(int(request.get("top", 20)))
        stats.sort_stats("cumulative").print_stats(int(request.get("top", 20)))
        self.profiler = None
        return {"text": out.getvalue()}

    def cmd_quit(self, request):
        """Stop soon (after this reply is written)."""
        self.reactor.callLater(0.05, self.stop)
        return {"quitting": True}


class Control(LineReceiver):
    """JSON lines in, JSON lines out (see the module docstring): each request names a
    ``cmd_<name>`` method of ``target`` (the cloud here, a swarm in _hub_swarm)."""

    delimiter = b"\n"
    MAX_LENGTH = 1 << 20

    def __init__(self, target, on_lost):
        self.target = target
        self.on_lost = on_lost

    def lineReceived(self, line):
        request_id = -1
        try:
            request = json.loads(line)
            request_id = request.get("id", -1)
            reply = getattr(self.target, "cmd_" + request["cmd"])(request)
        except Exception as e:  # the orchestrator reads and prints this
            reply = {"error": "{}: {}".format(type(e).__name__, e)}
        reply["id"] = request_id
        self.send(reply)

    def send(self, reply):
        self.transport.write(json.dumps(reply).encode() + b"\n")

    def connectionLost(self, reason):
        self.on_lost()


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ca", required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--node-limit", type=int, required=True)
    parser.add_argument("--keepalive-interval", type=float, default=30)
    parser.add_argument("--sink-queue", type=int, default=1024)
    parser.add_argument("--backlog", type=int, default=LISTEN_BACKLOG)
    parser.add_argument("--log-file", required=True)
    parser.add_argument("--max-seconds", type=float, default=660)
    return parser.parse_args(argv)


def main(reactor, argv):
    args = parse_args(argv)
    soft, hard = raise_nofile()
    log_file = open(args.log_file, "a", buffering=1)
    # Production's observer (twistd --logger kubeedge_tw.common.log.text_observer).
    globalLogBeginner.beginLoggingTo([klog.text_observer(log_file)],
                                     redirectStandardIO=False, discardBuffer=True)
    # As twistd kubeedge-cloud does once running (common.tap.freeze_startup_objects).
    freeze_startup_objects(reactor)
    done = defer.Deferred()

    def finish():
        if not done.called:
            done.callback(None)

    cloud = Cloud(reactor, args, finish)
    control = Control(cloud, finish)
    stdio.StandardIO(control, reactor=reactor)
    deadline = reactor.callLater(args.max_seconds, finish)

    def listening(port):
        host = port.getHost()
        control.send({"id": 0, "ready": True, "port": host.port, "pid": os.getpid(),
                      "nofile_soft": soft, "nofile_hard": hard,
                      "rss": cloud.process.memory_info().rss,
                      "reactor": type(reactor).__name__})

    def failed(failure):
        control.send({"id": 0, "ready": False, "error": failure.getErrorMessage()})
        finish()

    cloud.start().addCallbacks(listening, failed)

    def cleanup(result):
        if deadline.active():
            deadline.cancel()
        log_file.flush()
        return result

    return done.addBoth(cleanup)


if __name__ == "__main__":
    task.react(main, (sys.argv[1:],))
