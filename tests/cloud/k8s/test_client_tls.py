"""Integration: the client over real TLS to a twisted.web HTTPS server on 127.0.0.1.

The server is the fake API server behind a real TLS port with a fresh PKI per test
(``write_test_pki``); it authenticates a request by client certificate (CN ``admin``,
issued by our CA) or bearer token, and refuses everything else with 401. Each test writes
a kubeconfig file and builds the client the production way (``load_kubeconfig`` or the
cloud config's ``kubeAPIConfig.kubeConfig`` -> ``make_kube_client``), so certificate
loading, the HTTPS policy, hostname verification and the connection pool are all real.
"""

import base64
import os

import yaml
from twisted.internet import defer, endpoints, reactor, ssl
from twisted.logger import capturedLogs
from twisted.protocols import policies
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.trial.unittest import TestCase
from twisted.web.server import Site

from kubeedge_tw.cloud.k8s.errors import K8sConnectionError, NotFound, Unauthorized
from kubeedge_tw.cloud.k8s.informer import Informer
from kubeedge_tw.cloud.k8s.kubeconfig import (
    client_from_config, load_kubeconfig, make_kube_client)
from kubeedge_tw.common import tls
from kubeedge_tw.common.config import CLOUD, default_config
from tests.cloud.k8s.fake_apiserver import FakeKubeAPI

TOKEN = "s3cret-token"


class _Tracked(policies.ProtocolWrapper):
    """Tells its factory when the connection is gone."""

    def connectionLost(self, reason):
        super().connectionLost(reason)
        self.factory.lost(self)


class TrackingFactory(policies.WrappingFactory):
    """Remembers the server's connections (TLS ones included, even those whose handshake
    failed), so a test can close them and wait until they are gone."""

    protocol = _Tracked

    def __init__(self, wrapped):
        super().__init__(wrapped)
        self.waiters = {}

    def registerProtocol(self, protocol):
        super().registerProtocol(protocol)
        self.waiters[protocol] = defer.Deferred()

    def lost(self, protocol):
        d = self.waiters.pop(protocol, None)
        if d is not None:
            d.callback(None)

    def close_all(self):
        """Abort every open connection; fires when all are closed."""
        waiting = list(self.waiters.values())
        for protocol in list(self.protocols):
            protocol.transport.abortConnection()
        return defer.gatherResults(waiting)


def authenticate(request):
    """Bearer token, or a client certificate whose CN is ``admin``."""
    if request.getHeader(b"authorization") == ("Bearer " + TOKEN).encode():
        request.authenticated_by = "token"
        return True
    transport = request.channel.transport
    cert = transport.getPeerCertificate() if hasattr(transport, "getPeerCertificate") else None
    if cert is not None and cert.get_subject().commonName == "admin":
        request.authenticated_by = "certificate"
        return True
    return False


class ClientTLSTests(TestCase):
    """KubeClient and Informer against a real HTTPS API server on loopback."""

    timeout = 30

    @defer.inlineCallbacks
    def setUp(self):
        self.dir = os.path.abspath(self.mktemp())
        self.pki = tls.write_test_pki(self.dir, node_names=("admin", "stranger"))
        server = ssl.PrivateCertificate.loadPEM(
            self.read(self.pki["server_cert"]) + self.read(self.pki["server_key"]))
        ca = ssl.Certificate.loadPEM(self.read(self.pki["ca"]))
        options = ssl.CertificateOptions(
            privateKey=server.privateKey.original, certificate=server.original,
            verify=True, caCerts=[ca.original], requireCertificate=False,
            raiseMinimumTo=ssl.TLSVersion.TLSv1_2)
        self.api = FakeKubeAPI(reactor, authenticate=authenticate)
        self.connections = TrackingFactory(TLSMemoryBIOFactory(options, False, Site(self.api)))
        endpoint = endpoints.TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1")
        self.port = yield endpoint.listen(self.connections)
        self.url = "https://127.0.0.1:{}".format(self.port.getHost().port)
        self.clients = []
        self.addCleanup(self.shut_down)

    @defer.inlineCallbacks
    def shut_down(self):
        for client in self.clients:
            yield client.close()
        yield self.port.stopListening()
        yield self.connections.close_all()

    @staticmethod
    def read(path):
        with open(path, "rb") as f:
            return f.read()

    def kubeconfig(self, cluster, user, name="kubeconfig"):
        """Write a kubeconfig for ``self.url``; returns its path."""
        cluster = dict(cluster, server=cluster.get("server", self.url))
        doc = {"apiVersion": "v1", "kind": "Config", "current-context": "test",
               "clusters": [{"name": "test", "cluster": cluster}],
               "users": [{"name": "u", "user": user}],
               "contexts": [{"name": "test", "context": {"cluster": "test", "user": "u"}}]}
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            yaml.safe_dump(doc, f)
        return path

    def client(self, path, **kwargs):
        client = make_kube_client(reactor, load_kubeconfig(path), **kwargs)
        self.clients.append(client)
        return client

    def with_ca(self, **cluster):
        return dict(cluster, **{"certificate-authority": self.pki["ca"]})

    @defer.inlineCallbacks
    def test_client_certificate_auth(self):
        """A kubeconfig with CA and client certificate files: CRUD works, by certificate."""
        client = self.client(self.kubeconfig(self.with_ca(), {
            "client-certificate": self.pki["admin_cert"],
            "client-key": self.pki["admin_key"]}))
        created = yield client.create("configmaps", {
            "metadata": {"name": "tls", "namespace": "default"}, "data": {"k": "v"}})
        got = yield client.get("configmaps", "tls", "default")
        self.assertEqual(got["metadata"]["uid"], created["metadata"]["uid"])
        yield client.delete("configmaps", "tls", "default")
        yield self.assertFailure(client.get("configmaps", "tls", "default"), NotFound)
        self.assertEqual(self.api.request_headers[0].getRawHeaders("authorization"), None)

    @defer.inlineCallbacks
    def test_client_certificate_data_via_cloud_config(self):
        """Embedded *-data fields, reached through kubeAPIConfig.kubeConfig."""
        self.kubeconfig(
            {"certificate-authority-data": base64.b64encode(self.read(self.pki["ca"])).decode()},
            {"client-certificate-data": base64.b64encode(
                self.read(self.pki["admin_cert"])).decode(),
             "client-key-data": base64.b64encode(self.read(self.pki["admin_key"])).decode()},
            name="kc-data")
        config = default_config(CLOUD, overrides={
            "stateDir": self.dir, "kubeAPIConfig.kubeConfig": "kc-data",
            "kubeAPIConfig.qps": 50, "kubeAPIConfig.burst": 50})
        client = client_from_config(reactor, config)
        self.clients.append(client)
        result = yield client.list("nodes")
        self.assertEqual(result["kind"], "NodeList")

    @defer.inlineCallbacks
    def test_other_client_certificate_is_refused(self):
        """A valid certificate for another identity, and no credentials at all: 401."""
        stranger = self.client(self.kubeconfig(self.with_ca(), {
            "client-certificate": self.pki["stranger_cert"],
            "client-key": self.pki["stranger_key"]}, name="kc-stranger"))
        yield self.assertFailure(stranger.list("pods"), Unauthorized)
        anonymous = self.client(self.kubeconfig(self.with_ca(), {}, name="kc-anon"))
        yield self.assertFailure(anonymous.list("pods"), Unauthorized)

    @defer.inlineCallbacks
    def test_bearer_token_auth(self):
        """A token without a client certificate authenticates; a wrong one is 401."""
        client = self.client(self.kubeconfig(self.with_ca(), {"token": TOKEN}))
        yield client.create("nodes", {"metadata": {"name": "edge-1"}})
        node = yield client.get("nodes", "edge-1")
        self.assertEqual(node["kind"], "Node")
        self.assertEqual(self.api.request_headers[0].getRawHeaders("authorization"),
                         ["Bearer " + TOKEN])
        wrong = self.client(self.kubeconfig(self.with_ca(), {"token": "nope"}, name="kc-wrong"))
        yield self.assertFailure(wrong.get("nodes", "edge-1"), Unauthorized)

    @defer.inlineCallbacks
    def test_insecure_skip_tls_verify(self):
        """insecure-skip-tls-verify: no CA, the server is not verified, a warning is logged."""
        path = self.kubeconfig({"insecure-skip-tls-verify": True}, {"token": TOKEN})
        with capturedLogs() as events:
            client = self.client(path)
        self.assertTrue([e for e in events if e.get("log_event") == "k8s_tls_insecure"])
        result = yield client.list("pods")
        self.assertEqual(result["kind"], "PodList")

    @defer.inlineCallbacks
    def test_ca_mismatch_fails(self):
        """A server certificate from another CA: the handshake fails, K8sConnectionError."""
        other = tls.write_test_pki(os.path.join(self.dir, "other"))
        client = self.client(self.kubeconfig({"certificate-authority": other["ca"]},
                                             {"token": TOKEN}))
        error = yield self.assertFailure(client.list("pods"), K8sConnectionError)
        self.assertIn("certificate", str(error).lower())
        self.assertEqual(self.api.requests, [])

    @defer.inlineCallbacks
    def test_tls_server_name(self):
        """tls-server-name replaces the host for verification: a name in the certificate
        works, another does not."""
        good = self.client(self.kubeconfig(self.with_ca(**{"tls-server-name": "localhost"}),
                                           {"token": TOKEN}))
        yield good.list("pods")
        bad = self.client(self.kubeconfig(self.with_ca(**{"tls-server-name": "wrong.example"}),
                                          {"token": TOKEN}, name="kc-bad"))
        yield self.assertFailure(bad.list("pods"), K8sConnectionError)

    @defer.inlineCallbacks
    def test_informer_over_tls(self):
        """An informer syncs and follows a watch stream over TLS, then stops cleanly."""
        client = self.client(self.kubeconfig(self.with_ca(), {
            "client-certificate": self.pki["admin_cert"],
            "client-key": self.pki["admin_key"]}))
        yield client.create("pods", {"metadata": {"name": "before", "namespace": "default"},
                                     "spec": {"containers": []}})
        added = []
        arrived = defer.Deferred()

        def on_add(obj):
            added.append(obj["metadata"]["name"])
            if obj["metadata"]["name"] == "after" and not arrived.called:
                arrived.callback(None)

        informer = Informer(client, "pods", reactor, on_add=on_add)
        informer.start()
        self.addCleanup(informer.stop)
        yield informer.wait_synced()
        yield client.create("pods", {"metadata": {"name": "after", "namespace": "default"},
                                     "spec": {"containers": []}})
        yield arrived.addTimeout(10, reactor)
        self.assertEqual(added, ["before", "after"])
        informer.stop()
