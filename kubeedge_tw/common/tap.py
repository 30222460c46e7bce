"""What the cloud and edge tap modules share: the common options and config loading.

Each side's ``tap.py`` subclasses :class:`SideOptions`. ``postOptions`` checks the flags
(``UsageError`` on bad ones), loads the whole config file with the flags applied as
overrides, and on a config error prints every problem with its dotted path and exits 1,
before any service exists. twistd's default pidfile (``twistd.pid`` in the current
directory) is moved into the state dir, one per side, so the cloud and the edge can run
side by side from the same directory.
"""

import os
import sys

from twisted.python import usage

from kubeedge_tw.common.config import ConfigError, default_config, load_config
from kubeedge_tw.common.resource import valid_node_name

__all__ = ["SideOptions", "check_host_port", "check_node_name", "prepare_state_dir",
           "exit_zero_after_clean_sigterm"]

def check_node_name(value):
    """A Kubernetes node name (DNS-1123 subdomain), or ``UsageError``."""
    if not valid_node_name(value):
        raise usage.UsageError(
            "--node-name {!r} is not a valid node name: lowercase letters, digits, '-' and "
            "'.', starting and ending with a letter or digit, at most 253 characters"
            .format(value))
    return value


def check_host_port(flag, value):
    """``HOST:PORT`` (IPv6 as ``[addr]:port``), or ``UsageError`` naming ``flag``."""
    host, sep, port = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise usage.UsageError(
            "{} {!r} must be HOST:PORT with a port from 1 to 65535 (IPv6 as [addr]:port)"
            .format(flag, value))
    return value


def prepare_state_dir(path, stderr=None):
    """Create the state dir (mode 0700) if needed; exit 1 with a clear line if we cannot."""
    stderr = stderr or sys.stderr
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    except OSError as e:
        stderr.write("kubeedge-tw: cannot create state dir {}: {}\n".format(
            path, e.strerror or e))
        raise SystemExit(1)
    if not os.access(path, os.W_OK | os.X_OK):
        stderr.write("kubeedge-tw: state dir {} is not writable\n".format(path))
        raise SystemExit(1)
    return path


def build_or_exit(side, build, stderr=None):
    """Run ``build()``; a :class:`~kubeedge_tw.common.core.SetupError` becomes one line
    on stderr and exit status 1 (before anything started)."""
    from kubeedge_tw.common.core import SetupError
    try:
        return build()
    except SetupError as e:
        (stderr or sys.stderr).write("{}: {}\n".format(side, e))
        raise SystemExit(1)


def freeze_startup_objects(reactor):
    """Once the side runs, move everything allocated while starting (modules, config,
    libraries) out of the garbage collector's sight with ``gc.freeze()``: full
    collections then scan only what running created, which shortens the pauses they
    impose on the reactor (measured in bench/hub_bench.py)."""
    import gc
    reactor.callWhenRunning(gc.freeze)


def exit_zero_after_clean_sigterm(reactor):
    """Make a SIGTERM that ended in an orderly shutdown exit with status 0.

    twistd re-raises the signal that stopped the reactor so that the exit status says
    "killed by SIGTERM". For a daemon that stopped every module cleanly, supervisors
    (systemd, docker, scripts) should see success instead, so once shutdown has finished
    the captured SIGTERM is forgotten. SIGINT keeps twistd's behaviour.
    """
    import signal

    def forget_sigterm():
        if getattr(reactor, "_exitSignal", None) == signal.SIGTERM:
            reactor._exitSignal = None

    reactor.addSystemEventTrigger("after", "shutdown", forget_sigterm)


class SideOptions(usage.Options):
    """Options both sides take. Subclasses set ``kind`` and ``side`` and may add flags."""

    #: ``CLOUD`` or ``EDGE`` from :mod:`kubeedge_tw.common.config`.
    kind = None
    #: ``kubeedge-cloud`` or ``kubeedge-edge``.
    side = None

    optParameters = [
        ["config", "c", None, "Config file (KubeEdge v1.2+ component config YAML). "
                              "Without it every key takes its default."],
        ["state-dir", None, None, "Where this side keeps sqlite, certificates, the embedded "
                                  "API's kubeconfig and logs (default /var/lib/kubeedge as "
                                  "root, else ~/.local/state/kubeedge-tw)."],
    ]

    #: Where config errors are written; tests replace it.
    stderr = sys.stderr

    def overrides(self):
        """Config overrides from the flags: dotted path -> value."""
        result = {}
        if self["state-dir"] is not None:
            if not self["state-dir"]:
                raise usage.UsageError("--state-dir must not be empty")
            result["stateDir"] = os.path.abspath(os.path.expanduser(self["state-dir"]))
        return result

    def postOptions(self):
        overrides = self.overrides()
        try:
            if self["config"]:
                config = load_config(self["config"], self.kind, overrides=overrides)
            else:
                config = default_config(self.kind, overrides=overrides)
        except ConfigError as e:
            for line in str(e).splitlines():
                self.stderr.write("{}: config error: {}\n".format(self.side, line))
            self.stderr.flush()
            raise SystemExit(1)
        self["loaded-config"] = config
        self._move_default_pidfile(config)

    def _move_default_pidfile(self, config):
        parent = self.parent
        if parent is None:
            return
        try:
            pidfile = parent["pidfile"]
        except KeyError:
            return
        if pidfile == "twistd.pid":
            parent["pidfile"] = os.path.join(config.state_dir, self.side + ".pid")
