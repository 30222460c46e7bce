"""Edge certificate rotation (KubeEdge v1.4+ ``rotateCertificates``).

A service on the edge checks its client certificate at start and then every
``check_interval`` seconds (on the injected clock). When less than 20 % of its validity
remains it asks the cloud's bootstrap server for a new one, authenticating with the
current certificate, and replaces key and certificate on disk. EdgeHub reads its TLS files
at every connection attempt, so the next (re)connection uses the new certificate; the
live connection is not dropped, so pods are not disturbed.

Files are replaced so that a crash never leaves a key that does not match its
certificate: both are written as ``*.new`` first, then renamed certificate-last; a
leftover pair of ``*.new`` files is completed at the next start.
"""

import os

from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger

from kubeedge_tw.common import pki

__all__ = ["CertRotator", "remaining_fraction", "RENEW_BELOW"]

#: Renew when less than this fraction of the validity period remains.
RENEW_BELOW = 0.2
CHECK_INTERVAL = 3600


def remaining_fraction(cert, now):
    """Fraction of ``cert``'s validity left at ``now`` (unix seconds), clamped to [0, 1]."""
    start = cert.not_valid_before_utc.timestamp()
    end = cert.not_valid_after_utc.timestamp()
    if end <= start:
        return 0.0
    return max(0.0, min(1.0, (end - now) / (end - start)))


class CertRotator(service.Service):
    """Renews the edge certificate before it expires; see the module docstring."""

    log = Logger()
    name = "certrotation"

    def __init__(self, clock, renew, node, https_url, ca_file, cert_file, key_file,
                 check_interval=CHECK_INTERVAL, renew_below=RENEW_BELOW):
        """``renew(https_url, node, ca_file, cert_file, key_file)`` returns a Deferred
        firing with ``(key, cert)`` (see :func:`kubeedge_tw.certs.join.renew`)."""
        self.clock = clock
        self._renew = renew
        self.node = node
        self.https_url = https_url
        self.ca_file = ca_file
        self.cert_file = cert_file
        self.key_file = key_file
        self.check_interval = check_interval
        self.renew_below = renew_below
        self._call = None
        self._running_check = None
        self.rotations = 0

    def startService(self):
        super().startService()
        self._finish_interrupted_swap()
        self._schedule(0)

    def stopService(self):
        super().stopService()
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        if self._running_check is not None:
            return self._running_check
        return defer.succeed(None)

    def _schedule(self, delay):
        if self.running:
            self._call = self.clock.callLater(delay, self._tick)

    def _tick(self):
        self._call = None
        d = self.check()
        self._running_check = d

        def done(_):
            self._running_check = None
            self._schedule(self.check_interval)
        d.addBoth(done)

    def check(self):
        """Renew now if the certificate needs it; a Deferred firing with True when it
        was renewed. Problems are logged, never raised (the next check tries again)."""
        try:
            cert = pki.load_cert(self.cert_file)
        except (OSError, ValueError) as e:
            self.log.warn("certificate rotation: cannot read {path}: {error}",
                          path=self.cert_file, error=e, log_event="cert_rotation_unreadable")
            return defer.succeed(False)
        left = remaining_fraction(cert, self.clock.seconds())
        if left >= self.renew_below:
            return defer.succeed(False)
        self.log.info("edge certificate has {percent:.0f}% of its validity left: renewing "
                      "through {url}", percent=left * 100, url=self.https_url,
                      log_event="cert_rotation_start")
        d = defer.maybeDeferred(self._renew, self.https_url, self.node, self.ca_file,
                                self.cert_file, self.key_file)
        d.addCallback(self._install)
        d.addErrback(self._failed)
        return d

    def _install(self, key_and_cert):
        key, cert = key_and_cert
        pki.write_pem(self.key_file + ".new", pki.key_pem(key), private=True)
        pki.write_pem(self.cert_file + ".new", pki.cert_pem(cert))
        os.replace(self.key_file + ".new", self.key_file)
        os.replace(self.cert_file + ".new", self.cert_file)
        self.rotations += 1
        self.log.info("edge certificate renewed, valid until {until}; used from the next "
                      "connection", until=cert.not_valid_after_utc.isoformat(),
                      log_event="cert_rotation_done")
        return True

    def _failed(self, failure):
        self.log.warn("certificate rotation failed (will retry): {error}",
                      error=failure.getErrorMessage(), log_event="cert_rotation_failed")
        return False

    def _finish_interrupted_swap(self):
        key_new, cert_new = self.key_file + ".new", self.cert_file + ".new"
        if os.path.exists(cert_new) and not os.path.exists(key_new):
            # The key was already moved into place: the certificate must follow.
            os.replace(cert_new, self.cert_file)
        elif os.path.exists(cert_new) and os.path.exists(key_new):
            os.remove(key_new)  # neither was moved: the old pair is still consistent
            os.remove(cert_new)
