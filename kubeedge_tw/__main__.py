"""``python -m kubeedge_tw`` (also the entry point of the .pyz files).

Subcommands:

* ``cloud [--logger text|json] [kubeedge-cloud options]``: run the cloud side in the
  foreground, i.e. ``twistd --nodaemon kubeedge-cloud ...``;
* ``edge [--logger text|json] [kubeedge-edge options]``: the same for the edge side;
* ``version``: print the versions of kubeedge-tw and what it runs on.

twistd is handed the two ``ServiceMaker``s directly instead of discovering plugins, so
this works from a zip file, where plugin discovery cannot work and must not try to write
``dropin.cache``.
"""

import platform
import sys

__all__ = ["main"]

USAGE = """\
usage: python -m kubeedge_tw COMMAND [options]

commands:
  cloud     run the cloud side (cloudcore) in the foreground
  edge      run the edge side (edgecore) in the foreground
  certs     init | issue-edge: the CA, the CloudHub server and edge certificates (cloud)
  gettoken  print a join token for edges (cloud)
  join      join this edge to a cloud with a token (edge)
  version   print versions

'python -m kubeedge_tw cloud --help' lists the options of a side; both also take
'--logger text' (default, human-readable on stderr) or '--logger json' (JSON lines).
"""


def _server_options_class():
    """twistd's ServerOptions with our plugins preloaded (no plugin discovery)."""
    from twisted.scripts.twistd import ServerOptions

    from kubeedge_tw.taps import MAKERS

    class KubeEdgeServerOptions(ServerOptions):
        """twistd options that know exactly our two service makers."""

        _getPlugins = staticmethod(lambda interface: list(MAKERS))

    return KubeEdgeServerOptions


def _split_logger(args, prog, stderr):
    """Take ``--logger NAME`` / ``--logger=NAME`` out of ``args``; return (name, rest)."""
    from kubeedge_tw.common.log import observer_for
    name, rest, i = "text", [], 0
    while i < len(args):
        arg = args[i]
        if arg == "--logger":
            if i + 1 >= len(args):
                stderr.write("{}: --logger needs a value (text or json)\n".format(prog))
                raise SystemExit(2)
            name, i = args[i + 1], i + 2
            continue
        if arg.startswith("--logger="):
            name, i = arg.split("=", 1)[1], i + 1
            continue
        rest.append(arg)
        i += 1
    try:
        return observer_for(name), rest
    except ValueError as e:
        stderr.write("{}: {}\n".format(prog, e))
        raise SystemExit(2)


def run_side(tapname, args, stderr=sys.stderr):
    """Run twistd in the foreground for ``tapname`` with ``args`` (does not return)."""
    from twisted.application import app
    from twisted.scripts.twistd import runApp

    observer, rest = _split_logger(args, tapname, stderr)
    sys.argv = ["twistd", "--nodaemon", "--logger", observer, tapname] + rest
    app.run(runApp, _server_options_class())


def versions():
    """Lines describing kubeedge-tw and the libraries it runs on."""
    import kubeedge_tw
    lines = ["kubeedge-tw {} (KubeEdge-compatible wire protocol and config, as {})".format(
        kubeedge_tw.__version__, kubeedge_tw.KUBEEDGE_COMPAT_VERSION)]
    lines.append("python {} ({}, {})".format(platform.python_version(),
                                             platform.python_implementation(),
                                             platform.machine()))
    from importlib import metadata
    for dist in ("twisted", "autobahn", "pyopenssl", "service-identity", "treq",
                 "paho-mqtt", "docker", "pyyaml"):
        try:
            lines.append("{} {}".format(dist, metadata.version(dist)))
        except metadata.PackageNotFoundError:
            lines.append("{} (not installed)".format(dist))
    return lines


def main(argv=None, stdout=sys.stdout, stderr=sys.stderr):
    """Dispatch a subcommand; returns an exit code (or runs twistd, which exits)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        (stdout if args else stderr).write(USAGE)
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "version":
        stdout.write("\n".join(versions()) + "\n")
        return 0
    if command in ("certs", "gettoken", "join"):
        from kubeedge_tw.certs import cli as certs_cli
        handler = {"certs": certs_cli.certs_main, "gettoken": certs_cli.gettoken_main,
                   "join": certs_cli.join_main}[command]
        return handler(rest, out=stdout, err=stderr)
    if command == "cloud":
        run_side("kubeedge-cloud", rest, stderr)
        return 0
    if command == "edge":
        run_side("kubeedge-edge", rest, stderr)
        return 0
    stderr.write("python -m kubeedge_tw: unknown command {!r}\n\n{}".format(command, USAGE))
    return 2


def main_console():
    """Console-script entry point ``kubeedge-tw``."""
    sys.exit(main())


if __name__ == "__main__":
    sys.exit(main())
