"""Where the API server is and how to authenticate: kubeconfig, in-cluster, cloud config.

Three sources give a :class:`ClientConfig`:

* :func:`load_kubeconfig` reads a kubeconfig file (``kubectl``'s format): the current
  context or a named one; the cluster's ``server``, ``certificate-authority`` /
  ``certificate-authority-data``, ``insecure-skip-tls-verify``, ``tls-server-name``; the
  user's ``client-certificate(-data)`` / ``client-key(-data)``, ``token`` / ``tokenFile``.
  Relative file names are relative to the kubeconfig's directory, as in client-go.
* :func:`in_cluster_config` is client-go's ``rest.InClusterConfig``: the service
  account's token and CA under ``/var/run/secrets/kubernetes.io/serviceaccount`` and the
  ``KUBERNETES_SERVICE_HOST`` / ``KUBERNETES_SERVICE_PORT`` environment.
* :func:`client_config_from` applies cloudcore's ``kubeAPIConfig`` like KubeEdge's
  ``clientcmd.BuildConfigFromFlags(master, kubeConfig)``: the kubeconfig file, with
  ``master`` overriding its server URL; ``master`` alone; neither means in-cluster.
  ``qps`` and ``burst`` are carried along for the rate limiter.

Every problem raises :class:`~kubeedge_tw.cloud.k8s.errors.K8sConfigError` naming the
file and entry. :func:`make_kube_client` turns a ``ClientConfig`` into a
:class:`~kubeedge_tw.cloud.k8s.client.KubeClient`: a treq ``HTTPClient`` over an
``Agent`` whose HTTPS policy (:class:`KubeTLSPolicy`) verifies the server against the
configured CA with Twisted's ``optionsForClientTLS`` and presents the client
certificate, or, with ``insecure-skip-tls-verify``, does not verify (and says so in a
warning).
"""

import base64
import dataclasses
import ipaddress
import os
import re
from urllib.parse import urlsplit

import treq.client
import yaml
from twisted.internet import ssl
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.logger import Logger
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

from kubeedge_tw.cloud.k8s.client import KubeClient
from kubeedge_tw.cloud.k8s.errors import K8sConfigError

__all__ = [
    "ClientConfig", "K8sConfigError", "KubeTLSPolicy", "FileTokenSource",
    "load_kubeconfig", "in_cluster_config", "client_config_from", "tls_policy",
    "make_kube_client", "client_from_config", "SERVICE_ACCOUNT_DIR",
]

log = Logger(namespace="kubeedge_tw.cloud.k8s")

#: Where a pod finds its service-account credentials.
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"

# client-go re-reads a token file at most once a minute (transport.cachingTokenSource).
TOKEN_FILE_REFRESH = 60


@dataclasses.dataclass(frozen=True, repr=False)
class ClientConfig:
    """Everything needed to reach and authenticate to one API server.

    PEM material is held as bytes (read once, when the config is loaded). ``token_file``,
    when set, is re-read periodically and wins over ``token`` (client-go's rule).
    ``source`` says where this came from, for messages.
    """

    server: str
    ca_data: bytes = None
    insecure: bool = False
    tls_server_name: str = None
    client_cert_data: bytes = None
    client_key_data: bytes = None
    token: str = None
    token_file: str = None
    namespace: str = "default"
    qps: float = 100
    burst: int = 200
    source: str = "<config>"

    def __repr__(self):
        """Like the dataclass repr, but never showing the token or the key."""
        return ("ClientConfig(server={!r}, source={!r}, ca={}, insecure={}, client_cert={}, "
                "token={}, token_file={!r})").format(
                    self.server, self.source, self.ca_data is not None, self.insecure,
                    self.client_cert_data is not None, "<set>" if self.token else None,
                    self.token_file)


# -- kubeconfig --------------------------------------------------------------------------


def _check_server(server, where):
    if not isinstance(server, str) or not server:
        raise K8sConfigError("{}: no server URL".format(where))
    parts = urlsplit(server)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise K8sConfigError("{}: server {!r} is not an http(s) URL".format(where, server))
    try:
        parts.port
    except ValueError:
        raise K8sConfigError("{}: server {!r} has a bad port".format(where, server)) from None
    return server.rstrip("/")


def _named(doc, section, name, where):
    entries = doc.get(section) or []
    if not isinstance(entries, list):
        raise K8sConfigError("{}: {} must be a list".format(where, section))
    for entry in entries:
        if isinstance(entry, dict) and entry.get("name") == name:
            key = section[:-1]  # clusters -> cluster
            body = entry.get(key)
            if body is None:
                body = {}
            if not isinstance(body, dict):
                raise K8sConfigError("{}: {}[{}].{} must be a mapping".format(
                    where, section, name, key))
            return body
    raise K8sConfigError("{}: no {} named {!r}".format(where, section[:-1], name))


def _read_file(path, what):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise K8sConfigError("{} {}: {}".format(what, path, e.strerror or e)) from None


def _b64(value, what):
    try:
        return base64.b64decode(value, validate=True)
    except (ValueError, TypeError):
        raise K8sConfigError("{}: not valid base64".format(what)) from None


def _material(body, file_key, data_key, base_dir, what):
    """Bytes from ``<file_key>`` (a path) or ``<data_key>`` (base64); ``None`` if neither."""
    path, data = body.get(file_key), body.get(data_key)
    if path and data:
        # client-go's validation refuses this too ("... both specified").
        raise K8sConfigError("{}: both {} and {} are set; use one".format(
            what, file_key, data_key))
    if data:
        return _b64(data, "{}.{}".format(what, data_key))
    if path:
        path = os.path.join(base_dir, os.path.expanduser(path))
        return _read_file(path, "{}.{}".format(what, file_key))
    return None


def load_kubeconfig(path, context=None, master=None):
    """The :class:`ClientConfig` of ``context`` (default: ``current-context``) in the
    kubeconfig at ``path``; ``master`` replaces the cluster's server URL."""
    path = os.path.abspath(os.path.expanduser(path))
    where = "kubeconfig " + path
    raw = _read_file(path, "kubeconfig")
    try:
        doc = yaml.safe_load(raw)
    except yaml.YAMLError as e:
        raise K8sConfigError("{}: not YAML: {}".format(where, e)) from None
    if not isinstance(doc, dict):
        raise K8sConfigError("{}: not a kubeconfig (expected a mapping)".format(where))
    if context is None:
        context = doc.get("current-context")
        if not context:
            raise K8sConfigError("{}: no current-context and no context asked for"
                                 .format(where))
    ctx = _named(doc, "contexts", context, where)
    cluster_name, user_name = ctx.get("cluster"), ctx.get("user")
    if not cluster_name:
        raise K8sConfigError("{}: context {!r} names no cluster".format(where, context))
    cluster = _named(doc, "clusters", cluster_name, where)
    user = _named(doc, "users", user_name, where) if user_name else {}
    base_dir = os.path.dirname(path)
    cwhere = "{}: clusters[{}]".format(where, cluster_name)
    uwhere = "{}: users[{}]".format(where, user_name)

    for unsupported in ("exec", "auth-provider", "username", "password"):
        if user.get(unsupported):
            raise K8sConfigError("{}: {} authentication is not supported; use a client "
                                 "certificate or a token".format(uwhere, unsupported))
    server = _check_server(master or cluster.get("server"), cwhere)
    insecure = cluster.get("insecure-skip-tls-verify", False)
    if not isinstance(insecure, bool):
        raise K8sConfigError("{}.insecure-skip-tls-verify: must be true or false".format(
            cwhere))
    ca = _material(cluster, "certificate-authority", "certificate-authority-data", base_dir,
                   cwhere)
    if insecure and ca is not None:
        # client-go: "specifying a root certificates file with the insecure flag is not
        # allowed".
        raise K8sConfigError("{}: insecure-skip-tls-verify and a certificate authority are "
                             "both set; use one".format(cwhere))
    cert = _material(user, "client-certificate", "client-certificate-data", base_dir, uwhere)
    key = _material(user, "client-key", "client-key-data", base_dir, uwhere)
    if (cert is None) != (key is None):
        raise K8sConfigError("{}: a client certificate needs both the certificate and the "
                             "key".format(uwhere))
    token_file = user.get("tokenFile")
    if token_file:
        token_file = os.path.join(base_dir, os.path.expanduser(token_file))
        _read_token(token_file, uwhere + ".tokenFile")  # fail now, not at first request
    return ClientConfig(
        server=server, ca_data=ca, insecure=insecure,
        tls_server_name=cluster.get("tls-server-name") or None,
        client_cert_data=cert, client_key_data=key, token=user.get("token") or None,
        token_file=token_file or None, namespace=ctx.get("namespace") or "default",
        source="{} (context {})".format(where, context))


def _read_token(path, what):
    token = _read_file(path, what).decode("utf-8", "replace").strip()
    if not token:
        raise K8sConfigError("{} {}: empty".format(what, path))
    return token


# -- in-cluster ---------------------------------------------------------------------------


def in_cluster_config(environ=None, root=SERVICE_ACCOUNT_DIR):
    """client-go's ``rest.InClusterConfig``: ``https://$KUBERNETES_SERVICE_HOST:
    $KUBERNETES_SERVICE_PORT``, the service-account token (``root/token``, re-read as
    it rotates), CA (``root/ca.crt``) and namespace (``root/namespace``)."""
    environ = os.environ if environ is None else environ
    host, port = environ.get("KUBERNETES_SERVICE_HOST"), environ.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        raise K8sConfigError("not running in a cluster: KUBERNETES_SERVICE_HOST and "
                             "KUBERNETES_SERVICE_PORT must be defined")
    try:
        host = "[{}]".format(host) if ipaddress.ip_address(host).version == 6 else host
    except ValueError:
        pass
    where = "in-cluster config"
    token_file = os.path.join(root, "token")
    _read_token(token_file, where + ": service-account token")
    ca = _read_file(os.path.join(root, "ca.crt"), where + ": service-account CA")
    try:
        with open(os.path.join(root, "namespace"), encoding="utf-8") as f:
            namespace = f.read().strip() or "default"
    except OSError:
        namespace = "default"
    return ClientConfig(server=_check_server("https://{}:{}".format(host, port), where),
                        ca_data=ca, token_file=token_file, namespace=namespace,
                        source="{} ({})".format(where, root))


# -- cloudcore's kubeAPIConfig ---------------------------------------------------------------


def client_config_from(config, environ=None, service_account_dir=SERVICE_ACCOUNT_DIR):
    """The :class:`ClientConfig` for cloudcore's loaded ``config``.

    ``kubeAPIConfig.kubeConfig`` (relative to the state dir) and/or ``master``, as
    KubeEdge's ``BuildConfigFromFlags``; with neither, the in-cluster config (when
    cloudcore is not in a pod, the tap uses the embedded API server instead and does not
    call this). ``qps`` and ``burst`` come along.
    """
    kube = config["kubeAPIConfig"]
    path = config.resolve_path(kube["kubeConfig"])
    master = kube["master"] or None
    if path:
        try:
            client_config = load_kubeconfig(path, master=master)
        except K8sConfigError as e:
            raise K8sConfigError("kubeAPIConfig.kubeConfig: {}".format(e)) from None
    elif master:
        client_config = ClientConfig(
            server=_check_server(master, "kubeAPIConfig.master"),
            source="kubeAPIConfig.master")
    else:
        try:
            client_config = in_cluster_config(environ, service_account_dir)
        except K8sConfigError as e:
            raise K8sConfigError("kubeAPIConfig: neither master nor kubeConfig is set, and "
                                 "{}".format(e)) from None
    return dataclasses.replace(client_config, qps=kube["qps"], burst=kube["burst"])


# -- TLS and the HTTP client -------------------------------------------------------------


def _split_pem_certificates(data, what):
    blocks = re.findall(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", data,
                        re.S)
    if not blocks:
        raise K8sConfigError("{}: no PEM certificate found".format(what))
    try:
        return [ssl.Certificate.loadPEM(block) for block in blocks]
    except Exception as e:  # pyOpenSSL raises several error types for bad PEM
        raise K8sConfigError("{}: not a usable certificate: {}".format(what, e)) from None


def _is_ip(host):
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


@implementer(IOpenSSLClientConnectionCreator)
class _NoVerifyCreator:
    """Connection creator for ``insecure-skip-tls-verify``: TLS without checking the
    server's certificate, SNI still sent for DNS names."""

    def __init__(self, hostname, options):
        self._options = options
        self._sni = None if _is_ip(hostname) else hostname.encode("idna")

    def clientConnectionForTLS(self, tlsProtocol):
        """An OpenSSL client connection that accepts any server certificate."""
        connection = self._options.clientConnectionForTLS(tlsProtocol)
        connection.set_app_data(tlsProtocol)
        if self._sni:
            connection.set_tlsext_host_name(self._sni)
        return connection


@implementer(IPolicyForHTTPS)
class KubeTLSPolicy:
    """``Agent`` HTTPS policy for the API server, a ``BrowserLikePolicyForHTTPS`` with
    our trust root and client certificate.

    ``trust_root`` is an ``IOpenSSLTrustRoot`` (``None``: the platform's CAs);
    ``server_name`` (kubeconfig ``tls-server-name``) replaces the URL's host for
    verification and SNI; ``insecure`` skips verification altogether.
    """

    def __init__(self, trust_root=None, client_certificate=None, insecure=False,
                 server_name=None):
        """See the class docstring."""
        self.trust_root = trust_root
        self.client_certificate = client_certificate
        self.insecure = insecure
        self.server_name = server_name
        self._tls_min = {"raiseMinimumTo": ssl.TLSVersion.TLSv1_2}

    def creatorForNetloc(self, hostname, port):
        """The connection creator for ``hostname`` (bytes) and ``port``."""
        host = self.server_name or hostname.decode("ascii")
        if self.insecure:
            extra = dict(self._tls_min)
            if self.client_certificate is not None:
                extra.update(privateKey=self.client_certificate.privateKey.original,
                             certificate=self.client_certificate.original)
            return _NoVerifyCreator(host, ssl.CertificateOptions(verify=False, **extra))
        return ssl.optionsForClientTLS(host, trustRoot=self.trust_root,
                                       clientCertificate=self.client_certificate,
                                       extraCertificateOptions=dict(self._tls_min))


def tls_policy(client_config):
    """The :class:`KubeTLSPolicy` for ``client_config``; ``K8sConfigError`` for unusable
    certificate material. Logs a warning when verification is off."""
    where = client_config.source
    trust_root = None
    if client_config.ca_data is not None:
        trust_root = ssl.trustRootFromCertificates(
            _split_pem_certificates(client_config.ca_data, where + ": certificate authority"))
    client_certificate = None
    if client_config.client_cert_data is not None:
        try:
            client_certificate = ssl.PrivateCertificate.loadPEM(
                client_config.client_cert_data + b"\n" + client_config.client_key_data)
        except Exception as e:  # pyOpenSSL raises several error types for bad PEM
            raise K8sConfigError("{}: client certificate/key: not a usable pair: {}".format(
                where, e)) from None
    if client_config.insecure:
        log.warn("{source}: insecure-skip-tls-verify is set: the API server's certificate "
                 "is NOT verified", source=where, log_event="k8s_tls_insecure")
    return KubeTLSPolicy(trust_root, client_certificate, client_config.insecure,
                         client_config.tls_server_name)


class FileTokenSource:
    """A bearer token read from a file, re-read at most every ``refresh`` seconds on
    ``clock`` (service-account tokens rotate, client-go's ``cachingTokenSource``).

    When a re-read fails the last good token is kept and a warning logged.
    """

    def __init__(self, clock, path, refresh=TOKEN_FILE_REFRESH):
        """Read ``path`` now; ``K8sConfigError`` if it is missing or empty."""
        self.clock = clock
        self.path = path
        self.refresh = refresh
        self._token = _read_token(path, "token file")
        self._read_at = clock.seconds()

    def __call__(self):
        """The current token."""
        if self.clock.seconds() - self._read_at >= self.refresh:
            self._read_at = self.clock.seconds()
            try:
                self._token = _read_token(self.path, "token file")
            except K8sConfigError as e:
                log.warn("keeping the previous bearer token: {error}", error=str(e),
                         log_event="k8s_token_refresh_failed")
        return self._token


def make_kube_client(reactor, client_config, qps=None, burst=None, **client_kwargs):
    """A :class:`KubeClient` for ``client_config``: treq over an ``Agent`` with
    :class:`KubeTLSPolicy` and a persistent connection pool on ``reactor``.

    ``qps``/``burst`` override the config's; ``client_kwargs`` go to :class:`KubeClient`
    (``request_timeout``, ``resources``). ``KubeClient.close()`` closes the pool's
    connections.
    """
    pool = HTTPConnectionPool(reactor, persistent=True)
    # Enough kept-alive connections for every controller request that can run at once
    # (EdgeController's handlers + SyncController's writers + informers), so requests
    # do not pay a fresh TLS handshake each.
    pool.maxPersistentPerHost = 48
    agent = Agent(reactor, contextFactory=tls_policy(client_config), pool=pool)
    token = client_config.token
    if client_config.token_file:
        token = FileTokenSource(reactor, client_config.token_file)
    return KubeClient(treq.client.HTTPClient(agent), client_config.server, reactor,
                      token=token,
                      qps=client_config.qps if qps is None else qps,
                      burst=client_config.burst if burst is None else burst,
                      on_close=pool.closeCachedConnections, **client_kwargs)


def client_from_config(reactor, config, **client_kwargs):
    """The :class:`KubeClient` cloudcore's ``config`` (``kubeAPIConfig``) asks for."""
    return make_kube_client(reactor, client_config_from(config), **client_kwargs)
