"""Loading, validating and freezing the cloudcore / edgecore YAML configuration.

The files have KubeEdge v1.2+ "component config" shape (``apiVersion``,
``kind: CloudCore`` / ``kind: EdgeCore``, ``modules.<moduleName>.<key>``) so an
operator can move between KubeEdge and kubeedge-tw without renaming keys.

The schema is declarative: a tree of :class:`Section` and :class:`Field`
descriptors, one tree per side (:data:`CLOUD_SCHEMA`, :data:`EDGE_SCHEMA`).
Adding a key is adding a descriptor; loading, defaults, typo suggestions and
the error report all follow from the tree.

Loading is all-or-nothing: :func:`load_config` walks the whole file, collects
every problem with its dotted path and raises one :class:`ConfigError` listing
them all, so the operator fixes the file in one go instead of one error per
restart (the Buildbot/Synapse way, see STYLE.md section 2 item 7). On success
it returns a frozen :class:`Config`.

Conventions that the sample files in ``conf/`` document for operators:

* a key that is missing, or present with an empty (``null``) value, takes its
  default; a section that is missing, ``null`` or ``{}`` takes all defaults;
* relative file paths are resolved against ``stateDir`` by
  :meth:`Config.resolve_path`;
* booleans must be YAML booleans and integers must be YAML integers; a quoted
  ``"15"`` or a ``true`` where a number is expected is an error, not a guess.
"""

import difflib
import ipaddress
import json
import os
import re
from collections.abc import Mapping
from urllib.parse import urlsplit

import yaml

from kubeedge_tw.common.resource import valid_node_name

__all__ = [
    "CLOUD",
    "EDGE",
    "CLOUD_SCHEMA",
    "EDGE_SCHEMA",
    "Config",
    "ConfigError",
    "Field",
    "Section",
    "default_config",
    "default_state_dir",
    "load_config",
    "load_config_text",
    "schema_for",
]

#: Schema kind of ``cloudcore`` configuration files (``kind: CloudCore``).
CLOUD = "cloud"
#: Schema kind of ``edgecore`` configuration files (``kind: EdgeCore``).
EDGE = "edge"

# Where the state dir lives for root: the same directory KubeEdge uses for
# edgecore.db and its sockets, so packaged installs look familiar.
_ROOT_STATE_DIR = "/var/lib/kubeedge"
# Non-root runs (tests, development) must not need write access to /var.
_USER_STATE_DIR = "~/.local/state/kubeedge-tw"

_DEFAULTS_SOURCE = "<defaults>"


def default_state_dir():
    """Return the state directory used when neither the file nor a flag sets one.

    ``/var/lib/kubeedge`` for root, ``~/.local/state/kubeedge-tw`` (expanded)
    for everyone else.
    """
    if os.geteuid() == 0:
        return _ROOT_STATE_DIR
    return os.path.expanduser(_USER_STATE_DIR)


# ---------------------------------------------------------------------------
# Errors


class ConfigError(Exception):
    """Every problem found in one configuration, reported together.

    ``errors`` is a list of ``(dotted_path, message)`` tuples in a stable
    order: apiVersion/kind first, then the file's keys in file order (each
    section's cross-field checks after its keys), then override paths that
    name no key. The path is ``""`` for problems with the file as a whole. ``str()`` gives one line per
    error, ``"<source>: <path>: <message>"``.
    """

    def __init__(self, errors, source="<config>"):
        """Build from a list of ``(path, message)`` tuples or a single message."""
        if isinstance(errors, str):
            errors = [("", errors)]
        self.errors = [(path, message) for path, message in errors]
        self.source = source
        super().__init__(self._format())

    def _format(self):
        """Render one line per error."""
        lines = []
        for path, message in self.errors:
            if path:
                lines.append("{}: {}: {}".format(self.source, path, message))
            else:
                lines.append("{}: {}".format(self.source, message))
        return "\n".join(lines)

    def __str__(self):
        """Return the one-line-per-error report."""
        return self._format()


class _Invalid(Exception):
    """Raised by a field check; ``subpath`` locates the bad item inside a list."""

    def __init__(self, message, subpath=""):
        super().__init__(message)
        self.message = message
        self.subpath = subpath


def _show(value):
    """Echo a YAML value back in an error message, the way the user wrote it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
        if len(text) > 80:
            text = text[:76] + '..."'
        return text
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    # YAML 1.1 also yields dates, timestamps and bytes (!!binary).
    return "{} (a {})".format(value, type(value).__name__)


# ---------------------------------------------------------------------------
# Schema descriptors


class Field:
    """One scalar (or list) key: its default, its check and its documentation.

    ``check(value)`` returns the normalised value or raises ``_Invalid``; it is
    never called with ``None`` (an empty value means the default).
    ``kubeedge`` notes where KubeEdge's name, default or behaviour differs.
    """

    __slots__ = ("default", "check", "doc", "kubeedge")

    def __init__(self, default, check, doc, kubeedge=None):
        """Describe a key; see the class docstring."""
        self.default = default
        self.check = check
        self.doc = doc
        self.kubeedge = kubeedge


class Section:
    """A mapping of named :class:`Field` / :class:`Section` descriptors.

    ``checks`` are cross-field checks, each ``check(values) -> [(relpath,
    message)]`` over the section's validated plain-dict values; they only run
    when nothing inside the section was already wrong, so they never report
    consequences of an earlier error. A check may also normalise ``values`` in
    place (the cloud root turns ``apiServer.enable: auto`` into a bool).
    """

    __slots__ = ("fields", "doc", "checks", "kubeedge")

    def __init__(self, doc, fields, checks=(), kubeedge=None):
        """Describe a section; ``fields`` keeps its order for ``to_dict``."""
        self.doc = doc
        self.fields = dict(fields)
        self.checks = tuple(checks)
        self.kubeedge = kubeedge

    def defaults(self):
        """Return this section's default values as plain nested dicts."""
        return {
            name: spec.defaults() if isinstance(spec, Section) else spec.default
            for name, spec in self.fields.items()
        }


# ---------------------------------------------------------------------------
# Value checks (each returns a check function for Field)


def _boolean():
    """A YAML boolean (``true``/``false``; YAML 1.1 ``yes``/``no`` parse as booleans too)."""

    def check(value):
        if not isinstance(value, bool):
            raise _Invalid("must be true or false, got {}".format(_show(value)))
        return value

    return check


def _integer(minimum=None, maximum=None, what=None):
    """An integer (never a bool or float) within ``[minimum, maximum]``."""
    if what is None:
        if minimum == 1 and maximum is None:
            what = "a positive integer"
        elif minimum == 0 and maximum is None:
            what = "a non-negative integer"
        elif minimum is not None and maximum is not None:
            what = "an integer from {} to {}".format(minimum, maximum)
        else:
            what = "an integer"

    def check(value):
        # bool is a subclass of int in Python; "heartbeat: true" is a mistake.
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Invalid("must be {}, got {}".format(what, _show(value)))
        if (minimum is not None and value < minimum) or (
            maximum is not None and value > maximum
        ):
            raise _Invalid("must be {}, got {}".format(what, _show(value)))
        return value

    return check


def _positive():
    """An integer >= 1 (counts, intervals, sizes)."""
    return _integer(minimum=1)


def _non_negative():
    """An integer >= 0 (buffers and worker counts, where 0 is meaningful)."""
    return _integer(minimum=0)


def _port(allow_zero=False):
    """A TCP port, 1..65535; with ``allow_zero`` also 0 meaning "disabled"."""
    if allow_zero:
        return _integer(0, 65535, "0 (disabled) or a port number from 1 to 65535")
    return _integer(1, 65535, "a port number from 1 to 65535")


def _require_string(value):
    """Raise unless ``value`` is a str; a hint covers unquoted numbers and dates."""
    if not isinstance(value, str):
        hint = ""
        if not isinstance(value, (Mapping, list, tuple)):
            # YAML turns 1.10 into 1.1 and 2020-01-01 into a date: quoting fixes it.
            hint = " (put it in quotes)"
        raise _Invalid("must be a string, got {}{}".format(_show(value), hint))
    return value


def _string(allow_empty=True):
    """Any string; ``allow_empty=False`` rejects ``""``."""

    def check(value):
        _require_string(value)
        if not allow_empty and not value:
            raise _Invalid("must not be empty")
        return value

    return check


def _path():
    """A file path; relative paths are resolved against stateDir by the user of the value."""

    def check(value):
        _require_string(value)
        if "\0" in value:
            raise _Invalid("must not contain a NUL character")
        return value

    return check


def _choice(*choices):
    """One of a fixed set of values (strings or ints)."""
    shown = ", ".join(_show(c) for c in choices)

    def check(value):
        for choice in choices:
            # Compare type too so that "2" does not match 2 and true does not match 1.
            if type(value) is type(choice) and value == choice:
                return value
        if len(choices) == 1:
            raise _Invalid("must be {}, got {}".format(shown, _show(value)))
        raise _Invalid("must be one of {}, got {}".format(shown, _show(value)))

    return check


def _auto_or_bool():
    """``"auto"``, ``true`` or ``false``."""

    def check(value):
        if isinstance(value, bool) or value == "auto":
            return value
        raise _Invalid('must be true, false or "auto", got {}'.format(_show(value)))

    return check


def _must_be_false(reason):
    """A boolean that kubeedge-tw only supports as ``false`` (with the reason as the error)."""
    as_bool = _boolean()

    def check(value):
        if as_bool(value):
            raise _Invalid(reason)
        return value

    return check


_HOST_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def _is_ip(text):
    """True when ``text`` is an IPv4 or IPv6 address."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _is_hostname(text, allow_wildcard=False):
    """True for an RFC 1123 host name (case-insensitive), optionally ``*.``-prefixed."""
    if allow_wildcard and text.startswith("*."):
        text = text[2:]
    if not text or len(text) > 253:
        return False
    labels = text.rstrip(".").split(".")
    # An all-numeric last label is a mistyped IP address (e.g. 256.1.1.1), not a
    # name: RFC 1123 section 2.1 rules out numeric top-level labels for this reason.
    if labels[-1].isdigit():
        return False
    return all(_HOST_LABEL.match(label) for label in labels)


def _host():
    """An IP address or host name, e.g. a listening address."""

    def check(value):
        _require_string(value)
        if not (_is_ip(value) or _is_hostname(value)):
            raise _Invalid("must be an IP address or host name, got {}".format(_show(value)))
        return value

    return check


def _ip(allow_empty=False):
    """An IPv4/IPv6 address, or ``""`` when ``allow_empty``."""

    def check(value):
        _require_string(value)
        if allow_empty and value == "":
            return value
        if not _is_ip(value):
            raise _Invalid("must be an IP address, got {}".format(_show(value)))
        return value

    return check


def _split_host_port(text):
    """Split ``HOST:PORT`` / ``[IPv6]:PORT``; return ``(host, port)`` or raise ValueError(reason)."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError("missing ']'")
        host, rest = text[1:end], text[end + 1:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError("{} in brackets is not an IPv6 address".format(_show(host)))
        if not rest.startswith(":"):
            raise ValueError("missing :PORT")
        port_text = rest[1:]
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            raise ValueError("missing :PORT")
        if ":" in host:
            raise ValueError("IPv6 addresses must be in brackets")
        if not (_is_ip(host) or _is_hostname(host)):
            raise ValueError("{} is not an IP address or host name".format(_show(host)))
    if not port_text.isdigit() or not port_text.isascii():
        raise ValueError("port {} is not a number".format(_show(port_text)))
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise ValueError("port {} is out of range 1-65535".format(port))
    return host, port


def _host_port():
    """``HOST:PORT`` with IPv6 hosts in brackets, e.g. ``[::1]:10000``."""

    def check(value):
        _require_string(value)
        try:
            _split_host_port(value)
        except ValueError as e:
            raise _Invalid(
                'must be HOST:PORT (IPv6 in brackets, e.g. "[::1]:10000"), got {} ({})'.format(
                    _show(value), e
                )
            )
        return value

    return check


def _url(schemes, port_required, example):
    """A URL with one of ``schemes``, a host, optional or required port and no path."""

    def check(value):
        _require_string(value)
        problem = None
        try:
            parts = urlsplit(value)
            if parts.scheme not in schemes:
                problem = "scheme must be {}".format(" or ".join(s + "://" for s in schemes))
            elif parts.path not in ("", "/") or parts.query or parts.fragment:
                problem = "must not have a path"
            elif not parts.netloc:
                problem = "missing host"
            elif port_required or parts.port is not None:
                _split_host_port(parts.netloc)
            else:
                host = parts.hostname or ""
                if not (_is_ip(host) or _is_hostname(host)):
                    problem = "{} is not an IP address or host name".format(_show(host))
        except ValueError as e:
            problem = str(e)
        if problem is not None:
            raise _Invalid(
                "must be a URL like {}, got {} ({})".format(example, _show(value), problem)
            )
        return value

    return check


def _socket_url(schemes, example):
    """A daemon endpoint such as ``unix:///path`` (unix needs an absolute path)."""

    def check(value):
        _require_string(value)
        scheme, sep, rest = value.partition("://")
        if not sep or scheme not in schemes or not rest:
            raise _Invalid(
                "must be a URL like {} (scheme {}), got {}".format(
                    example, ", ".join(s + "://" for s in schemes), _show(value)
                )
            )
        if scheme == "unix" and not rest.startswith("/"):
            raise _Invalid(
                "must be unix:// followed by an absolute path, got {}".format(_show(value))
            )
        return value

    return check


def _node_name(allow_empty):
    """A Kubernetes node name: a lowercase DNS-1123 subdomain of at most 253 characters."""

    def check(value):
        _require_string(value)
        if allow_empty and value == "":
            return value
        if not valid_node_name(value):
            raise _Invalid(
                "must be a valid node name (lowercase letters, digits, '-' and '.', "
                "starting and ending with a letter or digit, at most 253 characters), "
                "got {}".format(_show(value))
            )
        return value

    return check


def _namespace_name():
    """A Kubernetes namespace name: a DNS-1123 label of at most 63 characters."""

    def check(value):
        _require_string(value)
        if len(value) > 63 or not _DNS1123_LABEL.match(value):
            raise _Invalid(
                "must be a valid namespace name (lowercase letters, digits and '-', "
                "at most 63 characters), got {}".format(_show(value))
            )
        return value

    return check


def _domain(allow_empty):
    """A DNS domain such as ``cluster.local``, or ``""`` when ``allow_empty``."""

    def check(value):
        _require_string(value)
        if allow_empty and value == "":
            return value
        if not _is_hostname(value):
            raise _Invalid("must be a DNS domain name, got {}".format(_show(value)))
        return value

    return check


def _list_of(item_check, what):
    """A YAML list whose items pass ``item_check``; stored as a tuple (frozen)."""

    def check(value):
        if not isinstance(value, list):
            raise _Invalid("must be a list of {}, got {}".format(what, _show(value)))
        items = []
        for index, item in enumerate(value):
            if item is None or not item_check(item):
                raise _Invalid(
                    "must be {}, got {}".format(_singular(what), _show(item)),
                    "[{}]".format(index),
                )
            items.append(item)
        return tuple(items)

    return check


def _singular(what):
    """Turn the plural item description used in list errors into its singular."""
    return {
        "IP addresses": "an IP address",
        "DNS names": "a DNS name",
    }.get(what, what)


def _ip_list():
    """A list of IP addresses."""
    return _list_of(lambda item: isinstance(item, str) and _is_ip(item), "IP addresses")


def _dns_name_list():
    """A list of DNS names (``*.`` wildcards allowed, as in certificate SANs)."""
    return _list_of(
        lambda item: isinstance(item, str) and _is_hostname(item, allow_wildcard=True),
        "DNS names",
    )


def _state_dir():
    """The state directory: a non-empty path."""

    def check(value):
        _require_string(value)
        if not value:
            raise _Invalid("must not be empty (leave the key out to use the default)")
        if "\0" in value:
            raise _Invalid("must not contain a NUL character")
        return value

    return check


# ---------------------------------------------------------------------------
# Cross-field checks


def _check_burst_vs_qps(values):
    """kubeAPIConfig: a token bucket with burst < qps would throttle below qps (client-go rejects it too)."""
    if values["burst"] < values["qps"]:
        return [("burst", "must be >= qps ({}), got {}".format(values["qps"], values["burst"]))]
    return []


def _check_image_gc(values):
    """edged: image GC frees space down to the low mark once usage passes the high mark."""
    low, high = values["imageGCLowThreshold"], values["imageGCHighThreshold"]
    if low >= high:
        return [
            (
                "imageGCLowThreshold",
                "must be less than imageGCHighThreshold ({}), got {}".format(high, low),
            )
        ]
    return []


def _check_mqtt_servers(values):
    """eventBus: with mqttMode 1 (both) the internal broker and the external one must differ."""
    if values["mqttMode"] == 1 and values["mqttServerInternal"] == values["mqttServerExternal"]:
        return [
            (
                "mqttServerInternal",
                "must differ from mqttServerExternal when mqttMode is 1 (both), got {}".format(
                    _show(values["mqttServerInternal"])
                ),
            )
        ]
    return []


def _wildcard(address):
    """True for listen addresses that bind every interface."""
    return address in ("0.0.0.0", "::", "")


def _check_cloud_listeners(values):
    """cloudcore: two enabled listeners on the same port and overlapping address cannot both bind."""
    modules = values["modules"]
    hub = modules["cloudHub"]
    listeners = []
    if hub["enable"]:
        for name in ("websocket", "quic", "https"):
            if hub[name]["enable"]:
                listeners.append(
                    ("modules.cloudHub.{}.port".format(name), hub[name]["address"], hub[name]["port"])
                )
    if modules["apiServer"]["enable"] is True:
        api = modules["apiServer"]
        listeners.append(("modules.apiServer.port", api["address"], api["port"]))
    stream = modules["cloudStream"]
    if stream["enable"]:
        # KubeEdge's cloudStream listens on all interfaces.
        listeners.append(("modules.cloudStream.streamPort", "0.0.0.0", stream["streamPort"]))
        listeners.append(("modules.cloudStream.tunnelPort", "0.0.0.0", stream["tunnelPort"]))
    errors = []
    for index, (path, address, port) in enumerate(listeners):
        for other_path, other_address, other_port in listeners[:index]:
            if port == other_port and (
                address == other_address or _wildcard(address) or _wildcard(other_address)
            ):
                errors.append(
                    (path, "port {} is already used by {}".format(port, other_path))
                )
                break
    return errors


def _resolve_api_server(values):
    """cloudcore: turn apiServer.enable "auto" into a bool so consumers never see "auto".

    auto = on when kubeAPIConfig names no external API server (neither
    ``master`` nor ``kubeConfig``).
    """
    api = values["modules"]["apiServer"]
    if api["enable"] == "auto":
        kube = values["kubeAPIConfig"]
        api["enable"] = not (kube["master"] or kube["kubeConfig"])
    return []


# ---------------------------------------------------------------------------
# The schemas

_QUIC_UNSUPPORTED = "QUIC transport is not supported by kubeedge-tw; use websocket"

_CLOUD_API_VERSIONS = (
    "cloudcore.config.kubeedge.io/v1alpha1",
    "cloudcore.config.kubeedge.io/v1alpha2",
)
_EDGE_API_VERSIONS = (
    "edgecore.config.kubeedge.io/v1alpha1",
    "edgecore.config.kubeedge.io/v1alpha2",
)


def _enable(default, what):
    """The ``enable`` key every module section has."""
    return Field(default, _boolean(), "Run the {}.".format(what))


def _buffers(doc, sizes):
    """A ``buffer`` section of non-negative queue sizes."""
    return Section(
        doc,
        {
            name: Field(default, _non_negative(), text)
            for name, (default, text) in sizes.items()
        },
    )


def _common_fields(api_versions, kind_name):
    """The keys both files have at the top level."""
    return {
        "apiVersion": Field(
            api_versions[0],
            _choice(*api_versions),
            "Config schema version; KubeEdge's v1alpha2 name is accepted too.",
        ),
        "kind": Field(kind_name, _choice(kind_name), "Which component this file configures."),
        "stateDir": Field(
            None,
            _state_dir(),
            "Directory for sqlite databases, certificates, kubeconfig and logs; relative "
            "file paths elsewhere in this file are resolved against it. A relative stateDir "
            "is resolved against this file's directory. Default: /var/lib/kubeedge for root, "
            "else ~/.local/state/kubeedge-tw. Overridden by --state-dir.",
            kubeedge="kubeedge-tw extension; KubeEdge hard-codes absolute paths.",
        ),
    }


CLOUD_SCHEMA = Section(
    "cloudcore configuration (kind: CloudCore).",
    dict(
        _common_fields(_CLOUD_API_VERSIONS, "CloudCore"),
        kubeAPIConfig=Section(
            "How cloudcore reaches the Kubernetes API server.",
            {
                "master": Field(
                    "",
                    _string(),
                    "API server URL. Empty master and kubeConfig: use the embedded API server "
                    "(modules.apiServer).",
                ),
                "contentType": Field(
                    "application/json",
                    _choice("application/json", "application/vnd.kubernetes.protobuf"),
                    "Content type of API requests. kubeedge-tw always speaks JSON; the "
                    "protobuf value is accepted so KubeEdge files load, and means JSON.",
                    kubeedge="KubeEdge defaults to application/vnd.kubernetes.protobuf.",
                ),
                "qps": Field(100, _positive(), "Client-side rate limit, requests per second."),
                "burst": Field(200, _positive(), "Client-side burst above qps; must be >= qps."),
                "kubeConfig": Field(
                    "",
                    _path(),
                    "kubeconfig file for the API server (relative = under stateDir). Empty "
                    "master and kubeConfig: use the embedded API server.",
                ),
            },
            checks=[_check_burst_vs_qps],
        ),
        modules=Section(
            "cloudcore modules.",
            {
                "cloudHub": Section(
                    "The websocket server edge nodes connect to.",
                    {
                        "enable": _enable(True, "cloud hub"),
                        "advertiseAddress": Field(
                            ("127.0.0.1",),
                            _ip_list(),
                            "IP addresses edges use to reach this cloudcore; put into the "
                            "server certificate's subjectAltName.",
                            kubeedge="KubeEdge defaults to the host's first IP address.",
                        ),
                        "dnsNames": Field(
                            ("localhost",),
                            _dns_name_list(),
                            "DNS names put into the server certificate's subjectAltName.",
                        ),
                        "nodeLimit": Field(
                            1000, _positive(), "Maximum number of connected edge nodes.",
                            kubeedge="KubeEdge v1.2 defaults to 10.",
                        ),
                        "keepaliveInterval": Field(
                            30, _positive(),
                            "Seconds without a keepalive after which an edge is dropped.",
                        ),
                        "writeTimeout": Field(
                            30, _positive(), "Seconds allowed for one websocket write."
                        ),
                        "tlsCAFile": Field(
                            "ca/rootCA.crt", _path(),
                            "CA certificate (created if missing, with tlsCAKeyFile).",
                            kubeedge="KubeEdge default: /etc/kubeedge/ca/rootCA.crt.",
                        ),
                        "tlsCAKeyFile": Field(
                            "ca/rootCA.key", _path(),
                            "CA private key, used to sign edge certificates.",
                            kubeedge="KubeEdge default: /etc/kubeedge/ca/rootCA.key.",
                        ),
                        "tlsCertFile": Field(
                            "certs/server.crt", _path(),
                            "Server certificate (created from the CA if missing).",
                            kubeedge="KubeEdge default: /etc/kubeedge/certs/server.crt.",
                        ),
                        "tlsPrivateKeyFile": Field(
                            "certs/server.key", _path(), "Server private key.",
                            kubeedge="KubeEdge default: /etc/kubeedge/certs/server.key.",
                        ),
                        "allowAnyNodeCert": Field(
                            False, _boolean(),
                            "Accept client certificates whose CN/SAN does not name the "
                            "connecting node.",
                            kubeedge="kubeedge-tw extension.",
                        ),
                        "maxMessageSize": Field(
                            8388608, _positive(),
                            "Largest websocket message accepted, in bytes.",
                            kubeedge="kubeedge-tw extension.",
                        ),
                        "websocket": Section(
                            "Websocket listener (the transport kubeedge-tw implements).",
                            {
                                "enable": _enable(True, "websocket listener"),
                                "address": Field("0.0.0.0", _host(), "Listen address."),
                                "port": Field(10000, _port(), "Listen port."),
                            },
                        ),
                        "quic": Section(
                            "QUIC listener: accepted for compatibility, not implemented.",
                            {
                                "enable": Field(
                                    False, _must_be_false(_QUIC_UNSUPPORTED),
                                    "Must stay false: QUIC is not implemented and true is an error.",
                                ),
                                "address": Field("0.0.0.0", _host(), "Listen address."),
                                "port": Field(10001, _port(), "Listen port."),
                                "maxIncomingStreams": Field(
                                    10000, _positive(), "Maximum concurrent QUIC streams."
                                ),
                            },
                        ),
                        "unixsocket": Section(
                            "Local unix-socket listener.",
                            {
                                "enable": _enable(False, "unix socket listener"),
                                "address": Field(
                                    "unix:///var/lib/kubeedge/kubeedge.sock",
                                    _socket_url(("unix",), "unix:///var/lib/kubeedge/kubeedge.sock"),
                                    "Socket address, unix:// plus an absolute path.",
                                ),
                            },
                        ),
                        "https": Section(
                            "HTTPS server edges use to fetch the CA and get certificates "
                            "signed with a token.",
                            {
                                "enable": _enable(True, "certificate HTTPS server"),
                                "address": Field("0.0.0.0", _host(), "Listen address."),
                                "port": Field(10002, _port(), "Listen port."),
                            },
                        ),
                        "tokenRefreshDuration": Field(
                            12, _positive(), "Hours between rotations of the join token."
                        ),
                        "edgeCertSigningDuration": Field(
                            365, _positive(), "Validity of signed edge certificates, in days."
                        ),
                    },
                ),
                "edgeController": Section(
                    "Syncs pods, configmaps, secrets, services, nodes... between the API "
                    "server and edges.",
                    {
                        "enable": _enable(True, "edge controller"),
                        "nodeUpdateFrequency": Field(
                            10, _positive(), "Seconds between node status updates."
                        ),
                        "buffer": _buffers(
                            "Queue sizes of the edge controller's work queues.",
                            {
                                "updatePodStatus": (1024, "Pod status updates from edges."),
                                "updateNodeStatus": (1024, "Node status updates from edges."),
                                "queryConfigMap": (1024, "ConfigMap queries from edges."),
                                "querySecret": (1024, "Secret queries from edges."),
                                "queryService": (1024, "Service queries from edges."),
                                "queryEndpoints": (1024, "Endpoints queries from edges."),
                                "podEvent": (1, "Pod watch events."),
                                "configMapEvent": (1, "ConfigMap watch events."),
                                "secretEvent": (1, "Secret watch events."),
                                "serviceEvent": (1, "Service watch events."),
                                "endpointsEvent": (1, "Endpoints watch events."),
                                "queryPersistentVolume": (1024, "PersistentVolume queries."),
                                "queryPersistentVolumeClaim": (
                                    1024, "PersistentVolumeClaim queries."
                                ),
                                "queryVolumeAttachment": (1024, "VolumeAttachment queries."),
                                "queryNode": (1024, "Node queries from edges."),
                                "updateNode": (1024, "Node updates from edges."),
                            },
                        ),
                        "load": Section(
                            "Worker counts per queue.",
                            {
                                name: Field(default, _non_negative(), "Workers for {}.".format(what))
                                for name, default, what in (
                                    ("updatePodStatusWorkers", 1, "pod status updates"),
                                    ("updateNodeStatusWorkers", 1, "node status updates"),
                                    ("queryConfigMapWorkers", 4, "configmap queries"),
                                    ("querySecretWorkers", 4, "secret queries"),
                                    ("queryServiceWorkers", 4, "service queries"),
                                    ("queryEndpointsWorkers", 4, "endpoints queries"),
                                    ("queryPersistentVolumeWorkers", 4, "PV queries"),
                                    ("queryPersistentVolumeClaimWorkers", 4, "PVC queries"),
                                    ("queryVolumeAttachmentWorkers", 4, "volume attachment queries"),
                                    ("queryNodeWorkers", 4, "node queries"),
                                    ("updateNodeWorkers", 4, "node updates"),
                                )
                            },
                        ),
                    },
                ),
                "deviceController": Section(
                    "Syncs Device / DeviceModel objects and device twins with edges.",
                    {
                        "enable": _enable(True, "device controller"),
                        "buffer": _buffers(
                            "Queue sizes of the device controller.",
                            {
                                "updateDeviceStatus": (1024, "Device status updates from edges."),
                                "deviceEvent": (1, "Device watch events."),
                                "deviceModelEvent": (1, "DeviceModel watch events."),
                            },
                        ),
                        "load": Section(
                            "Worker counts.",
                            {
                                "updateDeviceStatusWorkers": Field(
                                    1, _non_negative(), "Workers for device status updates."
                                ),
                            },
                        ),
                    },
                ),
                "syncController": Section(
                    "Reconciles what the cloud sent with what edges acknowledged.",
                    {
                        "enable": _enable(True, "sync controller"),
                        "resyncPeriod": Field(
                            5, _positive(), "Seconds between reconcile passes.",
                            kubeedge="kubeedge-tw name for KubeEdge's fixed 5 s period.",
                        ),
                    },
                ),
                "apiServer": Section(
                    "Embedded Kubernetes-compatible API server, used when there is no external one.",
                    {
                        "enable": Field(
                            "auto", _auto_or_bool(),
                            'true, false or "auto" (on when kubeAPIConfig has no master and '
                            "no kubeConfig). Loaded configs always hold true or false.",
                        ),
                        "address": Field("127.0.0.1", _host(), "Listen address."),
                        "port": Field(6443, _port(), "Listen port."),
                        "dataSource": Field(
                            "apiserver.db", _path(),
                            "sqlite file holding the API objects (relative = under stateDir).",
                        ),
                    },
                    kubeedge="kubeedge-tw extension.",
                ),
                "cloudStream": Section(
                    "kubectl logs/exec tunnel (KubeEdge 1.3+): keys accepted for compatibility.",
                    {
                        "enable": _enable(False, "stream tunnel"),
                        "streamPort": Field(10003, _port(), "Port for API-server stream requests."),
                        "tunnelPort": Field(10004, _port(), "Port edges open the tunnel to."),
                    },
                ),
            },
        ),
    ),
    checks=[_resolve_api_server, _check_cloud_listeners],
)


EDGE_SCHEMA = Section(
    "edgecore configuration (kind: EdgeCore).",
    dict(
        _common_fields(_EDGE_API_VERSIONS, "EdgeCore"),
        database=Section(
            "The local sqlite database (metadata, device twins).",
            {
                "driverName": Field("sqlite3", _choice("sqlite3"), "Database driver."),
                "aliasName": Field("default", _string(allow_empty=False), "Database alias."),
                "dataSource": Field(
                    "edgecore.db", _path(),
                    "Database file (relative = under stateDir).",
                    kubeedge="KubeEdge default: /var/lib/kubeedge/edgecore.db.",
                ),
            },
        ),
        modules=Section(
            "edgecore modules.",
            {
                "edgeHub": Section(
                    "Connection to cloudcore.",
                    {
                        "enable": _enable(True, "edge hub"),
                        "heartbeat": Field(15, _positive(), "Seconds between keepalives."),
                        "projectID": Field(
                            "e632aba927ea4ac2b575ec1603d56f10",
                            _string(allow_empty=False),
                            "Project id sent in the project_id header and URL path.",
                        ),
                        "tlsCaFile": Field(
                            "ca/rootCA.crt", _path(),
                            "CA certificate that signs cloudcore's certificate.",
                            kubeedge="KubeEdge default: /etc/kubeedge/ca/rootCA.crt.",
                        ),
                        "tlsCertFile": Field(
                            "certs/edge.crt", _path(), "This edge's client certificate.",
                            kubeedge="KubeEdge default: /etc/kubeedge/certs/server.crt.",
                        ),
                        "tlsPrivateKeyFile": Field(
                            "certs/edge.key", _path(), "This edge's private key.",
                            kubeedge="KubeEdge default: /etc/kubeedge/certs/server.key.",
                        ),
                        "rotateCertificates": Field(
                            True, _boolean(), "Renew the edge certificate before it expires."
                        ),
                        "httpServer": Field(
                            "https://127.0.0.1:10002",
                            _url(("https", "http"), False, "https://HOST:10002"),
                            "cloudcore's certificate HTTPS server.",
                        ),
                        "token": Field(
                            "", _string(),
                            "Join token from cloudcore; used once to get a certificate.",
                        ),
                        "websocket": Section(
                            "Websocket client (the transport kubeedge-tw implements).",
                            {
                                "enable": _enable(True, "websocket client"),
                                "server": Field(
                                    "127.0.0.1:10000", _host_port(),
                                    "cloudcore's websocket HOST:PORT (IPv6 as [addr]:port). "
                                    "Overridden by --cloud.",
                                ),
                                "handshakeTimeout": Field(
                                    30, _positive(), "Seconds allowed for the TLS+websocket handshake."
                                ),
                                "readDeadline": Field(15, _positive(), "Read deadline, seconds."),
                                "writeDeadline": Field(15, _positive(), "Write deadline, seconds."),
                            },
                        ),
                        "quic": Section(
                            "QUIC client: accepted for compatibility, not implemented.",
                            {
                                "enable": Field(
                                    False, _must_be_false(_QUIC_UNSUPPORTED),
                                    "Must stay false: QUIC is not implemented and true is an error.",
                                ),
                                "server": Field("127.0.0.1:10001", _host_port(), "cloudcore's QUIC HOST:PORT."),
                                "handshakeTimeout": Field(30, _positive(), "Handshake timeout, seconds."),
                                "readDeadline": Field(15, _positive(), "Read deadline, seconds."),
                                "writeDeadline": Field(15, _positive(), "Write deadline, seconds."),
                            },
                        ),
                    },
                ),
                "metaManager": Section(
                    "Local metadata store and cloud query proxy.",
                    {
                        "enable": _enable(True, "meta manager"),
                        "contextSendGroup": Field(
                            "hub", _string(allow_empty=False), "Module group messages to the cloud go to."
                        ),
                        "contextSendModule": Field(
                            "websocket", _string(allow_empty=False),
                            "Module messages to the cloud go to (edgehub's wire name).",
                        ),
                        "podStatusSyncInterval": Field(
                            60, _positive(), "Seconds between pod status re-syncs to the cloud."
                        ),
                        "remoteQueryTimeout": Field(
                            10, _positive(), "Seconds to wait for the cloud to answer a query.",
                            kubeedge="KubeEdge waits 60 s (not configurable there).",
                        ),
                    },
                ),
                "edged": Section(
                    "The pod manager (a small kubelet).",
                    {
                        "enable": _enable(True, "edged"),
                        "hostnameOverride": Field(
                            "", _node_name(allow_empty=True),
                            "Node name; empty = this machine's hostname, lowercased. "
                            "Overridden by --node-name.",
                        ),
                        "registerNode": Field(True, _boolean(), "Register the Node object at start."),
                        "registerNodeNamespace": Field(
                            "default", _namespace_name(), "Namespace used in node resource strings."
                        ),
                        "nodeIP": Field(
                            "", _ip(allow_empty=True),
                            "IP reported for the node; empty = interfaceName's address.",
                        ),
                        "interfaceName": Field("eth0", _string(allow_empty=False), "Interface whose IP is reported."),
                        "nodeStatusUpdateFrequency": Field(
                            10, _positive(), "Seconds between node status reports."
                        ),
                        "devicePluginEnabled": Field(False, _boolean(), "Enable device plugins."),
                        "gpuPluginEnabled": Field(False, _boolean(), "Enable the GPU plugin."),
                        "imageGCHighThreshold": Field(
                            80, _integer(0, 100),
                            "Disk usage percent that starts image garbage collection.",
                        ),
                        "imageGCLowThreshold": Field(
                            40, _integer(0, 100),
                            "Disk usage percent image GC frees down to; < imageGCHighThreshold.",
                        ),
                        "maximumDeadContainersPerPod": Field(
                            1, _non_negative(), "Dead containers kept per pod."
                        ),
                        "dockerAddress": Field(
                            "unix:///var/run/docker.sock",
                            _socket_url(("unix", "tcp", "http", "https", "ssh", "npipe"),
                                        "unix:///var/run/docker.sock"),
                            "Docker engine endpoint.",
                        ),
                        "runtimeType": Field("docker", _choice("docker"), "Container runtime."),
                        "runtimeRequestTimeout": Field(
                            2, _positive(), "Minutes allowed for a runtime request."
                        ),
                        "podSandboxImage": Field(
                            "kubeedge/pause:3.1", _string(allow_empty=False), "Pause image."
                        ),
                        "imagePullProgressDeadline": Field(
                            60, _positive(), "Seconds without pull progress before a pull is cancelled."
                        ),
                        "cgroupDriver": Field(
                            "cgroupfs", _choice("cgroupfs", "systemd"), "Docker's cgroup driver."
                        ),
                        "clusterDNS": Field(
                            "", _ip(allow_empty=True), "DNS server IP for pods; empty = host DNS."
                        ),
                        "clusterDomain": Field(
                            "", _domain(allow_empty=True), "Cluster DNS domain; empty = none."
                        ),
                        "edgedMemoryCapacity": Field(
                            7852396000, _positive(), "Memory capacity reported, in bytes."
                        ),
                        "version": Field(
                            "", _string(),
                            "Kubelet version reported; empty = derived from kubeedge-tw's version.",
                        ),
                        "readOnlyPort": Field(
                            10255, _port(allow_zero=True),
                            "Port of edged's local read-only HTTP server; 0 disables it.",
                            kubeedge="kubeedge-tw extension (kubelet's read-only port).",
                        ),
                    },
                    checks=[_check_image_gc],
                ),
                "eventBus": Section(
                    "MQTT bridge for devices and applications.",
                    {
                        "enable": _enable(True, "event bus"),
                        "mqttMode": Field(
                            2, _choice(0, 1, 2),
                            "0 = internal broker only, 1 = both, 2 = external broker only.",
                            kubeedge="KubeEdge <= 1.1 defaulted to 0 (internal).",
                        ),
                        "mqttQOS": Field(0, _choice(0, 1, 2), "QoS of published messages."),
                        "mqttRetain": Field(False, _boolean(), "Set the retain flag on publishes."),
                        "mqttSessionQueueSize": Field(
                            100, _positive(), "Messages queued per MQTT session."
                        ),
                        "mqttServerInternal": Field(
                            "tcp://127.0.0.1:1884",
                            _url(("tcp",), True, "tcp://HOST:PORT"),
                            "Internal broker address.",
                        ),
                        "mqttServerExternal": Field(
                            "tcp://127.0.0.1:1883",
                            _url(("tcp",), True, "tcp://HOST:PORT"),
                            "External broker (e.g. mosquitto) address.",
                        ),
                    },
                    checks=[_check_mqtt_servers],
                ),
                "deviceTwin": Section(
                    "Device twin store.", {"enable": _enable(True, "device twin")}
                ),
                "serviceBus": Section(
                    "HTTP proxy from the cloud to local applications.",
                    {
                        "enable": _enable(False, "service bus"),
                        "server": Field("127.0.0.1", _host(), "Local application host."),
                        "port": Field(9060, _port(), "Local application port."),
                        "timeout": Field(60, _positive(), "Request timeout, seconds."),
                    },
                ),
                "dbTest": Section("Database self-test module.", {"enable": _enable(False, "db test")}),
            },
        ),
    ),
)


class _Kind:
    """What distinguishes a cloud file from an edge file."""

    __slots__ = ("name", "api_versions", "schema")

    def __init__(self, name, api_versions, schema):
        self.name = name
        self.api_versions = api_versions
        self.schema = schema


_KINDS = {
    CLOUD: _Kind("CloudCore", _CLOUD_API_VERSIONS, CLOUD_SCHEMA),
    EDGE: _Kind("EdgeCore", _EDGE_API_VERSIONS, EDGE_SCHEMA),
}


def _kind(kind):
    """Look up a schema kind; an unknown kind is a programming error."""
    try:
        return _KINDS[kind]
    except (KeyError, TypeError):
        raise ValueError("unknown config kind {!r}; use CLOUD or EDGE".format(kind))


def schema_for(kind):
    """Return the root :class:`Section` of ``kind`` (:data:`CLOUD` or :data:`EDGE`)."""
    return _kind(kind).schema


# ---------------------------------------------------------------------------
# The frozen config object


class Config(Mapping):
    """A validated, read-only configuration tree.

    Sections are ``Config`` objects too, so both ``cfg.modules.edgeHub.heartbeat``
    and ``cfg["modules"]["edgeHub"]["heartbeat"]`` work; lists are tuples.
    Every node knows the file it came from (``source``) and the resolved state
    directory (``state_dir``). Assignment raises ``AttributeError``.
    """

    __slots__ = ("_values", "_source", "_state_dir", "_path")

    def __init__(self, values, source=_DEFAULTS_SOURCE, state_dir=None, path=""):
        """Freeze plain nested ``values``; used by the loaders, rarely directly."""
        frozen = {}
        for key, value in values.items():
            child_path = _join(path, key)
            if isinstance(value, Mapping):
                value = Config(value, source, state_dir, child_path)
            elif isinstance(value, list):
                value = tuple(value)
            frozen[key] = value
        object.__setattr__(self, "_values", frozen)
        object.__setattr__(self, "_source", source)
        object.__setattr__(
            self, "_state_dir", state_dir if state_dir is not None else default_state_dir()
        )
        object.__setattr__(self, "_path", path)

    @property
    def source(self):
        """The file the configuration was read from, or ``"<defaults>"``."""
        return self._source

    @property
    def state_dir(self):
        """The absolute state directory (``stateDir`` after resolution)."""
        return self._state_dir

    def __getitem__(self, key):
        """Item access: ``cfg["modules"]``."""
        return self._values[key]

    def __iter__(self):
        """Iterate over keys in schema order."""
        return iter(self._values)

    def __len__(self):
        """Number of keys in this section."""
        return len(self._values)

    def __getattr__(self, name):
        """Attribute access: ``cfg.modules``; unknown names suggest the closest key."""
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(
                "no config key {}{}".format(
                    _show(_join(self._path, name)), _suggest(name, self._values)
                )
            ) from None

    def __setattr__(self, name, value):
        """Reject assignment: the configuration is frozen once loaded."""
        raise AttributeError("Config is read-only; cannot set {!r}".format(name))

    def __delattr__(self, name):
        """Reject deletion: the configuration is frozen once loaded."""
        raise AttributeError("Config is read-only; cannot delete {!r}".format(name))

    def __reduce__(self):
        """Pickle as the plain values (slots plus a raising __setattr__ defeat the default)."""
        return (Config, (self.to_dict(), self._source, self._state_dir, self._path))

    def __copy__(self):
        """Immutable: a copy is the same object."""
        return self

    def __deepcopy__(self, memo):
        """Immutable: a deep copy is the same object."""
        return self

    def __repr__(self):
        """Show the source and the values."""
        return "Config(source={!r}, {!r})".format(self._source, self.to_dict())

    def get_path(self, path):
        """Return the value at a dotted path, e.g. ``"modules.edgeHub.heartbeat"``.

        Raises ``KeyError(path)`` when any segment is missing.
        """
        node = self
        for segment in path.split("."):
            if not isinstance(node, Config) or segment not in node._values:
                raise KeyError(path)
            node = node._values[segment]
        return node

    def to_dict(self):
        """Return a deep copy as plain dicts and lists (e.g. for YAML/JSON output)."""
        result = {}
        for key, value in self._values.items():
            if isinstance(value, Config):
                value = value.to_dict()
            elif isinstance(value, tuple):
                value = list(value)
            result[key] = value
        return result

    def resolve_path(self, value):
        """Return file path ``value`` joined to the state dir when relative.

        Absolute paths (after ``~`` expansion) are returned unchanged and ``""``
        stays ``""`` (an unset path).
        """
        if not value:
            return value
        value = os.path.expanduser(value)
        if os.path.isabs(value):
            return value
        return os.path.join(self._state_dir, value)


# ---------------------------------------------------------------------------
# Loading


def _join(path, key):
    """Append ``key`` to a dotted path."""
    key = str(key)
    return key if not path else "{}.{}".format(path, key)


def _normalise_key(key):
    """Fold case and separators so ``node-limit`` and ``NodeLimit`` find ``nodeLimit``."""
    return re.sub(r"[-_ ]", "", key).lower()


def _suggest(key, known):
    """Return ``' (did you mean "x"?)'`` for the closest known key, or ``""``."""
    if not isinstance(key, str) or not known:
        return ""
    by_normal = {_normalise_key(name): name for name in known}
    match = by_normal.get(_normalise_key(key))
    if match is None:
        close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
        if not close:
            close = difflib.get_close_matches(
                _normalise_key(key), list(by_normal), n=1, cutoff=0.6
            )
            close = [by_normal[c] for c in close]
        match = close[0] if close else None
    return ' (did you mean "{}"?)'.format(match) if match else ""


class _Loader:
    """One validation run: walks raw YAML data against a schema, collecting errors."""

    def __init__(self, kind, source, from_file):
        self.kind = _kind(kind)
        self.source = source
        self.from_file = from_file
        self.errors = []
        # Unknown override paths are not in the file, so they are listed after
        # the file's own problems rather than interleaved with them.
        self.override_errors = []
        self.override_paths = set()

    def error(self, path, message):
        """Record one problem; override-supplied values are labelled as such."""
        if path in self.override_paths:
            message += " (from override)"
        self.errors.append((path, message))

    def fail(self):
        """Raise the collected errors, if any."""
        if self.errors or self.override_errors:
            raise ConfigError(self.errors + self.override_errors, self.source)

    def load(self, data, overrides):
        """Validate raw ``data`` plus ``overrides``; return a frozen Config or raise."""
        if data is None:
            self.error("", "file is empty; expected a mapping with apiVersion, kind and modules")
            self.fail()
        if not isinstance(data, dict):
            self.error(
                "",
                "top level must be a mapping with apiVersion, kind and modules, got {}".format(
                    _show(data)
                ),
            )
            self.fail()
        overrides = dict(overrides or {})
        state_dir_from_override = "stateDir" in overrides
        self.apply_overrides(data, overrides)
        if not self.check_identity(data):
            # The file is for the other component: every other key would be
            # reported as unknown, burying the one message that matters.
            self.fail()
        before = len(self.errors)
        values = self.walk(self.kind.schema, data, "", skip=("apiVersion", "kind"))
        for key in ("apiVersion", "kind"):
            values[key] = data.get(key)
        if len(self.errors) == before:
            self.run_checks(self.kind.schema, values, "")
        self.fail()
        state_dir = self.resolve_state_dir(values["stateDir"], state_dir_from_override)
        values["stateDir"] = state_dir
        return Config(values, self.source, state_dir)

    def check_identity(self, data):
        """Check apiVersion and kind; return False when the file is for the other side."""
        kind = self.kind
        other = next(k for k in _KINDS.values() if k is not kind)
        for_other_side = False
        api_version = data.get("apiVersion")
        wanted = '"{}" (or "{}")'.format(*kind.api_versions)
        if api_version is None:
            self.error("apiVersion", "is required; must be {}".format(wanted))
        elif api_version not in kind.api_versions:
            hint = ""
            if api_version in other.api_versions:
                hint = "; this file is for {}".format(other.name)
                for_other_side = True
            self.error("apiVersion", "must be {}, got {}{}".format(wanted, _show(api_version), hint))
        kind_value = data.get("kind")
        if kind_value is None:
            self.error("kind", 'is required; must be "{}"'.format(kind.name))
        elif kind_value != kind.name:
            hint = ""
            if kind_value == other.name:
                hint = "; this file is for {}".format(other.name)
                for_other_side = True
            self.error("kind", 'must be "{}", got {}{}'.format(kind.name, _show(kind_value), hint))
        return not for_other_side

    def apply_overrides(self, data, overrides):
        """Write each dotted-path override into the raw data, checking the path exists."""
        for path, value in overrides.items():
            segments = path.split(".") if isinstance(path, str) else [path]
            spec = self.kind.schema
            node = data
            walked = ""
            for index, segment in enumerate(segments):
                if not isinstance(spec, Section) or segment not in spec.fields:
                    known = spec.fields if isinstance(spec, Section) else {}
                    self.override_errors.append(
                        (
                            _join(walked, segment),
                            "unknown key{} (from override {})".format(
                                _suggest(segment, known), _show(str(path))
                            ),
                        )
                    )
                    break
                spec = spec.fields[segment]
                walked = _join(walked, segment)
                if index == len(segments) - 1:
                    self.override_paths.add(walked)
                    if value is None:
                        node.pop(segment, None)
                    elif isinstance(spec, Section) and isinstance(value, Mapping):
                        # A section override merges key by key, like nested flags would.
                        current = node.get(segment)
                        if not isinstance(current, dict):
                            current = node[segment] = {}
                        for key, item in value.items():
                            self.override_paths.add(_join(walked, key))
                            current[key] = item
                    else:
                        node[segment] = value
                else:
                    child = node.get(segment)
                    if child is None:
                        child = node[segment] = {}
                    if not isinstance(child, dict):
                        # The file has a scalar where a section belongs; the walk
                        # reports that, and the override has nowhere to go.
                        break
                    node = child

    def walk(self, section, raw, path, skip=()):
        """Validate one section's raw mapping; return its values with defaults filled in."""
        given = {}
        if raw is None:
            raw = {}
        elif not isinstance(raw, dict):
            self.error(path, "must be a mapping, got {}".format(_show(raw)))
            raw = {}
        for key, value in raw.items():
            key_path = _join(path, key)
            if key in skip:
                continue
            spec = section.fields.get(key) if isinstance(key, str) else None
            if spec is None:
                self.error(key_path, "unknown key{}".format(_suggest(key, section.fields)))
                continue
            if isinstance(spec, Section):
                before = len(self.errors)
                values = self.walk(spec, value, key_path)
                if len(self.errors) == before:
                    self.run_checks(spec, values, key_path)
                given[key] = values
            elif value is not None:
                try:
                    given[key] = spec.check(value)
                except _Invalid as e:
                    self.error(key_path + e.subpath, e.message)
        values = {}
        for name, spec in section.fields.items():
            if name in skip:
                continue
            if name in given:
                values[name] = given[name]
            elif isinstance(spec, Section):
                # Absent section: defaults pass its cross-field checks by construction.
                values[name] = spec.defaults()
            else:
                values[name] = spec.default
        return values

    def run_checks(self, section, values, path):
        """Run a section's cross-field checks (only called when the section had no errors)."""
        for check in section.checks:
            for relpath, message in check(values):
                self.error(_join(path, relpath), message)

    def resolve_state_dir(self, value, from_override):
        """Make stateDir absolute: file values relative to the file, flags relative to cwd."""
        if value is None:
            value = default_state_dir()
        value = os.path.expanduser(value)
        if not os.path.isabs(value):
            if self.from_file and not from_override:
                base = os.path.dirname(os.path.abspath(self.source))
                value = os.path.join(base, value)
            else:
                value = os.path.abspath(value)
        return os.path.normpath(value)


def _yaml_error_message(error):
    """One-line description of a PyYAML error, with 1-based line and column."""
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    problem = getattr(error, "problem", None) or str(error)
    problem = " ".join(str(problem).split())
    if mark is not None:
        return "invalid YAML at line {}, column {}: {}".format(
            mark.line + 1, mark.column + 1, problem
        )
    return "invalid YAML: {}".format(problem)


def _parse(text, loader):
    """safe_load ``text``; a YAML error becomes a file-level ConfigError."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        loader.error("", _yaml_error_message(e))
        loader.fail()
    except RecursionError:
        loader.error("", "invalid YAML: nested too deeply")
        loader.fail()


def load_config_text(text, kind, source="<string>", overrides=None):
    """Validate YAML ``text`` (str or bytes) as a ``kind`` config; return a frozen :class:`Config`.

    ``overrides`` maps dotted paths to values applied after reading and before
    validation (so command-line flags win); they are checked like file values
    and a ``None`` value resets the key to its default. Raises
    :class:`ConfigError` listing every problem.
    """
    loader = _Loader(kind, source, from_file=False)
    return loader.load(_parse(text, loader), overrides)


def _read_file(path):
    """Return the bytes of ``path`` (a seam for tests of unreadable files)."""
    with open(path, "rb") as f:
        return f.read()


def load_config(path, kind, overrides=None):
    """Read and validate the ``kind`` config file at ``path``; see :func:`load_config_text`."""
    path = os.fspath(path)
    loader = _Loader(kind, path, from_file=True)
    try:
        data = _read_file(path)
    except FileNotFoundError:
        loader.error("", "config file not found")
        loader.fail()
    except IsADirectoryError:
        loader.error("", "cannot read config file: is a directory")
        loader.fail()
    except PermissionError:
        loader.error("", "cannot read config file: permission denied")
        loader.fail()
    except OSError as e:
        loader.error(
            "", "cannot read config file: {}".format((e.strerror or str(e)).lower())
        )
        loader.fail()
    return loader.load(_parse(data, loader), overrides)


def default_config(kind, overrides=None):
    """Return the ``kind`` config with every key at its default (plus ``overrides``)."""
    kind_info = _kind(kind)
    loader = _Loader(kind, _DEFAULTS_SOURCE, from_file=False)
    data = {"apiVersion": kind_info.api_versions[0], "kind": kind_info.name}
    return loader.load(data, overrides)
