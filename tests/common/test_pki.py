"""Tests for certificate contents, checked with cryptography."""

import datetime
import os
import stat

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from twisted.trial.unittest import SynchronousTestCase

from kubeedge_tw.common import pki


class CertificateContentTests(SynchronousTestCase):
    """CA, server and client certificates carry the right SANs, usages and validity."""

    def setUp(self):
        self.ca_key, self.ca_cert = pki.create_ca()

    def test_ca(self):
        """The CA is an EC P-256 CA valid ten years."""
        basic = self.ca_cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        self.assertTrue(basic.ca)
        self.assertIsInstance(self.ca_key.curve, ec.SECP256R1)
        days = (self.ca_cert.not_valid_after_utc - self.ca_cert.not_valid_before_utc).days
        self.assertEqual(days, 3650)

    def test_server_sans(self):
        """The server certificate has the IP and DNS SANs asked for and serverAuth."""
        _, cert = pki.issue_server_cert(self.ca_key, self.ca_cert, ips=("127.0.0.1", "::1"),
                                        dns_names=("localhost", "cloud.example"))
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        self.assertEqual([str(ip) for ip in san.get_values_for_type(x509.IPAddress)],
                         ["127.0.0.1", "::1"])
        self.assertEqual(san.get_values_for_type(x509.DNSName), ["localhost", "cloud.example"])
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        self.assertEqual(list(eku), [ExtendedKeyUsageOID.SERVER_AUTH])
        cert.verify_directly_issued_by(self.ca_cert)

    def test_client_names_node(self):
        """A client certificate names the node in CN and SAN, clientAuth only."""
        _, cert = pki.issue_client_cert(self.ca_key, self.ca_cert, "edge-1", days=10)
        self.assertEqual(pki.node_names_of(cert), {"edge-1"})
        self.assertEqual(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value,
                         "edge-1")
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        self.assertEqual(list(eku), [ExtendedKeyUsageOID.CLIENT_AUTH])
        self.assertEqual((cert.not_valid_after_utc - cert.not_valid_before_utc).days, 10)
        _, legacy = pki.issue_client_cert(self.ca_key, self.ca_cert, "edge-1",
                                          with_node_name=False)
        self.assertEqual(pki.node_names_of(legacy), {"kubeedge.io"})

    def test_backdated(self):
        """A certificate made for a past time is expired now."""
        past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=10)
        _, cert = pki.issue_client_cert(self.ca_key, self.ca_cert, "e", days=1, now=past)
        self.assertLess(cert.not_valid_after_utc, datetime.datetime.now(datetime.timezone.utc))

    def test_sign_csr_ignores_csr_subject(self):
        """sign_csr names the node given, not whatever the CSR claims."""
        csr = pki.make_csr(pki.new_key(), "something-else")
        cert = pki.sign_csr(self.ca_key, self.ca_cert, csr, "edge-7")
        self.assertEqual(pki.node_names_of(cert), {"edge-7"})

    def test_ensure_cloud_pki_idempotent(self):
        """ensure_cloud_pki creates once, never overwrites, and writes keys 0600."""
        d = self.mktemp()
        paths = [os.path.join(d, p) for p in ("ca/rootCA.crt", "ca/rootCA.key",
                                              "certs/server.crt", "certs/server.key")]
        written = pki.ensure_cloud_pki(*paths)
        self.assertEqual(sorted(written), sorted(paths))
        before = [open(p, "rb").read() for p in paths]
        self.assertEqual(pki.ensure_cloud_pki(*paths), [])
        self.assertEqual([open(p, "rb").read() for p in paths], before)
        for key in (paths[1], paths[3]):
            self.assertEqual(stat.S_IMODE(os.stat(key).st_mode), 0o600)
        os.remove(paths[2])
        self.assertEqual(pki.ensure_cloud_pki(*paths), [paths[3], paths[2]])
        self.assertEqual(open(paths[0], "rb").read(), before[0])

    def test_ensure_refuses_orphan_key(self):
        """A CA key without its certificate is not replaced."""
        d = self.mktemp()
        paths = [os.path.join(d, p) for p in ("ca.crt", "ca.key", "s.crt", "s.key")]
        pki.write_pem(paths[1], b"key", private=True)
        self.assertRaises(ValueError, pki.ensure_cloud_pki, *paths)
