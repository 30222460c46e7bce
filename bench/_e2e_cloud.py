"""Cloud process of ``bench/e2e_latency.py``: the whole cloud side as production builds it.

Started by the orchestrator, never by hand. It does what ``twistd kubeedge-cloud`` does
(``kubeedge_tw.cloud.tap.makeService``): ``freeze_startup_objects``, production's
info-level text log (to a file), then ``create_cloud_service`` from the generated
cloudcore.yaml — embedded API server, CloudHub, EdgeController, SyncController and the
embedded control plane — and starts the tree. It says it is ready once the API server
serves (its kubeconfig is written) and EdgeController and SyncController have their
informers wired.

Control channel (``bench/_hub_cloud.py``'s ``Control``): one JSON object per line on
stdin, one JSON reply per line on stdout; the first line written is
``{"id": 0, "ready": ...}``. Commands: ``status`` (RSS, CPU, module counters, the
Kubernetes client's rate limiter, and the peaks sampled since ``track_start``),
``track_start``, ``sessions``, ``profile_start``, ``profile_stop``, ``quit`` (stops the
service tree, then the reactor). End of stdin or ``--max-seconds`` stop it too.
"""

import argparse
import json
import os
import sys
import time

# Measure the working tree, not whatever copy of the package is installed.
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

import psutil  # noqa: E402
from twisted.internet import defer, stdio, task  # noqa: E402
from twisted.logger import globalLogBeginner  # noqa: E402

from _hub_cloud import Cloud as HubCloud, Control, GCPauses, raise_nofile  # noqa: E402
from kubeedge_tw.cloud.tap import create_cloud_service  # noqa: E402
from kubeedge_tw.common import log as klog  # noqa: E402
from kubeedge_tw.common import names  # noqa: E402
from kubeedge_tw.common.config import CLOUD, ConfigError, load_config  # noqa: E402
from kubeedge_tw.common.tap import freeze_startup_objects  # noqa: E402

#: Seconds between samples of queue depths while tracking.
SAMPLE_INTERVAL = 0.1


class E2ECloud:
    """The cloud service tree and the commands the orchestrator may send."""

    # cProfile on demand, exactly as the hub bench's cloud process does it.
    cmd_profile_start = HubCloud.cmd_profile_start
    cmd_profile_stop = HubCloud.cmd_profile_stop

    def __init__(self, reactor, core, stop):
        self.reactor = reactor
        self.core = core
        self.stop = stop
        self.process = psutil.Process()
        self.gc = GCPauses()
        self.profiler = None
        self.peaks = {}
        self._sampler = None

    def module(self, name):
        bus = self.core.bus
        return bus.module(name) if bus.has_module(name) else None

    @property
    def hub(self):
        return self.module(names.CLOUDHUB)

    def _limiter(self):
        client = getattr(self.core.kube, "client", None)
        return getattr(client, "limiter", None)

    def _depths(self):
        """Queue depths right now: what may hold a pod back on its way."""
        depths = {}
        limiter = self._limiter()
        if limiter is not None:
            depths["kube_limiter_waiting"] = limiter.waiting
        for name in (names.EDGECONTROLLER, names.SYNCCONTROLLER, names.CLOUDHUB):
            module = self.module(name)
            if module is not None:
                depths[name + "_inbox"] = module.pending
                depths[name + "_in_flight"] = module._in_flight
        sync = self.module(names.SYNCCONTROLLER)
        writes = getattr(sync, "_writes", None)
        if writes is not None:  # ObjectSync writes queued or running (a DeferredSemaphore)
            depths["synccontroller_writes"] = len(writes.waiting) + writes.limit - writes.tokens
        hub = self.hub
        if hub is not None:
            depths["cloudhub_queued"] = sum(
                p.session.queued for p in hub._sessions.values() if p.session is not None)
            depths["cloudhub_awaiting_ack"] = sum(
                p.session.awaiting_ack for p in hub._sessions.values()
                if p.session is not None)
            depths["cloudhub_inbound_held"] = sum(len(p.backlog)
                                                  for p in hub._sessions.values())
        return depths

    def _sample(self):
        for key, value in self._depths().items():
            if value > self.peaks.get(key, 0):
                self.peaks[key] = value

    # -- commands ---------------------------------------------------------------------------

    def cmd_track_start(self, request):
        """Sample the queue depths every 0.1 s from now on; ``status`` reports the peaks."""
        self.peaks = {}
        if self._sampler is None:
            self._sampler = task.LoopingCall(self._sample)
            self._sampler.clock = self.reactor
            self._sampler.start(SAMPLE_INTERVAL)
        return {"tracking": True}

    def cmd_status(self, request):
        cpu = self.process.cpu_times()
        modules = {}
        for name in (names.CLOUDHUB, names.EDGECONTROLLER, names.SYNCCONTROLLER):
            module = self.module(name)
            if module is not None:
                modules[name] = dict(module.stats)
        hub = self.hub
        limiter = self._limiter()
        return {"connected": len(hub.connected_nodes()) if hub is not None else 0,
                "rss": self.process.memory_info().rss,
                "cpu_user": cpu.user, "cpu_system": cpu.system,
                "num_fds": self.process.num_fds(), "modules": modules,
                "depths": self._depths(), "peaks": dict(self.peaks),
                "limiter": None if limiter is None else {
                    "qps": limiter.qps, "burst": limiter.burst},
                "gc": {str(gen): list(v) for gen, v in self.gc.stats.items()},
                "now": time.monotonic()}

    def cmd_sessions(self, request):
        """Delivery counters summed over the connected nodes' sessions."""
        total = {}
        hub = self.hub
        for node in hub.connected_nodes():
            session = hub.session(node)
            if session is None:
                continue
            for key, value in session.stats.items():
                total[key] = total.get(key, 0) + value
        return {"sessions": total}

    def cmd_quit(self, request):
        """Stop the service tree, then the process (after this reply is written)."""
        self.reactor.callLater(0.05, self.stop)
        return {"quitting": True}


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="the generated cloudcore.yaml")
    parser.add_argument("--log-file", required=True)
    parser.add_argument("--max-seconds", type=float, default=900)
    return parser.parse_args(argv)


async def _until(reactor, condition, seconds):
    """Wait on the reactor until ``condition()``; False when ``seconds`` ran out."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        await task.deferLater(reactor, 0.05, lambda: None)
    return True


def main(reactor, argv):
    args = parse_args(argv)
    soft, hard = raise_nofile()
    log_file = open(args.log_file, "a", buffering=1)
    # Production's observer (twistd --logger kubeedge_tw.common.log.text_observer).
    globalLogBeginner.beginLoggingTo([klog.text_observer(log_file)],
                                     redirectStandardIO=False, discardBuffer=True)
    # As makeService does before building the tree.
    freeze_startup_objects(reactor)
    try:
        config = load_config(args.config, CLOUD)
    except ConfigError as e:
        sys.stdout.write(json.dumps({"id": 0, "ready": False,
                                     "error": "cloudcore.yaml: {}".format(e)}) + "\n")
        sys.stdout.flush()
        return defer.succeed(None)
    core = create_cloud_service(config, reactor)
    done = defer.Deferred()
    stopping = []

    def finish():
        if stopping:
            return
        stopping.append(True)
        d = defer.maybeDeferred(core.stopService) if core.running else defer.succeed(None)
        d.addErrback(lambda f: sys.stderr.write("stopping the cloud: {}\n".format(
            f.getErrorMessage())))
        d.addBoth(lambda _: done.called or done.callback(None))

    cloud = E2ECloud(reactor, core, finish)
    control = Control(cloud, finish)
    stdio.StandardIO(control, reactor=reactor)
    deadline = reactor.callLater(args.max_seconds, finish)

    async def start():
        core.startService()
        await core.apiserver.when_ready()
        controller = core.bus.module(names.EDGECONTROLLER)
        sync = core.bus.module(names.SYNCCONTROLLER)
        if not await _until(reactor, lambda: controller._ready and sync._ready, 60):
            raise RuntimeError("EdgeController/SyncController not ready within 60 s")
        hub = core.bus.module(names.CLOUDHUB)
        if not await _until(reactor, lambda: hub.listening_port is not None, 30):
            raise RuntimeError("CloudHub is not listening within 30 s")
        control.send({"id": 0, "ready": True, "pid": os.getpid(),
                      "kubeconfig": core.apiserver.kubeconfig_path,
                      "cloudhub_port": hub.listening_port.getHost().port,
                      "nofile_soft": soft, "nofile_hard": hard,
                      "rss": cloud.process.memory_info().rss,
                      "reactor": type(reactor).__name__})

    def failed(failure):
        control.send({"id": 0, "ready": False, "error": "{}: {}".format(
            failure.type.__name__, failure.getErrorMessage())})
        finish()

    defer.Deferred.fromCoroutine(start()).addErrback(failed)

    def cleanup(result):
        if deadline.active():
            deadline.cancel()
        log_file.flush()
        return result

    return done.addBoth(cleanup)


if __name__ == "__main__":
    task.react(main, (sys.argv[1:],))
