"""The EventBus test doubles behave like the real parts they stand for: FakeLink and the
real MQTT links provide IMQTTLink and agree on validation and delivery."""

from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from kubeedge_tw.edge.eventbus import packets as p
from kubeedge_tw.edge.eventbus.broker import MQTTBroker
from kubeedge_tw.edge.eventbus.interfaces import IMQTTLink
from kubeedge_tw.edge.eventbus.external import ExternalMQTTClient
from tests.edge.eventbus.fakes import BrokerClient, FakeLink


class LinkContractTests(SynchronousTestCase):
    """FakeLink, MQTTBroker and ExternalMQTTClient honour the same contract."""

    def links(self):
        """One of each link, none started."""
        reactor = MemoryReactorClock()
        return [FakeLink(), MQTTBroker(reactor, port=0),
                ExternalMQTTClient(reactor, host="127.0.0.1", port=1, client_id="t")]

    def test_provides_interface(self):
        """Each provides IMQTTLink."""
        for link in self.links():
            verifyObject(IMQTTLink, link)

    def test_same_validation(self):
        """Each refuses a wildcard topic name and an invalid filter with ValueError."""
        for link in self.links():
            self.assertRaises(ValueError, link.publish, "a/+", b"x")
            self.assertRaises(ValueError, link.publish, "", b"x")
            self.assertRaises(ValueError, link.subscribe, "a/#/b")
            link.subscribe("a/+", 1)
            link.publish("a/b", b"x", 0, False)

    def test_delivery_matches_the_broker(self):
        """FakeLink.deliver calls on_message exactly when the real broker would."""
        cases = [("$hw/events/device/+/twin/+", "$hw/events/device/d/twin/update"),
                 ("#", "$hw/events/device/d/twin/update"),
                 ("a/#", "a"), ("a/+", "a/b/c"), ("+/x", "/x")]
        for topic_filter, topic in cases:
            fake, fake_got = FakeLink(), []
            fake.on_message = lambda t, _: fake_got.append(t)
            fake.subscribe(topic_filter)
            fake.deliver(topic, b"x")
            broker, real_got = MQTTBroker(MemoryReactorClock(), port=0), []
            broker.on_message = lambda t, _: real_got.append(t)
            broker.subscribe(topic_filter)
            client = BrokerClient(broker)
            client.connect()
            client.send(p.Publish(topic, b"x"))
            self.assertEqual(fake_got, real_got, (topic_filter, topic))
