"""Integration: the cloud and edge service trees, built from real config files exactly as
twistd builds them, talking over real mutual-TLS websockets on 127.0.0.1.

Covers the join flow (certs init -> gettoken -> join -> edge connects), the exchange both
ways with ACKs, keepalive expiry, a cloud restart with the edge reconnecting and resending
kept status, refused joins (tampered CA hash, expired token) and certificate rotation
taking effect on the next reconnect.
"""

import datetime
import io
import os
import time

from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase

from kubeedge_tw.certs import cli as certs_cli
from kubeedge_tw.certs.join import JoinError, join
from kubeedge_tw.certs.token import make_token
from kubeedge_tw.cloud.tap import create_cloud_service
from kubeedge_tw.common import message as m
from kubeedge_tw.common import names, pki
from kubeedge_tw.common.config import CLOUD, EDGE, load_config
from kubeedge_tw.common.module import Module
from kubeedge_tw.edge.tap import create_edge_service
from tests.integration.parts import LoopbackCloud


class Recorder(Module):
    """Records messages and lets a test wait for one."""

    def __init__(self, clock, name, group):
        super().__init__(clock, name=name, group=group)
        self.seen = []
        self._waiters = []

    def handle(self, message):
        self.seen.append(message)
        for predicate, d in list(self._waiters):
            if predicate(message):
                self._waiters.remove((predicate, d))
                d.callback(message)

    def wait_for(self, predicate, seconds=15):
        for message in self.seen:
            if predicate(message):
                return defer.succeed(message)
        d = defer.Deferred()
        self._waiters.append((predicate, d))
        return d.addTimeout(seconds, reactor)


def poll(condition, seconds=15, interval=0.05):
    """Fire when ``condition()`` is true (checked every ``interval`` s), or fail."""
    deadline = time.monotonic() + seconds

    @defer.inlineCallbacks
    def loop():
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError("condition not met within {}s".format(seconds))
            d = defer.Deferred()
            reactor.callLater(interval, d.callback, None)
            yield d
    return loop()


class CloudEdgeTests(TestCase):
    """Real cloud and edge trees on loopback."""

    timeout = 90

    def setUp(self):
        self.base = os.path.abspath(self.mktemp())
        off = {"enable": False}
        self.loopback = LoopbackCloud(self.base, modules={
            "apiServer": off, "edgeController": off, "syncController": off,
            "deviceController": off, "cloudHub": {"keepaliveInterval": 30}})
        self.cloud_dir = self.loopback.state_dir
        self.ws_port, self.https_port = self.loopback.ws, self.loopback.https
        self.cloud_config_path = self.loopback.path
        self.cloud = None
        self.edge = None
        self.addCleanup(self.stop_all)

    @defer.inlineCallbacks
    def stop_all(self):
        if self.edge is not None and self.edge.running:
            yield self.edge.stopService()
        if self.cloud is not None and self.cloud.running:
            yield self.cloud.stopService()

    @defer.inlineCallbacks
    def start_cloud(self, **overrides):
        config = load_config(self.cloud_config_path, CLOUD, overrides=overrides or None)
        self.cloud = create_cloud_service(config, reactor)
        self.sink = Recorder(reactor, names.EDGECONTROLLER, names.EDGECONTROLLER_GROUP)
        self.cloud.add_module(self.sink)
        self.cloud.startService()
        hub = self.cloud.bus.module(names.CLOUDHUB)
        yield poll(lambda: hub.listening_port is not None)
        defer.returnValue(hub)

    def token(self, ttl=3600, node=None):
        return self.loopback.token("--ttl", "{}s".format(ttl),
                                   *(["--node", node] if node else []))

    def join_options(self, token, node="edge-1", state="edge"):
        return self.loopback.join_options(token, node, state)

    @defer.inlineCallbacks
    def start_edge(self, config_path, **overrides):
        # The link is what these tests are about: Docker, MQTT and twins stay off.
        config = load_config(config_path, EDGE, overrides=dict(
            {"modules.edgeHub.heartbeat": 15, "modules.edged.enable": False,
             "modules.eventBus.enable": False, "modules.deviceTwin.enable": False},
            **overrides))
        self.edge = create_edge_service(config, reactor)
        # The real MetaManager persists and ACKs; this stand-in for edged sees what it
        # forwards.
        self.meta = Recorder(reactor, names.EDGED, names.EDGED_GROUP)
        self.edge.add_module(self.meta)
        self.edge.startService()
        hub = self.edge.bus.module(names.EDGEHUB)
        yield hub.wait_connected().addTimeout(20, reactor)
        defer.returnValue(hub)

    @defer.inlineCallbacks
    def joined_pair(self, **edge_overrides):
        cloud_hub = yield self.start_cloud()
        config_path = yield defer.Deferred.fromCoroutine(
            join(reactor, self.join_options(self.token()), io.StringIO()))
        edge_hub = yield self.start_edge(config_path, **edge_overrides)
        yield poll(lambda: cloud_hub.is_connected("edge-1"))
        defer.returnValue((cloud_hub, edge_hub, config_path))

    @defer.inlineCallbacks
    def test_join_and_exchange(self):
        """certs init -> gettoken -> join -> the edge connects over mutual TLS; node status
        flows up with the node prefix, a pod update flows down and its ACK is recorded."""
        out = io.StringIO()
        self.assertEqual(certs_cli.certs_main(["init", "--config", self.cloud_config_path],
                                              out=out), 0)
        self.assertIn("created", out.getvalue())
        cloud_hub, edge_hub, _ = yield self.joined_pair()
        self.assertIn("edge-1", cloud_hub.connected_nodes())
        connected = yield self.sink.wait_for(lambda x: x.operation == names.OP_CONNECTED)
        self.assertEqual(connected.resource, "node/edge-1")
        self.edge.bus.send(names.EDGEHUB, m.new_message(
            names.EDGED, names.META_GROUP, names.OP_UPDATE, "default/nodestatus/edge-1",
            {"UID": "u1", "Status": {"phase": "Running"}}))
        status = yield self.sink.wait_for(
            lambda x: x.resource == "node/edge-1/default/nodestatus/edge-1")
        self.assertEqual(status.content["Status"]["phase"], "Running")
        self.cloud.bus.send(names.CLOUDHUB, m.new_message(
            names.EDGECONTROLLER, "resource", names.OP_UPDATE, "node/edge-1/default/pod/web",
            {"metadata": {"name": "web"}}, resource_version="42"))
        pod = yield self.meta.wait_for(lambda x: x.resource == "default/pod/web")
        self.assertEqual(pod.resource_version, "42")
        # MetaManager stored it before forwarding, and ACKed it to the cloud.
        yield poll(lambda: cloud_hub.acked_versions("edge-1") == {"pod/default/web": "42"})
        metamanager = self.edge.bus.module(names.METAMANAGER)
        stored = yield metamanager.store.get("default/pod/web")
        self.assertIn('"web"', stored)

    @defer.inlineCallbacks
    def test_keepalive_timeout(self):
        """An edge whose keepalives stop (heartbeat longer than the cloud's keepalive
        interval) is disconnected by the cloud and controllers are told."""
        yield self.start_cloud(**{"modules.cloudHub.keepaliveInterval": 1})
        config_path = yield defer.Deferred.fromCoroutine(
            join(reactor, self.join_options(self.token()), io.StringIO()))
        yield self.start_edge(config_path, **{"modules.edgeHub.heartbeat": 60})
        gone = yield self.sink.wait_for(lambda x: x.operation == names.OP_DISCONNECTED)
        self.assertEqual(gone.resource, "node/edge-1")

    @defer.inlineCallbacks
    def test_cloud_restart_reconnect_and_resend(self):
        """After the cloud restarts the edge reconnects within 10 s and sends the pod
        status kept while the cloud was away."""
        cloud_hub, edge_hub, _ = yield self.joined_pair()
        yield self.cloud.stopService()
        yield edge_hub.wait_disconnected().addTimeout(10, reactor)
        self.edge.bus.send(names.EDGEHUB, m.new_message(
            names.EDGED, names.META_GROUP, names.OP_UPDATE, "default/podstatus/web",
            {"UID": "p1", "Name": "web", "Status": {"phase": "Running"}}))
        self.edge.bus.send(names.EDGEHUB, m.new_message(
            names.EDGED, names.META_GROUP, names.OP_UPDATE, "default/podstatus/web",
            {"UID": "p1", "Name": "web", "Status": {"phase": "Succeeded"}}))
        yield _sleep(3)  # the cloud stays away for 3 s
        started = time.monotonic()
        cloud_hub = yield self.start_cloud()
        yield poll(lambda: cloud_hub.is_connected("edge-1"), seconds=10)
        self.reconnect_seconds = time.monotonic() - started
        self.assertLess(self.reconnect_seconds, 10)
        status = yield self.sink.wait_for(
            lambda x: x.resource == "node/edge-1/default/podstatus/web")
        self.assertEqual(status.content["Status"]["phase"], "Succeeded",
                         "newest status per resource is what is resent")

    @defer.inlineCallbacks
    def test_tampered_hash_refused(self):
        """join refuses a CA whose sha256 differs from the token's (MITM protection)."""
        yield self.start_cloud()
        token = self.token()
        tampered = "0" * 64 + token[64:]
        e = yield self.assertFailure(defer.Deferred.fromCoroutine(
            join(reactor, self.join_options(tampered), io.StringIO())), JoinError)
        self.assertIn("does not match", str(e))
        self.assertFalse(os.path.exists(os.path.join(self.base, "edge", "certs", "edge.key")))

    @defer.inlineCallbacks
    def test_expired_token_refused(self):
        """join with an expired token is refused by the cloud with 401."""
        yield self.start_cloud()
        ca_key = pki.load_key(os.path.join(self.cloud_dir, "ca", "rootCA.key"))
        ca_cert = pki.load_cert(os.path.join(self.cloud_dir, "ca", "rootCA.crt"))
        expired = make_token(ca_cert, ca_key, time.time() - 7200, 3600)
        e = yield self.assertFailure(defer.Deferred.fromCoroutine(
            join(reactor, self.join_options(expired), io.StringIO())), JoinError)
        self.assertIn("401", str(e))
        self.assertIn("expired", str(e))

    @defer.inlineCallbacks
    def test_rotation_used_on_next_reconnect(self):
        """An edge certificate with under 20 % validity left is renewed through the
        bootstrap server with the current certificate, and the next connection presents
        the new one."""
        cloud_hub = yield self.start_cloud()
        config_path = yield defer.Deferred.fromCoroutine(
            join(reactor, self.join_options(self.token()), io.StringIO()))
        state = os.path.join(self.base, "edge")
        cert_path = os.path.join(state, "certs", "edge.crt")
        # Replace the joined certificate by one with 10 % of its validity left.
        ca_key = pki.load_key(os.path.join(self.cloud_dir, "ca", "rootCA.key"))
        ca_cert = pki.load_cert(os.path.join(self.cloud_dir, "ca", "rootCA.crt"))
        start = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=9)
        key, old = pki.issue_client_cert(ca_key, ca_cert, "edge-1", days=10, now=start)
        pki.write_pem(os.path.join(state, "certs", "edge.key"), pki.key_pem(key), True)
        pki.write_pem(cert_path, pki.cert_pem(old))
        seen_serials = []
        real_names = cloud_hub._cert_names

        def recording(transport):
            seen_serials.append(transport.getPeerCertificate().get_serial_number())
            return real_names(transport)
        cloud_hub._cert_names = recording
        edge_hub = yield self.start_edge(config_path)
        yield poll(lambda: pki.load_cert(cert_path).serial_number != old.serial_number)
        new = pki.load_cert(cert_path)
        self.assertGreater(new.not_valid_after_utc, old.not_valid_after_utc)
        self.assertEqual(seen_serials, [old.serial_number])
        self.assertTrue(cloud_hub.is_connected("edge-1"), "rotation does not drop the link")
        # Next reconnect: the cloud restarts; the edge comes back with the new cert.
        yield self.cloud.stopService()
        yield edge_hub.wait_disconnected().addTimeout(10, reactor)
        cloud_hub = yield self.start_cloud()
        cloud_hub._cert_names = recording
        yield poll(lambda: cloud_hub.is_connected("edge-1"), seconds=15)
        self.assertEqual(seen_serials[-1], new.serial_number)


def _sleep(seconds):
    d = defer.Deferred()
    reactor.callLater(seconds, d.callback, None)
    return d
