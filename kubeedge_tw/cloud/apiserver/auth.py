"""Credentials of the embedded API server: its serving certificate, the admin client
certificate and bearer token, the kubeconfig written for kubectl, and request
authentication.

Everything hangs off the cloud CA (``modules.cloudHub.tlsCAFile``): the serving
certificate (SANs ``127.0.0.1``, ``localhost`` and the listen address) and the admin
client certificate (CN ``admin``, O ``system:masters``, like kubeadm's admin.conf) are
issued from it into ``<state-dir>/apiserver/`` and re-issued when missing, about to
expire, or not signed by the current CA. The admin bearer token is 32 random bytes in
``<state-dir>/apiserver/token`` (0600). Private keys and the kubeconfig are 0600.

A request is authenticated by ``Authorization: Bearer <token>`` or by a client
certificate the TLS layer verified against the CA (the user is its CN, the groups its
O values). Anything else is anonymous, and anonymous requests are refused (401).
Authorization is not modelled: every authenticated user may do everything.
"""

import base64
import datetime
import hmac
import ipaddress
import os
import secrets

import yaml
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from twisted.internet import ssl

from kubeedge_tw.common import pki

__all__ = [
    "User", "Authenticator", "APIServerCredentials", "ensure_credentials", "write_kubeconfig",
    "issue_admin_cert", "tls_options", "RENEW_BEFORE",
]

#: Certificates closer than this to their expiry are re-issued at start.
RENEW_BEFORE = datetime.timedelta(days=30)
ADMIN_USER = "admin"
ADMIN_GROUP = "system:masters"


class User:
    """An authenticated requester: a name and groups."""

    __slots__ = ("name", "groups", "method")

    def __init__(self, name, groups=(), method=""):
        """``method`` says how it authenticated (``token`` or ``x509``)."""
        self.name = name
        self.groups = tuple(groups)
        self.method = method

    def __repr__(self):
        return "User({!r}, {!r}, {!r})".format(self.name, self.groups, self.method)


class Authenticator:
    """Checks a request's bearer token or verified client certificate."""

    def __init__(self, token):
        """Accept ``token`` (a str) as the admin bearer token."""
        self._token = token.encode("ascii")

    def authenticate(self, request):
        """The :class:`User` behind ``request``, or None (anonymous)."""
        header = request.getHeader(b"authorization")
        if isinstance(header, bytes):
            header = header.decode("latin-1")
        if header:
            scheme, _, value = header.partition(" ")
            if scheme.lower() == "bearer" and value:
                if hmac.compare_digest(value.strip().encode("utf-8", "replace"), self._token):
                    return User(ADMIN_USER, (ADMIN_GROUP,), "token")
                return None
        return self._from_certificate(request)

    @staticmethod
    def _from_certificate(request):
        transport = getattr(request.channel, "transport", None)
        get_peer = getattr(transport, "getPeerCertificate", None)
        if get_peer is None:
            return None
        try:
            cert = get_peer()
        except Exception:  # pyOpenSSL raises when no handshake happened (plain TCP)
            return None
        if cert is None:
            return None
        # The TLS layer only completes the handshake for certificates the CA signed.
        subject = cert.get_subject().get_components()
        names = [v.decode("utf-8", "replace") for k, v in subject if k == b"CN"]
        groups = [v.decode("utf-8", "replace") for k, v in subject if k == b"O"]
        if not names:
            return None
        return User(names[0], groups, "x509")


def issue_admin_cert(ca_key, ca_cert, user=ADMIN_USER, groups=(ADMIN_GROUP,),
                     days=pki.CERT_DAYS, now=None):
    """A client certificate for ``user`` (CN) in ``groups`` (O): ``(key, cert)``."""
    key = pki.new_key()
    now = now or datetime.datetime.now(datetime.timezone.utc)
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in groups]
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, user))
    start = now - datetime.timedelta(minutes=5)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name(attributes)).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False,
                                         content_commitment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return key, cert


def _usable(cert_path, key_path, ca_cert, now, ips=()):
    """Whether an existing certificate/key pair can be kept."""
    if not (os.path.exists(cert_path) and os.path.exists(key_path)):
        return False
    try:
        cert = pki.load_cert(cert_path)
        pki.load_key(key_path)
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, OSError, InvalidSignature):  # unreadable or foreign
        return False
    if cert.not_valid_after_utc - now < RENEW_BEFORE:
        return False
    if ips:
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            return False
        have = {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
        if not set(ips) <= have:
            return False
    return True


class APIServerCredentials:
    """Paths and contents of the API server's credentials (see the module docstring)."""

    def __init__(self, directory, ca_file):
        """Credentials kept in ``directory`` for the CA certificate ``ca_file``."""
        self.directory = directory
        self.ca_file = ca_file
        self.serving_cert = os.path.join(directory, "apiserver.crt")
        self.serving_key = os.path.join(directory, "apiserver.key")
        self.admin_cert = os.path.join(directory, "admin.crt")
        self.admin_key = os.path.join(directory, "admin.key")
        self.token_file = os.path.join(directory, "token")

    def token(self):
        """The admin bearer token."""
        with open(self.token_file) as f:
            return f.read().strip()

    def read(self, path):
        """Bytes of one of the files."""
        with open(path, "rb") as f:
            return f.read()


def ensure_credentials(directory, ca_file, ca_key_file, address="127.0.0.1", now=None):
    """Create what is missing or stale of the API server's credentials in ``directory``;
    return ``(APIServerCredentials, written paths)``. Raises ``ValueError``/``OSError``
    when the CA cannot be read."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    creds = APIServerCredentials(directory, ca_file)
    ca_cert, ca_key = pki.load_cert(ca_file), pki.load_key(ca_key_file)
    ips = ["127.0.0.1", "::1"]
    dns = ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"]
    try:
        ipaddress.ip_address(address)
        if address not in ("0.0.0.0", "::") and address not in ips:
            ips.append(address)
    except ValueError:
        if address not in dns:
            dns.append(address)
    written = []
    if not _usable(creds.serving_cert, creds.serving_key, ca_cert, now, ips):
        key, cert = pki.issue_server_cert(ca_key, ca_cert, ips=ips, dns_names=dns,
                                          common_name="kubeedge-tw apiserver", now=now)
        written.append(pki.write_pem(creds.serving_key, pki.key_pem(key), private=True))
        written.append(pki.write_pem(creds.serving_cert, pki.cert_pem(cert)))
    if not _usable(creds.admin_cert, creds.admin_key, ca_cert, now):
        key, cert = issue_admin_cert(ca_key, ca_cert, now=now)
        written.append(pki.write_pem(creds.admin_key, pki.key_pem(key), private=True))
        written.append(pki.write_pem(creds.admin_cert, pki.cert_pem(cert)))
    if not os.path.exists(creds.token_file) or not creds.token():
        written.append(_write_private(creds.token_file,
                                      secrets.token_urlsafe(32).encode("ascii") + b"\n"))
    return creds, written


def _write_private(path, data):
    """Write ``data`` to ``path`` mode 0600 via a temporary file and rename, so a reader
    never sees a partial file."""
    temporary = path + ".tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)
    return path


def write_kubeconfig(path, server_url, creds, cluster="kubeedge-tw"):
    """Write a kubeconfig (0600) for the admin user: the server, the CA and the admin
    client certificate and key inline."""
    b64 = lambda data: base64.b64encode(data).decode("ascii")  # noqa: E731
    config = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": cluster, "cluster": {
            "server": server_url,
            "certificate-authority-data": b64(creds.read(creds.ca_file))}}],
        "users": [{"name": ADMIN_USER, "user": {
            "client-certificate-data": b64(creds.read(creds.admin_cert)),
            "client-key-data": b64(creds.read(creds.admin_key))}}],
        "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": ADMIN_USER,
                                                   "namespace": "default"}}],
        "current-context": cluster,
        "preferences": {},
    }
    return _write_private(path, yaml.safe_dump(config, sort_keys=False).encode("utf-8"))


def tls_options(creds):
    """Server TLS options: the serving certificate; client certificates optional but, when
    presented, verified against the CA (TLS >= 1.2)."""
    server = ssl.PrivateCertificate.loadPEM(creds.read(creds.serving_cert) + b"\n" +
                                            creds.read(creds.serving_key))
    ca = ssl.Certificate.loadPEM(creds.read(creds.ca_file))
    return ssl.CertificateOptions(
        privateKey=server.privateKey.original, certificate=server.original, verify=True,
        caCerts=[ca.original], requireCertificate=False,
        raiseMinimumTo=ssl.TLSVersion.TLSv1_2)
