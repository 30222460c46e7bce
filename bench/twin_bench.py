"""Benchmark of EventBus + DeviceTwin + sqlite under a mapper (issue 9, "Benchmark").

Run from the repository root inside the virtualenv::

    .venv/bin/python bench/twin_bench.py [--devices N] [--latency-updates N]
                                         [--throughput-seconds S] [--window W] [--mosquitto]
                                         [--cloud-updates N] [--cloud-rate R]
                                         [--section all|edge|cloud]

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
at the EdgeHub sink latency p50/p99 (edge-local); the store's commits per update (group
commit); edge process CPU and RSS.

**Reported -> Device status at the cloud** (the ``cloud`` section, issue 9's target p99
<= 1 s). A **cloud process** (``python -m kubeedge_tw cloud``: embedded API server,
CloudHub, DeviceController, ...) on free loopback ports, an **edge process** (``python -m
kubeedge_tw edge``, joined with ``gettoken`` + ``join``; EdgeHub over mutual TLS, EventBus
in ``mqttMode`` 0, DeviceTwin; edged off), Node, DeviceModel and Device ``bench-0`` (one
int twin ``v``) created through the API. This process watches the Device through the
Kubernetes API (a ``KubeClient`` watch on the cloud's kubeconfig) while the mapper
reports ``--cloud-updates`` distinct values at ``--cloud-rate`` per second; per value,
publish -> the first watch event whose ``status.twins[v].reported.value`` is that value.
Printed: p50/p99/max, and values seen at the cloud vs sent. ``--section cloud`` runs this
section alone, ``--section edge`` the others alone.

Bounded: every wait has a limit; the edge, the cloud (and mosquitto) are stopped by PID
on exit.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))
from _common import percentile, stop_process  # noqa: E402

DEVICE_TOPIC = "$hw/events/device/bench-{}/twin/update"
TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


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
            stop_process(child, 10)

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
    print("  reported -> Device status at the cloud: see the cloud section")
    print("  error results: {}; sqlite commits: {} for {} row writes ({:.1f} writes/commit)"
          .format(mapper.errors, store["commits"], store["operations"],
                  store["operations"] / max(store["commits"], 1)))
    print("  edge process: {:.1f} s CPU, max RSS {:.1f} MiB".format(
        figures["cpu_seconds"], figures["max_rss_kb"] / 1024))
    return 0


# -- reported -> Device status at the cloud ---------------------------------------------------

CLOUD_NODE = "bench-node"
CLOUD_DEVICE = "bench-0"
#: The issue's target for this figure.
CLOUD_TARGET = "target p99 <= 1000 ms"


class CloudSection:
    """A cloud process, a joined edge process, a Device watched through the API and the
    mapper reporting into it (see the module docstring). Runs on the reactor."""

    def __init__(self, reactor, args):
        self.reactor = reactor
        self.args = args
        self.state = tempfile.mkdtemp(prefix="twin-bench-cloud-")
        self.ports = {"api": free_port(), "ws": free_port(), "https": free_port(),
                      "mqtt": free_port()}
        self.children = {}      # name -> (Popen, log file)
        self.client = None
        self.watch = None
        self.mapper = None
        #: value -> time.time() of the first watch event showing it as reported.
        self.seen = {}
        self.events = 0

    # -- processes ------------------------------------------------------------------------

    def _env(self):
        return dict(os.environ, PYTHONPATH=TOP)

    def _cli(self, argv, timeout=60):
        proc = subprocess.run([sys.executable, "-m", "kubeedge_tw"] + argv, cwd=self.state,
                              env=self._env(), capture_output=True, text=True,
                              timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError("kubeedge_tw {} failed (exit {}): {}".format(
                argv[0], proc.returncode, (proc.stderr or proc.stdout).strip()[-500:]))
        return proc.stdout

    def _spawn(self, name, argv):
        log = open(os.path.join(self.state, name + ".log"), "wb")
        proc = subprocess.Popen([sys.executable, "-m", "kubeedge_tw"] + argv, cwd=self.state,
                                env=self._env(), stdin=subprocess.DEVNULL, stdout=log,
                                stderr=log, close_fds=True)
        self.children[name] = (proc, log)
        return proc

    def stop_children(self):
        """SIGTERM each child by PID (edge first), SIGKILL what outlives 20 s."""
        for name in ("edge", "cloud"):
            proc, log = self.children.pop(name, (None, None))
            if proc is None:
                continue
            stop_process(proc, 20)
            log.close()

    def _check_alive(self):
        for name, (proc, _) in self.children.items():
            if proc.poll() is not None:
                raise RuntimeError("the {} process exited (status {}); see {}".format(
                    name, proc.returncode, os.path.join(self.state, name + ".log")))

    async def _until(self, condition, seconds, what):
        from twisted.internet import task
        deadline = time.monotonic() + seconds
        while True:
            result = await condition()
            if result:
                return result
            self._check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError("{} within {:.0f} s".format(what, seconds))
            await task.deferLater(self.reactor, 0.2, lambda: None)

    async def start_cloud(self):
        """cloudcore.yaml on free loopback ports; the cloud process; an API client."""
        import yaml
        from twisted.internet import threads

        from kubeedge_tw.cloud.k8s import load_kubeconfig, make_kube_client
        config = os.path.join(self.state, "cloudcore.yaml")
        with open(config, "w") as f:
            yaml.safe_dump({
                "apiVersion": "cloudcore.config.kubeedge.io/v1alpha1", "kind": "CloudCore",
                "stateDir": os.path.join(self.state, "cloud"),
                "modules": {
                    "apiServer": {"address": "127.0.0.1", "port": self.ports["api"]},
                    "cloudHub": {"websocket": {"address": "127.0.0.1",
                                               "port": self.ports["ws"]},
                                 "https": {"address": "127.0.0.1",
                                           "port": self.ports["https"]}}}}, f)
        self.cloud_config = config
        self._spawn("cloud", ["cloud", "--config", config])
        kubeconfig = os.path.join(self.state, "cloud", "kubeconfig")

        async def written():
            return os.path.exists(kubeconfig)
        await self._until(written, 60, "the cloud wrote no kubeconfig")
        self.client = make_kube_client(self.reactor, load_kubeconfig(kubeconfig), qps=0)

        async def serving():
            try:
                await self.client.list("devices", namespace="default")
                return True
            except Exception:
                return False
        await self._until(serving, 60, "the cloud's API did not serve devices")
        # gettoken and join block on a subprocess: a thread, not the reactor.
        token = (await threads.deferToThread(
            self._cli, ["gettoken", "--config", config])).strip()
        await threads.deferToThread(self._cli, [
            "join", "--cloud", "127.0.0.1:{}".format(self.ports["ws"]), "--https-port",
            str(self.ports["https"]), "--token", token, "--node", CLOUD_NODE,
            "--state-dir", os.path.join(self.state, "edge")])

    def start_edge(self):
        """The joined edge: edged off, EventBus on its internal broker, DeviceTwin on."""
        import yaml
        path = os.path.join(self.state, "edge", "edgecore.yaml")
        with open(path) as f:
            data = yaml.safe_load(f)
        modules = data.setdefault("modules", {})
        modules.setdefault("edged", {})["enable"] = False
        modules.setdefault("eventBus", {}).update(
            enable=True, mqttMode=0, mqttQOS=1,
            mqttServerInternal="tcp://127.0.0.1:{}".format(self.ports["mqtt"]))
        modules.setdefault("deviceTwin", {})["enable"] = True
        with open(path, "w") as f:
            yaml.safe_dump(data, f, sort_keys=False)
        self._spawn("edge", ["edge", "--config", path])

    async def create_device(self):
        """Node (edged is off, so created here), DeviceModel and Device ``bench-0``."""
        from kubeedge_tw.cloud.k8s import AlreadyExists
        for resource, obj in (
                ("nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {
                    "name": CLOUD_NODE, "labels": {"node-role.kubernetes.io/edge": ""}}}),
                ("devicemodels", {"apiVersion": "devices.kubeedge.io/v1alpha2",
                                  "kind": "DeviceModel", "metadata": {
                                      "name": "bench-model", "namespace": "default"},
                                  "spec": {"properties": [{"name": "v", "type": {"int": {
                                      "accessMode": "ReadWrite", "defaultValue": 0}}}]}}),
                ("devices", {"apiVersion": "devices.kubeedge.io/v1alpha2", "kind": "Device",
                             "metadata": {"name": CLOUD_DEVICE, "namespace": "default"},
                             "spec": {"deviceModelRef": {"name": "bench-model"},
                                      "nodeSelector": {"nodeSelectorTerms": [{
                                          "matchExpressions": [{
                                              "key": "", "operator": "In",
                                              "values": [CLOUD_NODE]}]}]}},
                             "status": {"twins": [{"propertyName": "v", "desired": {
                                 "value": "0", "metadata": {"type": "int"}}}]}})):
            namespace = None if resource == "nodes" else "default"
            try:
                await self.client.create(resource, obj, namespace=namespace)
            except AlreadyExists:
                pass

    # -- the watch ------------------------------------------------------------------------

    def _event(self, etype, obj):
        now = time.time()
        self.events += 1
        if etype not in ("ADDED", "MODIFIED") or (obj.get("metadata") or {}).get(
                "name") != CLOUD_DEVICE:
            return
        for twin in (obj.get("status") or {}).get("twins") or ():
            if twin.get("propertyName") == "v":
                value = (twin.get("reported") or {}).get("value")
                if value is not None:
                    self.seen.setdefault(value, now)

    async def start_watch(self):
        self.watch = await self.client.watch("devices", self._event, namespace="default")

    # -- the run --------------------------------------------------------------------------

    async def connect_mapper(self):
        """The paho mapper on the edge's internal broker (retried while it binds)."""
        from twisted.internet import threads

        async def connected():
            try:
                self.mapper = await threads.deferToThread(Mapper, self.ports["mqtt"])
                return True
            except OSError:
                return False
        await self._until(connected, 60, "the edge's MQTT broker did not accept the mapper")

    async def warm_up(self):
        """Report until the edge knows the device and the value shows at the cloud."""
        from twisted.internet import task
        for attempt in range(200):
            key = "warm-{}".format(attempt)
            payload = json.dumps({"event_id": key, "timestamp": 0,
                                  "twin": {"v": {"actual": {"value": str(-1 - attempt)}}}})
            self.mapper.client.publish(DEVICE_TOPIC.format(0), payload, 1)
            for _ in range(10):
                await task.deferLater(self.reactor, 0.1, lambda: None)
                if str(-1 - attempt) in self.seen:
                    return
            self._check_alive()
        raise RuntimeError("no reported value reached the Device's status in 20 s")

    async def measure(self):
        """Report ``--cloud-updates`` values at ``--cloud-rate``; wait for them at the
        cloud (at most 30 s after the last)."""
        from twisted.internet import task
        args = self.args
        interval = 1.0 / args.cloud_rate
        begin = time.monotonic()
        for seq in range(args.cloud_updates):
            # Paced against the schedule, not the previous send, so the rate holds.
            delay = begin + seq * interval - time.monotonic()
            if delay > 0:
                await task.deferLater(self.reactor, delay, lambda: None)
            self.mapper.report(seq, 1)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not all(
                str(seq) in self.seen for seq in range(args.cloud_updates)):
            await task.deferLater(self.reactor, 0.1, lambda: None)

    async def run(self):
        """Everything, then the figures; the children are stopped whatever happens."""
        from twisted.internet import threads
        try:
            await self.start_cloud()
            self.start_edge()
            await self.create_device()
            await self.start_watch()
            await self.connect_mapper()
            await self.warm_up()
            await self.measure()
        finally:
            if self.watch is not None:
                self.watch.stop()
            if self.mapper is not None:
                await threads.deferToThread(self.mapper.close)
            if self.client is not None:
                await self.client.close()
            await threads.deferToThread(self.stop_children)
        self.report()
        shutil.rmtree(self.state, ignore_errors=True)   # kept (for its logs) on failure

    def report(self):
        args, sent = self.args, self.mapper.sent
        latencies = [self.seen[key] - sent[key] for key in sent if key in self.seen]
        print("reported -> Device status at the cloud (cloud and edge processes, "
              "mqttMode 0; watched through the Kubernetes API)")
        if latencies:
            print("  {} distinct values at {:g}/s: p50 {:.2f} ms, p99 {:.2f} ms, max {:.2f} "
                  "ms ({})".format(len(sent), args.cloud_rate,
                                   percentile(latencies, 0.5) * 1000,
                                   percentile(latencies, 0.99) * 1000,
                                   max(latencies) * 1000, CLOUD_TARGET))
        print("  delivered to the Device's status: {} of {} sent; {} watch events; "
              "mapper error results: {}".format(len(latencies), len(sent), self.events,
                                                self.mapper.errors))
        figures = {"sent": len(sent), "delivered": len(latencies), "rate": args.cloud_rate}
        if latencies:
            figures.update({"p50_ms": percentile(latencies, 0.5) * 1000,
                            "p99_ms": percentile(latencies, 0.99) * 1000,
                            "max_ms": max(latencies) * 1000})
        print(json.dumps({"bench": "twin_reported_to_cloud", "figures": figures}))


def run_cloud(args):
    """Run :class:`CloudSection` on the reactor; 0 when it ran, 1 when it could not."""
    from twisted.internet import defer, reactor
    outcome = {}

    def start():
        section = CloudSection(reactor, args)
        d = defer.Deferred.fromCoroutine(section.run())

        def failed(failure):
            print("reported -> Device status at the cloud: could not run: {} (logs in {})"
                  .format(failure.getErrorMessage(), section.state))
            outcome["code"] = 1
        d.addErrback(failed)
        d.addBoth(lambda _: reactor.stop())
    reactor.callWhenRunning(start)
    reactor.run()
    return outcome.get("code", 0)


def main():
    """Parse the command line and run the bench (or the edge child)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=10)
    parser.add_argument("--latency-updates", type=int, default=1000)
    parser.add_argument("--throughput-seconds", type=float, default=10)
    parser.add_argument("--window", type=int, default=200)
    parser.add_argument("--mosquitto", action="store_true",
                        help="mqttMode 2 through a mosquitto started here (edge section)")
    parser.add_argument("--cloud-updates", type=int, default=200,
                        help="reported values in the cloud section (default 200)")
    parser.add_argument("--cloud-rate", type=float, default=20.0,
                        help="reports per second in the cloud section (default 20)")
    parser.add_argument("--section", choices=("all", "edge", "cloud"), default="all",
                        help="edge: the edge-only figures; cloud: reported -> Device status "
                             "at the cloud; all: both (default)")
    parser.add_argument("--edge-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--external", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--state", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.edge_child:
        edge_child(args)
        return 0
    if args.cloud_updates < 1 or args.cloud_rate <= 0:
        parser.error("--cloud-updates must be >= 1 and --cloud-rate > 0")
    code = 0
    if args.section in ("all", "edge"):
        code = run(args)
    if args.section in ("all", "cloud"):
        code = run_cloud(args) or code
    return code


if __name__ == "__main__":
    sys.exit(main())
