"""Tests for kubeedge_tw.common.config: loading, validation, errors, freezing."""

import copy
import errno
import os
import pickle

import yaml
from twisted.trial.unittest import SynchronousTestCase

from kubeedge_tw.common import config as config_module
from kubeedge_tw.common.config import (
    CLOUD,
    EDGE,
    Config,
    ConfigError,
    Field,
    Section,
    default_config,
    default_state_dir,
    load_config,
    load_config_text,
    schema_for,
)

CONF_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "conf")
CLOUD_FILE = os.path.join(CONF_DIR, "cloudcore.yaml")
EDGE_FILE = os.path.join(CONF_DIR, "edgecore.yaml")

CLOUD_HEAD = "apiVersion: cloudcore.config.kubeedge.io/v1alpha1\nkind: CloudCore\n"
EDGE_HEAD = "apiVersion: edgecore.config.kubeedge.io/v1alpha1\nkind: EdgeCore\n"

# Values the edge sample deliberately sets to something other than the default.
EDGE_SAMPLE_NON_DEFAULTS = {"modules.edged.hostnameOverride": "edge-node"}


def _leaves(tree, prefix=""):
    """Yield ``(dotted_path, value)`` for every non-mapping value in a nested dict."""
    for key, value in tree.items():
        path = "{}.{}".format(prefix, key) if prefix else key
        if isinstance(value, dict) and value:
            yield from _leaves(value, path)
        else:
            yield path, value


def _schema_fields(section, prefix=""):
    """Yield ``(dotted_path, Field)`` for every field of a schema section."""
    for name, spec in section.fields.items():
        path = "{}.{}".format(prefix, name) if prefix else name
        if isinstance(spec, Section):
            yield from _schema_fields(spec, path)
        else:
            yield path, spec


def _schema_sections(section, prefix=""):
    """Yield ``(dotted_path, Section)`` for every section under ``section``."""
    for name, spec in section.fields.items():
        path = "{}.{}".format(prefix, name) if prefix else name
        if isinstance(spec, Section):
            yield path, spec
            yield from _schema_sections(spec, path)


def _edge(body="", **kwargs):
    """Load an edge config from text: the apiVersion/kind header plus ``body``."""
    return load_config_text(EDGE_HEAD + body, EDGE, **kwargs)


def _cloud(body="", **kwargs):
    """Load a cloud config from text: the apiVersion/kind header plus ``body``."""
    return load_config_text(CLOUD_HEAD + body, CLOUD, **kwargs)


class SampleFileTests(SynchronousTestCase):
    """The shipped conf/*.yaml files."""

    def _check_sample(self, path, kind, non_defaults):
        """Assert the sample loads and each key it contains holds the default."""
        loaded = load_config(path, kind)
        defaults = default_config(kind)
        with open(path) as f:
            raw = yaml.safe_load(f)
        fields = dict(_schema_fields(schema_for(kind)))
        leaves = dict(_leaves(raw))
        self.assertTrue(leaves)
        for leaf_path, raw_value in leaves.items():
            if leaf_path in non_defaults:
                self.assertEqual(loaded.get_path(leaf_path), non_defaults[leaf_path])
                continue
            self.assertEqual(loaded.get_path(leaf_path), defaults.get_path(leaf_path), leaf_path)
            default = fields[leaf_path].default
            if isinstance(default, tuple):
                default = list(default)
            self.assertEqual(raw_value, default, leaf_path)

    def test_cloud_sample_is_all_defaults(self):
        """conf/cloudcore.yaml loads and every key in it equals default_config(CLOUD)."""
        self._check_sample(CLOUD_FILE, CLOUD, {})

    def test_edge_sample_is_all_defaults(self):
        """conf/edgecore.yaml loads and every key in it but the node name equals default_config(EDGE)."""
        self._check_sample(EDGE_FILE, EDGE, EDGE_SAMPLE_NON_DEFAULTS)

    def test_samples_list_every_key(self):
        """Every schema key except stateDir appears in the matching sample file."""
        for path, kind in ((CLOUD_FILE, CLOUD), (EDGE_FILE, EDGE)):
            with open(path) as f:
                leaves = dict(_leaves(yaml.safe_load(f)))
            missing = [
                p for p, _ in _schema_fields(schema_for(kind)) if p != "stateDir" and p not in leaves
            ]
            self.assertEqual(missing, [], path)

    def test_samples_comment_every_key(self):
        """Every key line in the samples has a comment line right above it."""
        for path in (CLOUD_FILE, EDGE_FILE):
            with open(path) as f:
                lines = f.read().splitlines()
            for index, line in enumerate(lines):
                stripped = line.strip()
                if stripped and not stripped.startswith(("#", "- ")):
                    self.assertTrue(
                        lines[index - 1].strip().startswith("#"),
                        "{}:{}: {}".format(path, index + 1, line),
                    )

    def test_schema_documented_and_defaults_valid(self):
        """Every descriptor has a doc string and every default passes its own check."""
        for kind in (CLOUD, EDGE):
            schema = schema_for(kind)
            for path, section in _schema_sections(schema):
                self.assertTrue(section.doc, path)
            for path, field in _schema_fields(schema):
                self.assertIsInstance(field, Field)
                self.assertTrue(field.doc, path)
                if field.default is not None:
                    default = field.default
                    if isinstance(default, tuple):
                        default = list(default)
                    field.check(default)


class DefaultsTests(SynchronousTestCase):
    """Missing keys and sections take defaults."""

    def test_header_only_equals_defaults(self):
        """A file with only apiVersion and kind equals default_config()."""
        self.assertEqual(_edge().to_dict(), default_config(EDGE).to_dict())
        self.assertEqual(_cloud().to_dict(), default_config(CLOUD).to_dict())

    def test_missing_and_null_sections_take_defaults(self):
        """Null, empty and absent sections and null keys all give defaults."""
        cfg = _edge(
            "database:\nmodules:\n  edgeHub: {}\n  edged:\n    nodeIP:\n  eventBus:\n"
            "    mqttQOS: 1\n"
        )
        defaults = default_config(EDGE)
        self.assertEqual(cfg.database, defaults.database)
        self.assertEqual(cfg.modules.edgeHub, defaults.modules.edgeHub)
        self.assertEqual(cfg.modules.edged, defaults.modules.edged)
        self.assertEqual(cfg.modules.metaManager, defaults.modules.metaManager)
        self.assertEqual(cfg.modules.eventBus.mqttQOS, 1)
        self.assertEqual(cfg.modules.eventBus.mqttMode, 2)

    def test_default_values(self):
        """A few defaults are KubeEdge's (or ours where documented)."""
        edge = default_config(EDGE)
        self.assertEqual(edge.modules.edgeHub.heartbeat, 15)
        self.assertEqual(edge.modules.edgeHub.websocket.server, "127.0.0.1:10000")
        self.assertEqual(edge.modules.metaManager.remoteQueryTimeout, 10)
        self.assertEqual(edge.database.dataSource, "edgecore.db")
        cloud = default_config(CLOUD)
        self.assertEqual(cloud.modules.cloudHub.websocket.port, 10000)
        self.assertEqual(cloud.modules.cloudHub.advertiseAddress, ("127.0.0.1",))
        self.assertEqual(cloud.source, "<defaults>")

    def test_default_state_dir_root(self):
        """Root gets /var/lib/kubeedge."""
        self.patch(config_module.os, "geteuid", lambda: 0)
        self.assertEqual(default_state_dir(), "/var/lib/kubeedge")
        self.assertEqual(default_config(EDGE).state_dir, "/var/lib/kubeedge")

    def test_default_state_dir_user(self):
        """Other users get ~/.local/state/kubeedge-tw, expanded."""
        self.patch(config_module.os, "geteuid", lambda: 1000)
        expected = os.path.expanduser("~/.local/state/kubeedge-tw")
        self.assertEqual(default_state_dir(), expected)
        self.assertEqual(default_config(CLOUD).stateDir, expected)

    def test_api_server_auto(self):
        """apiServer.enable auto becomes true without an external API server, else false."""
        self.assertIs(_cloud().modules.apiServer.enable, True)
        cfg = _cloud("kubeAPIConfig:\n  master: https://10.0.0.1:6443\n")
        self.assertIs(cfg.modules.apiServer.enable, False)
        cfg = _cloud("kubeAPIConfig:\n  kubeConfig: kube.conf\nmodules:\n  apiServer:\n    enable: true\n")
        self.assertIs(cfg.modules.apiServer.enable, True)

    def test_v1alpha2_accepted(self):
        """KubeEdge's v1alpha2 apiVersion is accepted."""
        cfg = load_config_text(
            "apiVersion: edgecore.config.kubeedge.io/v1alpha2\nkind: EdgeCore\n", EDGE
        )
        self.assertEqual(cfg.apiVersion, "edgecore.config.kubeedge.io/v1alpha2")


class AccessTests(SynchronousTestCase):
    """The frozen Config object."""

    def test_attribute_item_and_path_access(self):
        """Attribute, item and dotted-path access reach the same value."""
        cfg = default_config(CLOUD)
        self.assertEqual(cfg.modules.cloudHub.websocket.port, 10000)
        self.assertEqual(cfg["modules"]["cloudHub"]["websocket"]["port"], 10000)
        self.assertEqual(cfg.get_path("modules.cloudHub.websocket.port"), 10000)
        self.assertIsInstance(cfg.modules, Config)

    def test_missing_keys(self):
        """Missing keys raise KeyError / AttributeError naming the closest key."""
        cfg = default_config(EDGE)
        self.assertRaises(KeyError, cfg.get_path, "modules.edgeHub.nope")
        self.assertRaises(KeyError, cfg.get_path, "modules.edgeHub.heartbeat.deeper")
        self.assertRaises(KeyError, lambda: cfg["nope"])
        error = self.assertRaises(AttributeError, lambda: cfg.modules.edgeHub.hearbeat)
        self.assertIn('did you mean "heartbeat"', str(error))

    def test_frozen(self):
        """Assigning or deleting an attribute or item raises."""
        cfg = default_config(EDGE)

        def set_attr():
            cfg.modules.edgeHub.heartbeat = 1

        def set_item():
            cfg["modules"] = {}

        def del_attr():
            del cfg.modules

        self.assertRaises(AttributeError, set_attr)
        self.assertRaises(TypeError, set_item)
        self.assertRaises(AttributeError, del_attr)
        self.assertEqual(cfg.modules.edgeHub.heartbeat, 15)

    def test_to_dict_is_a_deep_copy(self):
        """to_dict returns plain dicts and lists that do not alias the config."""
        cfg = default_config(CLOUD)
        plain = cfg.to_dict()
        self.assertIs(type(plain["modules"]["cloudHub"]), dict)
        self.assertEqual(plain["modules"]["cloudHub"]["advertiseAddress"], ["127.0.0.1"])
        plain["modules"]["cloudHub"]["advertiseAddress"].append("10.0.0.1")
        plain["modules"]["cloudHub"]["nodeLimit"] = 1
        self.assertEqual(cfg.modules.cloudHub.advertiseAddress, ("127.0.0.1",))
        self.assertEqual(cfg.modules.cloudHub.nodeLimit, 1000)

    def test_copy_and_pickle(self):
        """Copies and pickles round-trip to an equal config."""
        cfg = default_config(EDGE, overrides={"stateDir": "/tmp/x"})
        self.assertIs(copy.deepcopy(cfg), cfg)
        again = pickle.loads(pickle.dumps(cfg))
        self.assertEqual(again, cfg)
        self.assertEqual(again.state_dir, "/tmp/x")
        self.assertEqual(again.modules.edged.state_dir, "/tmp/x")

    def test_resolve_path(self):
        """Relative paths join the state dir; absolute and empty stay as they are."""
        cfg = default_config(EDGE, overrides={"stateDir": "/srv/ke"})
        self.assertEqual(cfg.state_dir, "/srv/ke")
        self.assertEqual(cfg.resolve_path(cfg.database.dataSource), "/srv/ke/edgecore.db")
        self.assertEqual(cfg.resolve_path("certs/edge.crt"), "/srv/ke/certs/edge.crt")
        self.assertEqual(cfg.resolve_path("/etc/kubeedge/ca.crt"), "/etc/kubeedge/ca.crt")
        self.assertEqual(cfg.resolve_path(""), "")
        self.assertEqual(cfg.modules.edgeHub.resolve_path("x"), "/srv/ke/x")

    def test_relative_state_dir_in_file(self):
        """A relative stateDir in a file is resolved against the file's directory."""
        directory = self.mktemp()
        os.makedirs(directory)
        path = os.path.join(directory, "edge.yaml")
        with open(path, "w") as f:
            f.write(EDGE_HEAD + "stateDir: state\n")
        cfg = load_config(path, EDGE)
        expected = os.path.join(os.path.abspath(directory), "state")
        self.assertEqual(cfg.state_dir, expected)
        self.assertEqual(cfg.stateDir, expected)
        self.assertEqual(cfg.source, path)

    def test_relative_state_dir_override(self):
        """A relative --state-dir override is resolved against the current directory."""
        cfg = default_config(CLOUD, overrides={"stateDir": "here"})
        self.assertEqual(cfg.state_dir, os.path.abspath("here"))


class OverrideTests(SynchronousTestCase):
    """Dotted-path overrides (command-line flags)."""

    def test_override_beats_file(self):
        """An override replaces the file value and fills keys the file lacks."""
        cfg = _edge(
            "modules:\n  edgeHub:\n    websocket:\n      server: 10.0.0.1:10000\n",
            overrides={
                "modules.edgeHub.websocket.server": "[::1]:10000",
                "modules.edged.hostnameOverride": "node-1",
                "modules.serviceBus": {"enable": True},
            },
        )
        self.assertEqual(cfg.modules.edgeHub.websocket.server, "[::1]:10000")
        self.assertEqual(cfg.modules.edged.hostnameOverride, "node-1")
        self.assertTrue(cfg.modules.serviceBus.enable)

    def test_none_override_resets_default(self):
        """An override of None puts the key back to its default."""
        cfg = _edge("modules:\n  edgeHub:\n    heartbeat: 3\n",
                    overrides={"modules.edgeHub.heartbeat": None})
        self.assertEqual(cfg.modules.edgeHub.heartbeat, 15)

    def test_invalid_overrides_reported(self):
        """Bad override values and unknown override paths are reported with the file's errors."""
        error = self.assertRaises(
            ConfigError,
            _edge,
            "modules:\n  edgeHub:\n    heartbeat: 0\n",
            overrides={
                "modules.edgeHub.websocket.server": "nohost",
                "modules.edged.hostnameOvveride": "x",
                "modules.edged.hostnameOverride": "Bad_Name",
            },
        )
        paths = [path for path, _ in error.errors]
        # File order first (overridden keys join the walk), unknown override paths last.
        self.assertEqual(
            paths,
            [
                "modules.edgeHub.heartbeat",
                "modules.edgeHub.websocket.server",
                "modules.edged.hostnameOverride",
                "modules.edged.hostnameOvveride",
            ],
        )
        messages = dict(error.errors)
        self.assertIn('did you mean "hostnameOverride"', messages["modules.edged.hostnameOvveride"])
        self.assertIn("(from override)", messages["modules.edgeHub.websocket.server"])
        self.assertNotIn("override", messages["modules.edgeHub.heartbeat"])

    def test_override_state_dir_empty(self):
        """An empty stateDir override is an error."""
        error = self.assertRaises(ConfigError, default_config, EDGE, {"stateDir": ""})
        self.assertEqual([p for p, _ in error.errors], ["stateDir"])


class FileErrorTests(SynchronousTestCase):
    """Problems with the file as a whole."""

    def _write(self, text, name="config.yaml"):
        """Write ``text`` to a fresh temp file and return its path."""
        directory = self.mktemp()
        os.makedirs(directory)
        path = os.path.join(directory, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def assertOneFileError(self, error, *fragments):
        """Assert a single file-level error whose message contains every fragment."""
        self.assertEqual(len(error.errors), 1, str(error))
        path, message = error.errors[0]
        self.assertEqual(path, "")
        for fragment in fragments:
            self.assertIn(fragment, message)
        self.assertEqual(str(error), "{}: {}".format(error.source, message))
        self.assertNotIn("\n", str(error))

    def test_missing_file(self):
        """A missing file says "config file not found", prefixed with its path."""
        error = self.assertRaises(ConfigError, load_config, "conf/x.yaml", EDGE)
        self.assertOneFileError(error, "config file not found")

    def test_directory(self):
        """A directory instead of a file says so."""
        directory = self.mktemp()
        os.makedirs(directory)
        error = self.assertRaises(ConfigError, load_config, directory, CLOUD)
        self.assertOneFileError(error, "cannot read config file", "is a directory")

    def test_permission_denied(self):
        """An unreadable file says permission denied."""
        path = self._write(EDGE_HEAD)

        def denied(path):
            raise PermissionError(errno.EACCES, "Permission denied", path)

        self.patch(config_module, "_read_file", denied)
        error = self.assertRaises(ConfigError, load_config, path, EDGE)
        self.assertOneFileError(error, "cannot read config file", "permission denied")

    def test_invalid_yaml(self):
        """Invalid YAML gives the 1-based line and column of the problem."""
        path = self._write(EDGE_HEAD + "modules:\n  edgeHub:\n    heartbeat: [1, 2\n")
        error = self.assertRaises(ConfigError, load_config, path, EDGE)
        self.assertOneFileError(error, "invalid YAML at line 6, column 1")
        error = self.assertRaises(ConfigError, load_config_text, "a: b: c\n", EDGE)
        self.assertOneFileError(error, "invalid YAML at line 1, column 5", "mapping values")

    def test_unsafe_yaml_tag(self):
        """Python object tags are rejected by safe_load, as invalid YAML."""
        error = self.assertRaises(
            ConfigError, load_config_text, EDGE_HEAD + "x: !!python/object/apply:os.getpid []\n", EDGE
        )
        self.assertOneFileError(error, "invalid YAML at line 3")

    def test_not_a_mapping(self):
        """A top level that is a list or scalar or nothing is rejected."""
        for text, got in (("- a\n- b\n", "a list"), ("hello\n", '"hello"'), ("", "empty")):
            error = self.assertRaises(ConfigError, load_config_text, text, CLOUD)
            self.assertOneFileError(error, got)
        error = self.assertRaises(ConfigError, load_config_text, "- a\n", CLOUD)
        self.assertIn("top level must be a mapping", str(error))

    def test_wrong_api_version(self):
        """A wrong apiVersion names the expected value."""
        error = self.assertRaises(
            ConfigError, load_config_text, "apiVersion: v1\nkind: CloudCore\n", CLOUD
        )
        self.assertEqual(
            error.errors,
            [("apiVersion", 'must be "cloudcore.config.kubeedge.io/v1alpha1" (or '
              '"cloudcore.config.kubeedge.io/v1alpha2"), got "v1"')],
        )

    def test_wrong_kind(self):
        """A wrong kind names the expected value."""
        error = self.assertRaises(
            ConfigError, load_config_text,
            "apiVersion: edgecore.config.kubeedge.io/v1alpha1\nkind: Edge\n", EDGE,
        )
        self.assertEqual(error.errors, [("kind", 'must be "EdgeCore", got "Edge"')])

    def test_missing_identity(self):
        """Missing apiVersion and kind are both reported."""
        error = self.assertRaises(ConfigError, load_config_text, "modules: {}\n", EDGE)
        self.assertEqual([p for p, _ in error.errors], ["apiVersion", "kind"])

    def test_other_side_file(self):
        """An edge file given to the cloud reports only the identity mismatch, with a hint."""
        error = self.assertRaises(ConfigError, load_config, EDGE_FILE, CLOUD)
        self.assertEqual([p for p, _ in error.errors], ["apiVersion", "kind"])
        self.assertIn("this file is for EdgeCore", str(error))

    def test_unknown_kind_argument(self):
        """Passing something other than CLOUD or EDGE is a programming error."""
        self.assertRaises(ValueError, default_config, "fog")


class ValidationTests(SynchronousTestCase):
    """Per-key and cross-key validation."""

    def assertErrors(self, loader, body, expected, **kwargs):
        """Assert loading ``body`` fails with exactly the ``expected`` (path, message) list."""
        error = self.assertRaises(ConfigError, loader, body, **kwargs)
        self.assertEqual(error.errors, expected)
        return error

    def assertPaths(self, loader, body, paths):
        """Assert loading ``body`` fails with errors at exactly ``paths``."""
        error = self.assertRaises(ConfigError, loader, body)
        self.assertEqual([p for p, _ in error.errors], paths, str(error))
        return error

    def test_three_mistakes_reported_together(self):
        """Bad type, unknown key and bad port are all reported, in file order, one line each."""
        body = (
            "modules:\n"
            "  edgeHub:\n"
            "    heartbeat: abc\n"
            "    websocket:\n"
            "      server: 127.0.0.1:99999\n"
            "  edged:\n"
            "    hostnameOverride: node-a\n"
            "  evntBus:\n"
            "    enable: true\n"
        )
        error = self.assertRaises(ConfigError, _edge, body, source="edge.yaml")
        self.assertEqual(
            [p for p, _ in error.errors],
            ["modules.edgeHub.heartbeat", "modules.edgeHub.websocket.server", "modules.evntBus"],
        )
        lines = str(error).splitlines()
        self.assertEqual(len(lines), 3)
        self.assertEqual(
            lines[0], 'edge.yaml: modules.edgeHub.heartbeat: must be a positive integer, got "abc"'
        )
        self.assertIn("port 99999 is out of range", lines[1])
        self.assertEqual(
            lines[2], 'edge.yaml: modules.evntBus: unknown key (did you mean "eventBus"?)'
        )

    def test_out_of_range_port(self):
        """Ports outside 1..65535 are rejected; readOnlyPort also allows 0."""
        self.assertErrors(
            _cloud, "modules:\n  cloudHub:\n    websocket:\n      port: 0\n",
            [("modules.cloudHub.websocket.port", "must be a port number from 1 to 65535, got 0")],
        )
        self.assertPaths(_edge, "modules:\n  serviceBus:\n    port: 65536\n", ["modules.serviceBus.port"])
        self.assertEqual(_edge("modules:\n  edged:\n    readOnlyPort: 0\n").modules.edged.readOnlyPort, 0)

    def test_typo_suggestions(self):
        """Unknown keys suggest the closest known key, across case and separators."""
        self.assertErrors(
            _edge, "modules:\n  edgeHub:\n    hearbeat: 15\n",
            [("modules.edgeHub.hearbeat", 'unknown key (did you mean "heartbeat"?)')],
        )
        self.assertErrors(
            _cloud, "modules:\n  cloudHub:\n    node-limit: 5\n",
            [("modules.cloudHub.node-limit", 'unknown key (did you mean "nodeLimit"?)')],
        )
        self.assertErrors(
            _edge, "modules:\n  edgeHub:\n    tlsCAFile: x\n",
            [("modules.edgeHub.tlsCAFile", 'unknown key (did you mean "tlsCaFile"?)')],
        )
        self.assertErrors(_edge, "zzzzzz: 1\n", [("zzzzzz", "unknown key")])
        self.assertErrors(_edge, "1: 1\n", [("1", "unknown key")])

    def test_bool_is_not_int(self):
        """true where an integer is expected is an error, not 1."""
        self.assertErrors(
            _edge, "modules:\n  edgeHub:\n    heartbeat: true\n",
            [("modules.edgeHub.heartbeat", "must be a positive integer, got true")],
        )
        self.assertPaths(_edge, "modules:\n  eventBus:\n    mqttMode: false\n", ["modules.eventBus.mqttMode"])

    def test_int_strings_and_floats_rejected(self):
        """Quoted numbers and floats are not integers."""
        self.assertErrors(
            _edge, 'modules:\n  edgeHub:\n    heartbeat: "15"\n',
            [("modules.edgeHub.heartbeat", 'must be a positive integer, got "15"')],
        )
        self.assertPaths(_edge, "modules:\n  edgeHub:\n    heartbeat: 1.5\n", ["modules.edgeHub.heartbeat"])

    def test_bool_must_be_boolean(self):
        """A quoted "true" or a number is not a boolean."""
        self.assertErrors(
            _edge, 'modules:\n  edged:\n    registerNode: "true"\n',
            [("modules.edged.registerNode", 'must be true or false, got "true"')],
        )
        self.assertPaths(_edge, "modules:\n  dbTest:\n    enable: 1\n", ["modules.dbTest.enable"])

    def test_mapping_scalar_mismatch(self):
        """A mapping where a scalar is expected, and a scalar or list where a section is expected."""
        self.assertErrors(
            _edge, "modules:\n  edgeHub:\n    heartbeat: {a: 1}\n    websocket: 5\n  edged: [1]\n",
            [
                ("modules.edgeHub.heartbeat", "must be a positive integer, got a mapping"),
                ("modules.edgeHub.websocket", "must be a mapping, got 5"),
                ("modules.edged", "must be a mapping, got a list"),
            ],
        )

    def test_string_type(self):
        """A number where a string is expected asks for quotes."""
        self.assertErrors(
            _edge, "modules:\n  edged:\n    version: 1.10\n",
            [("modules.edged.version", "must be a string, got 1.1 (put it in quotes)")],
        )

    def test_enums(self):
        """Enumerated keys reject other values."""
        self.assertErrors(
            _edge, "modules:\n  edged:\n    cgroupDriver: cgroupv2\n",
            [("modules.edged.cgroupDriver", 'must be one of "cgroupfs", "systemd", got "cgroupv2"')],
        )
        self.assertErrors(
            _edge, "database:\n  driverName: mysql\n",
            [("database.driverName", 'must be "sqlite3", got "mysql"')],
        )
        self.assertErrors(
            _edge, "modules:\n  eventBus:\n    mqttMode: 3\n    mqttQOS: 4\n",
            [
                ("modules.eventBus.mqttMode", "must be one of 0, 1, 2, got 3"),
                ("modules.eventBus.mqttQOS", "must be one of 0, 1, 2, got 4"),
            ],
        )
        self.assertPaths(_edge, "modules:\n  edged:\n    runtimeType: remote\n", ["modules.edged.runtimeType"])
        self.assertPaths(_cloud, "modules:\n  apiServer:\n    enable: maybe\n", ["modules.apiServer.enable"])

    def test_host_port(self):
        """HOST:PORT accepts names, IPv4 and bracketed IPv6 and rejects the rest."""
        good = ["127.0.0.1:10000", "[::1]:10000", "[fe80::1]:1", "cloud.example.com:65535", "Cloud:443"]
        for value in good:
            cfg = _edge("", overrides={"modules.edgeHub.websocket.server": value})
            self.assertEqual(cfg.modules.edgeHub.websocket.server, value)
        bad = ["::1:10000", "host", "host:0", "host:65536", "[::1]", "[zz]:10", "bad_host:10",
               "host:port", ":10000", "[::1:10", "256.1.1.1:10"]
        for value in bad:
            error = self.assertRaises(
                ConfigError, _edge, "", overrides={"modules.edgeHub.websocket.server": value}
            )
            self.assertEqual([p for p, _ in error.errors], ["modules.edgeHub.websocket.server"], value)
            self.assertIn("must be HOST:PORT", error.errors[0][1])

    def test_node_name(self):
        """hostnameOverride must be empty or a lowercase DNS-1123 subdomain of <= 253 chars."""
        for value in ["edge-node", "a", "edge.node-1", "0abc", "a" * 253]:
            cfg = _edge("", overrides={"modules.edged.hostnameOverride": value})
            self.assertEqual(cfg.modules.edged.hostnameOverride, value)
        for value in ["Edge", "-edge", "edge-", "edge_node", "a" * 254, "edge..node", "édge"]:
            error = self.assertRaises(
                ConfigError, _edge, "", overrides={"modules.edged.hostnameOverride": value}
            )
            self.assertIn("must be a valid node name", error.errors[0][1])

    def test_urls(self):
        """MQTT servers must be tcp://HOST:PORT; httpServer must be http(s)://HOST[:PORT]."""
        self.assertEqual(
            _edge("modules:\n  eventBus:\n    mqttServerExternal: tcp://[::1]:1883\n")
            .modules.eventBus.mqttServerExternal,
            "tcp://[::1]:1883",
        )
        body = (
            "modules:\n  eventBus:\n    mqttServerInternal: mqtt://127.0.0.1:1884\n"
            "    mqttServerExternal: tcp://127.0.0.1\n"
            "  edgeHub:\n    httpServer: ftp://x\n"
        )
        error = self.assertPaths(_edge, body, [
            "modules.eventBus.mqttServerInternal",
            "modules.eventBus.mqttServerExternal",
            "modules.edgeHub.httpServer",
        ])
        self.assertIn("tcp://HOST:PORT", error.errors[0][1])
        self.assertEqual(
            _edge("modules:\n  edgeHub:\n    httpServer: https://cloud.example.com\n")
            .modules.edgeHub.httpServer,
            "https://cloud.example.com",
        )

    def test_negative_sizes(self):
        """Sizes and buffers reject negative numbers; buffers allow zero."""
        self.assertErrors(
            _edge, "modules:\n  edged:\n    edgedMemoryCapacity: -5\n",
            [("modules.edged.edgedMemoryCapacity", "must be a positive integer, got -5")],
        )
        self.assertErrors(
            _cloud, "modules:\n  edgeController:\n    buffer:\n      podEvent: -1\n",
            [("modules.edgeController.buffer.podEvent", "must be a non-negative integer, got -1")],
        )
        cfg = _cloud("modules:\n  edgeController:\n    load:\n      queryNodeWorkers: 0\n")
        self.assertEqual(cfg.modules.edgeController.load.queryNodeWorkers, 0)

    def test_ip_lists(self):
        """advertiseAddress items must be IP addresses; the bad item is located by index."""
        self.assertErrors(
            _cloud, "modules:\n  cloudHub:\n    advertiseAddress: [10.0.0.1, nope]\n",
            [("modules.cloudHub.advertiseAddress[1]", 'must be an IP address, got "nope"')],
        )
        self.assertPaths(_cloud, "modules:\n  cloudHub:\n    advertiseAddress: 10.0.0.1\n",
                         ["modules.cloudHub.advertiseAddress"])
        cfg = _cloud("modules:\n  cloudHub:\n    dnsNames: [a.example.com, '*.b.example.com']\n")
        self.assertEqual(cfg.modules.cloudHub.dnsNames, ("a.example.com", "*.b.example.com"))

    def test_quic_enable_is_an_error(self):
        """quic.enable: true is rejected on both sides with the same message."""
        message = "QUIC transport is not supported by kubeedge-tw; use websocket"
        self.assertErrors(_cloud, "modules:\n  cloudHub:\n    quic:\n      enable: true\n",
                          [("modules.cloudHub.quic.enable", message)])
        self.assertErrors(_edge, "modules:\n  edgeHub:\n    quic:\n      enable: true\n",
                          [("modules.edgeHub.quic.enable", message)])

    def test_image_gc_thresholds(self):
        """imageGCLowThreshold must be below imageGCHighThreshold, checked only when both are valid."""
        self.assertErrors(
            _edge, "modules:\n  edged:\n    imageGCLowThreshold: 90\n",
            [("modules.edged.imageGCLowThreshold", "must be less than imageGCHighThreshold (80), got 90")],
        )
        self.assertPaths(_edge, "modules:\n  edged:\n    imageGCHighThreshold: 40\n",
                         ["modules.edged.imageGCLowThreshold"])
        self.assertErrors(
            _edge, "modules:\n  edged:\n    imageGCHighThreshold: 101\n",
            [("modules.edged.imageGCHighThreshold", "must be an integer from 0 to 100, got 101")],
        )

    def test_burst_below_qps(self):
        """kubeAPIConfig.burst must be >= qps."""
        self.assertErrors(
            _cloud, "kubeAPIConfig:\n  qps: 50\n  burst: 10\n",
            [("kubeAPIConfig.burst", "must be >= qps (50), got 10")],
        )

    def test_mqtt_both_needs_two_brokers(self):
        """mqttMode 1 with the same internal and external broker is rejected."""
        self.assertPaths(
            _edge,
            "modules:\n  eventBus:\n    mqttMode: 1\n    mqttServerInternal: tcp://127.0.0.1:1883\n",
            ["modules.eventBus.mqttServerInternal"],
        )

    def test_listener_port_clash(self):
        """Two enabled cloud listeners on one port are rejected; a disabled one is not."""
        self.assertErrors(
            _cloud, "modules:\n  cloudHub:\n    https:\n      port: 10000\n",
            [("modules.cloudHub.https.port", "port 10000 is already used by modules.cloudHub.websocket.port")],
        )
        cfg = _cloud("modules:\n  cloudHub:\n    https:\n      enable: false\n      port: 10000\n")
        self.assertEqual(cfg.modules.cloudHub.https.port, 10000)

    def test_other_checks(self):
        """Namespaces, IPs, domains and socket URLs are checked."""
        body = (
            "modules:\n  edged:\n    registerNodeNamespace: Default\n    nodeIP: 10.0.0\n"
            "    clusterDNS: 10.96.0.10\n    clusterDomain: cluster.local\n"
            "    dockerAddress: /var/run/docker.sock\n"
        )
        self.assertPaths(_edge, body, [
            "modules.edged.registerNodeNamespace",
            "modules.edged.nodeIP",
            "modules.edged.dockerAddress",
        ])
        self.assertPaths(
            _cloud, "modules:\n  cloudHub:\n    unixsocket:\n      address: unix://relative.sock\n",
            ["modules.cloudHub.unixsocket.address"],
        )

    def test_errors_are_deterministic(self):
        """The same bad file yields the same error list every time."""
        body = "modules:\n  edged:\n    b: 1\n    a: 2\n  edgeHub:\n    heartbeat: 0\n"
        first = self.assertRaises(ConfigError, _edge, body).errors
        second = self.assertRaises(ConfigError, _edge, body).errors
        self.assertEqual(first, second)
        self.assertEqual([p for p, _ in first],
                         ["modules.edged.b", "modules.edged.a", "modules.edgeHub.heartbeat"])


class ConfigErrorTests(SynchronousTestCase):
    """The ConfigError value."""

    def test_format(self):
        """str() has one "source: path: message" line per error, path omitted when empty."""
        error = ConfigError([("a.b", "bad"), ("", "worse")], "f.yaml")
        self.assertEqual(str(error), "f.yaml: a.b: bad\nf.yaml: worse")
        self.assertEqual(error.errors, [("a.b", "bad"), ("", "worse")])
        self.assertIsInstance(error, Exception)

    def test_single_message(self):
        """A bare message is a single file-level error."""
        error = ConfigError("oops", "f.yaml")
        self.assertEqual(error.errors, [("", "oops")])
        self.assertEqual(str(error), "f.yaml: oops")
