"""Certificates without openssl: a CA, the CloudHub server certificate and edge client
certificates, made with ``cryptography``.

KubeEdge identifies an edge by its client certificate (reference 2.3); certificates this
module issues carry the node name as CN and as a DNS SAN, with the clientAuth usage, so
CloudHub can check that the node id an edge claims is the one its certificate names.
Keys are EC P-256. Private keys are written 0600.
"""

import datetime
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "create_ca", "issue_server_cert", "issue_client_cert", "sign_csr", "make_csr",
    "new_key", "cert_pem", "key_pem", "load_cert", "load_key", "write_pem", "node_names_of",
    "ensure_cloud_pki",
]

CA_DAYS = 3650
CERT_DAYS = 365


def _now(now=None):
    return now or datetime.datetime.now(datetime.timezone.utc)


def new_key():
    """A fresh EC P-256 private key."""
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name, organization="kubeedge-tw"):
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(subject, issuer, public_key, days, now, not_before_skew=300):
    start = _now(now) - datetime.timedelta(seconds=not_before_skew)
    return (x509.CertificateBuilder()
            .subject_name(subject).issuer_name(issuer).public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + datetime.timedelta(days=days)))


def create_ca(common_name="kubeedge-tw CA", days=CA_DAYS, now=None):
    """A self-signed CA: (key, certificate)."""
    key = new_key()
    name = _name(common_name)
    cert = (_builder(name, name, key.public_key(), days, now)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                         crl_sign=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return key, cert


def _leaf(ca_key, ca_cert, subject, public_key, usage, sans, days, now):
    builder = (_builder(subject, ca_cert.subject, public_key, days, now)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False,
                                            content_commitment=False, data_encipherment=False,
                                            key_agreement=False, key_cert_sign=False,
                                            crl_sign=False, encipher_only=False,
                                            decipher_only=False), critical=True)
               .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   ca_key.public_key()), critical=False))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def issue_server_cert(ca_key, ca_cert, ips=("127.0.0.1",), dns_names=("localhost",),
                      common_name="kubeedge-tw cloudhub", days=CERT_DAYS, now=None):
    """The CloudHub server certificate with IP and DNS SANs: (key, certificate).

    A v1.15 edge verifies the server against the CA, so the certificate needs an IP SAN
    for the address the edge dials (reference 2.11).
    """
    key = new_key()
    sans = [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    sans += [x509.DNSName(name) for name in dns_names]
    cert = _leaf(ca_key, ca_cert, _name(common_name), key.public_key(),
                 ExtendedKeyUsageOID.SERVER_AUTH, sans, days, now)
    return key, cert


def issue_client_cert(ca_key, ca_cert, node_name, days=CERT_DAYS, key=None, now=None,
                      with_node_name=True):
    """An edge client certificate, CN and DNS SAN = ``node_name``: (key, certificate).

    ``with_node_name=False`` makes a certificate that names no node (CN ``kubeedge.io``,
    no SAN), like those of older KubeEdge deployments.
    """
    key = key or new_key()
    if with_node_name:
        subject, sans = _name(node_name), [x509.DNSName(node_name)]
    else:
        subject, sans = _name("kubeedge.io", "kubeEdge"), []
    cert = _leaf(ca_key, ca_cert, subject, key.public_key(),
                 ExtendedKeyUsageOID.CLIENT_AUTH, sans, days, now)
    return key, cert


def make_csr(key, node_name):
    """A CSR for an edge key whose CN is the node name."""
    return (x509.CertificateSigningRequestBuilder().subject_name(_name(node_name))
            .sign(key, hashes.SHA256()))


def sign_csr(ca_key, ca_cert, csr, node_name, days=CERT_DAYS, now=None):
    """Issue a client certificate for ``node_name`` for the public key of ``csr``.

    The CSR's own subject is not trusted: the certificate names ``node_name``.
    """
    if not csr.is_signature_valid:
        raise ValueError("the CSR's signature does not verify")
    cert = _leaf(ca_key, ca_cert, _name(node_name), csr.public_key(),
                 ExtendedKeyUsageOID.CLIENT_AUTH, [x509.DNSName(node_name)], days, now)
    return cert


def node_names_of(cert):
    """The names a certificate gives its subject: CN values and DNS SANs (a set)."""
    names = {a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)}
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names.update(san.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        pass
    return names


def cert_pem(cert):
    """PEM bytes of a certificate."""
    return cert.public_bytes(serialization.Encoding.PEM)


def key_pem(key):
    """Unencrypted PKCS#8 PEM bytes of a private key."""
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def load_cert(path):
    """Read a PEM certificate."""
    with open(path, "rb") as f:
        return x509.load_pem_x509_certificate(f.read())


def load_key(path):
    """Read a PEM private key."""
    with open(path, "rb") as f:
        return serialization.load_pem_private_key(f.read(), password=None)


def write_pem(path, data, private=False):
    """Write PEM bytes, creating the directory; private keys get mode 0600 from the
    start (never briefly world-readable)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o700, exist_ok=True)
    mode = 0o600 if private else 0o644
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, mode)
    return path


def ensure_cloud_pki(ca_file, ca_key_file, cert_file, key_file, ips=("127.0.0.1",),
                     dns_names=("localhost",)):
    """Create what is missing of the cloud's CA and CloudHub server certificate.

    Never overwrites: an existing CA is kept (its key must then exist to issue a missing
    server certificate), an existing server certificate is kept. Returns the list of
    files written. Raises ``ValueError`` when a server certificate must be issued but the
    CA key is missing.
    """
    written = []
    if not os.path.exists(ca_file):
        if os.path.exists(ca_key_file):
            raise ValueError("CA key {} exists without its certificate {}; refusing to "
                             "replace it".format(ca_key_file, ca_file))
        ca_key, ca_cert = create_ca()
        written.append(write_pem(ca_key_file, key_pem(ca_key), private=True))
        written.append(write_pem(ca_file, cert_pem(ca_cert)))
    if not (os.path.exists(cert_file) and os.path.exists(key_file)):
        if not os.path.exists(ca_key_file):
            raise ValueError("cannot issue the server certificate {}: CA key {} is "
                             "missing".format(cert_file, ca_key_file))
        ca_key, ca_cert = load_key(ca_key_file), load_cert(ca_file)
        key, cert = issue_server_cert(ca_key, ca_cert, ips=ips, dns_names=dns_names)
        written.append(write_pem(key_file, key_pem(key), private=True))
        written.append(write_pem(cert_file, cert_pem(cert)))
    return written
