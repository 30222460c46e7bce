"""The cloud's HTTPS bootstrap server (``modules.cloudHub.https``, port 10002), as
cloudcore's (reference 2.3):

* ``GET /ca.crt`` — the CA certificate, DER. Served to anyone: the edge checks it against
  the hash in its token before trusting it.
* ``GET /edge.crt`` (POST also accepted) — body: a CSR (DER, or PEM). Authorised either by
  ``Authorization: Bearer <token>`` (a join token, or its JWT part as KubeEdge edges
  send) or, for certificate rotation, by a valid client certificate of the same node.
  The node is the ``NodeName`` header if given, else the CSR's CN. Answer: the signed
  client certificate, DER, CN = node name, clientAuth usage.

Errors are plain-text reasons: 401 for missing/expired/malformed/wrongly signed tokens,
403 when the node differs from the one the token or certificate is for, 400 for a
malformed CSR or a node name that is not a DNS-1123 name, 413 for an oversized body.
"""


from cryptography import x509
from cryptography.hazmat.primitives import serialization
from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger
from twisted.web import resource, server

from kubeedge_tw.certs.token import TokenError, ca_hash, split_token, verify_token
from kubeedge_tw.common import pki
from kubeedge_tw.common.resource import valid_node_name

__all__ = ["BootstrapResource", "BootstrapService", "valid_node_name", "MAX_CSR_BYTES"]

MAX_CSR_BYTES = 64 * 1024


class _Refused(Exception):
    def __init__(self, code, reason):
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _header(request, name):
    """A request header as text (latin-1, as HTTP/1.1 allows), or None."""
    value = request.getHeader(name)
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    return value


def _peer_certificate(request):
    transport = getattr(request.channel, "transport", None)
    getter = getattr(transport, "getPeerCertificate", None)
    if getter is None:
        return None
    cert = getter()
    return cert.to_cryptography() if cert is not None else None


class BootstrapResource(resource.Resource):
    """The ``/ca.crt`` and ``/edge.crt`` endpoints."""

    isLeaf = True
    log = Logger()

    def __init__(self, ca_cert, ca_key, clock, cert_days=365,
                 peer_certificate=_peer_certificate):
        super().__init__()
        self.ca_cert = ca_cert
        self.ca_key = ca_key
        self.clock = clock
        self.cert_days = cert_days
        self._peer_certificate = peer_certificate
        self._ca_der = ca_cert.public_bytes(serialization.Encoding.DER)
        self._ca_hash = ca_hash(ca_cert)

    def render_GET(self, request):
        path = request.path.rstrip(b"/")
        if path == b"/ca.crt":
            request.setHeader(b"content-type", b"application/octet-stream")
            return self._ca_der
        if path == b"/edge.crt":
            return self._edge_cert(request)
        request.setResponseCode(404)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"not found: use /ca.crt or /edge.crt\n"

    def render_POST(self, request):
        if request.path.rstrip(b"/") == b"/edge.crt":
            return self._edge_cert(request)
        request.setResponseCode(404)
        return b"not found\n"

    def _edge_cert(self, request):
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        try:
            der = self._sign(request)
        except _Refused as e:
            self.log.warn("bootstrap refused {peer}: {code} {reason}",
                          peer=request.getClientAddress(), code=e.code, reason=e.reason,
                          log_event="bootstrap_refused")
            request.setResponseCode(e.code)
            return (e.reason + "\n").encode("utf-8")
        request.setHeader(b"content-type", b"application/octet-stream")
        return der

    def _sign(self, request):
        body = request.content.read(MAX_CSR_BYTES + 1) if request.content else b""
        if len(body) > MAX_CSR_BYTES:
            raise _Refused(413, "CSR larger than {} bytes".format(MAX_CSR_BYTES))
        bound_node, how = self._authorise(request)
        csr = self._parse_csr(body)
        csr_names = [a.value for a in csr.subject.get_attributes_for_oid(
            x509.oid.NameOID.COMMON_NAME)]
        header = _header(request, b"nodename")
        node = header.strip() if header else (csr_names[0] if csr_names else "")
        if not valid_node_name(node):
            raise _Refused(400, "node name {!r} is not a valid node name (DNS-1123: lowercase "
                                "letters, digits, '-', '.')".format(node[:100]))
        if csr_names and csr_names[0] != node:
            raise _Refused(403, "CSR names {!r} but NodeName is {!r}".format(csr_names[0], node))
        if bound_node is not None and bound_node != node:
            raise _Refused(403, "{} is for node {!r}, not {!r}".format(how, bound_node, node))
        cert = pki.sign_csr(self.ca_key, self.ca_cert, csr, node, days=self.cert_days)
        self.log.info("bootstrap issued a certificate for node {node} ({how})", node=node,
                      how=how, log_event="bootstrap_issued")
        return cert.public_bytes(serialization.Encoding.DER)

    def _authorise(self, request):
        """``(node the credential is bound to or None, what authorised)``."""
        auth = _header(request, b"authorization")
        if auth:
            scheme, _, value = auth.partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                raise _Refused(401, "Authorization must be 'Bearer <token>'")
            value = value.strip()
            if value.count(".") == 3:
                try:
                    digest, value = split_token(value)
                except TokenError as e:
                    raise _Refused(401, "invalid token: {}".format(e)) from None
                if digest != self._ca_hash:
                    raise _Refused(401, "invalid token: it was issued for another CA")
            try:
                claims = verify_token(value, self.ca_key, self.clock.seconds())
            except TokenError as e:
                raise _Refused(401, "invalid token: {}".format(e)) from None
            return claims.get("node"), "the token"
        cert = self._peer_certificate(request)
        if cert is not None:
            names = pki.node_names_of(cert)
            nodes = sorted(n for n in names if valid_node_name(n))
            if not nodes:
                raise _Refused(403, "client certificate names no node")
            return nodes[0], "the client certificate"
        raise _Refused(401, "no credentials: send 'Authorization: Bearer <token>' or a "
                            "client certificate (renewal)")

    @staticmethod
    def _parse_csr(body):
        if not body:
            raise _Refused(400, "empty body: send a certificate signing request")
        try:
            if body.lstrip().startswith(b"-----BEGIN"):
                csr = x509.load_pem_x509_csr(body)
            else:
                csr = x509.load_der_x509_csr(body)
        except ValueError as e:
            raise _Refused(400, "malformed CSR: {}".format(e)) from None
        if not csr.is_signature_valid:
            raise _Refused(400, "CSR signature does not verify")
        return csr


class BootstrapService(service.Service):
    """Serves :class:`BootstrapResource` over TLS (client certificates optional and
    verified against the CA when presented)."""

    log = Logger()
    name = "cloudhub-https"

    def __init__(self, listen, resource_):
        self._listen = listen
        self.site = server.Site(resource_)
        self.site.displayTracebacks = False
        self.port = None

    def startService(self):
        super().startService()
        d = self._listen(self.site)

        def listening(port):
            self.port = port
            host = port.getHost()
            self.log.info("cloudhub bootstrap server on https://{host}:{port}",
                          host=host.host, port=host.port, log_event="bootstrap_listening")
            return port

        def failed(failure):
            self.log.critical("cloudhub bootstrap server cannot listen: {error}",
                              error=failure.getErrorMessage(),
                              log_event="bootstrap_listen_failed")
            return failure

        return d.addCallbacks(listening, failed)

    def stopService(self):
        super().stopService()
        if self.port is None:
            return defer.succeed(None)
        port, self.port = self.port, None
        return defer.maybeDeferred(port.stopListening)
