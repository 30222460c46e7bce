"""Unit tests for the API server's credentials, kubeconfig and request authentication."""

import base64
import datetime
import os

import yaml
from OpenSSL import crypto
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.test.requesthelper import DummyRequest

from kubeedge_tw.cloud.apiserver import auth
from kubeedge_tw.common import pki


class FakeTLSTransport:
    """A transport whose TLS peer presented ``cert`` (an OpenSSL X509 or None)."""

    def __init__(self, cert):
        self.cert = cert

    def getPeerCertificate(self):
        return self.cert


class FakeChannel:
    """The HTTP channel of a request: only its transport matters here."""

    def __init__(self, transport):
        self.transport = transport


class CredentialTests(SynchronousTestCase):
    """Certificates, token and kubeconfig files."""

    def setUp(self):
        self.dir = os.path.abspath(self.mktemp())
        os.makedirs(self.dir)
        self.make_ca()

    def make_ca(self):
        ca_key, ca_cert = pki.create_ca()
        self.ca = pki.write_pem(os.path.join(self.dir, "ca.crt"), pki.cert_pem(ca_cert))
        self.ca_key = pki.write_pem(os.path.join(self.dir, "ca.key"), pki.key_pem(ca_key),
                                    private=True)

    def ensure(self, **kwargs):
        return auth.ensure_credentials(os.path.join(self.dir, "api"), self.ca, self.ca_key,
                                       **kwargs)

    def test_created_once(self):
        """First start writes keys (0600), certificates and a token; the next writes
        nothing."""
        creds, written = self.ensure()
        self.assertEqual(len(written), 5)
        for path in (creds.serving_key, creds.admin_key, creds.token_file):
            self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
        self.assertGreaterEqual(len(creds.token()), 40)
        _, again = self.ensure()
        self.assertEqual(again, [])

    def test_admin_identity_and_sans(self):
        """The admin certificate is CN admin / O system:masters; the serving certificate
        names 127.0.0.1, localhost and the listen address."""
        creds, _ = self.ensure(address="10.1.2.3")
        admin = pki.load_cert(creds.admin_cert)
        self.assertIn("CN=admin", admin.subject.rfc4514_string())
        self.assertIn("O=system:masters", admin.subject.rfc4514_string())
        from cryptography import x509
        san = pki.load_cert(creds.serving_cert).extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value
        ips = {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
        self.assertTrue({"127.0.0.1", "10.1.2.3"} <= ips)
        self.assertIn("localhost", san.get_values_for_type(x509.DNSName))

    def test_reissued_for_new_ca_or_expiry(self):
        """Certificates from another CA, or close to expiry, are issued again."""
        self.ensure()
        self.make_ca()
        _, written = self.ensure()
        self.assertEqual(len(written), 4)
        later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=340)
        _, written = self.ensure(now=later)
        self.assertEqual(len(written), 4)

    def test_kubeconfig(self):
        """The kubeconfig carries the server, the CA and the admin key pair inline."""
        creds, _ = self.ensure()
        path = auth.write_kubeconfig(os.path.join(self.dir, "kubeconfig"),
                                     "https://127.0.0.1:6443", creds)
        with open(path) as f:
            config = yaml.safe_load(f)
        cluster = config["clusters"][0]["cluster"]
        self.assertEqual(cluster["server"], "https://127.0.0.1:6443")
        self.assertEqual(base64.b64decode(cluster["certificate-authority-data"]),
                         creds.read(self.ca))
        user = config["users"][0]["user"]
        self.assertEqual(base64.b64decode(user["client-key-data"]), creds.read(creds.admin_key))
        self.assertEqual(config["current-context"], config["contexts"][0]["name"])


class AuthenticatorTests(SynchronousTestCase):
    """Bearer tokens and verified client certificates."""

    def request(self, authorization=None, cert=None):
        request = DummyRequest([b""])
        if authorization is not None:
            request.requestHeaders.setRawHeaders(b"authorization", [authorization])
        request.channel = FakeChannel(FakeTLSTransport(cert))
        return request

    def test_token(self):
        """The admin token authenticates; a wrong one or none does not."""
        authenticator = auth.Authenticator("tok")
        user = authenticator.authenticate(self.request(b"Bearer tok"))
        self.assertEqual((user.name, user.groups, user.method),
                         ("admin", ("system:masters",), "token"))
        self.assertIsNone(authenticator.authenticate(self.request(b"Bearer nope")))
        self.assertIsNone(authenticator.authenticate(self.request(b"Basic dG9r")))
        self.assertIsNone(authenticator.authenticate(self.request()))

    def test_client_certificate(self):
        """A certificate the TLS layer verified gives its CN and O values."""
        ca_key, ca_cert = pki.create_ca()
        _, cert = auth.issue_admin_cert(ca_key, ca_cert, user="edge-ops",
                                        groups=("ops", "viewers"))
        x509 = crypto.load_certificate(crypto.FILETYPE_PEM, pki.cert_pem(cert))
        user = auth.Authenticator("tok").authenticate(self.request(cert=x509))
        self.assertEqual((user.name, user.groups, user.method),
                         ("edge-ops", ("ops", "viewers"), "x509"))
