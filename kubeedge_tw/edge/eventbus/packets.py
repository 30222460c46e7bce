"""MQTT 3.1.1 control packets: their values, their encoding and an incremental decoder.

The internal broker (:mod:`.broker`) speaks MQTT 3.1.1 (protocol level 4, name ``MQTT``)
and accepts 3.1 clients (level 3, name ``MQIsdp``), as KubeEdge's gomqtt-based broker does.
This module is only the wire format, in both directions, so that unit tests can play the
client with the same code:

* every packet is a frozen dataclass with an ``encode()`` method;
* :class:`PacketReader` takes bytes as they arrive from TCP (any split, any coalescing),
  reads the fixed header and the remaining-length varint incrementally, refuses a packet
  longer than its bound **as soon as the length is known** (before buffering the body), and
  hands out whole packets;
* anything that breaks a MUST of the specification (reserved flag bits, a fifth length
  byte, a string that is not UTF-8 or holds U+0000, a packet id of 0, QoS 3, trailing
  bytes, ...) raises :class:`MalformedPacket` with a reason meant for a log line. The
  broker then closes that one connection (MQTT 3.1.1 section 4.8).
"""

import struct
from dataclasses import dataclass

__all__ = [
    "MalformedPacket", "PacketReader", "decode_packet", "encode_remaining_length",
    "Connect", "ConnAck", "Publish", "PubAck", "PubRec", "PubRel", "PubComp", "Subscribe",
    "SubAck", "Unsubscribe", "UnsubAck", "PingReq", "PingResp", "Disconnect",
    "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL", "PUBCOMP", "SUBSCRIBE",
    "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT",
    "MAX_REMAINING_LENGTH", "SUBACK_FAILURE", "CONNACK_ACCEPTED",
    "CONNACK_BAD_PROTOCOL_VERSION", "CONNACK_IDENTIFIER_REJECTED", "PROTOCOLS",
]

# Control packet types (MQTT 3.1.1 section 2.2.1).
CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT = (
    8, 9, 10, 11, 12, 13, 14)

#: The largest remaining length the four-byte varint can express (section 2.2.3).
MAX_REMAINING_LENGTH = 268_435_455

#: SUBACK return code for a refused topic filter.
SUBACK_FAILURE = 0x80

#: CONNACK return codes (section 3.2.2.3) that this broker uses.
CONNACK_ACCEPTED = 0
CONNACK_BAD_PROTOCOL_VERSION = 1
CONNACK_IDENTIFIER_REJECTED = 2

#: (protocol name, protocol level) pairs accepted in CONNECT: 3.1.1 and 3.1.
PROTOCOLS = frozenset({("MQTT", 4), ("MQIsdp", 3)})

#: Required low nibble of the fixed header for every type but PUBLISH (section 2.2.2).
_FIXED_FLAGS = {
    CONNECT: 0, CONNACK: 0, PUBACK: 0, PUBREC: 0, PUBREL: 2, PUBCOMP: 0, SUBSCRIBE: 2,
    SUBACK: 0, UNSUBSCRIBE: 2, UNSUBACK: 0, PINGREQ: 0, PINGRESP: 0, DISCONNECT: 0,
}

_TYPE_NAMES = {
    CONNECT: "CONNECT", CONNACK: "CONNACK", PUBLISH: "PUBLISH", PUBACK: "PUBACK",
    PUBREC: "PUBREC", PUBREL: "PUBREL", PUBCOMP: "PUBCOMP", SUBSCRIBE: "SUBSCRIBE",
    SUBACK: "SUBACK", UNSUBSCRIBE: "UNSUBSCRIBE", UNSUBACK: "UNSUBACK", PINGREQ: "PINGREQ",
    PINGRESP: "PINGRESP", DISCONNECT: "DISCONNECT",
}


class MalformedPacket(ValueError):
    """Bytes that are not a valid MQTT 3.1.1 packet; ``reason`` says what is wrong."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


# -- primitives ------------------------------------------------------------------------------

def encode_remaining_length(length):
    """The variable-length encoding of ``length`` (1 to 4 bytes)."""
    if not 0 <= length <= MAX_REMAINING_LENGTH:
        raise ValueError("remaining length {} is out of range".format(length))
    out = bytearray()
    while True:
        byte, length = length % 128, length // 128
        if length:
            byte |= 0x80
        out.append(byte)
        if not length:
            return bytes(out)


def _encode_string(text):
    raw = text.encode("utf-8")
    return _encode_binary(raw)


def _encode_binary(raw):
    if len(raw) > 0xFFFF:
        raise ValueError("a string or binary field cannot exceed 65535 bytes")
    return struct.pack("!H", len(raw)) + bytes(raw)


def _packet(first_byte, body):
    return bytes([first_byte]) + encode_remaining_length(len(body)) + bytes(body)


class _Body:
    """A cursor over one packet's variable header and payload."""

    def __init__(self, data, kind):
        self.data = data
        self.pos = 0
        self.kind = kind

    def remaining(self):
        return len(self.data) - self.pos

    def u8(self):
        if self.remaining() < 1:
            raise MalformedPacket("{} is truncated".format(self.kind))
        value = self.data[self.pos]
        self.pos += 1
        return value

    def u16(self):
        if self.remaining() < 2:
            raise MalformedPacket("{} is truncated".format(self.kind))
        value = struct.unpack_from("!H", self.data, self.pos)[0]
        self.pos += 2
        return value

    def binary(self):
        length = self.u16()
        if self.remaining() < length:
            raise MalformedPacket("{}: a length-prefixed field runs past the end of the "
                                  "packet".format(self.kind))
        value = bytes(self.data[self.pos:self.pos + length])
        self.pos += length
        return value

    def string(self, what):
        raw = self.binary()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedPacket("{}: {} is not valid UTF-8".format(self.kind, what)) from None
        if "\x00" in text:
            raise MalformedPacket("{}: {} contains U+0000".format(self.kind, what))
        return text

    def packet_id(self):
        value = self.u16()
        if value == 0:
            raise MalformedPacket("{}: packet identifier 0 is not allowed".format(self.kind))
        return value

    def rest(self):
        value = bytes(self.data[self.pos:])
        self.pos = len(self.data)
        return value

    def end(self):
        if self.remaining():
            raise MalformedPacket("{} has {} unexpected trailing bytes".format(
                self.kind, self.remaining()))


# -- packets ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Connect:
    """CONNECT (client -> server)."""

    client_id: str
    clean_session: bool = True
    keepalive: int = 60
    protocol_name: str = "MQTT"
    protocol_level: int = 4
    will_topic: str = None
    will_message: bytes = None
    will_qos: int = 0
    will_retain: bool = False
    username: str = None
    password: bytes = None

    type = CONNECT

    def encode(self):
        """The packet's bytes."""
        flags = 0x02 if self.clean_session else 0
        payload = _encode_string(self.client_id)
        if self.will_topic is not None:
            flags |= 0x04 | (self.will_qos << 3) | (0x20 if self.will_retain else 0)
            payload += _encode_string(self.will_topic) + _encode_binary(
                self.will_message or b"")
        if self.username is not None:
            flags |= 0x80
            payload += _encode_string(self.username)
        if self.password is not None:
            flags |= 0x40
            payload += _encode_binary(self.password)
        body = (_encode_string(self.protocol_name)
                + struct.pack("!BBH", self.protocol_level, flags, self.keepalive) + payload)
        return _packet(CONNECT << 4, body)


@dataclass(frozen=True)
class ConnAck:
    """CONNACK (server -> client)."""

    session_present: bool = False
    return_code: int = CONNACK_ACCEPTED

    type = CONNACK

    def encode(self):
        """The packet's bytes."""
        return _packet(CONNACK << 4, bytes([1 if self.session_present else 0,
                                             self.return_code]))


@dataclass(frozen=True)
class Publish:
    """PUBLISH (both directions). ``packet_id`` is None for QoS 0."""

    topic: str
    payload: bytes = b""
    qos: int = 0
    retain: bool = False
    dup: bool = False
    packet_id: int = None

    type = PUBLISH

    def encode(self):
        """The packet's bytes."""
        first = (PUBLISH << 4) | (0x08 if self.dup else 0) | (self.qos << 1) | (
            1 if self.retain else 0)
        body = _encode_string(self.topic)
        if self.qos:
            body += struct.pack("!H", self.packet_id)
        return _packet(first, body + bytes(self.payload))


@dataclass(frozen=True)
class _IdOnly:
    packet_id: int

    def encode(self):
        """The packet's bytes."""
        return _packet((self.type << 4) | _FIXED_FLAGS[self.type],
                       struct.pack("!H", self.packet_id))


class PubAck(_IdOnly):
    """PUBACK: acknowledges a QoS 1 PUBLISH."""

    type = PUBACK


class PubRec(_IdOnly):
    """PUBREC: first reply to a QoS 2 PUBLISH."""

    type = PUBREC


class PubRel(_IdOnly):
    """PUBREL: the sender's answer to PUBREC."""

    type = PUBREL


class PubComp(_IdOnly):
    """PUBCOMP: ends a QoS 2 exchange."""

    type = PUBCOMP


class UnsubAck(_IdOnly):
    """UNSUBACK (server -> client)."""

    type = UNSUBACK


@dataclass(frozen=True)
class Subscribe:
    """SUBSCRIBE: ``topics`` is a tuple of ``(filter, requested qos)``."""

    packet_id: int
    topics: tuple

    type = SUBSCRIBE

    def encode(self):
        """The packet's bytes."""
        body = struct.pack("!H", self.packet_id)
        for topic_filter, qos in self.topics:
            body += _encode_string(topic_filter) + bytes([qos])
        return _packet((SUBSCRIBE << 4) | 2, body)


@dataclass(frozen=True)
class SubAck:
    """SUBACK: one return code (granted QoS, or 0x80) per requested filter."""

    packet_id: int
    return_codes: tuple

    type = SUBACK

    def encode(self):
        """The packet's bytes."""
        return _packet(SUBACK << 4, struct.pack("!H", self.packet_id)
                       + bytes(self.return_codes))


@dataclass(frozen=True)
class Unsubscribe:
    """UNSUBSCRIBE: a tuple of topic filters."""

    packet_id: int
    filters: tuple

    type = UNSUBSCRIBE

    def encode(self):
        """The packet's bytes."""
        body = struct.pack("!H", self.packet_id)
        for topic_filter in self.filters:
            body += _encode_string(topic_filter)
        return _packet((UNSUBSCRIBE << 4) | 2, body)


@dataclass(frozen=True)
class _Empty:
    def encode(self):
        """The packet's bytes."""
        return bytes([self.type << 4, 0])


class PingReq(_Empty):
    """PINGREQ."""

    type = PINGREQ


class PingResp(_Empty):
    """PINGRESP."""

    type = PINGRESP


class Disconnect(_Empty):
    """DISCONNECT: the client closes cleanly (its will is discarded)."""

    type = DISCONNECT


# -- decoding --------------------------------------------------------------------------------

def _decode_connect(body):
    name = body.string("protocol name")
    level = body.u8()
    flags = body.u8()
    keepalive = body.u16()
    if flags & 0x01:
        raise MalformedPacket("CONNECT: the reserved flag bit is set")
    will = bool(flags & 0x04)
    will_qos = (flags >> 3) & 0x03
    will_retain = bool(flags & 0x20)
    if not will and (will_qos or will_retain):
        raise MalformedPacket("CONNECT: will QoS/retain set without a will")
    if will_qos == 3:
        raise MalformedPacket("CONNECT: will QoS 3 is not allowed")
    has_user, has_password = bool(flags & 0x80), bool(flags & 0x40)
    if has_password and not has_user and level >= 4:
        raise MalformedPacket("CONNECT: password flag set without the user name flag")
    client_id = body.string("client identifier")
    will_topic = will_message = username = password = None
    if will:
        will_topic = body.string("will topic")
        will_message = body.binary()
    if has_user:
        username = body.string("user name")
    if has_password:
        password = body.binary()
    body.end()
    return Connect(client_id=client_id, clean_session=bool(flags & 0x02), keepalive=keepalive,
                   protocol_name=name, protocol_level=level, will_topic=will_topic,
                   will_message=will_message, will_qos=will_qos, will_retain=will_retain,
                   username=username, password=password)


def _decode_publish(flags, body):
    qos = (flags >> 1) & 0x03
    if qos == 3:
        raise MalformedPacket("PUBLISH: QoS 3 is not allowed")
    dup = bool(flags & 0x08)
    if dup and qos == 0:
        raise MalformedPacket("PUBLISH: DUP set on a QoS 0 message")
    topic = body.string("topic name")
    packet_id = body.packet_id() if qos else None
    return Publish(topic=topic, payload=body.rest(), qos=qos, retain=bool(flags & 0x01),
                   dup=dup, packet_id=packet_id)


def _decode_subscribe(body):
    packet_id = body.packet_id()
    topics = []
    while body.remaining():
        topic_filter = body.string("topic filter")
        requested = body.u8()
        if requested & 0xFC or requested == 3:
            raise MalformedPacket("SUBSCRIBE: requested QoS byte {:#04x} is invalid".format(
                requested))
        topics.append((topic_filter, requested))
    if not topics:
        raise MalformedPacket("SUBSCRIBE without any topic filter")
    return Subscribe(packet_id=packet_id, topics=tuple(topics))


def _decode_unsubscribe(body):
    packet_id = body.packet_id()
    filters = []
    while body.remaining():
        filters.append(body.string("topic filter"))
    if not filters:
        raise MalformedPacket("UNSUBSCRIBE without any topic filter")
    return Unsubscribe(packet_id=packet_id, filters=tuple(filters))


_ID_ONLY = {PUBACK: PubAck, PUBREC: PubRec, PUBREL: PubRel, PUBCOMP: PubComp,
            UNSUBACK: UnsubAck}
_EMPTY = {PINGREQ: PingReq, PINGRESP: PingResp, DISCONNECT: Disconnect}


def decode_packet(first_byte, body_bytes):
    """Decode one packet from its first byte and its body (variable header + payload)."""
    kind, flags = first_byte >> 4, first_byte & 0x0F
    name = _TYPE_NAMES.get(kind)
    if name is None:
        raise MalformedPacket("packet type {} is reserved".format(kind))
    if kind != PUBLISH and flags != _FIXED_FLAGS[kind]:
        raise MalformedPacket("{}: fixed-header flags {:#03x} must be {:#03x}".format(
            name, flags, _FIXED_FLAGS[kind]))
    body = _Body(body_bytes, name)
    if kind == CONNECT:
        return _decode_connect(body)
    if kind == PUBLISH:
        return _decode_publish(flags, body)
    if kind == SUBSCRIBE:
        return _decode_subscribe(body)
    if kind == UNSUBSCRIBE:
        return _decode_unsubscribe(body)
    if kind in _ID_ONLY:
        packet = _ID_ONLY[kind](body.packet_id())
        body.end()
        return packet
    if kind in _EMPTY:
        body.end()
        return _EMPTY[kind]()
    if kind == CONNACK:
        ack_flags = body.u8()
        if ack_flags & 0xFE:
            raise MalformedPacket("CONNACK: reserved acknowledge flags are set")
        code = body.u8()
        body.end()
        return ConnAck(session_present=bool(ack_flags & 1), return_code=code)
    # SUBACK
    packet_id = body.packet_id()
    codes = tuple(body.rest())
    if not codes:
        raise MalformedPacket("SUBACK without return codes")
    return SubAck(packet_id=packet_id, return_codes=codes)


class PacketReader:
    """Incremental decoder for one connection's byte stream.

    :meth:`feed` appends bytes; :meth:`next_packet` returns the next whole packet, or None
    when more bytes are needed. A packet whose remaining length exceeds ``max_size`` is
    refused as soon as its length is read.
    """

    def __init__(self, max_size=MAX_REMAINING_LENGTH):
        self.max_size = min(max_size, MAX_REMAINING_LENGTH)
        self._buffer = bytearray()

    def feed(self, data):
        """Append received bytes."""
        self._buffer += data

    @property
    def buffered(self):
        """How many bytes wait for the rest of their packet."""
        return len(self._buffer)

    def next_packet(self):
        """The next complete packet, None if incomplete; raises :class:`MalformedPacket`."""
        buf = self._buffer
        if len(buf) < 2:
            return None
        length, multiplier, index = 0, 1, 1
        while True:
            if index >= len(buf):
                return None
            byte = buf[index]
            length += (byte & 0x7F) * multiplier
            index += 1
            if not byte & 0x80:
                break
            if index == 5:
                raise MalformedPacket("the remaining length uses more than four bytes")
            multiplier *= 128
        if length > self.max_size:
            raise MalformedPacket("packet of {} bytes exceeds the limit of {} bytes".format(
                length, self.max_size))
        end = index + length
        if len(buf) < end:
            return None
        first, body = buf[0], bytes(buf[index:end])
        del buf[:end]
        return decode_packet(first, body)
