"""Benchmark of EventBus + DeviceTwin + sqlite under a mapper (issue 9, "Benchmark").

Run from the repository root inside the virtualenv::

    .venv/bin/python bench/twin_bench.py [--devices N] [--latency-updates N]
                                         [--throughput-seconds S] [--window W] [--mosquitto]

What runs (bench/README.md rules: figures are printed, never judged; loopback only):

* an **edge process** (this file with ``--edge-child``): the edge's real module factories
  (``create_eventbus`` in ``mqttMode`` 0 -- or 2 against a mosquitto this script starts
  with ``--mosquitto`` -- and ``create_devicetwin`` with its adbapi pool on a fresh
  ``edgecore.db``), plus a sink in the place of EdgeHub (module ``websocket``) that notes
  when each ``device/<id>/twin/edge_updated`` report arrives. The cloud adds ``--devices``
  devices with one int twin ``v`` at start-up;
* this **mapper**: one paho-mqtt client (its own network thread) that reports values with
  QoS 1 on ``$hw/events/device/<id>/twin/update`` and listens to ``update/result``.

Figures: twin update -> update/result latency p50/p99 (one update in flight at a time,
``--latency-updates`` of them, round-robin over the devices); sustained updates/s with up
to ``--window`` updates in flight for ``--throughput-seconds``; report -> ``edge_updated``
at the EdgeHub sink latency p50/p99 (edge-local; the issue's "reported -> Device status at
the cloud" needs the cloud DeviceController, which does not exist yet, and is printed as
not measured); the store's commits per update (group commit); edge process CPU and RSS.

Bounded: every wait has a limit; the edge (and mosquitto) are stopped by PID on exit.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

DEVICE_TOPIC = "$hw/events/device/bench-{}/twin/update"


def percentile(values, fraction):
    """The ``fraction`` percentile (nearest rank) of ``values``."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(fraction * len(ordered))) - 1))]


def free_port():
    """A free TCP port on 127.0.0.1."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the edge process -------------------------------------------------------------------------

def edge_child(args):
    """Run the edge until stdin closes; print one JSON line of figures at the end."""
    from twisted.internet import reactor, stdio
    from twisted.protocols.basic import LineReceiver

    from kubeedge_tw.common import message as m
    from kubeedge_tw.common import names
    from kubeedge_tw.common.config import EDGE, default_config
    from kubeedge_tw.common.core import build_core
    from kubeedge_tw.common.module import Module
    from kubeedge_tw.edge import tap

    class Sink(Module):
        """EdgeHub's place: note when each edge_updated report arrives."""

        name, group = names.EDGEHUB, names.HUB_GROUP
        queue_size = 1_000_000

        def __init__(self, clock):
            super().__init__(clock)
            self.arrivals = {}

        def handle(self, message):
            if message.resource.endswith("/twin/edge_updated"):
                value = message.content["twin"]["v"].get("actual", {}).get("value")
                if value is not None:
                    self.arrivals.setdefault(value, time.time())

    config = default_config(EDGE, overrides={
        "stateDir": args.state, "modules.edged.hostnameOverride": "bench-node",
        "modules.edgeHub.enable": False, "modules.metaManager.enable": False,
        "modules.edged.enable": False, "modules.serviceBus.enable": False,
        "modules.eventBus.mqttMode": 2 if args.external else 0, "modules.eventBus.mqttQOS": 1,
        "modules.eventBus.mqttSessionQueueSize": 100000,
        "modules.eventBus.mqttServerInternal": "tcp://127.0.0.1:{}".format(args.port),
        "modules.eventBus.mqttServerExternal": "tcp://127.0.0.1:{}".format(args.port)})
    core = build_core("kubeedge-edge", reactor, config, tap.EDGE_MODULE_SPECS)
    sink = core.add_module(Sink(reactor))
    twin = core.bus.module(names.DEVICETWIN)
    twin.queue_size = 100000
    eventbus = core.bus.module(names.EVENTBUS)
    eventbus.queue_size = 100000
    core.startService()
    devices = [{"id": "bench-{}".format(i), "name": "bench-{}".format(i),
                "twin": {"v": {"expected": {"value": "0"}, "optional": False,
                               "metadata": {"type": "int"},
                               "expected_version": {"cloud": 1, "edge": 0}}}}
               for i in range(args.devices)]
    core.bus.send(names.DEVICETWIN, m.new_message(
        "devicecontroller", "twin", "update", "membership",
        {"event_id": "b", "timestamp": 0, "added_devices": devices, "removed_devices": []}))
    started = time.process_time()

    class Control(LineReceiver):
        delimiter = b"\n"

        def connectionMade(self):
            link = eventbus.links[0]
            ready = link.wait_subscribed() if hasattr(link, "wait_subscribed") else None
            if ready is None:
                reactor.callLater(0.5, self.say, {"ready": True})
            else:
                ready.addCallback(lambda _: reactor.callLater(0.5, self.say, {"ready": True}))

        def say(self, obj):
            self.sendLine(json.dumps(obj).encode())

        def connectionLost(self, reason):
            import resource
            figures = {"arrivals": sink.arrivals, "store": twin.store.stats,
                       "cpu_seconds": time.process_time() - started,
                       "max_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}
            with open(os.path.join(args.state, "figures.json"), "w") as f:
                json.dump(figures, f)
            core.stopService().addBoth(lambda _: reactor.stop())

    stdio.StandardIO(Control())
    reactor.run()


# -- the mapper ---------------------------------------------------------------------------------

class Mapper:
    """A paho client reporting values and timing the results."""

    def __init__(self, port):
        from paho.mqtt import client as mqtt
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-mapper",
                                  protocol=mqtt.MQTTv311)
        self.client.max_inflight_messages_set(1000)
        self.sent = {}
        self.results = {}
        self.errors = 0
        self.cond = threading.Condition()
        self.client.on_message = self.on_message
        self.client.connect("127.0.0.1", port, 60)
        # paho leaves Nagle on; a mapper that cares about latency turns it off.
        import socket
        self.client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.client.loop_start()
        self.client.subscribe("$hw/events/device/+/twin/update/result", 1)
        time.sleep(0.5)

    def on_message(self, client, userdata, message):
        now = time.time()
        body = json.loads(message.payload)
        with self.cond:
            if "code" in body:
                self.errors += 1
            self.results[body.get("event_id")] = now
            self.cond.notify_all()

    def report(self, seq, devices):
        """Report value ``seq`` for device ``seq % devices``; event id = seq."""
        key = str(seq)
        payload = json.dumps({"event_id": key, "timestamp": 0,
                              "twin": {"v": {"actual": {"value": key}}}})
        self.sent[key] = time.time()
        self.client.publish(DEVICE_TOPIC.format(seq % devices), payload, 1)

    def wait(self, predicate, timeout):
        """Wait until ``predicate()`` under the lock, at most ``timeout`` s."""
        with self.cond:
            return self.cond.wait_for(predicate, timeout)

    def close(self):
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()


def run(args):
    """Start the edge (and mosquitto), drive the mapper, print figures."""
    state = tempfile.mkdtemp(prefix="twin-bench-")
    port = free_port()
    children = []
    try:
        if args.mosquitto:
            conf = os.path.join(state, "mosquitto.conf")
            with open(conf, "w") as f:
                f.write("listener {} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n"
                        "max_inflight_messages "
                        "1000\nmax_queued_messages 100000\n".format(port))
            children.append(subprocess.Popen(["/usr/sbin/mosquitto", "-c", conf],
                                             stdout=subprocess.DEVNULL,
                                             stderr=subprocess.DEVNULL))
            time.sleep(0.5)
        edge = subprocess.Popen(
            [sys.executable, __file__, "--edge-child", "--port", str(port), "--state", state,
             "--devices", str(args.devices)] + (["--external"] if args.mosquitto else []),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        children.append(edge)
        line = edge.stdout.readline()
        if not line or not json.loads(line).get("ready"):
            print("the edge did not start")
            return 1
        mapper = Mapper(port)

        # Latency: one update in flight at a time.
        latencies = []
        for seq in range(args.latency_updates):
            mapper.report(seq, args.devices)
            key = str(seq)
            if not mapper.wait(lambda: key in mapper.results, 10):
                print("no update/result for update {} within 10 s".format(seq))
                break
            latencies.append(mapper.results[key] - mapper.sent[key])

        # Throughput: up to --window updates in flight.
        first = args.latency_updates
        seq, begin = first, time.time()
        deadline = begin + args.throughput_seconds
        while time.time() < deadline:
            if not mapper.wait(lambda: seq - len(mapper.results) < args.window,
                               10):
                break
            mapper.report(seq, args.devices)
            seq += 1
        mapper.wait(lambda: len(mapper.results) >= seq, 30)
        elapsed = max(mapper.results.values()) - begin
        done = len(mapper.results) - first
        mapper.close()
        edge.stdin.close()
        edge.wait(60)
        with open(os.path.join(state, "figures.json")) as f:
            figures = json.load(f)
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
                try:
                    child.wait(10)
                except subprocess.TimeoutExpired:
                    child.kill()

    to_cloud = [figures["arrivals"][k] - mapper.sent[k] for k in figures["arrivals"]
                if k in mapper.sent]
    store = figures["store"]
    mode = "mqttMode 2 via mosquitto" if args.mosquitto else "mqttMode 0, internal broker"
    print("twin bench ({}; {} devices; sqlite WAL synchronous=FULL, group commit)".format(
        mode, args.devices))
    print("  update -> update/result latency, 1 in flight, {} updates: p50 {:.2f} ms, "
          "p99 {:.2f} ms, max {:.2f} ms".format(
              len(latencies), percentile(latencies, 0.5) * 1000,
              percentile(latencies, 0.99) * 1000, max(latencies) * 1000))
    print("  sustained, up to {} in flight: {} updates in {:.2f} s = {:.0f} updates/s".format(
        args.window, done, elapsed, done / elapsed if elapsed > 0 else float("nan")))
    print("  report -> edge_updated at the EdgeHub sink: p50 {:.2f} ms, p99 {:.2f} ms "
          "({} reports)".format(percentile(to_cloud, 0.5) * 1000,
                                percentile(to_cloud, 0.99) * 1000, len(to_cloud)))
    print("  reported -> Device status at the cloud: not measured (no cloud "
          "DeviceController yet)")
    print("  error results: {}; sqlite commits: {} for {} row writes ({:.1f} writes/commit)"
          .format(mapper.errors, store["commits"], store["operations"],
                  store["operations"] / max(store["commits"], 1)))
    print("  edge process: {:.1f} s CPU, max RSS {:.1f} MiB".format(
        figures["cpu_seconds"], figures["max_rss_kb"] / 1024))
    return 0


def main():
    """Parse the command line and run the bench (or the edge child)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=10)
    parser.add_argument("--latency-updates", type=int, default=1000)
    parser.add_argument("--throughput-seconds", type=float, default=10)
    parser.add_argument("--window", type=int, default=200)
    parser.add_argument("--mosquitto", action="store_true",
                        help="mqttMode 2 through a mosquitto started here")
    parser.add_argument("--edge-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--external", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--state", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.edge_child:
        edge_child(args)
        return 0
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
