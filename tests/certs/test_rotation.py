"""Tests for edge certificate rotation on a Clock with a verified in-memory renewer."""

import datetime
import os

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from kubeedge_tw.certs.rotation import CertRotator, remaining_fraction
from kubeedge_tw.common import pki


class Renewer:
    """Issues a fresh certificate from a real CA, like the bootstrap server would."""

    def __init__(self, ca_key, ca_cert, fail=False):
        self.ca_key, self.ca_cert = ca_key, ca_cert
        self.calls = []
        self.fail = fail

    def __call__(self, https_url, node, ca_file, cert_file, key_file):
        self.calls.append((https_url, node))
        if self.fail:
            return defer.fail(RuntimeError("cloud unreachable"))
        return defer.succeed(pki.issue_client_cert(self.ca_key, self.ca_cert, node, days=100))


class RotationTests(SynchronousTestCase):
    """The rotator renews below 20 % remaining validity, atomically, on the clock."""

    def setUp(self):
        self.ca_key, self.ca_cert = pki.create_ca()
        self.dir = self.mktemp()
        self.cert_file = os.path.join(self.dir, "certs", "edge.crt")
        self.key_file = os.path.join(self.dir, "certs", "edge.key")
        self.now = datetime.datetime.now(datetime.timezone.utc)
        self.clock = Clock()
        self.clock.advance(self.now.timestamp())

    def write_cert(self, days, age_days):
        start = self.now - datetime.timedelta(days=age_days)
        key, cert = pki.issue_client_cert(self.ca_key, self.ca_cert, "edge-1", days=days,
                                          now=start)
        pki.write_pem(self.key_file, pki.key_pem(key), private=True)
        pki.write_pem(self.cert_file, pki.cert_pem(cert))
        return cert

    def rotator(self, renewer):
        return CertRotator(self.clock, renewer, "edge-1", "https://127.0.0.1:10002",
                           "ca.crt", self.cert_file, self.key_file, check_interval=3600)

    def test_remaining_fraction(self):
        """remaining_fraction is the share of validity left."""
        cert = self.write_cert(days=10, age_days=9)
        self.assertAlmostEqual(remaining_fraction(cert, self.clock.seconds()), 0.1, places=2)

    def test_renews_when_below_threshold(self):
        """With 10 % left the certificate is renewed at start and the files replaced by
        a matching pair."""
        old = self.write_cert(days=10, age_days=9)
        renewer = Renewer(self.ca_key, self.ca_cert)
        rotator = self.rotator(renewer)
        rotator.startService()
        self.clock.advance(0)
        self.assertEqual(renewer.calls, [("https://127.0.0.1:10002", "edge-1")])
        new = pki.load_cert(self.cert_file)
        self.assertNotEqual(new.serial_number, old.serial_number)
        self.assertEqual(new.public_key().public_numbers(),
                         pki.load_key(self.key_file).public_key().public_numbers())
        self.assertFalse(os.path.exists(self.cert_file + ".new"))
        self.successResultOf(rotator.stopService())
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_no_renewal_when_fresh(self):
        """With half the validity left nothing happens; the next check is an hour later."""
        self.write_cert(days=10, age_days=5)
        renewer = Renewer(self.ca_key, self.ca_cert)
        rotator = self.rotator(renewer)
        rotator.startService()
        self.clock.advance(0)
        self.assertEqual(renewer.calls, [])
        self.assertEqual([c.getTime() - self.clock.seconds()
                          for c in self.clock.getDelayedCalls()], [3600])
        rotator.stopService()

    def test_failure_retried(self):
        """A failed renewal is logged and tried again at the next check."""
        self.write_cert(days=10, age_days=9)
        renewer = Renewer(self.ca_key, self.ca_cert, fail=True)
        rotator = self.rotator(renewer)
        rotator.startService()
        self.clock.advance(0)
        self.assertEqual(len(renewer.calls), 1)
        renewer.fail = False
        self.clock.advance(3600)
        self.assertEqual(len(renewer.calls), 2)
        self.assertEqual(rotator.rotations, 1)
        rotator.stopService()

    def test_unreadable_certificate(self):
        """A missing certificate is logged, not raised."""
        rotator = self.rotator(Renewer(self.ca_key, self.ca_cert))
        self.assertFalse(self.successResultOf(rotator.check()))

    def test_interrupted_swap_completed(self):
        """A crash after the key was moved but before the certificate is completed at
        start, so key and certificate match again."""
        self.write_cert(days=10, age_days=1)
        key, cert = pki.issue_client_cert(self.ca_key, self.ca_cert, "edge-1")
        pki.write_pem(self.key_file, pki.key_pem(key), private=True)
        pki.write_pem(self.cert_file + ".new", pki.cert_pem(cert))
        rotator = self.rotator(Renewer(self.ca_key, self.ca_cert))
        rotator.startService()
        self.assertEqual(pki.load_cert(self.cert_file).serial_number, cert.serial_number)
        rotator.stopService()
