"""Swarm process of ``bench/hub_bench.py``: many simulated v1.15 edges in one process.

Started by the orchestrator, never by hand. Each simulated edge is one TLS websocket
(autobahn ``WebSocketClientProtocol`` over ``tls.client_options`` with the shared client
certificate) that sends what a v1.15 edge sends when the connection opens — the headers
``node_id``, ``project_id``, ``ConnectionUse: msg`` and the path
``/<project>/<node>/events`` — then:

* a ``keepalive`` (source ``websocket``, group ``resource``, resource ``node``, content
  ``ping``) every ``--keepalive`` seconds, first one at a random phase;
* a ``response`` ``OK`` to every cloud message that needs an ACK;
* for fan-out messages (content ``{"bench_fanout": seq, "sent": t}``), the receive latency
  ``time.monotonic() - t`` (CLOCK_MONOTONIC is system-wide on Linux, so the cloud's stamp
  is comparable), first copy per connection only; resends are counted apart.

Control channel: one JSON object per line on stdin, one JSON reply per line on stdout;
the first line written is ``{"id": 0, "ready": ...}``. Commands: ``ramp`` (open the
connections, at most ``inflight`` handshakes at once), ``status``, ``handshakes``,
``fanout_report`` (``seq``), ``send_one`` (one connection sends ``update`` messages on
``default/podstatus/<tag>`` as fast as its transport takes them for ``seconds``),
``burst`` (every connection sends ``count`` of them), ``errors``, ``quit``.
"""

import argparse
import collections
import os
import random
import resource
import sys
import time

# Measure the working tree, not whatever copy of the package is installed.
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

import psutil  # noqa: E402
from autobahn.twisted.websocket import (  # noqa: E402
    WebSocketClientFactory, WebSocketClientProtocol)
from autobahn.websocket.types import ConnectingRequest  # noqa: E402
from twisted.internet import defer, endpoints, protocol, stdio, task  # noqa: E402
from twisted.internet.interfaces import IPushProducer  # noqa: E402
from twisted.logger import (  # noqa: E402
    FilteringLogObserver, LogLevel, LogLevelFilterPredicate, globalLogBeginner,
    textFileLogObserver)
from zope.interface import implementer  # noqa: E402

from kubeedge_tw.cloud.cloudhub.session import needs_ack  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _hub_cloud import Control  # noqa: E402  (the same JSON-lines control channel)
from kubeedge_tw.common import message as m  # noqa: E402
from kubeedge_tw.common import names, tls  # noqa: E402

PROJECT = names.DEFAULT_PROJECT_ID


def raise_nofile():
    """Soft RLIMIT_NOFILE up to the hard limit; returns (soft, hard) after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def podstatus_message(tag):
    """An edge pod-status update as metaManager forwards it to the cloud (~0.5 KB)."""
    content = {"podstatus": [{
        "name": "bench", "uid": "3f0c9a52-6d1e-4b8a-9a57-2c4e1f7d0b11",
        "status": {"phase": "Running", "hostIP": "192.168.10.21",
                   "podIP": "192.168.10.21", "startTime": "2024-05-02T09:14:27Z",
                   "conditions": [{"type": "Ready", "status": "True",
                                   "lastTransitionTime": "2024-05-02T09:14:31Z"}],
                   "containerStatuses": [{"name": "nginx", "ready": True,
                                          "restartCount": 0,
                                          "state": {"running": {
                                              "startedAt": "2024-05-02T09:14:31Z"}}}]}}]}
    return m.new_message(names.METAMANAGER, names.WIRE_GROUP_RESOURCE, names.OP_UPDATE,
                         "default/podstatus/" + tag, content)


class Edge(WebSocketClientProtocol):
    """One simulated edge; everything it sees goes to the :class:`Swarm`."""

    node = None
    swarm = None
    started = 0.0
    link_open = False
    keepalive_call = None
    fanout_seen = 0

    def onConnecting(self, transport_details):
        return ConnectingRequest(
            host="127.0.0.1", port=self.swarm.port,
            resource="/{}/{}/events".format(PROJECT, self.node),
            headers={"node_id": self.node, "project_id": PROJECT, "ConnectionUse": "msg"},
            useragent="kubeedge-tw-hub-bench")

    def onOpen(self):
        self.link_open = True
        self.swarm.edge_opened(self)

    def onMessage(self, payload, isBinary):
        self.swarm.edge_frame(self, payload)

    def onClose(self, wasClean, code, reason):
        self.swarm.edge_closed(self, wasClean, code, reason)

    def send(self, message):
        self.sendMessage(m.encode(message), isBinary=False)


class Dial(protocol.Factory):
    """The factory one connection attempt uses: builds an :class:`Edge` from the shared
    autobahn factory and names it."""

    def __init__(self, swarm, node):
        self.swarm = swarm
        self.node = node
        self.started = time.monotonic()

    def buildProtocol(self, addr):
        edge = self.swarm.ws_factory.buildProtocol(addr)
        edge.node = self.node
        edge.swarm = self.swarm
        edge.started = self.started
        return edge


@implementer(IPushProducer)
class Blaster:
    """Writes ``update`` messages on one connection as fast as its transport takes them
    (stops writing while the transport asks it to pause) until ``seconds`` have passed."""

    def __init__(self, reactor, edge, tag, seconds):
        self.reactor = reactor
        self.edge = edge
        self.tag = tag
        self.deadline = time.monotonic() + seconds
        self.paused = False
        self.sent = 0
        self.pauses = 0
        self.start = time.monotonic()
        self.end = None
        self.done = defer.Deferred()
        self.call = None

    def run(self):
        self.edge.transport.registerProducer(self, True)
        self._write()
        return self.done

    def _write(self):
        self.call = None
        batch = 0
        while not self.paused and batch < 200 and self.edge.link_open:
            self.edge.send(podstatus_message(self.tag))
            self.sent += 1
            batch += 1
        if time.monotonic() >= self.deadline or not self.edge.link_open:
            self._finish()
        elif not self.paused:
            self.call = self.reactor.callLater(0, self._write)

    def _finish(self):
        if self.end is not None:
            return
        self.end = time.monotonic()
        if self.call is not None and self.call.active():
            self.call.cancel()
        if self.edge.link_open:
            self.edge.transport.unregisterProducer()
        self.done.callback(None)

    def pauseProducing(self):
        self.paused = True
        self.pauses += 1

    def resumeProducing(self):
        self.paused = False
        if self.end is None and self.call is None:
            self.call = self.reactor.callLater(0, self._write)

    def stopProducing(self):
        self.paused = True
        self.reactor.callLater(0, self._finish)


class Swarm:
    """The simulated edges of this process and the commands the orchestrator may send."""

    def __init__(self, reactor, args):
        self.reactor = reactor
        self.args = args
        self.port = args.port
        self.process = psutil.Process()
        self.rss_start = self.process.memory_info().rss
        self.creator = tls.client_options("127.0.0.1", args.ca, args.cert, args.key)
        self.ws_factory = WebSocketClientFactory(
            "wss://127.0.0.1:{}/{}/bench/events".format(args.port, PROJECT))
        self.ws_factory.protocol = Edge
        options = dict(openHandshakeTimeout=60, closeHandshakeTimeout=5)
        if args.edge_ping:
            options.update(autoPingInterval=args.keepalive, autoPingTimeout=args.keepalive)
        self.ws_factory.setProtocolOptions(**options)
        self.names = ["bench-{}".format(k) for k in range(args.first, args.first + args.count)]
        self.next = 0
        self.in_flight = 0
        self.edges = []          # open connections, in open order
        self.opened = 0
        self.failed = 0
        self.closed_after_open = 0
        self.fail_reasons = collections.Counter()
        self.close_reasons = collections.Counter()
        self.handshake_times = []
        self.ramp_start = None
        self.ramp_last_open = None
        self.ramp_done_at = None
        self.keepalives_sent = 0
        self.frames_received = 0
        self.acks_sent = 0
        self.errors = collections.Counter()   # error replies by tag
        self.fanout_latency = collections.defaultdict(list)
        self.fanout_duplicates = collections.Counter()
        self.blasts = {}
        self.bursts = {}

    # -- ramp -------------------------------------------------------------------------------

    def cmd_ramp(self, request):
        self.inflight_limit = int(request["inflight"])
        self.ramp_start = time.monotonic()
        self._dial_more()
        return {"started": True, "count": len(self.names)}

    def _dial_more(self):
        while self.in_flight < self.inflight_limit and self.next < len(self.names):
            node = self.names[self.next]
            self.next += 1
            self.in_flight += 1
            endpoint = endpoints.wrapClientTLS(
                self.creator, endpoints.TCP4ClientEndpoint(self.reactor, "127.0.0.1",
                                                           self.port, timeout=60))
            d = endpoint.connect(Dial(self, node))
            d.addErrback(self._dial_failed)

    def _attempt_over(self):
        self.in_flight -= 1
        if self.next >= len(self.names) and self.in_flight == 0 and self.ramp_done_at is None:
            self.ramp_done_at = time.monotonic()
        self._dial_more()

    def _dial_failed(self, failure):
        self.failed += 1
        self.fail_reasons["connect: " + failure.getErrorMessage()[:100]] += 1
        self._attempt_over()

    def edge_opened(self, edge):
        now = time.monotonic()
        self.opened += 1
        self.handshake_times.append(now - edge.started)
        self.ramp_last_open = now
        self.edges.append(edge)
        edge.keepalive_call = self.reactor.callLater(
            random.uniform(0, self.args.keepalive), self._keepalive, edge)
        self._attempt_over()

    def _keepalive(self, edge):
        edge.keepalive_call = None
        if not edge.link_open:
            return
        edge.send(m.new_message(names.EDGEHUB, names.WIRE_GROUP_RESOURCE, names.OP_KEEPALIVE,
                                "node", "ping"))
        self.keepalives_sent += 1
        edge.keepalive_call = self.reactor.callLater(self.args.keepalive, self._keepalive, edge)

    def edge_closed(self, edge, was_clean, code, reason):
        if edge.keepalive_call is not None and edge.keepalive_call.active():
            edge.keepalive_call.cancel()
        edge.keepalive_call = None
        if edge.link_open:
            edge.link_open = False
            self.closed_after_open += 1
            self.close_reasons["{} {}".format(code, (reason or edge.wasNotCleanReason
                                                     or "")[:100])] += 1
        else:
            self.failed += 1
            self.fail_reasons["handshake: {}".format(
                (edge.wasNotCleanReason or reason or str(code))[:100])] += 1
            self._attempt_over()

    # -- what the cloud sends ---------------------------------------------------------------

    def edge_frame(self, edge, payload):
        now = time.monotonic()
        self.frames_received += 1
        message = m.decode(payload)
        if message.operation in (names.OP_RESPONSE, names.OP_ERROR):
            self.errors["{} {}".format(message.operation,
                                       message.resource.rsplit("/", 1)[-1])] += 1
            return
        if needs_ack(message):
            edge.send(m.new_response(message, "OK"))
            self.acks_sent += 1
        content = message.content
        if isinstance(content, dict) and "bench_fanout" in content:
            seq = content["bench_fanout"]
            if edge.fanout_seen >= seq:
                self.fanout_duplicates[seq] += 1
            else:
                edge.fanout_seen = seq
                self.fanout_latency[seq].append(now - content["sent"])

    # -- commands ---------------------------------------------------------------------------

    def cmd_status(self, request):
        cpu = self.process.cpu_times()
        return {"opened": self.opened, "failed": self.failed, "in_flight": self.in_flight,
                "open_now": sum(1 for e in self.edges if e.link_open),
                "closed_after_open": self.closed_after_open, "total": len(self.names),
                "ramp_start": self.ramp_start, "ramp_last_open": self.ramp_last_open,
                "ramp_done_at": self.ramp_done_at,
                "fail_reasons": dict(self.fail_reasons.most_common(5)),
                "close_reasons": dict(self.close_reasons.most_common(5)),
                "keepalives_sent": self.keepalives_sent, "acks_sent": self.acks_sent,
                "frames_received": self.frames_received,
                "rss": self.process.memory_info().rss, "rss_start": self.rss_start,
                "cpu_user": cpu.user, "cpu_system": cpu.system, "now": time.monotonic()}

    def cmd_handshakes(self, request):
        return {"seconds": self.handshake_times}

    def cmd_fanout_report(self, request):
        seq = int(request["seq"])
        latencies = self.fanout_latency.get(seq, [])
        reply = {"count": len(latencies), "duplicates": self.fanout_duplicates[seq]}
        if request.get("latencies"):
            reply["seconds"] = latencies
        return reply

    def cmd_errors(self, request):
        return {"errors": dict(self.errors)}

    def cmd_send_one(self, request):
        """Start one connection blasting; ``send_one_report`` reads the result."""
        tag = request["tag"]
        edge = next((e for e in self.edges if e.link_open), None)
        if edge is None:
            return {"error": "no open connection"}
        blaster = Blaster(self.reactor, edge, tag, float(request["seconds"]))
        self.blasts[tag] = blaster
        blaster.run()
        return {"node": edge.node}

    def cmd_send_one_report(self, request):
        blaster = self.blasts[request["tag"]]
        return {"done": blaster.end is not None, "sent": blaster.sent,
                "pauses": blaster.pauses, "start": blaster.start, "end": blaster.end}

    def cmd_burst(self, request):
        """Every open connection sends ``count`` updates; connections are served in chunks
        so that writes go out while the rest are still being encoded."""
        tag, count = request["tag"], int(request["count"])
        edges = [e for e in self.edges if e.link_open]
        state = {"sent": 0, "start": time.monotonic(), "end": None, "connections": len(edges)}
        self.bursts[tag] = state

        def chunk(index):
            for edge in edges[index:index + 200]:
                for _ in range(count):
                    if edge.link_open:
                        edge.send(podstatus_message(tag))
                        state["sent"] += 1
            if index + 200 < len(edges):
                self.reactor.callLater(0, chunk, index + 200)
            else:
                state["end"] = time.monotonic()

        chunk(0)
        return {"connections": len(edges)}

    def cmd_burst_report(self, request):
        return dict(self.bursts[request["tag"]])

    def cmd_quit(self, request):
        """Stop soon (after this reply is written)."""
        self.reactor.callLater(0.05, self.stop)
        return {"quitting": True}


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ca", required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--first", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--keepalive", type=float, default=15)
    parser.add_argument("--edge-ping", action="store_true")
    parser.add_argument("--max-seconds", type=float, default=660)
    return parser.parse_args(argv)


def main(reactor, argv):
    return run_swarm(reactor, parse_args(argv), Swarm)


def run_swarm(reactor, args, swarm_class):
    """Run a ``swarm_class`` swarm under the orchestrator's control channel until it says
    stop or ``args.max_seconds`` pass."""
    soft, hard = raise_nofile()
    # Warnings and worse to stderr (a file the orchestrator keeps); nothing is buffered.
    warnings = FilteringLogObserver(textFileLogObserver(sys.stderr),
                                    [LogLevelFilterPredicate(defaultLogLevel=LogLevel.warn)])
    globalLogBeginner.beginLoggingTo([warnings], redirectStandardIO=False,
                                     discardBuffer=True)
    done = defer.Deferred()

    def finish():
        if not done.called:
            done.callback(None)

    swarm = swarm_class(reactor, args)
    swarm.stop = finish
    control = Control(swarm, finish)
    stdio.StandardIO(control, reactor=reactor)
    deadline = reactor.callLater(args.max_seconds, finish)
    control.send({"id": 0, "ready": True, "pid": os.getpid(), "nofile_soft": soft,
                  "nofile_hard": hard, "rss": swarm.rss_start})

    def cleanup(result):
        if deadline.active():
            deadline.cancel()
        return result

    return done.addBoth(cleanup)


if __name__ == "__main__":
    task.react(main, (sys.argv[1:],))
