"""``python -m kubeedge_tw join``: an edge joins a cloud with a token, like ``keadm join``.

1. ``GET https://<cloud>:<https port>/ca.crt`` without verifying the server (nothing to
   verify with yet), then check the CA's sha256 against the token's first part: a
   mismatch means someone else answered, and join stops (man-in-the-middle protection).
2. Make the EC key here — it never leaves the edge — and a CSR with CN = node name.
3. ``GET /edge.crt`` with the CSR, ``Authorization: Bearer <token>`` and ``NodeName``, now
   verifying the server against the fetched CA.
4. Write ``ca/rootCA.crt``, ``certs/edge.crt``, ``certs/edge.key`` (0600) and
   ``edgecore.yaml`` into the state dir; ``twistd -n kubeedge-edge --config <that file>``
   then connects.

:func:`renew` is the same exchange authenticated by the current client certificate,
used by the edge's certificate rotation.
"""

import hashlib
import os

import treq
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from twisted.internet import ssl
from twisted.python import usage
from twisted.web.client import Agent, BrowserLikePolicyForHTTPS
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

from kubeedge_tw.certs.token import TokenError, split_token
from kubeedge_tw.common import pki
from kubeedge_tw.common.config import EDGE, ConfigError, default_state_dir, load_config_text
from kubeedge_tw.common.tap import check_host_port

__all__ = ["JoinOptions", "JoinError", "join", "renew", "fetch_ca", "edge_config_text"]

HTTP_TIMEOUT = 30


class JoinError(Exception):
    """Join (or renewal) could not complete; the message says why."""


@implementer(IPolicyForHTTPS)
class _FixedTLS:
    """An HTTPS policy that uses one prepared TLS connection creator."""

    def __init__(self, options):
        self._options = options

    def creatorForNetloc(self, hostname, port):
        return self._options


def _client(reactor, options):
    return treq.client.HTTPClient(Agent(reactor, contextFactory=_FixedTLS(options)))


def split_host_port(value):
    """``("host", port)`` of ``host:port`` / ``[v6]:port``."""
    host, _, port = value.rpartition(":")
    return host.strip("[]"), int(port)


def _url(host, port, path):
    return "https://{}:{}{}".format("[{}]".format(host) if ":" in host else host, port, path)


class JoinOptions(usage.Options):
    """Options of ``join``."""

    synopsis = "--cloud HOST:PORT --token TOKEN --node NAME [--state-dir DIR]"
    optParameters = [
        ["cloud", None, None, "CloudHub websocket address HOST:PORT (e.g. 192.0.2.1:10000)"],
        ["token", None, None, "join token from 'python -m kubeedge_tw gettoken'"],
        ["node", None, None, "this edge's node name"],
        ["state-dir", None, None, "edge state dir (default /var/lib/kubeedge as root, "
                                  "else ~/.local/state/kubeedge-tw)"],
        ["https-port", None, 10002, "the cloud's bootstrap HTTPS port", int],
        ["config-out", None, None, "where to write edgecore.yaml "
                                   "(default <state-dir>/edgecore.yaml)"],
    ]

    def postOptions(self):
        from kubeedge_tw.certs.bootstrap import valid_node_name
        for flag in ("cloud", "token", "node"):
            if not self[flag]:
                raise usage.UsageError("--{} is required".format(flag))
        check_host_port("--cloud", self["cloud"])
        if not valid_node_name(self["node"]):
            raise usage.UsageError("--node {!r} is not a valid node name (DNS-1123)".format(
                self["node"]))
        if not 0 < self["https-port"] < 65536:
            raise usage.UsageError("--https-port must be 1..65535")
        try:
            split_token(self["token"])
        except TokenError as e:
            raise usage.UsageError("--token: {}".format(e)) from None
        self["state-dir"] = os.path.abspath(os.path.expanduser(
            self["state-dir"] or default_state_dir()))


async def fetch_ca(reactor, host, port, expected_hash):
    """Download the CA without verification and check it against ``expected_hash``."""
    insecure = ssl.CertificateOptions(verify=False)
    try:
        response = await _client(reactor, insecure).get(_url(host, port, "/ca.crt"),
                                                        timeout=HTTP_TIMEOUT)
        body = await response.content()
    except Exception as e:
        raise JoinError("cannot fetch the CA from {}: {}".format(
            _url(host, port, "/ca.crt"), e)) from None
    if response.code != 200:
        raise JoinError("{} answered HTTP {}".format(_url(host, port, "/ca.crt"),
                                                     response.code))
    if hashlib.sha256(body).hexdigest() != expected_hash:
        raise JoinError("the CA served by {}:{} does not match the token's CA hash: "
                        "refusing to trust it (wrong cloud, or a man in the middle)"
                        .format(host, port))
    try:
        return x509.load_der_x509_certificate(body)
    except ValueError as e:
        raise JoinError("the cloud's CA is not a DER certificate: {}".format(e)) from None


async def _request_cert(client, host, port, node, key, headers):
    csr = pki.make_csr(key, node)
    headers = dict(headers, NodeName=[node])
    try:
        response = await client.get(_url(host, port, "/edge.crt"), headers=headers,
                                    data=csr.public_bytes(serialization.Encoding.DER),
                                    timeout=HTTP_TIMEOUT)
        body = await response.content()
    except Exception as e:
        raise JoinError("cannot reach {}: {}".format(_url(host, port, "/edge.crt"), e)) from None
    if response.code != 200:
        raise JoinError("the cloud refused the certificate request: HTTP {}: {}".format(
            response.code, body.decode("utf-8", "replace").strip()))
    try:
        return x509.load_der_x509_certificate(body)
    except ValueError as e:
        raise JoinError("the cloud's answer is not a DER certificate: {}".format(e)) from None


def _verified_options(host, ca_cert, client_cert=None):
    trust = ssl.Certificate.loadPEM(pki.cert_pem(ca_cert))
    kwargs = {"trustRoot": trust}
    if client_cert is not None:
        kwargs["clientCertificate"] = client_cert
    return ssl.optionsForClientTLS(host, **kwargs)


def edge_config_text(state_dir, cloud, https_url, node):
    """A minimal ``edgecore.yaml`` for a joined edge (every other key at its default)."""
    return ("# Written by 'python -m kubeedge_tw join'. Every key not listed takes its default;\n"
            "# conf/edgecore.yaml in the source documents them all.\n"
            "apiVersion: edgecore.config.kubeedge.io/v1alpha1\n"
            "kind: EdgeCore\n"
            "stateDir: {state_dir}\n"
            "modules:\n"
            "  edgeHub:\n"
            "    httpServer: {https}\n"
            "    tlsCaFile: ca/rootCA.crt\n"
            "    tlsCertFile: certs/edge.crt\n"
            "    tlsPrivateKeyFile: certs/edge.key\n"
            "    websocket:\n"
            "      server: \"{cloud}\"\n"
            "  edged:\n"
            "    hostnameOverride: {node}\n").format(state_dir=state_dir, https=https_url,
                                                    cloud=cloud, node=node)


async def join(reactor, options, out):
    """Join with a token (see module docstring); returns the written config path."""
    expected_hash, jwt = split_token(options["token"])
    host, _ = split_host_port(options["cloud"])
    port = options["https-port"]
    node, state_dir = options["node"], options["state-dir"]
    ca_cert = await fetch_ca(reactor, host, port, expected_hash)
    out.write("fetched the cloud CA from {} (sha256 matches the token)\n".format(
        _url(host, port, "/ca.crt")))
    key = pki.new_key()
    client = _client(reactor, _verified_options(host, ca_cert))
    cert = await _request_cert(client, host, port, node, key,
                               {"Authorization": ["Bearer " + jwt]})
    paths = {
        "ca": os.path.join(state_dir, "ca", "rootCA.crt"),
        "cert": os.path.join(state_dir, "certs", "edge.crt"),
        "key": os.path.join(state_dir, "certs", "edge.key"),
    }
    pki.write_pem(paths["key"], pki.key_pem(key), private=True)
    pki.write_pem(paths["cert"], pki.cert_pem(cert))
    pki.write_pem(paths["ca"], pki.cert_pem(ca_cert))
    text = edge_config_text(state_dir, options["cloud"], _url(host, port, ""), node)
    try:
        load_config_text(text, EDGE, source="generated edgecore.yaml")
    except ConfigError as e:
        raise JoinError("the generated config is invalid: {}".format(e)) from None
    config_path = options["config-out"] or os.path.join(state_dir, "edgecore.yaml")
    os.makedirs(os.path.dirname(os.path.abspath(config_path)), exist_ok=True)
    with open(config_path, "w") as f:
        f.write(text)
    out.write("wrote {ca}\nwrote {cert}\nwrote {key} (private key made here, mode 0600)\n"
              "wrote {config}\nstart the edge with:\n"
              "  twistd -n kubeedge-edge --config {config}\n"
              "  (or: python -m kubeedge_tw edge --config {config})\n".format(
                  config=config_path, **paths))
    return config_path


async def renew(reactor, https_url, node, ca_file, cert_file, key_file):
    """Get a new certificate for ``node`` authenticated by the current one; returns
    ``(key, cert)`` (not yet written)."""
    from urllib.parse import urlsplit
    parts = urlsplit(https_url)
    host, port = parts.hostname, parts.port or 10002
    try:
        ca_cert = pki.load_cert(ca_file)
        with open(cert_file, "rb") as f:
            cert_pem = f.read()
        with open(key_file, "rb") as f:
            key_pem = f.read()
        current = ssl.PrivateCertificate.loadPEM(cert_pem + b"\n" + key_pem)
    except Exception as e:
        raise JoinError("cannot load the current certificate: {}".format(e)) from None
    key = pki.new_key()
    client = _client(reactor, _verified_options(host, ca_cert, current))
    cert = await _request_cert(client, host, port, node, key, {})
    return key, cert
