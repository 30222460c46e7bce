"""Benchmark of CloudHub under a swarm of simulated edges (issue 3, "Benchmark").

Run from the repository root inside the virtualenv::

    .venv/bin/python bench/hub_bench.py [--nodes N] [--swarms K] [--steady-seconds S] [--quick]

What runs (bench/README.md rules: figures are printed, never judged; loopback only):

* one **cloud process** (``bench/_hub_cloud.py``): a ``Bus`` and a real ``CloudHub`` as
  ``create_cloudhub`` builds them — ``tls.server_options`` (mutual TLS), an
  ``SSL4ServerEndpoint`` on 127.0.0.1 and a free port, keepalive interval 30 s, node limit
  >= N, production's info-level log (to a file) — plus a sink module in the
  ``edgecontroller`` group that counts what CloudHub forwards. The swarm shares one
  client certificate, so the hub runs with ``allowAnyNodeCert: true``;
* ``K`` **swarm processes** (``bench/_hub_swarm.py``), each holding its share of N TLS
  websockets that behave like v1.15 edges: headers ``node_id``/``project_id``/
  ``ConnectionUse``, path ``/<project>/<node>/events``, a keepalive every 15 s at a random
  phase, an ACK for every message that needs one;
* this **orchestrator**, which drives both over JSON lines on their stdin/stdout.

Phases and figures: the connect ramp (at most ``--inflight`` TLS+websocket handshakes in
flight in total; ramp rate, handshake time percentiles); cloud RSS idle and with N
connections, and per connection; cloud CPU over a keepalive-only window of
``--steady-seconds``; fan-out of one pod ``update`` to every connected node
(``--fanouts`` rounds; delivery latency percentiles measured in the swarm from the
cloud's send time); throughput of one connection sending ``update`` on
``default/podstatus/<tag>`` as fast as its transport takes them for
``--throughput-seconds``, and a bounded burst of ``--burst`` such messages from every
connection, each twice: with the sink's inbox at ``--sink-queue`` (1024, a module's
default: what gets through when CloudHub answers a full inbox with "cloud is busy") and
with an inbox too big to fill (what CloudHub itself ingests); swarm RSS per connection;
the cloud's garbage-collector pauses. ``--backlog`` changes the listen backlog (default
50, what ``create_cloudhub`` gets); ``--profile`` prints a cProfile of one more fan-out.

Bounded: every wait has a time limit and the whole run a deadline (``--deadline``, 600 s);
phases that no longer fit are skipped and say so. All child processes are stopped by
PID on exit, error or Ctrl-C. Exit status 0 means the benchmark ran; 1 that it could not
run at all (no cloud, no connection) or was interrupted.
"""

import argparse
import json
import math
import os
import platform
import resource
import select
import signal
import subprocess
import sys
import tempfile
import time

# Measure the working tree, not whatever copy of the package is installed.
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))
from _common import BenchError, Figures, percentile, say, say_tail  # noqa: E402

import psutil  # noqa: E402
import twisted  # noqa: E402

from kubeedge_tw.common import tls  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT_CERT_NAME = "bench-swarm"
#: File descriptors a process needs beyond its connections (stdio, logs, listening port...).
FD_MARGIN = 100
#: Real KubeEdge cloudcore v1.15.4, measured on this kind of machine (issue 3).
CLOUDCORE_KB_PER_NODE = 300
#: Sink inbox bound for the second throughput pass: more than any burst here can fill.
BIG_INBOX = 10_000_000


class Child:
    """A helper process driven over JSON lines on its stdin/stdout; stderr to a file."""

    def __init__(self, name, argv, log_path):
        self.name = name
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._log, bufsize=0, close_fds=True)
        self.pid = self.proc.pid
        self._buffer = b""
        self._next_id = 0

    def _read_reply(self, deadline):
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BenchError("{} (pid {}) did not answer in time".format(self.name,
                                                                            self.pid))
            ready, _, _ = select.select([self.proc.stdout], [], [], remaining)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 1 << 20)
                if not chunk:
                    raise BenchError("{} (pid {}) exited (status {}); its log: {}".format(
                        self.name, self.pid, self.proc.poll(), self.log_path))
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def ready(self, timeout):
        """The process's first line (``id`` 0)."""
        reply = self._read_reply(time.monotonic() + timeout)
        if not reply.get("ready"):
            raise BenchError("{} did not start: {}".format(self.name, reply.get("error")))
        return reply

    def send(self, cmd, **fields):
        """Send one command; returns its id for :meth:`wait`."""
        self._next_id += 1
        fields.update(cmd=cmd, id=self._next_id)
        try:
            self.proc.stdin.write(json.dumps(fields).encode() + b"\n")
        except BrokenPipeError:
            raise BenchError("{} (pid {}) is gone; its log: {}".format(
                self.name, self.pid, self.log_path)) from None
        return self._next_id

    def wait(self, request_id, timeout=30):
        """The reply to ``request_id``; raises :class:`BenchError` on error or timeout."""
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read_reply(deadline)
            if reply.get("id") == request_id:
                if "error" in reply:
                    raise BenchError("{}: {}".format(self.name, reply["error"]))
                return reply

    def call(self, cmd, timeout=30, **fields):
        """Send a command and wait for its reply."""
        return self.wait(self.send(cmd, **fields), timeout)

    def stop(self, timeout=20):
        """``quit``, then SIGTERM, then SIGKILL, each to this PID only."""
        if self.proc.poll() is None:
            try:
                self.send("quit")
                self.proc.stdin.close()
            except (BenchError, OSError):
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.terminate()
                try:
                    self.proc.wait(5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(5)
        self._log.close()


def raise_nofile():
    """Soft RLIMIT_NOFILE up to the hard limit; returns (soft, hard) after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def local_port_count():
    """How many ephemeral ports the kernel hands out (connections to one address:port)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(x) for x in f.read().split())
        return high - low + 1
    except (OSError, ValueError):
        return None


def listen_overflows():
    """The kernel's TcpExt ListenOverflows counter (system-wide), or None."""
    try:
        with open("/proc/net/netstat") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for names_line, values_line in zip(lines[::2], lines[1::2]):
        if names_line.startswith("TcpExt:"):
            fields = dict(zip(names_line.split()[1:], values_line.split()[1:]))
            return int(fields.get("ListenOverflows", 0))
    return None


def parse_args(argv):
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=10000,
                        help="simulated edges (connections) (default 10000)")
    parser.add_argument("--swarms", type=int, default=2,
                        help="swarm processes holding the connections (default 2)")
    parser.add_argument("--steady-seconds", type=float, default=30.0,
                        help="keepalive-only window for the CPU figure (default 30)")
    parser.add_argument("--inflight", type=int, default=200,
                        help="handshakes in flight at once, over all swarms (default 200)")
    parser.add_argument("--fanouts", type=int, default=3,
                        help="fan-out rounds (default 3)")
    parser.add_argument("--throughput-seconds", type=float, default=5.0,
                        help="how long one connection sends as fast as it can (default 5)")
    parser.add_argument("--burst", type=int, default=5,
                        help="messages every connection sends in the all-connections "
                             "burst (default 5)")
    parser.add_argument("--sink-queue", type=int, default=1024,
                        help="inbox bound of the edgecontroller stand-in (default 1024, "
                             "a module's default, beehive's channel depth)")
    parser.add_argument("--backlog", type=int, default=1024,
                        help="listen backlog of the cloud's endpoint (default 1024: "
                             "create_cloudhub's LISTEN_BACKLOG)")
    parser.add_argument("--edge-ping", action="store_true",
                        help="edges also send websocket pings every 15 s, as our EdgeHub "
                             "does (a v1.15 edge does not)")
    parser.add_argument("--profile", action="store_true",
                        help="after the measurements, run one more fan-out round with "
                             "cProfile on in the cloud and print its top functions")
    parser.add_argument("--profile-top", type=int, default=20,
                        help="how many functions --profile prints per ordering (default 20)")
    parser.add_argument("--deadline", type=float, default=600.0,
                        help="wall-clock bound of the whole run in seconds (default 600)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 500 nodes, 5 s steady window")
    args = parser.parse_args(argv)
    if args.quick:
        args.nodes, args.steady_seconds = 500, 5.0
    if (args.nodes < 1 or args.swarms < 1 or args.steady_seconds <= 0 or args.inflight < 1
            or args.fanouts < 0 or args.throughput_seconds <= 0 or args.burst < 0
            or args.sink_queue < 1 or args.deadline < 60):
        parser.error("--nodes, --swarms, --inflight, --sink-queue must be >= 1, "
                     "--steady-seconds and --throughput-seconds > 0, --fanouts and --burst "
                     ">= 0, --deadline >= 60")
    args.swarms = min(args.swarms, args.nodes)
    return args


def machine_cpu():
    """System-wide CPU seconds: (busy, steal). Busy leaves out idle, iowait and steal."""
    t = psutil.cpu_times()
    busy = t.user + t.nice + t.system + getattr(t, "irq", 0) + getattr(t, "softirq", 0)
    return busy, getattr(t, "steal", 0.0)


class Bench:
    """One run: the children, the deadline and the figures."""

    def __init__(self, args):
        self.args = args
        self.figures = Figures()
        self.start = time.monotonic()
        self.deadline = self.start + args.deadline
        self.cloud = None
        self.swarms = []
        self.summary = {}

    def left(self):
        """Seconds before the global deadline."""
        return self.deadline - time.monotonic()

    def fits(self, seconds, phase):
        """Whether a phase needing ``seconds`` fits before the deadline (says so if not)."""
        if self.left() - 45 >= seconds:  # 45 s kept for teardown
            return True
        say("skipped {}: {:.0f} s left before the {:.0f} s deadline".format(
            phase, self.left(), self.args.deadline))
        return False

    # -- set-up -----------------------------------------------------------------------------

    def plan(self):
        """Check limits, maybe reduce N; returns the N to run."""
        args = self.args
        soft, hard = raise_nofile()
        say("RLIMIT_NOFILE here: soft {} hard {} (soft raised to hard in every process)"
            .format(soft, hard))
        nodes = args.nodes
        # The cloud holds every connection; a swarm only its share, so it always fits.
        if hard < nodes + FD_MARGIN:
            reduced = max(1, hard - FD_MARGIN)
            say("REDUCED N: the hard RLIMIT_NOFILE {} is too low for {} connections in "
                "the cloud process (needs {} + {}); running N = {}".format(
                    hard, nodes, nodes, FD_MARGIN, reduced))
            nodes = reduced
        ports = local_port_count()
        if ports is not None and nodes > ports - 1000:
            reduced = max(1, ports - 1000)
            say("REDUCED N: only {} ephemeral ports (ip_local_port_range) for {} "
                "connections to one address; running N = {}".format(ports, nodes, reduced))
            nodes = reduced
        return nodes

    def start_children(self, nodes, tmp):
        args = self.args
        pki = tls.write_test_pki(tmp, node_names=(CLIENT_CERT_NAME,),
                                 server_ips=("127.0.0.1",), server_dns=("localhost",))
        python = sys.executable
        child_seconds = str(int(args.deadline + 60))
        self.cloud = Child("cloud", [
            python, os.path.join(HERE, "_hub_cloud.py"), "--ca", pki["ca"],
            "--cert", pki["server_cert"], "--key", pki["server_key"],
            "--node-limit", str(nodes + 100), "--keepalive-interval", "30",
            "--sink-queue", str(args.sink_queue), "--backlog", str(args.backlog),
            "--log-file", os.path.join(tmp, "cloud.log"),
            "--max-seconds", child_seconds], os.path.join(tmp, "cloud.stderr"))
        ready = self.cloud.ready(60)
        self.port = ready["port"]
        say("cloud process pid {}: CloudHub on wss://127.0.0.1:{} ({}), node limit {}, "
            "keepalive interval 30 s, allowAnyNodeCert: true (the swarm shares one client "
            "certificate, CN {}), listen backlog {}, RLIMIT_NOFILE {}/{}, sink inbox {}"
            .format(
                ready["pid"], self.port, ready["reactor"], nodes + 100, CLIENT_CERT_NAME,
                args.backlog, ready["nofile_soft"], ready["nofile_hard"], args.sink_queue))
        share, first = [], 0
        for k in range(args.swarms):
            count = nodes // args.swarms + (1 if k < nodes % args.swarms else 0)
            share.append((first, count))
            first += count
        for k, (first, count) in enumerate(share):
            argv = [python, os.path.join(HERE, "_hub_swarm.py"), "--ca", pki["ca"],
                    "--cert", pki[CLIENT_CERT_NAME + "_cert"],
                    "--key", pki[CLIENT_CERT_NAME + "_key"], "--port", str(self.port),
                    "--first", str(first), "--count", str(count), "--keepalive", "15",
                    "--max-seconds", child_seconds]
            if args.edge_ping:
                argv.append("--edge-ping")
            self.swarms.append(Child("swarm{}".format(k), argv,
                                     os.path.join(tmp, "swarm{}.stderr".format(k))))
        for k, swarm in enumerate(self.swarms):
            ready = swarm.ready(60)
            say("swarm{} pid {}: nodes bench-{}..bench-{} ({}), RLIMIT_NOFILE {}/{}".format(
                k, ready["pid"], share[k][0], share[k][0] + share[k][1] - 1, share[k][1],
                ready["nofile_soft"], ready["nofile_hard"]))
        return pki

    def stop_children(self):
        for child in self.swarms + ([self.cloud] if self.cloud else []):
            try:
                child.stop()
            except Exception as e:  # keep stopping the others; say what went wrong
                say("stopping {} (pid {}): {}".format(child.name, child.pid, e))

    def swarm_cpu(self):
        """CPU seconds (user + system) used by all swarm processes so far."""
        return sum(s["cpu_user"] + s["cpu_system"] for s in self.all_swarms("status"))

    def all_swarms(self, cmd, timeout=30, **fields):
        """Send ``cmd`` to every swarm first, then collect the replies."""
        ids = [(s, s.send(cmd, **fields)) for s in self.swarms]
        return [s.wait(i, timeout) for s, i in ids]

    # -- phases -----------------------------------------------------------------------------

    def ramp(self, nodes):
        """Open N connections; returns how many are held."""
        fig, args = self.figures, self.args
        per_swarm = max(1, math.ceil(args.inflight / len(self.swarms)))
        budget = min(360.0, self.left() - 150)
        say("ramp: {} connections, at most {} handshakes in flight per swarm ({} in total), "
            "time limit {:.0f} s".format(nodes, per_swarm, per_swarm * len(self.swarms),
                                         budget))
        cpu0 = self.cloud.call("status")
        swarm_cpu0 = self.swarm_cpu()
        overflows0 = listen_overflows()
        t0 = time.monotonic()
        self.all_swarms("ramp", inflight=per_swarm)
        last_report = t0
        last_progress, last_done = t0, 0
        stalled = False
        while True:
            time.sleep(0.5)
            states = self.all_swarms("status")
            done = sum(s["opened"] + s["failed"] for s in states)
            now = time.monotonic()
            if done != last_done:
                last_progress, last_done = now, done
            if done >= nodes:
                break
            if now - t0 > budget:
                say("ramp stopped at its time limit with {} of {} attempts finished".format(
                    done, nodes))
                stalled = True
                break
            if now - last_progress > 60:
                say("ramp stopped: no attempt finished for 60 s ({} of {})".format(
                    done, nodes))
                stalled = True
                break
            if now - last_report >= 5:
                status = self.cloud.call("status")
                say("ramp {:.0f} s: {} open, {} failed, cloud holds {}".format(
                    now - t0, sum(s["opened"] for s in states),
                    sum(s["failed"] for s in states), status["connected"]))
                last_report = now
        cpu1 = self.cloud.call("status")
        swarm_cpu1 = self.swarm_cpu()
        overflows1 = listen_overflows()
        opened = sum(s["opened"] for s in states)
        failed = sum(s["failed"] for s in states)
        starts = [s["ramp_start"] for s in states if s["ramp_start"]]
        ends = [s["ramp_last_open"] for s in states if s["ramp_last_open"]]
        handshakes = sorted(x for h in self.all_swarms("handshakes") for x in h["seconds"])
        if not opened:
            raise BenchError("no connection opened: {}".format(
                [s["fail_reasons"] for s in states]))
        ramp_seconds = max(ends) - min(starts)
        fig.add("connections_opened", opened, "conn", "of {} attempted{}".format(
            nodes, ", ramp cut short" if stalled else ""))
        fig.add("connect_failures", failed, "conn")
        for s in states:
            if s["fail_reasons"]:
                say("failure reasons: {}".format(s["fail_reasons"]))
        fig.add("connect_ramp_time", ramp_seconds, "s")
        fig.add("connect_ramp_rate", opened / ramp_seconds if ramp_seconds > 0 else 0.0,
                "conn/s", "TCP + TLS 1.2+ mutual auth + websocket upgrade, {} in flight".format(
                    per_swarm * len(self.swarms)))
        for name, fraction in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0)):
            fig.add("handshake_time_" + name, percentile(handshakes, fraction) * 1000, "ms")
        if overflows0 is not None and overflows1 is not None:
            fig.add("listen_queue_overflows", overflows1 - overflows0, "SYNs",
                    "kernel ListenOverflows during the ramp (system-wide counter); each "
                    "costs the edge a >= 1 s SYN retransmit; listen backlog {}".format(
                        args.backlog))
        fig.add("cloud_cpu_during_ramp", 100 * ((cpu1["cpu_user"] + cpu1["cpu_system"])
                                                - (cpu0["cpu_user"] + cpu0["cpu_system"]))
                / max(1e-9, cpu1["now"] - cpu0["now"]), "% of one core")
        fig.add("swarm_cpu_during_ramp", 100 * (swarm_cpu1 - swarm_cpu0)
                / max(1e-9, cpu1["now"] - cpu0["now"]), "% of one core",
                "all swarm processes together; the machine has {} cores".format(
                    os.cpu_count()))
        return opened

    def memory_and_steady(self, nodes, rss_idle):
        """Cloud RSS with N connections and CPU during a keepalive-only window."""
        fig, args = self.figures, self.args
        time.sleep(3)  # let the ramp's tail (connected events, log lines) drain
        status = self.cloud.call("status")
        held = status["connected"]
        fig.add("connections_held", held, "conn", "target 10000")
        fig.add("cloud_rss_idle", rss_idle / 2**20, "MiB", "before any connection")
        fig.add("cloud_rss_connected", status["rss"] / 2**20, "MiB",
                "{} connections, right after the ramp".format(held))
        fig.add("cloud_fds", status["num_fds"], "fds")
        if not self.fits(args.steady_seconds + 5, "the steady window"):
            return held, status
        say("steady window: {:.0f} s of keepalives only ({} edges x 1 per 15 s, "
            "CloudHub websocket ping every 30 s)".format(args.steady_seconds, held))
        swarm0 = self.all_swarms("status")
        c0 = self.cloud.call("status")
        busy0 = machine_cpu()[0]
        time.sleep(args.steady_seconds)
        busy1 = machine_cpu()[0]
        c1 = self.cloud.call("status")
        swarm1 = self.all_swarms("status")
        wall = c1["now"] - c0["now"]
        cpu = (c1["cpu_user"] + c1["cpu_system"]) - (c0["cpu_user"] + c0["cpu_system"])
        keepalives = (sum(s["keepalives_sent"] for s in swarm1)
                      - sum(s["keepalives_sent"] for s in swarm0))
        fig.add("cloud_steady_cpu", 100 * cpu / wall, "% of one core",
                "target <= 50 %; over {:.1f} s, user {:.2f} s + sys {:.2f} s".format(
                    wall, c1["cpu_user"] - c0["cpu_user"],
                    c1["cpu_system"] - c0["cpu_system"]))
        swarm_cpu = (sum(s["cpu_user"] + s["cpu_system"] for s in swarm1)
                     - sum(s["cpu_user"] + s["cpu_system"] for s in swarm0))
        say("steady window: swarm CPU {:.1f} %, other processes {:.1f} % of one core".format(
            100 * swarm_cpu / wall, 100 * max(0.0, busy1 - busy0 - cpu - swarm_cpu) / wall))
        fig.add("keepalives_in_window", keepalives / wall, "msgs/s",
                "{} keepalives sent by the swarm".format(keepalives))
        fig.add("connections_held_after_window", c1["connected"], "conn")
        lost = sum(s["closed_after_open"] for s in swarm1)
        if lost:
            say("connections lost so far: {}; reasons: {}".format(
                lost, [s["close_reasons"] for s in swarm1]))
        fig.add("cloud_rss_steady", c1["rss"] / 2**20, "MiB",
                "after the window, {} connections".format(c1["connected"]))
        return c1["connected"], c1

    def fanout(self):
        """One pod update to every connected node, ``--fanouts`` times."""
        fig = self.figures
        all_latencies, per_round = [], []
        sent_total = delivered_total = duplicates = 0
        for seq in range(1, self.args.fanouts + 1):
            if not self.fits(40, "fan-out round {}".format(seq)):
                break
            c0 = self.cloud.call("status")
            swarm_cpu0 = self.swarm_cpu()
            busy0 = machine_cpu()[0]
            reply = self.cloud.call("fanout", seq=seq, timeout=60)
            sent = reply["sent"]
            wait_until = time.monotonic() + 30
            delivered = 0
            while time.monotonic() < wait_until:
                delivered = sum(r["count"] for r in self.all_swarms("fanout_report", seq=seq))
                if delivered >= sent:
                    break
                time.sleep(0.2)
            c1 = self.cloud.call("status")
            swarm_cpu = self.swarm_cpu() - swarm_cpu0
            busy = machine_cpu()[0] - busy0
            reports = self.all_swarms("fanout_report", seq=seq, latencies=True)
            latencies = sorted(x for r in reports for x in r["seconds"])
            duplicates += sum(r["duplicates"] for r in reports)
            sent_total += sent
            delivered_total += len(latencies)
            all_latencies.extend(latencies)
            cpu = (c1["cpu_user"] + c1["cpu_system"]) - (c0["cpu_user"] + c0["cpu_system"])
            per_round.append((seq, sent, len(latencies), percentile(latencies, 0.99),
                              percentile(latencies, 1.0), reply["loop_seconds"],
                              reply["refused"], cpu))
            full_gcs = c1["gc"]["2"][0] - c0["gc"]["2"][0]
            say("fan-out round {}: sent {} (refused by the hub inbox {}), delivered {}, "
                "p99 {:.0f} ms, max {:.0f} ms, bus.send loop {:.0f} ms, cloud CPU {:.2f} s "
                "(full GCs {}: {:.0f} ms), swarm CPU {:.2f} s, other processes {:.2f} s over "
                "{:.1f} s".format(
                    seq, sent, reply["refused"], len(latencies),
                    percentile(latencies, 0.99) * 1000, percentile(latencies, 1.0) * 1000,
                    reply["loop_seconds"] * 1000, cpu, full_gcs,
                    (c1["gc"]["2"][1] - c0["gc"]["2"][1]) * 1000, swarm_cpu,
                    max(0.0, busy - cpu - swarm_cpu), c1["now"] - c0["now"]))
            # Let ACKs settle so rounds do not overlap.
            settle = time.monotonic() + 10
            while time.monotonic() < settle:
                sessions = self.cloud.call("sessions", timeout=30)["sessions"]
                if not sessions.get("awaiting_ack") and not sessions.get("queued"):
                    break
                time.sleep(0.2)
        if not per_round:
            return
        all_latencies.sort()
        fig.add("fanout_delivered", delivered_total, "msgs",
                "of {} sent in {} round(s) to every connected node".format(
                    sent_total, len(per_round)))
        for name, fraction in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0)):
            fig.add("fanout_latency_" + name, percentile(all_latencies, fraction) * 1000, "ms",
                    "target p99 <= 2000 ms" if name == "p99" else "")
        first = per_round[0]
        fig.add("fanout_first_round_p99", first[3] * 1000, "ms",
                "{} nodes".format(first[1]))
        fig.add("fanout_cloud_send_loop", sum(r[5] for r in per_round) / len(per_round) * 1000,
                "ms", "mean time of the bus.send loop over all nodes")
        fig.add("fanout_cloud_cpu_per_round", sum(r[7] for r in per_round) / len(per_round),
                "s")
        fig.add("fanout_resent_copies", duplicates, "msgs", "ACK-timeout resends seen by edges")
        sessions = self.cloud.call("sessions", timeout=30)["sessions"]
        say("cloud sessions after fan-out: {}".format(sessions))

    def throughput(self):
        """Both throughput measurements, first with the sink's inbox at ``--sink-queue``
        (what a module's default lets through), then with an inbox too big to fill (what
        CloudHub itself ingests)."""
        for suffix, size in (("", self.args.sink_queue), ("_big_inbox", BIG_INBOX)):
            self.cloud.call("sink_queue", size=size)
            say("throughput with the sink's inbox bound at {}".format(size))
            self.throughput_one(suffix, size)
            self.throughput_all(suffix, size)
        self.cloud.call("sink_queue", size=self.args.sink_queue)

    def throughput_one(self, suffix, inbox):
        """One connection sending updates as fast as its transport takes them."""
        fig, args = self.figures, self.args
        if not self.fits(args.throughput_seconds + 30, "single-connection throughput"):
            return
        tag = "single" + suffix.replace("_", "-")
        swarm = self.swarms[0]
        node = swarm.call("send_one", tag=tag, seconds=args.throughput_seconds)["node"]
        until = time.monotonic() + args.throughput_seconds + 20
        report = None
        while time.monotonic() < until:
            report = swarm.call("send_one_report", tag=tag)
            if report["done"]:
                break
            time.sleep(0.2)
        sink = self.wait_sink(tag, report["sent"], 20)
        errors = swarm.call("errors")["errors"].get("error " + tag, 0)
        count, first, last = sink["by_tag"].get(tag, [0, 0, 0])
        offered = report["sent"] / max(1e-9, (report["end"] or time.monotonic())
                                       - report["start"])
        fig.add("one_connection_sent" + suffix, offered, "msgs/s",
                "{} updates from {} in {:.1f} s, its transport paused it {} times".format(
                    report["sent"], node, args.throughput_seconds, report["pauses"]))
        fig.add("one_connection_throughput" + suffix, count / max(1e-9, last - first),
                "msgs/s", "received by the sink (inbox {}): {} of {} in {:.2f} s".format(
                    inbox, count, report["sent"], last - first))
        fig.add("one_connection_refused" + suffix, errors, "msgs", "answered 'cloud is busy'")

    def throughput_all(self, suffix, inbox):
        """Every connection sends ``--burst`` updates at once."""
        fig, args = self.figures, self.args
        if not args.burst or not self.fits(60, "all-connections burst"):
            return
        tag = "burst" + suffix.replace("_", "-")
        before = self.cloud.call("sink")["stats"]
        replies = self.all_swarms("burst", tag=tag, count=args.burst)
        connections = sum(r["connections"] for r in replies)
        until = time.monotonic() + 30
        reports = []
        while time.monotonic() < until:
            reports = self.all_swarms("burst_report", tag=tag)
            if all(r["end"] for r in reports):
                break
            time.sleep(0.2)
        sent = sum(r["sent"] for r in reports)
        sink = self.wait_sink(tag, sent, 40)
        errors = sum(e["errors"].get("error " + tag, 0) for e in self.all_swarms("errors"))
        count, first, last = sink["by_tag"].get(tag, [0, 0, 0])
        send_span = max(r["end"] or 0 for r in reports) - min(r["start"] for r in reports)
        fig.add("all_connections_sent" + suffix, sent / max(1e-9, send_span), "msgs/s",
                "{} updates, {} from each of {} connections, written in {:.2f} s".format(
                    sent, args.burst, connections, send_span))
        fig.add("all_connections_throughput" + suffix, count / max(1e-9, last - first),
                "msgs/s", "received by the sink (inbox {}): {} of {} in {:.2f} s".format(
                    inbox, count, sent, last - first))
        fig.add("all_connections_refused" + suffix, errors, "msgs",
                "answered 'cloud is busy'; the sink refused {}".format(
                    sink["stats"]["refused"] - before["refused"]))

    def wait_sink(self, tag, expected, timeout):
        """Poll the sink until ``expected`` messages of ``tag`` arrived or answered with an
        error, or nothing changed for 3 s, or ``timeout``."""
        until = time.monotonic() + timeout
        last_count, last_change = -1, time.monotonic()
        while True:
            sink = self.cloud.call("sink")
            errors = sum(e["errors"].get("error " + tag, 0) for e in self.all_swarms("errors"))
            count = sink["by_tag"].get(tag, [0])[0]
            now = time.monotonic()
            if count != last_count:
                last_count, last_change = count, now
            if count + errors >= expected or now - last_change > 3 or now > until:
                return sink
            time.sleep(0.2)

    def profile(self):
        """One more fan-out round with cProfile on in the cloud; prints its top functions."""
        if not self.args.profile or not self.fits(60, "the profiled fan-out"):
            return
        seq = self.args.fanouts + 1
        self.cloud.call("profile_start")
        sent = self.cloud.call("fanout", seq=seq, timeout=60)["sent"]
        until = time.monotonic() + 40
        while time.monotonic() < until:
            if sum(r["count"] for r in self.all_swarms("fanout_report", seq=seq)) >= sent:
                break
            time.sleep(0.2)
        time.sleep(1)  # the last ACKs
        text = self.cloud.call("profile_stop", top=self.args.profile_top, timeout=60)["text"]
        say("cloud profile of one fan-out to {} nodes (cProfile on; not a timed figure):"
            .format(sent))
        prefixes = sorted({os.path.dirname(twisted.__path__[0]) + os.sep,
                           os.path.dirname(os.__file__) + os.sep,
                           os.path.dirname(HERE) + os.sep}, key=len, reverse=True)
        for line in text.splitlines():
            for prefix in prefixes:
                line = line.replace(prefix, "")
            if line.strip():
                say("  " + line)

    def contention(self, machine0, own0, cloud_status):
        """CPU the rest of the machine used meanwhile: the figures above assume the two
        cores were ours."""
        (busy1, steal1), own1 = machine_cpu(), psutil.Process().cpu_times()
        wall = time.monotonic() - self.start
        ours = (cloud_status["cpu_user"] + cloud_status["cpu_system"] + self.swarm_cpu()
                + (own1.user + own1.system) - (own0.user + own0.system))
        others = (busy1 - machine0[0]) - ours
        self.figures.add("other_processes_cpu", 100 * max(0.0, others) / wall,
                         "% of one core", "CPU used outside this benchmark during the run, "
                         "mean over {:.0f} s; steal {:.1f} s; load average now {}".format(
                             wall, steal1 - machine0[1],
                             "/".join("{:.2f}".format(x) for x in os.getloadavg())))

    def swarm_memory(self):
        states = self.all_swarms("status")
        held = sum(s["open_now"] for s in states)
        grown = sum(s["rss"] - s["rss_start"] for s in states)
        self.figures.add("swarm_rss_per_connection", grown / max(1, held) / 1024, "KB",
                         "informational; {} swarm processes, {:.0f} MiB in total".format(
                             len(states), sum(s["rss"] for s in states) / 2**20))
        cpu = sum(s["cpu_user"] + s["cpu_system"] for s in states)
        self.figures.add("swarm_cpu_total", cpu, "s")

    # -- the run ----------------------------------------------------------------------------

    def run(self):
        args, fig = self.args, self.figures
        print("machine: {} cpus, {} {}, Python {} ({}), Twisted {}".format(
            os.cpu_count(), platform.system(), platform.machine(), platform.python_version(),
            platform.python_implementation(), twisted.__version__), flush=True)
        nodes = self.plan()
        machine0, own0 = machine_cpu(), psutil.Process().cpu_times()
        print("settings: nodes {}{}, swarms {}, handshakes in flight {}, steady window {:.0f} "
              "s, fan-out rounds {}, one-connection send {:.0f} s, burst {} per connection, "
              "deadline {:.0f} s{}".format(
                  nodes, " (asked {})".format(args.nodes) if nodes != args.nodes else "",
                  args.swarms, args.inflight, args.steady_seconds, args.fanouts,
                  args.throughput_seconds, args.burst, args.deadline,
                  ", edges send websocket pings" if args.edge_ping else ""), flush=True)
        say("processes: 1 cloud + {} swarm on {} cores; the swarm competes with the cloud "
            "for CPU, so latency and throughput figures include the edges' own work".format(
                args.swarms, os.cpu_count()))
        with tempfile.TemporaryDirectory(prefix="hub-bench-") as tmp:
            try:
                self.start_children(nodes, tmp)
                time.sleep(1)
                rss_idle = self.cloud.call("status")["rss"]
                opened = self.ramp(nodes)
                held, status = self.memory_and_steady(nodes, rss_idle)
                if held:
                    per_conn = (status["rss"] - rss_idle) / held / 1024
                    fig.add("cloud_rss_per_connection", per_conn, "KB",
                            "target <= 100 KB; real cloudcore v1.15.4 ~{} KB".format(
                                CLOUDCORE_KB_PER_NODE))
                self.fanout()
                self.throughput()
                self.swarm_memory()
                final = self.cloud.call("status", objects=True)
                self.contention(machine0, own0, final)
                fig.add("cloud_rss_end", final["rss"] / 2**20, "MiB",
                        "at the end, after the bursts")
                fig.add("cloud_cpu_total", final["cpu_user"] + final["cpu_system"], "s")
                gen2 = final["gc"]["2"]
                fig.add("cloud_gc_full_collections", gen2[0], "collections",
                        "{} objects tracked at the end".format(final["gc_objects"]))
                fig.add("cloud_gc_full_max_pause", gen2[2] * 1000, "ms",
                        "a full collection stops the reactor for this long")
                fig.add("cloud_gc_total_pause", sum(v[1] for v in final["gc"].values()), "s",
                        "all generations")
                say("cloud: {} objects frozen out of the collector's sight; long-lived "
                    "freezer {}; encoder {}".format(final["gc_frozen"], final["long_lived"],
                                                   final["encoder"]))
                self.profile()
                if opened < args.nodes:
                    say("held fewer connections than asked ({} of {}); see the lines above "
                        "for what limited it".format(opened, args.nodes))
            except Exception as e:  # BenchError, or a bug: report it, keep what was measured
                say("benchmark stopped: {}: {}".format(type(e).__name__, e))
                for child in [self.cloud] + self.swarms:
                    if child is not None:
                        say_tail(child.log_path)
                if not fig.values.get("connections_opened"):
                    self.stop_children()
                    return 1
            finally:
                self.stop_children()
                self._log_summary(os.path.join(tmp, "cloud.log"))
        fig.add("wall_time", time.monotonic() - self.start, "s")
        print(json.dumps({"bench": "hub", "nodes": nodes, "swarms": args.swarms,
                          "figures": fig.values}, sort_keys=True), flush=True)
        return 0

    @staticmethod
    def _log_summary(path):
        """How many cloud log lines of each level, so warnings are not missed."""
        counts = {}
        try:
            with open(path, errors="replace") as f:
                for line in f:
                    start = line.find("#")
                    end = line.find("]", start)
                    if start != -1 and end != -1:
                        level = line[start + 1:end]
                        counts[level] = counts.get(level, 0) + 1
        except OSError:
            return
        say("cloud log lines by level: {}".format(counts))


def main(argv):
    """Run the benchmark; exit status 0 when it ran."""
    args = parse_args(argv)

    def terminated(signum, frame):
        raise KeyboardInterrupt("signal {}".format(signum))

    signal.signal(signal.SIGTERM, terminated)
    bench = Bench(args)
    try:
        return bench.run()
    except KeyboardInterrupt:
        say("interrupted; stopping the child processes")
        bench.stop_children()
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
