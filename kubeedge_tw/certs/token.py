"""Join tokens, in the shape ``keadm gettoken`` prints (reference 2.3):
``<sha256 hex of the CA certificate (DER)>.<JWT>``.

The JWT is HS256 with an ``exp`` claim, signed with the CA private key's bytes as the HMAC
secret, as cloudcore does; so only the holder of the CA key can mint tokens and rotating
the CA invalidates them. An optional ``node`` claim binds a token to one node name.
The edge uses the first part to check the CA it downloads (man-in-the-middle
protection); the cloud checks the second part.
"""

import base64
import hashlib
import hmac
import json
import re

from cryptography.hazmat.primitives import serialization

__all__ = ["TokenError", "ca_hash", "make_token", "verify_token", "split_token",
           "parse_duration"]


class TokenError(Exception):
    """A token that is malformed, expired, wrongly signed or for another node."""


def _b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text):
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError):
        raise TokenError("token is not valid base64url") from None


def ca_hash(ca_cert):
    """sha256 hex of the CA certificate's DER encoding."""
    return hashlib.sha256(ca_cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def _secret(ca_key):
    return ca_key.private_bytes(serialization.Encoding.DER,
                                serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())


def make_token(ca_cert, ca_key, now, ttl_seconds, node=None):
    """A join token valid ``ttl_seconds`` from ``now`` (unix seconds)."""
    header = {"alg": "HS256", "typ": "JWT"}
    claims = {"iat": int(now), "exp": int(now + ttl_seconds)}
    if node:
        claims["node"] = node
    signing_input = "{}.{}".format(
        _b64url(json.dumps(header, separators=(",", ":")).encode()),
        _b64url(json.dumps(claims, separators=(",", ":")).encode()))
    signature = hmac.new(_secret(ca_key), signing_input.encode("ascii"),
                         hashlib.sha256).digest()
    return "{}.{}.{}".format(ca_hash(ca_cert), signing_input, _b64url(signature))


def split_token(token):
    """``(ca_hash, jwt)`` of a join token, or TokenError saying what is wrong."""
    if not isinstance(token, str):
        raise TokenError("token must be text")
    token = token.strip()
    parts = token.split(".")
    if len(parts) != 4:
        raise TokenError("token must be <ca-sha256>.<jwt> (a hash and a three-part JWT)")
    if not re.fullmatch(r"[0-9a-f]{64}", parts[0]):
        raise TokenError("token's first part must be the 64-hex-digit sha256 of the CA")
    return parts[0], ".".join(parts[1:])


def verify_token(jwt, ca_key, now):
    """The claims of ``jwt`` (the part after the CA hash) if it is valid at ``now``."""
    parts = jwt.split(".") if isinstance(jwt, str) else []
    if len(parts) != 3:
        raise TokenError("malformed token: a JWT has three dot-separated parts")
    try:
        header = json.loads(_unb64url(parts[0]))
        claims = json.loads(_unb64url(parts[1]))
    except ValueError:
        raise TokenError("malformed token: header or claims are not JSON") from None
    if not isinstance(header, dict) or header.get("alg") != "HS256":
        raise TokenError("unsupported token algorithm (HS256 expected)")
    expected = hmac.new(_secret(ca_key), "{}.{}".format(parts[0], parts[1]).encode("ascii"),
                        hashlib.sha256).digest()
    if not hmac.compare_digest(expected, _unb64url(parts[2])):
        raise TokenError("token signature is not valid for this cloud's CA")
    if not isinstance(claims, dict) or not isinstance(claims.get("exp"), int):
        raise TokenError("token has no expiry")
    if claims["exp"] <= now:
        raise TokenError("token expired")
    return claims


def parse_duration(text):
    """Seconds in ``24h``, ``30m``, ``90s``, ``2d`` or a bare number of hours."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", str(text))
    if not match:
        raise ValueError("{!r} is not a duration like 24h, 30m, 90s or 2d".format(text))
    value, unit = float(match.group(1)), match.group(2) or "h"
    seconds = value * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
    if seconds <= 0:
        raise ValueError("duration must be positive")
    return int(seconds)
