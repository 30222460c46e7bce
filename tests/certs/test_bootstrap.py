"""Tests for the bootstrap resource (/ca.crt, /edge.crt) with in-memory requests."""

import io

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.test.requesthelper import DummyRequest

from kubeedge_tw.certs.bootstrap import MAX_CSR_BYTES, BootstrapResource
from kubeedge_tw.certs.token import make_token, split_token
from kubeedge_tw.common import pki


def request(path, body=b"", headers=None, method=b"GET"):
    req = DummyRequest([])
    req.method = method
    req.path = path
    req.uri = path
    req.content = io.BytesIO(body)
    for name, value in (headers or {}).items():
        req.requestHeaders.addRawHeader(name, value)
    return req


class BootstrapTests(SynchronousTestCase):
    """The bootstrap endpoints sign CSRs for token or certificate holders only."""

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(10000)
        self.ca_key, self.ca_cert = pki.create_ca()
        self.peer = None
        self.resource = BootstrapResource(self.ca_cert, self.ca_key, self.clock, cert_days=30,
                                          peer_certificate=lambda request: self.peer)

    def csr(self, node="edge-1", key=None):
        return pki.make_csr(key or pki.new_key(), node).public_bytes(
            serialization.Encoding.DER)

    def token(self, node=None, ttl=3600, full=False):
        token = make_token(self.ca_cert, self.ca_key, self.clock.seconds(), ttl, node=node)
        return token if full else split_token(token)[1]

    def render(self, req):
        body = self.resource.render(req)
        return req.responseCode or 200, body

    def test_ca(self):
        """GET /ca.crt returns the CA as DER."""
        code, body = self.render(request(b"/ca.crt"))
        self.assertEqual(code, 200)
        self.assertEqual(x509.load_der_x509_certificate(body), self.ca_cert)

    def test_sign_with_token(self):
        """A valid token gets a client certificate with CN = node, clientAuth usage,
        signed by the CA, with the configured validity."""
        key = pki.new_key()
        code, body = self.render(request(b"/edge.crt", self.csr("edge-1", key),
                                         {b"Authorization": b"Bearer " + self.token().encode()}))
        self.assertEqual(code, 200, body)
        cert = x509.load_der_x509_certificate(body)
        self.assertEqual(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value,
                         "edge-1")
        self.assertEqual(cert.public_key().public_numbers(), key.public_key().public_numbers())
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        self.assertEqual(list(eku), [ExtendedKeyUsageOID.CLIENT_AUTH])
        cert.verify_directly_issued_by(self.ca_cert)
        days = (cert.not_valid_after_utc - cert.not_valid_before_utc).days
        self.assertEqual(days, 30)

    def test_full_token_and_nodename_header(self):
        """The full <hash>.<jwt> token works, and NodeName decides the CN."""
        code, body = self.render(request(b"/edge.crt", self.csr("edge-2"), {
            b"Authorization": b"Bearer " + self.token(full=True).encode(),
            b"NodeName": b"edge-2"}))
        self.assertEqual(code, 200, body)

    def test_refusals(self):
        """Missing, malformed, expired and foreign tokens get 401 with a reason."""
        other_key, other_cert = pki.create_ca()
        foreign = split_token(make_token(other_cert, other_key, self.clock.seconds(), 60))[1]
        cases = [
            ({}, 401, "no credentials"),
            ({b"Authorization": b"Basic abc"}, 401, "Bearer"),
            ({b"Authorization": b"Bearer garbage"}, 401, "malformed"),
            ({b"Authorization": b"Bearer " + foreign.encode()}, 401, "signature"),
            ({b"Authorization": b"Bearer " + self.token(ttl=-1 + 1).encode()}, 401, "expired"),
        ]
        for headers, code, reason in cases:
            got, body = self.render(request(b"/edge.crt", self.csr(), headers))
            self.assertEqual(got, code, (headers, body))
            self.assertIn(reason, body.decode())

    def test_hash_for_other_ca(self):
        """A full token whose hash names another CA is refused."""
        other_key, other_cert = pki.create_ca()
        token = make_token(other_cert, self.ca_key, self.clock.seconds(), 60)
        code, body = self.render(request(b"/edge.crt", self.csr(),
                                         {b"Authorization": b"Bearer " + token.encode()}))
        self.assertEqual(code, 401)
        self.assertIn(b"another CA", body)

    def test_node_bound_token(self):
        """A token bound to edge-1 cannot get a certificate for edge-2 (403)."""
        code, body = self.render(request(b"/edge.crt", self.csr("edge-2"), {
            b"Authorization": b"Bearer " + self.token(node="edge-1").encode()}))
        self.assertEqual(code, 403)
        self.assertIn(b"edge-1", body)

    def test_bad_csr_and_names(self):
        """Malformed CSRs are 400; invalid node names are never signed (400)."""
        auth = {b"Authorization": b"Bearer " + self.token().encode()}
        self.assertEqual(self.render(request(b"/edge.crt", b"junk", auth))[0], 400)
        self.assertEqual(self.render(request(b"/edge.crt", b"", auth))[0], 400)
        code, body = self.render(request(b"/edge.crt", self.csr("Bad_Name"), auth))
        self.assertEqual(code, 400)
        self.assertIn(b"not a valid node name", body)
        code, _ = self.render(request(b"/edge.crt", self.csr("edge-1"),
                                      dict(auth, NodeName=b"edge-9")))
        self.assertEqual(code, 403)
        code, _ = self.render(request(b"/edge.crt", b"x" * (MAX_CSR_BYTES + 1), auth))
        self.assertEqual(code, 413)

    def test_pem_csr(self):
        """A PEM CSR is accepted too."""
        pem = pki.make_csr(pki.new_key(), "edge-1").public_bytes(serialization.Encoding.PEM)
        code, _ = self.render(request(b"/edge.crt", pem,
                                      {b"Authorization": b"Bearer " + self.token().encode()}))
        self.assertEqual(code, 200)

    def test_renewal_by_client_certificate(self):
        """A client certificate of edge-1 renews edge-1, and only edge-1."""
        _, current = pki.issue_client_cert(self.ca_key, self.ca_cert, "edge-1")
        self.peer = current
        self.assertEqual(self.render(request(b"/edge.crt", self.csr("edge-1")))[0], 200)
        code, _ = self.render(request(b"/edge.crt", self.csr("edge-2")))
        self.assertEqual(code, 403)

    def test_unknown_path(self):
        """Other paths are 404."""
        self.assertEqual(self.render(request(b"/nope"))[0], 404)
