"""EventBus's internal MQTT broker (``mqttMode`` 0 or 1), embedded in the edge process.

KubeEdge embeds gomqtt's broker on ``mqttServerInternal`` (``tcp://127.0.0.1:1884``) so that
mappers need no separate mosquitto. **Why this is built on Twisted instead of taken from a
library:** no maintained MQTT broker runs on Twisted (the old Twisted MQTT packages are
client-only or abandoned), and the maintained Python brokers (amqtt, gmqtt/hbmqtt
descendants) are asyncio programs: using one would force the asyncio reactor onto the whole
edge -- edged, EdgeHub's websocket, MetaManager's pools -- for one module, and would put a
second scheduler beside the injected clock that every other module is tested with. The
subset KubeEdge needs is small and well specified, so it is written here as an ordinary
Twisted ``Protocol`` + ``Factory`` over the codec in :mod:`.packets`, deterministic under
``Clock`` and ``StringTransport``.

What it implements (MQTT 3.1.1, and 3.1 clients):

* CONNECT/CONNACK (protocol level check, client id rules, takeover of a connected id,
  clean and persistent sessions with "session present"), wills, DISCONNECT;
* SUBSCRIBE/SUBACK with ``+``/``#`` and the ``$``-topic rule, re-subscription replacing the
  old one and re-sending retained messages; UNSUBSCRIBE/UNSUBACK. Granted QoS is at most 1;
* PUBLISH QoS 0, 1 (PUBACK) and 2 accepted from clients (PUBREC/PUBREL/PUBCOMP, delivered
  once per packet id); QoS 0 and 1 to subscribers, with unacknowledged QoS 1 messages
  re-sent with DUP on reconnect of a persistent session, and QoS 1 messages queued for a
  persistent session while it is offline;
* retained messages, deleted by an empty retained payload;
* PINGREQ/PINGRESP, keepalive enforcement (1.5 x keepalive on the injected clock), and a
  deadline for the first CONNECT.

Bounds, so that one bad or slow client cannot hurt the edge: a packet longer than
``max_packet_size`` is refused from its length alone; each session queues at most
``session_queue_size`` messages (``mqttSessionQueueSize``) and has at most ``max_inflight``
unacknowledged QoS 1 messages; the protocol registers itself as its transport's producer,
so while the kernel send buffer is full messages wait in that bounded queue instead of in an
unbounded write buffer. A malformed packet or protocol violation closes that client with a
``mqtt_protocol_error`` log line; the broker goes on.

In-process subscribers (EventBus itself) use :meth:`MQTTBroker.subscribe` and
:attr:`MQTTBroker.on_message`; :meth:`MQTTBroker.publish` injects a message from the edge.
"""

import collections
import uuid

from twisted.application import service
from twisted.internet import defer, protocol
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from zope.interface import implementer

from kubeedge_tw.edge.eventbus import packets as p
from kubeedge_tw.edge.eventbus.interfaces import IMQTTLink
from kubeedge_tw.edge.eventbus.topics import topic_filter_error, topic_matches, topic_name_error

__all__ = ["MQTTBroker", "MQTTBrokerFactory", "MQTTBrokerProtocol", "Session", "Message",
           "DEFAULT_MAX_PACKET_SIZE"]

#: Largest packet accepted from a client (bytes of remaining length).
DEFAULT_MAX_PACKET_SIZE = 1024 * 1024
#: Unacknowledged QoS 1 messages per session before further ones wait in its queue
#: (mosquitto's ``max_inflight_messages`` default).
DEFAULT_MAX_INFLIGHT = 20
#: Seconds a new connection has to send CONNECT.
DEFAULT_CONNECT_TIMEOUT = 10.0
#: Retained messages kept at most; more are published but not retained (logged).
DEFAULT_MAX_RETAINED = 10000
#: Topic filters one session may hold.
DEFAULT_MAX_SUBSCRIPTIONS = 1000


class Message:
    """One application message inside the broker."""

    __slots__ = ("topic", "payload", "qos", "retain")

    def __init__(self, topic, payload, qos=0, retain=False):
        self.topic = topic
        self.payload = bytes(payload)
        self.qos = qos
        self.retain = retain

    def __repr__(self):
        return "Message({!r}, {} bytes, qos={}, retain={})".format(
            self.topic, len(self.payload), self.qos, self.retain)


class _ProtocolViolation(Exception):
    """A well-formed packet the client must not send now; the connection is closed."""


class Session:
    """What the broker keeps per client id: subscriptions, QoS 1 messages in flight, the
    bounded queue, and QoS 2 packet ids received but not released."""

    def __init__(self, broker, client_id, clean):
        self.broker = broker
        self.client_id = client_id
        self.clean = clean
        #: filter -> granted QoS
        self.subscriptions = {}
        #: packet id -> Message, QoS 1 sent and not yet acknowledged, in send order.
        self.inflight = collections.OrderedDict()
        self.queue = collections.deque()
        self.inbound_qos2 = set()
        self.protocol = None
        self._next_id = 1
        self.dropped = 0
        self._dropping = False

    def granted_qos(self, topic):
        """The highest QoS granted by a subscription matching ``topic``, or None."""
        best = None
        for topic_filter, qos in self.subscriptions.items():
            if (best is None or qos > best) and topic_matches(topic_filter, topic):
                best = qos
                if best == 1:
                    break
        return best

    def _packet_id(self):
        for _ in range(65535):
            candidate = self._next_id
            self._next_id = candidate % 65535 + 1
            if candidate not in self.inflight:
                return candidate
        raise RuntimeError("no free packet identifier")  # inflight is bounded far below

    def deliver(self, message):
        """Send ``message`` now, or queue it (bounded), or drop it (offline QoS 0)."""
        proto = self.protocol
        if proto is None:
            if message.qos == 0:
                return
            self._enqueue(message)
            return
        if self.queue or proto.paused:
            self._enqueue(message)
            return
        if message.qos == 1 and len(self.inflight) >= self.broker.max_inflight:
            self._enqueue(message)
            return
        self._send(message, proto)

    def _send(self, message, proto, dup=False):
        if message.qos == 0:
            proto.send_packet(p.Publish(message.topic, message.payload, 0, message.retain))
            return
        packet_id = self._packet_id()
        self.inflight[packet_id] = message
        proto.send_packet(p.Publish(message.topic, message.payload, 1, message.retain, dup,
                                    packet_id))

    def _enqueue(self, message):
        if len(self.queue) >= self.broker.session_queue_size:
            self.dropped += 1
            if not self._dropping:
                self._dropping = True
                self.broker.log.warn(
                    "MQTT session {client} queue is full ({size}); dropping messages",
                    client=self.client_id, size=self.broker.session_queue_size,
                    log_event="mqtt_session_queue_full")
            return
        self.queue.append(message)

    def flush(self):
        """Send queued messages while the client is connected, writable and has room."""
        proto = self.protocol
        while self.queue and proto is not None and not proto.paused:
            head = self.queue[0]
            if head.qos == 1 and len(self.inflight) >= self.broker.max_inflight:
                break
            self.queue.popleft()
            self._send(head, proto)
        if self._dropping and len(self.queue) < self.broker.session_queue_size:
            self._dropping = False
            self.broker.log.info("MQTT session {client} queue has room again; {count} "
                                 "messages were dropped", client=self.client_id,
                                 count=self.dropped, log_event="mqtt_session_queue_ok")

    def acknowledge(self, packet_id):
        """A PUBACK arrived: forget the message and send what waited for room."""
        if self.inflight.pop(packet_id, None) is None:
            self.broker.log.debug("MQTT client {client} acknowledged unknown packet {id}",
                                  client=self.client_id, id=packet_id)
        self.flush()

    def resume(self):
        """Redeliver unacknowledged QoS 1 messages (DUP set, same ids, original order),
        then the queue (MQTT 3.1.1 section 4.4)."""
        proto = self.protocol
        for packet_id, message in list(self.inflight.items()):
            proto.send_packet(p.Publish(message.topic, message.payload, 1, message.retain,
                                        True, packet_id))
        self.flush()


@implementer(IPushProducer)
class MQTTBrokerProtocol(protocol.Protocol):
    """One client connection."""

    def __init__(self, broker):
        self.broker = broker
        self.reader = p.PacketReader(broker.max_packet_size)
        self.session = None
        self.client_id = None
        self.keepalive = 0
        self.paused = False
        self.closing = False
        self.taken_over = False
        self._will = None
        self._last_packet = 0.0
        self._keepalive_call = None
        self._connect_call = None
        self.peer = "?"
        #: Fires when the connection has ended (the broker's stop waits for it).
        self.ended = defer.Deferred()

    # -- connection -----------------------------------------------------------------------

    def connectionMade(self):
        """Start the CONNECT deadline and become the transport's producer."""
        peer = self.transport.getPeer()
        self.peer = "{}:{}".format(getattr(peer, "host", "?"), getattr(peer, "port", "?"))
        self.transport.registerProducer(self, True)
        # MQTT is many small packets: without TCP_NODELAY a PUBLISH written just after
        # a PUBACK waits for the client's delayed ACK (~40 ms per exchange).
        no_delay = getattr(self.transport, "setTcpNoDelay", None)
        if no_delay is not None:
            no_delay(True)
        self._connect_call = self.broker.clock.callLater(
            self.broker.connect_timeout, self._connect_timed_out)
        self.broker.connections.add(self)

    def connectionLost(self, reason):
        """Publish the will unless the client said DISCONNECT; end a clean session."""
        self.closing = True
        self.broker.connections.discard(self)
        for call in (self._connect_call, self._keepalive_call):
            if call is not None and call.active():
                call.cancel()
        self._connect_call = self._keepalive_call = None
        session = self.session
        if session is not None and session.protocol is self:
            session.protocol = None
            if session.clean:
                self.broker.drop_session(session)
        if self._will is not None:
            will, self._will = self._will, None
            self.broker.route(will)
        if self.client_id is not None:
            self.broker.log.info("MQTT client {client} ({peer}) disconnected",
                                 client=self.client_id, peer=self.peer,
                                 log_event="mqtt_client_disconnected")
        self.ended.callback(None)

    def _connect_timed_out(self):
        self._connect_call = None
        self._close("no CONNECT within {}s".format(self.broker.connect_timeout))

    def _keepalive_check(self):
        self._keepalive_call = None
        limit = self.keepalive * 1.5
        idle = self.broker.clock.seconds() - self._last_packet
        if idle >= limit:
            self.broker.log.info("MQTT client {client} ({peer}) sent nothing for {idle:.1f}s "
                                 "(keepalive {keepalive}s); closing", client=self.client_id,
                                 peer=self.peer, idle=idle, keepalive=self.keepalive,
                                 log_event="mqtt_keepalive_expired")
            self._abort()
            return
        self._keepalive_call = self.broker.clock.callLater(limit - idle, self._keepalive_check)

    def _close(self, reason):
        """Close after a protocol problem, with a log line."""
        if self.closing:
            return
        self.broker.log.warn("MQTT client {client} ({peer}): {reason}; closing the connection",
                             client=self.client_id or "-", peer=self.peer, reason=reason,
                             log_event="mqtt_protocol_error")
        self.closing = True
        self.transport.loseConnection()

    def _abort(self):
        self.closing = True
        abort = getattr(self.transport, "abortConnection", None)
        (abort or self.transport.loseConnection)()

    # -- producer (flow control from the transport) ----------------------------------------

    def pauseProducing(self):
        """The transport's buffer is full: queue messages instead of writing them."""
        self.paused = True

    def resumeProducing(self):
        """The transport drained: send what was queued."""
        self.paused = False
        if self.session is not None and self.session.protocol is self:
            self.session.flush()

    def stopProducing(self):
        """The transport is going away; connectionLost follows."""
        self.paused = True

    # -- receiving ------------------------------------------------------------------------

    def dataReceived(self, data):
        """Decode whole packets and handle them; a bad one closes this connection."""
        if self.closing:
            return
        self.reader.feed(data)
        while not self.closing:
            try:
                packet = self.reader.next_packet()
            except p.MalformedPacket as e:
                self._close("malformed packet: {}".format(e.reason))
                return
            if packet is None:
                return
            self._last_packet = self.broker.clock.seconds()
            try:
                self._dispatch(packet)
            except _ProtocolViolation as e:
                self._close(str(e))
            except Exception:
                self.broker.log.failure("MQTT client {client} ({peer}): error handling a "
                                        "{kind} packet; closing", client=self.client_id or "-",
                                        peer=self.peer, kind=type(packet).__name__,
                                        log_event="mqtt_handler_failed")
                self._abort()

    def _dispatch(self, packet):
        kind = packet.type
        if self.session is None:
            if kind != p.CONNECT:
                raise _ProtocolViolation("first packet must be CONNECT, got {}".format(
                    type(packet).__name__))
            self._on_connect(packet)
            return
        handler = self._HANDLERS.get(kind)
        if handler is None:
            raise _ProtocolViolation("a client may not send {}".format(type(packet).__name__))
        handler(self, packet)

    def _on_connect(self, packet):
        if (packet.protocol_name, packet.protocol_level) not in p.PROTOCOLS:
            if packet.protocol_name in ("MQTT", "MQIsdp"):
                self.send_packet(p.ConnAck(False, p.CONNACK_BAD_PROTOCOL_VERSION))
            self._close("unsupported protocol {} level {}".format(packet.protocol_name,
                                                                  packet.protocol_level))
            return
        client_id = packet.client_id
        if not client_id:
            if not packet.clean_session:
                self.send_packet(p.ConnAck(False, p.CONNACK_IDENTIFIER_REJECTED))
                self._close("empty client id with clean session 0")
                return
            client_id = "auto-" + uuid.uuid4().hex
        if packet.will_topic is not None:
            error = topic_name_error(packet.will_topic)
            if error is not None:
                raise _ProtocolViolation("will topic: " + error)
            self._will = Message(packet.will_topic, packet.will_message or b"",
                                 min(packet.will_qos, 1), packet.will_retain)
        if self._connect_call is not None and self._connect_call.active():
            self._connect_call.cancel()
        self._connect_call = None
        self.client_id = client_id
        self.keepalive = packet.keepalive
        if self.keepalive:
            self._keepalive_call = self.broker.clock.callLater(self.keepalive * 1.5,
                                                               self._keepalive_check)
        session, present = self.broker.attach(client_id, packet.clean_session, self)
        self.session = session
        self.send_packet(p.ConnAck(present, p.CONNACK_ACCEPTED))
        self.broker.log.info("MQTT client {client} ({peer}) connected (clean session {clean}, "
                             "keepalive {keepalive}s)", client=client_id, peer=self.peer,
                             clean=packet.clean_session, keepalive=packet.keepalive,
                             log_event="mqtt_client_connected")
        if present:
            session.resume()

    def _on_publish(self, packet):
        error = topic_name_error(packet.topic)
        if error is not None:
            raise _ProtocolViolation("PUBLISH: " + error)
        message = Message(packet.topic, packet.payload, min(packet.qos, 1), packet.retain)
        if packet.qos == 2:
            if packet.packet_id not in self.session.inbound_qos2:
                self.session.inbound_qos2.add(packet.packet_id)
                self.broker.route(message, origin=self)
            self.send_packet(p.PubRec(packet.packet_id))
            return
        self.broker.route(message, origin=self)
        if packet.qos == 1:
            self.send_packet(p.PubAck(packet.packet_id))

    def _on_puback(self, packet):
        self.session.acknowledge(packet.packet_id)

    def _on_pubrel(self, packet):
        self.session.inbound_qos2.discard(packet.packet_id)
        self.send_packet(p.PubComp(packet.packet_id))

    def _on_ignored(self, packet):
        # PUBREC/PUBCOMP answer QoS 2 messages, which this broker never sends.
        self.broker.log.debug("MQTT client {client} sent {kind} for packet {id}; ignored",
                              client=self.client_id, kind=type(packet).__name__,
                              id=packet.packet_id)

    def _on_subscribe(self, packet):
        codes, granted = [], []
        for topic_filter, requested in packet.topics:
            error = topic_filter_error(topic_filter)
            subscriptions = self.session.subscriptions
            if error is None and (topic_filter not in subscriptions
                                  and len(subscriptions) >= self.broker.max_subscriptions):
                error = "more than {} subscriptions".format(self.broker.max_subscriptions)
            if error is not None:
                self.broker.log.warn("MQTT client {client} ({peer}): refused subscription: "
                                     "{reason}", client=self.client_id, peer=self.peer,
                                     reason=error, log_event="mqtt_subscribe_refused")
                codes.append(p.SUBACK_FAILURE)
                continue
            qos = min(requested, 1)
            subscriptions[topic_filter] = qos
            codes.append(qos)
            granted.append((topic_filter, qos))
        self.send_packet(p.SubAck(packet.packet_id, tuple(codes)))
        for topic_filter, qos in granted:
            for message in self.broker.retained_matching(topic_filter):
                self.session.deliver(Message(message.topic, message.payload,
                                             min(qos, message.qos), True))

    def _on_unsubscribe(self, packet):
        for topic_filter in packet.filters:
            self.session.subscriptions.pop(topic_filter, None)
        self.send_packet(p.UnsubAck(packet.packet_id))

    def _on_pingreq(self, packet):
        self.send_packet(p.PingResp())

    def _on_disconnect(self, packet):
        self._will = None
        self.closing = True
        self.transport.loseConnection()

    def _on_connect_again(self, packet):
        raise _ProtocolViolation("a second CONNECT on one connection")

    _HANDLERS = {
        p.CONNECT: _on_connect_again,
        p.PUBLISH: _on_publish,
        p.PUBACK: _on_puback,
        p.PUBREC: _on_ignored,
        p.PUBREL: _on_pubrel,
        p.PUBCOMP: _on_ignored,
        p.SUBSCRIBE: _on_subscribe,
        p.UNSUBSCRIBE: _on_unsubscribe,
        p.PINGREQ: _on_pingreq,
        p.DISCONNECT: _on_disconnect,
    }

    # -- sending --------------------------------------------------------------------------

    def send_packet(self, packet):
        """Write one packet (nothing once the connection is closing)."""
        if not self.closing or isinstance(packet, p.ConnAck):
            self.transport.write(packet.encode())

    def take_over(self):
        """Another connection claimed this client id: close this one."""
        self.taken_over = True
        self.broker.log.info("MQTT client {client} ({peer}) taken over by a new connection",
                             client=self.client_id, peer=self.peer,
                             log_event="mqtt_client_taken_over")
        self._abort()


class MQTTBrokerFactory(protocol.Factory):
    """Builds a :class:`MQTTBrokerProtocol` per connection of one :class:`MQTTBroker`."""

    noisy = False

    def __init__(self, broker):
        self.broker = broker

    def buildProtocol(self, addr):
        """A protocol bound to the broker."""
        proto = MQTTBrokerProtocol(self.broker)
        proto.factory = self
        return proto


@implementer(IMQTTLink)
class MQTTBroker(service.Service):
    """The broker: sessions, retained messages, in-process subscribers, and (as a service)
    the listening port on ``host:port`` (port 0 picks a free one, see :attr:`port`)."""

    log = Logger()

    def __init__(self, reactor, *, host="127.0.0.1", port=1884,
                 session_queue_size=100, max_inflight=DEFAULT_MAX_INFLIGHT,
                 max_packet_size=DEFAULT_MAX_PACKET_SIZE,
                 connect_timeout=DEFAULT_CONNECT_TIMEOUT, max_retained=DEFAULT_MAX_RETAINED,
                 max_subscriptions=DEFAULT_MAX_SUBSCRIPTIONS):
        self.reactor = reactor
        self.clock = reactor
        self.host = host
        self.requested_port = port
        self.session_queue_size = session_queue_size
        self.max_inflight = max_inflight
        self.max_packet_size = max_packet_size
        self.connect_timeout = connect_timeout
        self.max_retained = max_retained
        self.max_subscriptions = max_subscriptions
        #: client id -> Session (connected ones, and persistent ones while offline)
        self.sessions = {}
        #: topic -> Message, in arrival order
        self.retained = {}
        self.connections = set()
        #: In-process subscription filters and the callback ``on_message(topic, payload)``
        #: called once per matching message published by a client.
        self.local_filters = set()
        self.on_message = None
        self._listening = None
        self.factory = MQTTBrokerFactory(self)

    # -- the in-process side (EventBus) -----------------------------------------------------

    def subscribe(self, topic_filter, qos=1):
        """Deliver client messages matching ``topic_filter`` to :attr:`on_message`."""
        error = topic_filter_error(topic_filter)
        if error is not None:
            raise ValueError(error)
        self.local_filters.add(topic_filter)

    def publish(self, topic, payload, qos=0, retain=False):
        """Publish from the edge to the broker's clients (not to in-process subscribers,
        so that EventBus never hears its own publications)."""
        error = topic_name_error(topic)
        if error is not None:
            raise ValueError(error)
        self.route(Message(topic, payload, min(qos, 1), retain), origin=self)

    # -- routing ----------------------------------------------------------------------------

    def route(self, message, origin=None):
        """Retain (or delete the retained message), hand to in-process subscribers when a
        client published it, and deliver to every matching session."""
        if message.retain:
            self._retain(message)
        if origin is not self and self.on_message is not None and any(
                topic_matches(f, message.topic) for f in self.local_filters):
            try:
                self.on_message(message.topic, message.payload)
            except Exception:
                self.log.failure("in-process subscriber failed on topic {topic}",
                                 topic=message.topic, log_event="mqtt_local_handler_failed")
        for session in list(self.sessions.values()):
            granted = session.granted_qos(message.topic)
            if granted is not None:
                session.deliver(Message(message.topic, message.payload,
                                        min(granted, message.qos), False))

    def _retain(self, message):
        if not message.payload:
            self.retained.pop(message.topic, None)
            return
        if message.topic not in self.retained and len(self.retained) >= self.max_retained:
            self.log.warn("not retaining a message on {topic}: {limit} retained messages "
                          "already", topic=message.topic, limit=self.max_retained,
                          log_event="mqtt_retained_full")
            return
        self.retained[message.topic] = Message(message.topic, message.payload, message.qos,
                                               True)

    def retained_matching(self, topic_filter):
        """Retained messages whose topic ``topic_filter`` matches."""
        return [m for topic, m in self.retained.items() if topic_matches(topic_filter, topic)]

    # -- sessions ---------------------------------------------------------------------------

    def attach(self, client_id, clean, proto):
        """Bind ``proto`` to the session for ``client_id``; returns ``(session, present)``.

        A connection already using the id is closed (MQTT 3.1.1 section 3.1.4). A clean
        connection, or an earlier clean session, starts afresh."""
        existing = self.sessions.get(client_id)
        if existing is not None and existing.protocol is not None:
            old = existing.protocol
            existing.protocol = None
            old.take_over()
        if existing is not None and not clean and not existing.clean:
            existing.protocol = proto
            return existing, True
        session = Session(self, client_id, clean)
        session.protocol = proto
        self.sessions[client_id] = session
        return session, False

    def drop_session(self, session):
        """Forget ``session`` (a clean session whose connection ended)."""
        if self.sessions.get(session.client_id) is session:
            del self.sessions[session.client_id]

    # -- service ----------------------------------------------------------------------------

    @property
    def port(self):
        """The port actually listened on (after start), else the configured one."""
        if self._listening is not None:
            return self._listening.getHost().port
        return self.requested_port

    def startService(self):
        """Listen on ``host:port``; a port in use raises ``CannotListenError`` at once."""
        self._listening = self.reactor.listenTCP(self.requested_port, self.factory,
                                                 interface=self.host)
        super().startService()
        self.log.info("internal MQTT broker listening on {host}:{port}", host=self.host,
                      port=self.port, log_event="mqtt_broker_listening")

    def stopService(self):
        """Stop listening and close every client; fires when the port and every client
        connection are closed."""
        super().stopService()
        waits = []
        for proto in list(self.connections):
            waits.append(proto.ended)
            proto._abort()
        listening, self._listening = self._listening, None
        if listening is not None:
            waits.append(defer.maybeDeferred(listening.stopListening))
        d = defer.gatherResults(waits, consumeErrors=True)
        d.addCallback(lambda _: None)
        return d
