"""Tests for the twistd tap modules, the plugin file and ``python -m kubeedge_tw``."""

import io
import os

from twisted.application.service import IServiceMaker
from twisted.internet.task import Clock
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from kubeedge_tw import __main__ as cli
from kubeedge_tw import taps
from kubeedge_tw.cloud import tap as cloud_tap
from kubeedge_tw.common import names
from kubeedge_tw.common.config import default_config, CLOUD, EDGE
from kubeedge_tw.common.core import Core, ModuleSpec, build_core
from kubeedge_tw.common.module import Module
from kubeedge_tw.edge import tap as edge_tap

CONF = os.path.join(os.path.dirname(__file__), "..", "conf")


class FakeParent(dict):
    """Stands in for twistd's ServerOptions as the parent of a tap's Options."""


def parse(options_class, argv, parent=None):
    options = options_class()
    options.stderr = io.StringIO()
    if parent is not None:
        options.parent = parent
    options.parseOptions(argv)
    return options


class EdgeOptionsTests(SynchronousTestCase):
    """kubeedge-edge flags override the config file and bad flags are UsageErrors."""

    def test_flags_override_file(self):
        """--node-name, --cloud and --state-dir beat the values in the file."""
        state = self.mktemp()
        options = parse(edge_tap.Options, [
            "--config", os.path.join(CONF, "edgecore.yaml"), "--state-dir", state,
            "--node-name", "edge-7", "--cloud", "[::1]:10010"])
        config = options["loaded-config"]
        self.assertEqual(config.modules.edged.hostnameOverride, "edge-7")
        self.assertEqual(config.modules.edgeHub.websocket.server, "[::1]:10010")
        self.assertEqual(config.state_dir, os.path.abspath(state))

    def test_without_config_uses_defaults(self):
        """Without --config every key has its default."""
        options = parse(edge_tap.Options, ["--state-dir", self.mktemp()])
        self.assertEqual(options["loaded-config"].modules.edgeHub.heartbeat, 15)

    def test_bad_node_name(self):
        """An invalid --node-name is a UsageError naming the flag."""
        for bad in ("Edge_1", "-x", "a" * 254, ""):
            e = self.assertRaises(usage.UsageError, parse, edge_tap.Options,
                                  ["--node-name", bad])
            self.assertIn("--node-name", str(e))

    def test_bad_cloud(self):
        """An invalid --cloud is a UsageError naming the flag."""
        for bad in ("localhost", "host:0", "host:70000", ":10000", "host:abc"):
            e = self.assertRaises(usage.UsageError, parse, edge_tap.Options, ["--cloud", bad])
            self.assertIn("--cloud", str(e))

    def test_unknown_flag(self):
        """An unknown flag is a UsageError."""
        self.assertRaises(usage.UsageError, parse, edge_tap.Options, ["--nope"])

    def test_config_errors_exit_1(self):
        """A bad config file prints every error with its dotted path and exits 1."""
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("apiVersion: edgecore.config.kubeedge.io/v1alpha1\nkind: EdgeCore\n"
                    "modules:\n  edgeHub:\n    heartbeat: abc\n    hearbeat: 3\n"
                    "    websocket:\n      server: 127.0.0.1:99999\n")
        options = edge_tap.Options()
        options.stderr = io.StringIO()
        e = self.assertRaises(SystemExit, options.parseOptions, ["--config", path])
        self.assertEqual(e.code, 1)
        lines = options.stderr.getvalue().splitlines()
        self.assertEqual(len(lines), 3, lines)
        text = "\n".join(lines)
        for path_ in ("modules.edgeHub.heartbeat", "modules.edgeHub.hearbeat",
                      "modules.edgeHub.websocket.server"):
            self.assertIn(path_, text)

    def test_missing_config_file(self):
        """A missing config file is one clear line and exit 1."""
        options = edge_tap.Options()
        options.stderr = io.StringIO()
        self.assertRaises(SystemExit, options.parseOptions, ["--config", "/nonexistent.yaml"])
        lines = options.stderr.getvalue().splitlines()
        self.assertEqual(len(lines), 1)
        self.assertIn("not found", lines[0])

    def test_pidfile_moves_to_state_dir(self):
        """twistd's default pidfile is moved into the state dir, one per side."""
        state = os.path.abspath(self.mktemp())
        parent = FakeParent(pidfile="twistd.pid")
        parse(edge_tap.Options, ["--state-dir", state], parent)
        self.assertEqual(parent["pidfile"], os.path.join(state, "kubeedge-edge.pid"))
        parent = FakeParent(pidfile="/run/custom.pid")
        parse(cloud_tap.Options, ["--state-dir", state], parent)
        self.assertEqual(parent["pidfile"], "/run/custom.pid")


class CloudOptionsTests(SynchronousTestCase):
    """kubeedge-cloud options."""

    def test_cloud_config_loads(self):
        """The shipped cloudcore.yaml loads through the cloud Options."""
        options = parse(cloud_tap.Options, ["--config", os.path.join(CONF, "cloudcore.yaml"),
                                            "--state-dir", self.mktemp()])
        self.assertEqual(options["loaded-config"].modules.cloudHub.websocket.port, 10000)

    def test_edge_flags_are_not_cloud_flags(self):
        """--node-name belongs to the edge only."""
        self.assertRaises(usage.UsageError, parse, cloud_tap.Options, ["--node-name", "x"])


class ServiceTreeTests(SynchronousTestCase):
    """makeService builds one named MultiService per side with the enabled modules."""

    def test_cloud_tree(self):
        """The cloud tree is named kubeedge-cloud and creates its state dir."""
        state = self.mktemp()
        config = default_config(CLOUD, overrides={"stateDir": os.path.abspath(state)})
        core = cloud_tap.create_cloud_service(config, Clock())
        self.assertIsInstance(core, Core)
        self.assertEqual(core.name, "kubeedge-cloud")
        self.assertTrue(os.path.isdir(state))

    def test_edge_tree(self):
        """The edge tree is named kubeedge-edge and has the edge hub first."""
        config = default_config(EDGE, overrides={"stateDir": os.path.abspath(self.mktemp()),
                                                 "modules.metaManager.enable": False})
        core = edge_tap.create_edge_service(config, Clock())
        self.assertEqual(core.name, "kubeedge-edge")
        self.assertEqual(core.module_names()[0], names.EDGEHUB)

    def test_build_core_adds_enabled_modules(self):
        """build_core adds modules whose section is enabled, skips disabled ones, and
        records enabled modules this build lacks."""
        clock = Clock()
        config = default_config(EDGE, overrides={
            "stateDir": os.path.abspath(self.mktemp()), "modules.serviceBus.enable": False})

        def factory(name, group):
            return lambda core, cfg: Module(core.clock, name=name, group=group)

        specs = [ModuleSpec(names.EDGEHUB, "edgeHub", factory(names.EDGEHUB, "hub")),
                 ModuleSpec(names.SERVICEBUS, "serviceBus", factory(names.SERVICEBUS, "user")),
                 ModuleSpec(names.EDGED, "edged", None)]
        core = build_core("kubeedge-edge", clock, config, specs)
        self.assertEqual(core.module_names(), [names.EDGEHUB])
        self.assertEqual(core.unavailable, [names.EDGED])
        self.assertIs(core.getServiceNamed(names.EDGEHUB), core.bus.module(names.EDGEHUB))
        core.startService()
        self.assertTrue(core.bus.module(names.EDGEHUB).running)
        d = core.bus.send_sync(names.EDGEHUB, cli_message(), 10)
        self.successResultOf(core.stopService())
        self.assertFalse(core.bus.module(names.EDGEHUB).running)
        self.failureResultOf(d)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_state_dir_not_creatable(self):
        """A state dir that cannot be created exits 1 with a clear line."""
        blocker = self.mktemp()
        with open(blocker, "w") as f:
            f.write("x")
        config = default_config(EDGE, overrides={
            "stateDir": os.path.join(os.path.abspath(blocker), "sub")})
        e = self.assertRaises(SystemExit, edge_tap.create_edge_service, config, Clock())
        self.assertEqual(e.code, 1)


def cli_message():
    from kubeedge_tw.common.message import new_message
    return new_message("test", "hub", "query", "default/pod/x")


class PluginTests(SynchronousTestCase):
    """The plugin file names the two service makers."""

    def test_makers(self):
        """Both makers provide IServiceMaker with their tap names and descriptions."""
        self.assertEqual([m.tapname for m in taps.MAKERS], ["kubeedge-cloud", "kubeedge-edge"])
        for maker in taps.MAKERS:
            self.assertTrue(IServiceMaker.providedBy(maker))
            self.assertTrue(maker.description)
            self.assertTrue(callable(maker.options))

    def test_plugin_discovery(self):
        """twisted.plugins discovery finds both makers from the plugin file."""
        from twisted.plugin import getPlugins
        from twisted import plugins
        found = {p.tapname for p in getPlugins(IServiceMaker, plugins)}
        self.assertTrue({"kubeedge-cloud", "kubeedge-edge"} <= found, found)


class MainTests(SynchronousTestCase):
    """python -m kubeedge_tw dispatches subcommands."""

    def test_version(self):
        """version prints our version and the libraries'."""
        out = io.StringIO()
        self.assertEqual(cli.main(["version"], stdout=out), 0)
        import kubeedge_tw
        self.assertIn("kubeedge-tw " + kubeedge_tw.__version__, out.getvalue())
        self.assertIn("twisted ", out.getvalue())

    def test_unknown_command(self):
        """An unknown command prints usage and returns 2."""
        err = io.StringIO()
        self.assertEqual(cli.main(["frobnicate"], stderr=err), 2)
        self.assertIn("unknown command", err.getvalue())

    def test_help(self):
        """--help prints the usage to stdout and returns 0; no args returns 2."""
        out, err = io.StringIO(), io.StringIO()
        self.assertEqual(cli.main(["--help"], stdout=out), 0)
        self.assertIn("cloud", out.getvalue())
        self.assertEqual(cli.main([], stdout=out, stderr=err), 2)

    def test_logger_option(self):
        """--logger picks the observer factory and is removed from the tap args."""
        observer, rest = cli._split_logger(["--logger", "json", "--config", "x"], "p",
                                           io.StringIO())
        self.assertEqual(observer, "kubeedge_tw.common.log.json_observer")
        self.assertEqual(rest, ["--config", "x"])
        observer, rest = cli._split_logger(["--logger=text"], "p", io.StringIO())
        self.assertEqual((observer, rest), ("kubeedge_tw.common.log.text_observer", []))
        err = io.StringIO()
        self.assertRaises(SystemExit, cli._split_logger, ["--logger", "xml"], "p", err)
        self.assertIn("unknown logger", err.getvalue())

    def test_server_options_preload(self):
        """The twistd options used by python -m know our two makers without discovery."""
        options = cli._server_options_class()()
        self.assertEqual([s[0] for s in options.subCommands],
                         ["kubeedge-cloud", "kubeedge-edge"])
