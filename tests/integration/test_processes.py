"""Integration: both sides run as real processes, through twistd plugin discovery and
through ``python -m kubeedge_tw``, log their modules, and stop cleanly on SIGTERM."""

import json
import os
import sys

from twisted.internet import defer, protocol, reactor
from twisted.trial.unittest import TestCase

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CONF = os.path.join(TOP, "conf")
TWISTD = "from twisted.scripts.twistd import run; run()"


def cloud_config(testcase):
    """A cloudcore.yaml: the shipped one with CloudHub on free loopback ports."""
    from tests.integration.parts import free_port
    import yaml
    path = os.path.abspath(testcase.mktemp())
    with open(os.path.join(CONF, "cloudcore.yaml")) as f:
        data = yaml.safe_load(f)
    hub = data["modules"]["cloudHub"]
    hub["websocket"].update(address="127.0.0.1", port=free_port())
    hub["https"].update(address="127.0.0.1", port=free_port())
    data["modules"]["apiServer"].update(address="127.0.0.1", port=free_port())
    with open(path, "w") as f:
        yaml.safe_dump(data, f)
    return path


class Collect(protocol.ProcessProtocol):
    """Collects a process's output; fires ``started`` when ``marker`` shows up in it."""

    def __init__(self, marker=None):
        self.out = b""
        self.marker = marker.encode() if marker else None
        self.started = defer.Deferred()
        self.ended = defer.Deferred()

    def _data(self, data):
        self.out += data
        if self.marker and self.marker in self.out and not self.started.called:
            self.started.callback(None)

    outReceived = errReceived = _data

    def processEnded(self, reason):
        if self.marker is None and not self.started.called:
            self.started.callback(None)
        elif not self.started.called:
            self.started.errback(RuntimeError("process ended before it started: " +
                                              self.out.decode(errors="replace")))
        # A process killed by a signal has exitCode None; report it as -signal.
        code = reason.value.exitCode
        if code is None:
            code = -(reason.value.signal or 0)
        self.ended.callback(code)


def spawn(args, marker=None):
    proto = Collect(marker)
    env = dict(os.environ, PYTHONPATH=TOP)
    transport = reactor.spawnProcess(proto, sys.executable, [sys.executable] + args,
                                     env=env, path=TOP)
    return proto, transport


def with_timeout(d, seconds, what):
    return d.addTimeout(seconds, reactor, onTimeoutCancel=lambda *_: (_ for _ in ()).throw(
        AssertionError("timed out after {}s waiting for {}".format(seconds, what))))


class SideProcessTests(TestCase):
    """Each side starts, logs its module list and exits 0 on SIGTERM."""

    timeout = 120

    @defer.inlineCallbacks
    def run_until_started_then_term(self, args, side, marker=None, text=True):
        proto, transport = spawn(args, marker=marker or "{} started".format(side))
        try:
            yield with_timeout(proto.started, 60, side + " start")
        except BaseException:
            if transport.pid is not None:
                transport.signalProcess("KILL")
                yield proto.ended
            raise
        transport.signalProcess("TERM")
        code = yield with_timeout(proto.ended, 30, side + " exit")
        out = proto.out.decode(errors="replace")
        self.assertEqual(code, 0, out)
        if text:
            self.assertIn("{} starting".format(side), out)
            self.assertIn("modules:", out)
            self.assertIn("{} stopped".format(side), out)
        self.assertNotIn("Traceback", out)
        defer.returnValue(out)

    def test_twistd_cloud(self):
        """twistd -n kubeedge-cloud --config conf/cloudcore.yaml starts and stops on TERM."""
        state = os.path.abspath(self.mktemp())
        return self.run_until_started_then_term(
            ["-c", TWISTD, "-n", "kubeedge-cloud", "--config", cloud_config(self),
             "--state-dir", state], "kubeedge-cloud")

    @defer.inlineCallbacks
    def test_twistd_edge_pidfile(self):
        """twistd -n kubeedge-edge starts, keeps its pidfile in the state dir, stops on TERM
        and removes it."""
        state = os.path.abspath(self.mktemp())
        pidfile = os.path.join(state, "kubeedge-edge.pid")
        args = ["-c", TWISTD, "-n", "kubeedge-edge", "--config",
                os.path.join(CONF, "edgecore.yaml"), "--state-dir", state,
                "--node-name", "edge-1"]
        proto, transport = spawn(args, marker="kubeedge-edge started")
        yield with_timeout(proto.started, 60, "edge start")
        self.assertTrue(os.path.exists(pidfile))
        with open(pidfile) as f:
            self.assertEqual(int(f.read().strip()), transport.pid)
        transport.signalProcess("TERM")
        code = yield with_timeout(proto.ended, 30, "edge exit")
        self.assertEqual(code, 0, proto.out.decode(errors="replace"))
        self.assertFalse(os.path.exists(pidfile))

    def test_python_m_edge(self):
        """python -m kubeedge_tw edge runs without plugin discovery and stops on TERM."""
        state = os.path.abspath(self.mktemp())
        return self.run_until_started_then_term(
            ["-m", "kubeedge_tw", "edge", "--config", os.path.join(CONF, "edgecore.yaml"),
             "--state-dir", state], "kubeedge-edge")

    @defer.inlineCallbacks
    def test_python_m_cloud_json_logs(self):
        """--logger json writes one JSON event per record, with stable log_event names."""
        state = os.path.abspath(self.mktemp())
        out = yield self.run_until_started_then_term(
            ["-m", "kubeedge_tw", "cloud", "--logger", "json", "--config", cloud_config(self),
             "--state-dir", state],
            "kubeedge-cloud", marker="core_started", text=False)
        events = [json.loads(chunk) for chunk in out.split("\x1e") if chunk.strip()]
        kinds = [e.get("log_event") for e in events]
        for kind in ("core_starting", "core_started", "core_stopping", "core_stopped"):
            self.assertIn(kind, kinds)
        starting = events[kinds.index("core_starting")]
        self.assertEqual(starting["side"], "kubeedge-cloud")


class FailingStartTests(TestCase):
    """Bad configs and flags stop the process before anything starts, without tracebacks."""

    timeout = 60

    @defer.inlineCallbacks
    def run_to_exit(self, args):
        proto, _ = spawn(args)
        code = yield with_timeout(proto.ended, 50, "exit")
        defer.returnValue((code, proto.out.decode(errors="replace")))

    @defer.inlineCallbacks
    def test_three_mistakes(self):
        """A config with three mistakes reports all three with dotted paths and exits 1."""
        path = os.path.abspath(self.mktemp())
        with open(path, "w") as f:
            f.write("apiVersion: cloudcore.config.kubeedge.io/v1alpha1\nkind: CloudCore\n"
                    "modules:\n  cloudHub:\n    nodeLimit: lots\n    keepaliveIntervall: 30\n"
                    "    websocket:\n      port: 0\n")
        code, out = yield self.run_to_exit(
            ["-c", TWISTD, "-n", "kubeedge-cloud", "--config", path,
             "--state-dir", os.path.abspath(self.mktemp())])
        self.assertEqual(code, 1, out)
        for dotted in ("modules.cloudHub.nodeLimit", "modules.cloudHub.keepaliveIntervall",
                       "modules.cloudHub.websocket.port"):
            self.assertIn(dotted, out)
        self.assertNotIn("Traceback", out)

    @defer.inlineCallbacks
    def test_invalid_yaml(self):
        """Invalid YAML is one clear error line and exit 1."""
        path = os.path.abspath(self.mktemp())
        with open(path, "w") as f:
            f.write("modules: [unclosed\n")
        code, out = yield self.run_to_exit(["-m", "kubeedge_tw", "edge", "--config", path])
        self.assertEqual(code, 1, out)
        self.assertIn("YAML", out)
        self.assertNotIn("Traceback", out)

    @defer.inlineCallbacks
    def test_bad_flag(self):
        """A bad flag gives the usage error text, not a traceback, and exit 1."""
        code, out = yield self.run_to_exit(["-m", "kubeedge_tw", "edge", "--cloud", "nowhere"])
        self.assertEqual(code, 1, out)
        self.assertIn("--cloud", out)
        self.assertNotIn("Traceback", out)

    @defer.inlineCallbacks
    def test_twistd_help_lists_plugins(self):
        """twistd --help lists both plugins with their one-line descriptions."""
        code, out = yield self.run_to_exit(["-c", TWISTD, "--help"])
        self.assertEqual(code, 0, out)
        self.assertIn("kubeedge-cloud", out)
        self.assertIn("kubeedge-edge", out)
        self.assertIn("KubeEdge cloud side", out)


class InstalledPackageTests(TestCase):
    """The installed package (as scripts/test.sh installs it) is complete: every package
    of the source tree imports from site-packages, and twistd finds the plugins there."""

    timeout = 60

    @defer.inlineCallbacks
    def test_installed_copy_is_complete(self):
        """Each kubeedge_tw package imports from outside the source tree, and twistd
        --help run there lists both plugins."""
        packages = []
        for root, dirs, files in os.walk(os.path.join(TOP, "kubeedge_tw")):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            if "__init__.py" in files:
                packages.append(os.path.relpath(root, TOP).replace(os.sep, "."))
        script = ("import importlib, sys\n"
                  "for name in sys.argv[1:]:\n"
                  "    mod = importlib.import_module(name)\n"
                  "    assert not mod.__file__.startswith({!r}), mod.__file__\n"
                  "from twisted.scripts.twistd import run\n"
                  "sys.argv = ['twistd', '--help']\n"
                  "run()\n").format(os.path.join(TOP, "kubeedge_tw", ""))
        elsewhere = os.path.abspath(self.mktemp())
        os.makedirs(elsewhere)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        proto = Collect()
        reactor.spawnProcess(proto, sys.executable, [sys.executable, "-c", script] + packages,
                             env=env, path=elsewhere)
        code = yield with_timeout(proto.ended, 50, "installed import")
        out = proto.out.decode(errors="replace")
        self.assertEqual(code, 0, out)
        self.assertIn("kubeedge-cloud", out)
        self.assertIn("kubeedge-edge", out)
