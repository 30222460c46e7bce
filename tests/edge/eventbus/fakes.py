"""Test doubles for EventBus: a client end for the internal broker on a
``StringTransport``, and :class:`FakeLink`, an in-memory :class:`IMQTTLink` that records
what EventBus asks of a broker (checked against the real broker in ``test_fakes``)."""

from twisted.application import service
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from zope.interface import implementer

from kubeedge_tw.edge.eventbus import packets as p
from kubeedge_tw.edge.eventbus.interfaces import IMQTTLink
from kubeedge_tw.edge.eventbus.topics import topic_filter_error, topic_matches, topic_name_error


class BrokerClient:
    """One client connection to an :class:`MQTTBroker`, driven by hand: :meth:`send`
    writes packets to the broker, :meth:`received` decodes what it wrote back."""

    _port = 40000

    def __init__(self, broker):
        BrokerClient._port += 1
        self.broker = broker
        self.transport = StringTransport(
            peerAddress=IPv4Address("TCP", "127.0.0.1", BrokerClient._port))
        self.protocol = broker.factory.buildProtocol(None)
        self.protocol.makeConnection(self.transport)
        self._reader = p.PacketReader()
        self._unread = []

    def send(self, *packets):
        """Deliver ``packets`` to the broker (as one chunk)."""
        self.send_raw(b"".join(packet.encode() for packet in packets))

    def send_raw(self, data):
        """Deliver raw bytes to the broker."""
        self.protocol.dataReceived(data)

    def received(self):
        """Packets the broker wrote since the last call."""
        self._reader.feed(self.transport.value())
        self.transport.clear()
        out, self._unread = self._unread, []
        packet = self._reader.next_packet()
        while packet is not None:
            out.append(packet)
            packet = self._reader.next_packet()
        return out

    def connect(self, client_id="c1", clean=True, keepalive=0, **kw):
        """CONNECT and return the CONNACK (what followed it stays for :meth:`received`)."""
        self.send(p.Connect(client_id, clean_session=clean, keepalive=keepalive, **kw))
        packets = self.received()
        assert isinstance(packets[0], p.ConnAck), packets
        self._unread = packets[1:]
        return packets[0]

    def subscribe(self, *filters, qos=1, packet_id=1):
        """SUBSCRIBE ``filters`` and return what came back (SUBACK first)."""
        self.send(p.Subscribe(packet_id, tuple((f, qos) for f in filters)))
        return self.received()

    @property
    def closed(self):
        """Whether the broker closed (or aborted) this connection."""
        return self.transport.disconnecting or getattr(self.transport, "disconnected", False)

    def lose(self):
        """The TCP connection ends (as when the client goes away)."""
        from twisted.internet.error import ConnectionDone
        from twisted.python.failure import Failure
        self.protocol.connectionLost(Failure(ConnectionDone()))


@implementer(IMQTTLink)
class FakeLink(service.Service):
    """An in-memory MQTT link: records subscriptions and publications, and
    :meth:`deliver` plays a message from a broker to ``on_message`` when a subscribed
    filter matches it. Validates like the real links (``ValueError``)."""

    def __init__(self):
        self.on_message = None
        self.subscriptions = {}
        self.published = []
        self.started = self.stopped = 0

    def subscribe(self, topic_filter, qos=1):
        """Record the subscription."""
        error = topic_filter_error(topic_filter)
        if error is not None:
            raise ValueError(error)
        self.subscriptions[topic_filter] = qos

    def publish(self, topic, payload, qos=0, retain=False):
        """Record the publication as ``(topic, payload, qos, retain)``."""
        error = topic_name_error(topic)
        if error is not None:
            raise ValueError(error)
        self.published.append((topic, bytes(payload), qos, retain))

    def deliver(self, topic, payload):
        """A message arrives from the broker; True when a subscription matched."""
        if any(topic_matches(f, topic) for f in self.subscriptions):
            self.on_message(topic, payload)
            return True
        return False

    def startService(self):
        """Count the start."""
        super().startService()
        self.started += 1

    def stopService(self):
        """Count the stop."""
        super().stopService()
        self.stopped += 1
