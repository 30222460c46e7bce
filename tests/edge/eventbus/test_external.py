"""Tests for the paho-mqtt client driven by the reactor, against the internal broker on a
loopback port (real reactor, real sockets, paho's real protocol engine): connect,
subscribe, publish, the queue while disconnected, reconnect with resubscribe after the
broker restarts, a broker that never answers, and a clean stop. Everything waits on
Deferreds fired by the parts themselves; nothing sleeps."""

from twisted.internet import defer, protocol, reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.trial.unittest import TestCase

from kubeedge_tw.edge.eventbus.broker import MQTTBroker
from kubeedge_tw.edge.eventbus.external import ExternalMQTTClient
from tests.edge.fakes import capture_logs, named
from tests.integration.parts import free_port


def with_timeout(d, seconds, what):
    """``d``, failed with a clear message after ``seconds`` on the reactor."""
    return d.addTimeout(seconds, reactor, onTimeoutCancel=lambda *_: (_ for _ in ()).throw(
        AssertionError("timed out waiting for " + what)))


class Inbox:
    """Collects ``(topic, payload)`` and fires waiters when a topic arrives."""

    def __init__(self):
        self.items = []
        self._waiters = []

    def __call__(self, topic, payload):
        self.items.append((topic, bytes(payload)))
        for waiter in list(self._waiters):
            wanted, d = waiter
            if wanted == topic:
                self._waiters.remove(waiter)
                d.callback(bytes(payload))

    def wait(self, topic):
        """A Deferred firing with the payload of the first message on ``topic``."""
        for got, payload in self.items:
            if got == topic:
                return defer.succeed(payload)
        d = defer.Deferred()
        self._waiters.append((topic, d))
        return with_timeout(d, 10, "a message on " + topic)


class ExternalClientTests(TestCase):
    """ExternalMQTTClient against a real broker over loopback TCP."""

    timeout = 30

    def setUp(self):
        self.port = free_port()
        self.broker = self.start_broker()
        self.client = ExternalMQTTClient(reactor, host="127.0.0.1", port=self.port,
                                         client_id="edge-test", backoff=lambda n: 0.05,
                                         keepalive=5)
        self.received = Inbox()
        self.client.on_message = self.received
        self.addCleanup(self.stop_client)

    def start_broker(self):
        """Start a broker on self.port; it records what clients publish."""
        broker = MQTTBroker(reactor, port=self.port)
        broker.on_message = Inbox()
        broker.subscribe("#")
        broker.subscribe("$hw/#")
        broker.startService()
        return broker

    def stop_client(self):
        """Stop the client, then the broker."""
        d = defer.maybeDeferred(self.client.stopService) if self.client.running else \
            defer.succeed(None)
        d.addCallback(lambda _: self.broker.stopService() if self.broker.running else None)
        return d

    @defer.inlineCallbacks
    def test_subscribe_receive_and_publish(self):
        """Subscriptions and early publishes go out after CONNACK; messages flow both ways."""
        self.client.subscribe("$hw/events/device/+/twin/update/result", 1)
        self.client.publish("$hw/events/upload/early", b"queued", 1)
        self.client.startService()
        yield with_timeout(self.client.wait_connected(), 10, "CONNACK")
        early = yield self.broker.on_message.wait("$hw/events/upload/early")
        self.assertEqual(early, b"queued")
        yield with_timeout(self.client.wait_subscribed(), 10, "SUBACK")
        self.broker.publish("$hw/events/device/d1/twin/update/result", b'{"ok":1}', qos=1)
        payload = yield self.received.wait("$hw/events/device/d1/twin/update/result")
        self.assertEqual(payload, b'{"ok":1}')
        self.client.publish("$hw/events/device/d1/twin/update", b"{}", 0)
        self.assertEqual((yield self.broker.on_message.wait(
            "$hw/events/device/d1/twin/update")), b"{}")
        self.assertEqual(self.client.stats["connects"], 1)

    def watch_retries(self):
        """A Deferred firing at the client's first retry (its backoff is asked for a
        delay); later retries wait 0.05 s."""
        retried = defer.Deferred()

        def backoff(attempt):
            if attempt == 1:
                # Not from inside the client's own retry bookkeeping.
                reactor.callLater(0, retried.callback, attempt)
            return 0.05
        self.client.backoff = backoff
        return with_timeout(retried, 10, "a retry")

    @defer.inlineCallbacks
    def test_reconnect_and_resubscribe(self):
        """After the broker restarts the client reconnects and subscribes again."""
        events = capture_logs(self)
        self.client.subscribe("app/#", 1)
        self.client.startService()
        yield with_timeout(self.client.wait_connected(), 10, "first CONNACK")
        gone = self.client.wait_disconnected()
        yield self.broker.stopService()
        yield with_timeout(gone, 10, "the disconnect")
        self.broker = self.start_broker()
        yield with_timeout(self.client.wait_connected(), 10, "the reconnect")
        yield with_timeout(self.client.wait_subscribed(), 10, "SUBACK after reconnect")
        self.assertIn("app/#", self.broker.sessions["edge-test"].subscriptions)
        self.broker.publish("app/x", b"again", qos=1)
        self.assertEqual((yield self.received.wait("app/x")), b"again")
        self.assertEqual(self.client.stats["connects"], 2)
        self.assertEqual(len(named(events, "mqtt_external_lost")), 1)

    @defer.inlineCallbacks
    def test_broker_down_at_start(self):
        """With nothing listening the client retries with backoff until a broker is up."""
        events = capture_logs(self)
        yield self.broker.stopService()
        retried = self.watch_retries()
        self.client.startService()
        self.assertEqual((yield retried), 1)
        self.assertEqual(len(named(events, "mqtt_external_retry")), 1)
        self.broker = self.start_broker()
        yield with_timeout(self.client.wait_connected(), 10, "CONNACK after retries")

    @defer.inlineCallbacks
    def test_queue_bound_while_disconnected(self):
        """Publishes while disconnected keep the newest queue_size, logged."""
        events = capture_logs(self)
        self.client.queue_size = 2
        for i in range(4):
            self.client.publish("q/{}".format(i), b"x")
        self.assertEqual(self.client.stats["dropped"], 2)
        self.assertEqual(len(named(events, "mqtt_external_queue_full")), 2)
        self.client.startService()
        yield with_timeout(self.client.wait_connected(), 10, "CONNACK")
        yield self.broker.on_message.wait("q/3")
        self.assertEqual([t for t, _ in self.broker.on_message.items], ["q/2", "q/3"])

    @defer.inlineCallbacks
    def test_silent_broker(self):
        """A server that accepts TCP but never sends CONNACK is given up on and retried."""
        events = capture_logs(self)
        yield self.broker.stopService()

        class Silent(protocol.Protocol):
            pass
        factory = protocol.Factory.forProtocol(Silent)
        listening = yield TCP4ServerEndpoint(reactor, self.port,
                                             interface="127.0.0.1").listen(factory)
        self.client.connack_timeout = 0.2
        retried = self.watch_retries()
        self.client.startService()
        yield retried
        self.assertEqual(len(named(events, "mqtt_external_connack_timeout")), 1)
        yield listening.stopListening()
        self.broker = self.start_broker()
        yield with_timeout(self.client.wait_connected(), 10, "CONNACK after the silent one")

    @defer.inlineCallbacks
    def test_stop_while_connecting(self):
        """Stopping during the first attempt ends cleanly with nothing left behind."""
        self.client.startService()
        yield self.client.stopService()
        self.assertFalse(self.client.connected)
        self.assertEqual([c for c in reactor.getDelayedCalls()
                          if "ExternalMQTTClient" in repr(c)], [])
