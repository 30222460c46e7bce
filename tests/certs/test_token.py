"""Tests for join tokens: format, verification and every refusal reason."""

from twisted.trial.unittest import SynchronousTestCase

from kubeedge_tw.certs.token import (
    TokenError, ca_hash, make_token, parse_duration, split_token, verify_token)
from kubeedge_tw.common import pki


class TokenTests(SynchronousTestCase):
    """Tokens are <sha256 of CA DER>.<HS256 JWT signed with the CA key>."""

    def setUp(self):
        self.ca_key, self.ca_cert = pki.create_ca()

    def test_round_trip(self):
        """A fresh token verifies and carries its expiry and node claim."""
        token = make_token(self.ca_cert, self.ca_key, 1000, 3600, node="edge-1")
        digest, jwt = split_token(token)
        self.assertEqual(digest, ca_hash(self.ca_cert))
        claims = verify_token(jwt, self.ca_key, 1001)
        self.assertEqual((claims["exp"], claims["node"]), (4600, "edge-1"))

    def test_expired(self):
        """A token past its expiry is refused as expired."""
        _, jwt = split_token(make_token(self.ca_cert, self.ca_key, 1000, 60))
        e = self.assertRaises(TokenError, verify_token, jwt, self.ca_key, 1060)
        self.assertIn("expired", str(e))

    def test_other_ca(self):
        """A token signed by another CA's key is refused for its signature."""
        other_key, other_cert = pki.create_ca()
        _, jwt = split_token(make_token(other_cert, other_key, 1000, 60))
        e = self.assertRaises(TokenError, verify_token, jwt, self.ca_key, 1001)
        self.assertIn("signature", str(e))

    def test_tampered_claims(self):
        """Changing the claims (e.g. extending exp) breaks the signature."""
        import base64
        import json
        _, jwt = split_token(make_token(self.ca_cert, self.ca_key, 1000, 60))
        head, _, sig = jwt.split(".")
        claims = base64.urlsafe_b64encode(json.dumps({"exp": 99999999}).encode()).decode()
        e = self.assertRaises(TokenError, verify_token, "{}.{}.{}".format(
            head, claims.rstrip("="), sig), self.ca_key, 1001)
        self.assertIn("signature", str(e))

    def test_malformed(self):
        """Malformed tokens get specific reasons."""
        for bad, reason in (("abc", "three"), ("a.b.c", "base64url"), ("e30.e30.", "HS256")):
            e = self.assertRaises(TokenError, verify_token, bad, self.ca_key, 0)
            self.assertIn(reason, str(e))
        for bad in ("x.y", "nothex.a.b.c", 42):
            self.assertRaises(TokenError, split_token, bad)

    def test_durations(self):
        """Durations accept s/m/h/d suffixes; a bare number means hours."""
        self.assertEqual([parse_duration(x) for x in ("90s", "30m", "24h", "2d", "1")],
                         [90, 1800, 86400, 172800, 3600])
        for bad in ("0h", "x", "-1h", "1w"):
            self.assertRaises(ValueError, parse_duration, bad)
