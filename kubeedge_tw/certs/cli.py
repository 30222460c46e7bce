"""``python -m kubeedge_tw certs|gettoken|join``: keadm's certificate workflow without
openssl.

* ``certs init`` (cloud): CA (EC P-256, 10 years) and CloudHub server certificate with
  SANs for the advertise addresses; never overwrites an existing CA.
* ``certs issue-edge --node NAME`` (cloud): an edge client certificate for offline set-ups.
* ``gettoken`` (cloud): prints a join token ``<sha256 of CA>.<JWT>`` (24 h by default).
* ``join`` (edge): fetches the CA from the cloud's bootstrap server, checks it against the
  token's hash, makes the key here (it never leaves the edge), has the CSR signed, writes
  the CA, certificate, key and a ready ``edgecore.yaml``.

Every command takes the same ``--config``/``--state-dir`` as the side it belongs to;
certificate paths are the config's (relative ones under the state dir).
"""

import os
import sys
import time

from twisted.python import usage

from kubeedge_tw.certs.token import make_token, parse_duration
from kubeedge_tw.common import pki
from kubeedge_tw.common.config import CLOUD, EDGE, ConfigError, default_config, load_config

__all__ = ["certs_main", "gettoken_main", "join_main"]


class CommandError(Exception):
    """A command that cannot do what was asked; the message is for the user."""


def _load(kind, config_path, state_dir, overrides=None):
    overrides = dict(overrides or {})
    if state_dir:
        overrides["stateDir"] = os.path.abspath(os.path.expanduser(state_dir))
    try:
        if config_path:
            return load_config(config_path, kind, overrides=overrides)
        return default_config(kind, overrides=overrides)
    except ConfigError as e:
        raise CommandError(str(e)) from None


def _cloud_paths(config):
    hub = config.modules.cloudHub
    return (config.resolve_path(hub.tlsCAFile), config.resolve_path(hub.tlsCAKeyFile),
            config.resolve_path(hub.tlsCertFile), config.resolve_path(hub.tlsPrivateKeyFile))


def _load_ca(config):
    ca, ca_key, _, _ = _cloud_paths(config)
    if not (os.path.exists(ca) and os.path.exists(ca_key)):
        raise CommandError("no CA at {} (key {}): run 'python -m kubeedge_tw certs init' "
                           "on the cloud first".format(ca, ca_key))
    try:
        return pki.load_cert(ca), pki.load_key(ca_key)
    except (OSError, ValueError) as e:
        raise CommandError("cannot read the CA: {}".format(e)) from None


class _CloudOptions(usage.Options):
    optParameters = [
        ["config", "c", None, "cloudcore.yaml (certificate paths, advertise addresses)"],
        ["state-dir", None, None, "the cloud's state dir"],
        ["dir", None, None, "where the PKI lives (an alias of --state-dir for these commands)"],
    ]

    def config(self):
        return _load(CLOUD, self["config"], self["dir"] or self["state-dir"])


class InitOptions(_CloudOptions):
    """Options of ``certs init``."""

    synopsis = "[--config F] [--state-dir D] [--ip IP ...] [--dns NAME ...]"

    def __init__(self):
        super().__init__()
        self["ip"], self["dns"] = [], []

    def opt_ip(self, value):
        """An IP address SAN for the server certificate (repeatable; default from
        modules.cloudHub.advertiseAddress)"""
        self["ip"].append(value)

    def opt_dns(self, value):
        """A DNS name SAN for the server certificate (repeatable; default from
        modules.cloudHub.dnsNames)"""
        self["dns"].append(value)


class IssueEdgeOptions(_CloudOptions):
    """Options of ``certs issue-edge``."""

    synopsis = "--node NAME [--out DIR] [--days N]"
    optParameters = _CloudOptions.optParameters + [
        ["node", None, None, "node name (the certificate's CN)"],
        ["out", None, None, "directory for <node>.crt and <node>.key (default <pki>/certs)"],
        ["days", None, None, "validity in days (default modules.cloudHub."
                             "edgeCertSigningDuration)", int],
    ]

    def postOptions(self):
        if not self["node"]:
            raise usage.UsageError("--node is required")


class CertsOptions(usage.Options):
    """``certs`` subcommands."""

    synopsis = "init|issue-edge [options]"
    subCommands = [
        ["init", None, InitOptions, "create the CA and the CloudHub server certificate"],
        ["issue-edge", None, IssueEdgeOptions, "issue an edge client certificate"],
    ]

    def postOptions(self):
        if self.subCommand is None:
            raise usage.UsageError("choose a subcommand: init or issue-edge")


def certs_init(options, out):
    """Create what is missing of the CA and server certificate; report what exists."""
    config = options.config()
    ca, ca_key, cert, key = _cloud_paths(config)
    ips = tuple(options["ip"]) or tuple(config.modules.cloudHub.advertiseAddress)
    dns = tuple(options["dns"]) or tuple(config.modules.cloudHub.dnsNames)
    try:
        written = pki.ensure_cloud_pki(ca, ca_key, cert, key, ips=ips, dns_names=dns)
    except (ValueError, OSError) as e:
        raise CommandError(str(e)) from None
    for path in (ca, ca_key, cert, key):
        out.write("{} {}\n".format("created" if path in written else "kept   ", path))
    return 0


def certs_issue_edge(options, out):
    """Issue ``<node>.crt``/``<node>.key`` signed by the cloud CA."""
    from kubeedge_tw.certs.bootstrap import valid_node_name
    node = options["node"]
    if not valid_node_name(node):
        raise CommandError("--node {!r} is not a valid node name (DNS-1123)".format(node))
    config = options.config()
    ca_cert, ca_key = _load_ca(config)
    days = options["days"] or config.modules.cloudHub.edgeCertSigningDuration
    if days <= 0:
        raise CommandError("--days must be positive")
    key, cert = pki.issue_client_cert(ca_key, ca_cert, node, days=days)
    out_dir = options["out"] or os.path.dirname(_cloud_paths(config)[2])
    cert_path = pki.write_pem(os.path.join(out_dir, node + ".crt"), pki.cert_pem(cert))
    key_path = pki.write_pem(os.path.join(out_dir, node + ".key"), pki.key_pem(key), True)
    out.write("created {}\ncreated {}\ncopy them and {} to the edge (tlsCertFile, "
              "tlsPrivateKeyFile, tlsCaFile)\n".format(cert_path, key_path,
                                                       _cloud_paths(config)[0]))
    return 0


class GetTokenOptions(_CloudOptions):
    """Options of ``gettoken``."""

    synopsis = "[--node NAME] [--ttl 24h]"
    optParameters = _CloudOptions.optParameters + [
        ["node", None, None, "bind the token to this node name"],
        ["ttl", None, "24h", "how long the token is valid (e.g. 24h, 30m, 2d)"],
    ]

    def postOptions(self):
        try:
            self["ttl-seconds"] = parse_duration(self["ttl"])
        except ValueError as e:
            raise usage.UsageError("--ttl: {}".format(e)) from None


def gettoken(options, out, now=None):
    """Print a join token."""
    from kubeedge_tw.certs.bootstrap import valid_node_name
    if options["node"] and not valid_node_name(options["node"]):
        raise CommandError("--node {!r} is not a valid node name (DNS-1123)".format(
            options["node"]))
    ca_cert, ca_key = _load_ca(options.config())
    now = time.time() if now is None else now
    out.write(make_token(ca_cert, ca_key, now, options["ttl-seconds"], node=options["node"])
              + "\n")
    return 0


def _run(options_class, argv, action, out, err, prog):
    options = options_class()
    try:
        options.parseOptions(argv)
    except usage.UsageError as e:
        err.write("{}: {}\n(see '{} --help')\n".format(prog, e, prog))
        return 2
    try:
        return action(options, out)
    except CommandError as e:
        err.write("{}: {}\n".format(prog, e))
        return 1


def certs_main(argv, out=sys.stdout, err=sys.stderr):
    """``python -m kubeedge_tw certs ...``"""
    def action(options, out):
        if options.subCommand == "init":
            return certs_init(options.subOptions, out)
        return certs_issue_edge(options.subOptions, out)
    return _run(CertsOptions, argv, action, out, err, "kubeedge_tw certs")


def gettoken_main(argv, out=sys.stdout, err=sys.stderr):
    """``python -m kubeedge_tw gettoken ...``"""
    return _run(GetTokenOptions, argv, gettoken, out, err, "kubeedge_tw gettoken")


def join_main(argv, out=sys.stdout, err=sys.stderr):
    """``python -m kubeedge_tw join ...``"""
    from kubeedge_tw.certs.join import JoinOptions
    return _run(JoinOptions, argv, _react_join, out, err, "kubeedge_tw join")


def _react_join(options, out):
    """Run the asynchronous join on a reactor and turn its outcome into an exit code."""
    from twisted.internet import defer
    from twisted.internet.task import react

    from kubeedge_tw.certs.join import JoinError, join
    outcome = {}

    def main(reactor):
        d = defer.ensureDeferred(join(reactor, options, out))

        def failed(failure):
            failure.trap(JoinError)
            outcome["error"] = failure.value
        d.addErrback(failed)
        return d

    try:
        react(main, ())
    except SystemExit as e:
        if e.code not in (0, None):
            raise CommandError("join failed (exit {})".format(e.code)) from None
    if "error" in outcome:
        raise CommandError(str(outcome["error"]))
    return 0
