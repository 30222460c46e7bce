"""Unit tests for the MQTT 3.1.1 codec: encodings against the specification's examples,
incremental decoding over any split of the byte stream, and refusal of malformed packets."""

import struct

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from kubeedge_tw.edge.eventbus import packets as p


def decode_all(data, max_size=p.MAX_REMAINING_LENGTH):
    """Every packet in ``data`` (which must end on a packet boundary)."""
    reader = p.PacketReader(max_size)
    reader.feed(data)
    out = []
    while True:
        packet = reader.next_packet()
        if packet is None:
            break
        out.append(packet)
    if reader.buffered:
        raise AssertionError("{} bytes left over".format(reader.buffered))
    return out


def raw(first, body):
    """A packet from its first byte and body, length computed."""
    return bytes([first]) + p.encode_remaining_length(len(body)) + body


SAMPLES = [
    p.Connect("client-1", clean_session=True, keepalive=30),
    p.Connect("c", clean_session=False, keepalive=0, will_topic="w/t", will_message=b"bye",
              will_qos=1, will_retain=True, username="u", password=b"pw"),
    p.Connect("old", protocol_name="MQIsdp", protocol_level=3),
    p.ConnAck(True, 0),
    p.Publish("a/b", b"payload", 0, retain=True),
    p.Publish("$hw/events/device/d/twin/update", b"{}", 1, dup=True, packet_id=7),
    p.Publish("x", b"", 2, packet_id=65535),
    p.PubAck(1), p.PubRec(2), p.PubRel(3), p.PubComp(4),
    p.Subscribe(10, (("a/+", 0), ("b/#", 1), ("c", 2))),
    p.SubAck(10, (0, 1, 0x80)),
    p.Unsubscribe(11, ("a/+", "b/#")),
    p.UnsubAck(11), p.PingReq(), p.PingResp(), p.Disconnect(),
]


class EncodingTests(SynchronousTestCase):
    """Packets encode to the bytes MQTT 3.1.1 specifies."""

    def test_remaining_length_boundaries(self):
        """The varint boundaries of section 2.2.3 use 1 to 4 bytes."""
        for value, size in ((0, 1), (127, 1), (128, 2), (16383, 2), (16384, 3),
                            (2097151, 3), (2097152, 4), (p.MAX_REMAINING_LENGTH, 4)):
            self.assertEqual(len(p.encode_remaining_length(value)), size, value)
        self.assertEqual(p.encode_remaining_length(321), b"\xc1\x02")
        self.assertRaises(ValueError, p.encode_remaining_length, p.MAX_REMAINING_LENGTH + 1)

    def test_connect_bytes(self):
        """CONNECT carries protocol name MQTT, level 4, the flags and the keepalive."""
        data = p.Connect("id", clean_session=True, keepalive=60).encode()
        self.assertEqual(data, b"\x10\x0e\x00\x04MQTT\x04\x02\x00\x3c\x00\x02id")

    def test_publish_bytes(self):
        """A QoS 1 PUBLISH has its flags in the first byte and the id after the topic."""
        data = p.Publish("a/b", b"hi", 1, retain=True, dup=True, packet_id=5).encode()
        self.assertEqual(data, b"\x3b\x09\x00\x03a/b\x00\x05hi")

    def test_fixed_flags(self):
        """PUBREL, SUBSCRIBE and UNSUBSCRIBE carry the reserved flags 0010."""
        self.assertEqual(p.PubRel(1).encode()[0], 0x62)
        self.assertEqual(p.Subscribe(1, (("a", 0),)).encode()[0], 0x82)
        self.assertEqual(p.Unsubscribe(1, ("a",)).encode()[0], 0xA2)
        self.assertEqual(p.PingReq().encode(), b"\xc0\x00")

    def test_round_trip(self):
        """Every sample packet decodes to itself."""
        for packet in SAMPLES:
            self.assertEqual(decode_all(packet.encode()), [packet])


class IncrementalTests(SynchronousTestCase):
    """The reader copes with TCP splitting and coalescing."""

    def test_byte_by_byte(self):
        """Fed one byte at a time, the reader returns every packet once complete."""
        stream = b"".join(packet.encode() for packet in SAMPLES)
        reader = p.PacketReader()
        out = []
        for index in range(len(stream)):
            reader.feed(stream[index:index + 1])
            packet = reader.next_packet()
            while packet is not None:
                out.append(packet)
                packet = reader.next_packet()
        self.assertEqual(out, SAMPLES)
        self.assertEqual(reader.buffered, 0)

    def test_coalesced(self):
        """Many packets in one chunk come out in order."""
        stream = b"".join(packet.encode() for packet in SAMPLES)
        self.assertEqual(decode_all(stream), SAMPLES)

    def test_large_payload(self):
        """A payload needing a three-byte length decodes."""
        packet = p.Publish("big", b"x" * 100000)
        self.assertEqual(decode_all(packet.encode()), [packet])

    @settings(max_examples=50, deadline=None)
    @given(st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=30))
    def test_any_split(self, cuts):
        """Any split of the stream gives the same packets."""
        stream = b"".join(packet.encode() for packet in SAMPLES)
        reader = p.PacketReader()
        out, pos = [], 0
        for cut in cuts + [len(stream)]:
            reader.feed(stream[pos:pos + cut])
            pos += cut
            packet = reader.next_packet()
            while packet is not None:
                out.append(packet)
                packet = reader.next_packet()
        self.assertEqual(out, SAMPLES)


class MalformedTests(SynchronousTestCase):
    """Anything that breaks a MUST of the specification raises MalformedPacket."""

    def assertMalformed(self, data, fragment, max_size=p.MAX_REMAINING_LENGTH):
        """``data`` is refused with a reason containing ``fragment``."""
        with self.assertRaises(p.MalformedPacket) as caught:
            decode_all(data, max_size)
        self.assertIn(fragment, caught.exception.reason)

    def test_five_length_bytes(self):
        """A remaining length with a fifth byte is refused."""
        self.assertMalformed(b"\x30\xff\xff\xff\xff\x01", "more than four bytes")

    def test_oversize_refused_from_the_length(self):
        """A packet over the limit is refused as soon as its length is read."""
        reader = p.PacketReader(1000)
        reader.feed(b"\x30" + p.encode_remaining_length(5000))
        with self.assertRaises(p.MalformedPacket) as caught:
            reader.next_packet()
        self.assertIn("exceeds the limit", caught.exception.reason)

    def test_reserved_type(self):
        """Types 0 and 15 are reserved."""
        self.assertMalformed(b"\x00\x00", "reserved")
        self.assertMalformed(b"\xf0\x00", "reserved")

    def test_fixed_header_flags(self):
        """Wrong reserved flags on SUBSCRIBE and PINGREQ are refused."""
        self.assertMalformed(raw(0x80, b"\x00\x01\x00\x01a\x00"), "flags")
        self.assertMalformed(b"\xc1\x00", "flags")

    def test_publish_qos3_and_dup_on_qos0(self):
        """QoS 3 and DUP on a QoS 0 PUBLISH are refused."""
        self.assertMalformed(raw(0x36, b"\x00\x01a\x00\x01"), "QoS 3")
        self.assertMalformed(raw(0x38, b"\x00\x01a"), "DUP")

    def test_packet_id_zero(self):
        """Packet identifier 0 is refused."""
        self.assertMalformed(raw(0x32, b"\x00\x01a\x00\x00"), "identifier 0")
        self.assertMalformed(raw(0x40, b"\x00\x00"), "identifier 0")

    def test_bad_strings(self):
        """Topic strings that are not UTF-8, hold U+0000 or run past the end are refused."""
        self.assertMalformed(raw(0x30, b"\x00\x02\xff\xfe"), "UTF-8")
        self.assertMalformed(raw(0x30, b"\x00\x03a\x00b"), "U+0000")
        self.assertMalformed(raw(0x30, b"\x00\x09ab"), "past the end")
        # UTF-16 surrogates encoded in UTF-8 are not valid UTF-8.
        self.assertMalformed(raw(0x30, b"\x00\x03\xed\xa0\x80"), "UTF-8")

    def test_connect_flags(self):
        """CONNECT's reserved bit, will QoS 3, and will flags without a will are refused."""
        body = b"\x00\x04MQTT\x04"
        self.assertMalformed(raw(0x10, body + b"\x03\x00\x00\x00\x01c"), "reserved")
        self.assertMalformed(raw(0x10, body + b"\x1c\x00\x00\x00\x01c"), "will QoS 3")
        self.assertMalformed(raw(0x10, body + b"\x20\x00\x00\x00\x01c"), "without a will")
        self.assertMalformed(raw(0x10, body + b"\x40\x00\x00\x00\x01c\x00\x01p"),
                             "user name flag")

    def test_trailing_bytes(self):
        """Bytes after a PUBACK's id, or in a PINGREQ, are refused."""
        self.assertMalformed(raw(0x40, b"\x00\x01\x00"), "trailing")
        self.assertMalformed(raw(0xC0, b"\x00"), "trailing")
        self.assertMalformed(raw(0x10, b"\x00\x04MQTT\x04\x02\x00\x00\x00\x01cX"), "trailing")

    def test_empty_subscribe_and_bad_qos(self):
        """SUBSCRIBE needs a filter and a valid requested QoS; UNSUBSCRIBE a filter."""
        self.assertMalformed(raw(0x82, b"\x00\x01"), "without any topic filter")
        self.assertMalformed(raw(0x82, b"\x00\x01\x00\x01a\x03"), "requested QoS")
        self.assertMalformed(raw(0x82, b"\x00\x01\x00\x01a\x04"), "requested QoS")
        self.assertMalformed(raw(0xA2, b"\x00\x01"), "without any topic filter")

    def test_truncated(self):
        """A body shorter than its fields is refused."""
        self.assertMalformed(raw(0x40, b"\x00"), "truncated")
        self.assertMalformed(raw(0x10, b"\x00\x04MQTT"), "truncated")

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=64))
    def test_garbage_never_raises_anything_else(self, data):
        """Random bytes decode, wait for more, or raise MalformedPacket, never else."""
        reader = p.PacketReader(4096)
        reader.feed(data)
        try:
            while reader.next_packet() is not None:
                pass
        except p.MalformedPacket:
            pass

    @settings(max_examples=200, deadline=None)
    @given(st.sampled_from(SAMPLES), st.integers(min_value=0, max_value=200),
           st.integers(min_value=0, max_value=255))
    def test_mutated_packets(self, packet, position, byte):
        """A sample packet with one byte changed is decoded or refused, nothing else."""
        data = bytearray(packet.encode())
        data[position % len(data)] = byte
        reader = p.PacketReader(4096)
        reader.feed(bytes(data))
        try:
            while reader.next_packet() is not None:
                pass
        except p.MalformedPacket:
            pass

    def test_subscribe_fields(self):
        """SUBSCRIBE decodes its filters and requested QoS values in order."""
        data = raw(0x82, struct.pack("!H", 3) + b"\x00\x01a\x01\x00\x03b/#\x00")
        self.assertEqual(decode_all(data), [p.Subscribe(3, (("a", 1), ("b/#", 0)))])
