"""Tests for the beehive message model and codec against frames captured from real KubeEdge."""

import base64
import json
import os
import re

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from kubeedge_tw.common import message as m
from kubeedge_tw.common import names

SAMPLES = os.path.join(os.path.dirname(__file__), "..", "data", "wire-samples")


def sample_frames(filename):
    """(direction, opcode, payload) for every frame line of a wire sample file."""
    frames = []
    with open(os.path.join(SAMPLES, filename), encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            match = re.match(r"^(?:(E>C|C>E) (\d) |(TEXT|BINARY) )[\d.]+ (.*)$", line)
            if match:
                direction, opcode, kind, payload = match.groups()
                if kind:
                    opcode = "1" if kind == "TEXT" else "2"
                if payload.startswith("{"):
                    frames.append((direction or "E>C", opcode, payload))
    return frames


class WireSampleTests(SynchronousTestCase):
    """Every JSON frame a real KubeEdge edge or cloud sent decodes and re-encodes."""

    def test_samples_are_present(self):
        """The captured frames are shipped with the tests (so the checks below run)."""
        for name in ("edge-v1.0.0.txt", "edge-v1.15.4.txt", "cloud-edge-v1.15.4.txt"):
            self.assertGreater(len(sample_frames(name)), 3, name)

    def assert_round_trip(self, payload, legacy):
        original = json.loads(payload)
        msg = m.decode(payload.encode("utf-8"))
        again = json.loads(m.encode(msg, legacy=legacy))
        self.assertEqual(again, original)

    def test_v1_0_frames_round_trip_in_legacy_form(self):
        """v1.0 frames (parent_msg_id "" and sync always present) re-encode identically
        in the legacy form."""
        for _, _, payload in sample_frames("edge-v1.0.0.txt"):
            self.assert_round_trip(payload, legacy=True)

    def test_v1_15_frames_round_trip(self):
        """v1.15 frames (no parent_msg_id/sync when empty) re-encode identically."""
        frames = sample_frames("edge-v1.15.4.txt") + sample_frames("edge-v1.15.4-edged.txt")
        for _, _, payload in frames:
            self.assert_round_trip(payload, legacy=False)

    def test_cloud_edge_transcript_round_trips(self):
        """Every frame of the cloudcore <-> edgecore v1.15.4 transcript, both directions,
        including those with header.resourceversion, re-encodes identically."""
        frames = sample_frames("cloud-edge-v1.15.4.txt")
        self.assertTrue(any(d == "C>E" for d, _, _ in frames))
        with_rv = 0
        for _, _, payload in frames:
            if '"resourceversion"' in payload:
                with_rv += 1
            self.assert_round_trip(payload, legacy=False)
        self.assertGreater(with_rv, 0)

    def test_v1_0_keepalive_fields(self):
        """The v1.0 keepalive decodes to the fields of reference 2.4."""
        payload = sample_frames("edge-v1.0.0.txt")[0][2]
        msg = m.decode(payload)
        self.assertEqual((msg.source, msg.group, msg.operation, msg.resource, msg.content),
                         ("websocket", "resource", "keepalive", "node", "ping"))
        self.assertEqual(msg.parent_msg_id, "")
        self.assertFalse(msg.sync)
        self.assertEqual(msg.timestamp, 1795595856753)

    def test_v1_0_sync_nodestatus(self):
        """The v1.0 nodestatus update is a sync message with an object content."""
        msg = [m.decode(p) for _, _, p in sample_frames("edge-v1.0.0.txt")][2]
        self.assertTrue(msg.sync)
        self.assertEqual(msg.resource, "default/nodestatus/ke-edge-1")
        self.assertEqual(msg.content["Status"]["phase"], "Running")

    def test_membership_detail_string_content(self):
        """The twin's membership/detail content is a JSON string; content_object parses it."""
        msg = m.decode(sample_frames("edge-v1.15.4.txt")[1][2])
        self.assertIsInstance(msg.content, str)
        self.assertEqual(msg.content_object()["event_type"], "group_membership_event")
        self.assertEqual(msg.content_object()["group_id"], "ke-edge-1")

    def test_zero_value_message(self):
        """The zero-value frame a v1.15 edge sends on SIGTERM decodes as an empty message."""
        msg = m.decode('{"header":{"msg_id":"","timestamp":0},"route":{},"content":null}\n')
        self.assertTrue(msg.is_empty)
        self.assertFalse(m.decode(sample_frames("edge-v1.15.4.txt")[0][2]).is_empty)


class EncodeTests(SynchronousTestCase):
    """The encoder emits Go's key order and omit-empty rules."""

    def test_v1_2_form_omits_empty_keys(self):
        """Empty parent_msg_id, sync, group and resourceversion are omitted."""
        msg = m.Message(msg_id="a", timestamp=5, source="websocket",
                        operation="keepalive", resource="node", content="ping")
        self.assertEqual(
            m.encode(msg),
            b'{"header":{"msg_id":"a","timestamp":5},"route":{"source":"websocket",'
            b'"operation":"keepalive","resource":"node"},"content":"ping"}\n')

    def test_legacy_form_keeps_keys(self):
        """The legacy form always has parent_msg_id, sync and group."""
        msg = m.Message(msg_id="a", timestamp=5, source="websocket",
                        operation="keepalive", resource="node", content="ping")
        data = json.loads(m.encode(msg, legacy=True))
        self.assertEqual(data["header"], {"msg_id": "a", "parent_msg_id": "", "timestamp": 5,
                                          "sync": False})
        self.assertEqual(list(data["route"]), ["source", "group", "operation", "resource"])

    def test_key_order(self):
        """Keys come in Go's struct order, resourceversion last in the header."""
        msg = m.Message(msg_id="a", parent_msg_id="p", timestamp=1, sync=True,
                        resource_version="42", source="s", group="g", operation="o",
                        resource="r", content={"k": 1})
        text = m.encode(msg).decode()
        self.assertEqual(text, '{"header":{"msg_id":"a","parent_msg_id":"p","timestamp":1,'
                               '"sync":true,"resourceversion":"42"},"route":{"source":"s",'
                               '"group":"g","operation":"o","resource":"r"},'
                               '"content":{"k":1}}\n')

    def test_bytes_content_is_base64(self):
        """bytes content is sent as base64, as Go marshals []byte, and decodes back."""
        msg = m.Message(msg_id="a", content=b'{"x":1}')
        data = json.loads(m.encode(msg))
        self.assertEqual(base64.b64decode(data["content"]), b'{"x":1}')
        self.assertEqual(m.decode(m.encode(msg)).content_object(), {"x": 1})

    def test_unserialisable_content(self):
        """Content that is not JSON raises MessageError naming the message."""
        msg = m.Message(msg_id="abc", operation="update", content={"x": object()})
        e = self.assertRaises(m.MessageError, m.encode, msg)
        self.assertIn("abc", str(e))
        e = self.assertRaises(m.MessageError, m.encode, msg.replace(content=float("nan")))
        self.assertEqual(e.msg_id, "abc")


class DecodeLenientTests(SynchronousTestCase):
    """Decoding accepts every shape real peers send."""

    def test_missing_optional_keys(self):
        """A frame without parent_msg_id, sync, group or route fields decodes."""
        msg = m.decode('{"header":{"msg_id":"x"},"content":null}')
        self.assertEqual((msg.msg_id, msg.parent_msg_id, msg.sync, msg.group, msg.timestamp),
                         ("x", "", False, "", 0))

    def test_null_values(self):
        """Null optional values count as absent."""
        msg = m.decode('{"header":{"msg_id":"x","parent_msg_id":null,"sync":null},'
                       '"route":{"group":null},"content":"OK"}')
        self.assertEqual((msg.parent_msg_id, msg.sync, msg.group), ("", False, ""))

    def test_binary_and_text(self):
        """The same JSON decodes from str and from bytes (text and binary frames)."""
        payload = '{"header":{"msg_id":"x"},"route":{"operation":"query"},"content":null}'
        self.assertEqual(m.decode(payload), m.decode(payload.encode()))

    def test_content_json_string(self):
        """Content that is a JSON string holding an object is coerced by content_object."""
        msg = m.decode(json.dumps({"header": {"msg_id": "x"},
                                   "content": json.dumps({"a": [1, 2]})}))
        self.assertEqual(msg.content_object(), {"a": [1, 2]})

    def test_content_base64(self):
        """Content that is base64 (standard or url-safe) of JSON is coerced."""
        for encoder in (base64.b64encode, base64.urlsafe_b64encode):
            raw = encoder(json.dumps({"k": "v?>"}).encode()).decode()
            msg = m.decode(json.dumps({"header": {"msg_id": "x"}, "content": raw}))
            self.assertEqual(msg.content_object(), {"k": "v?>"})

    def test_plain_strings_stay(self):
        """Plain strings such as ping and OK are not mistaken for base64 or JSON."""
        for text in ("ping", "OK", "", "abcd", "cloud_connected", "{not json"):
            msg = m.Message(msg_id="x", content=text)
            self.assertEqual(msg.content_object(), text)

    def test_float_timestamp(self):
        """A float timestamp is truncated to int milliseconds."""
        self.assertEqual(m.decode('{"header":{"msg_id":"x","timestamp":12.7}}').timestamp, 12)


class DecodeErrorTests(SynchronousTestCase):
    """Malformed frames raise MessageError with a reason, never another exception."""

    def assert_error(self, payload, fragment, msg_id=""):
        e = self.assertRaises(m.MessageError, m.decode, payload)
        self.assertIn(fragment, e.reason)
        self.assertEqual(e.msg_id, msg_id)
        return e

    def test_not_json(self):
        """Text that is not JSON is refused as such."""
        self.assert_error("hello", "not JSON")

    def test_not_utf8(self):
        """Binary garbage is refused as not UTF-8."""
        self.assert_error(b"\xff\xfe\x00", "UTF-8")

    def test_empty(self):
        """An empty frame is refused."""
        self.assert_error(b"", "empty")

    def test_not_object(self):
        """JSON that is not an object is refused."""
        self.assert_error("[1,2]", "JSON object")
        self.assert_error("42", "JSON object")

    def test_no_header(self):
        """A message without header is refused."""
        self.assert_error('{"route":{}}', "no header")

    def test_bad_types_keep_msg_id(self):
        """A bad field type is refused, and the msg_id is kept so the sender can be told."""
        self.assert_error('{"header":{"msg_id":"id1","timestamp":"now"}}', "timestamp", "id1")
        self.assert_error('{"header":{"msg_id":"id2","sync":"yes"}}', "sync", "id2")
        self.assert_error('{"header":{"msg_id":"id3"},"route":{"resource":7}}', "resource",
                          "id3")
        self.assert_error('{"header":{"msg_id":"id4"},"route":[]}', "route", "id4")
        self.assert_error('{"header":{"msg_id":"id5","timestamp":true}}', "timestamp", "id5")

    def test_bad_header_type(self):
        """A header that is not an object is refused."""
        self.assert_error('{"header":"x"}', "header must be an object")

    def test_deep_nesting(self):
        """Pathologically deep JSON is refused, not a RecursionError."""
        e = self.assertRaises(m.MessageError, m.decode, "[" * 100000 + "]" * 100000)
        self.assertTrue(e.reason)

    def test_wrong_python_type(self):
        """Something that is neither text nor bytes is refused."""
        self.assert_error(12, "text or bytes")


class HelperTests(SynchronousTestCase):
    """new_message, new_response and new_error build messages as KubeEdge does."""

    def test_new_message_ids_and_time(self):
        """Ids are UUIDv4 and timestamps milliseconds from the given clock."""
        clock = Clock()
        clock.advance(1234.5678)
        a = m.new_message("edged", "meta", "update", "default/pod/x", {"a": 1}, clock=clock)
        b = m.new_message("edged", "meta", "update", "default/pod/x", {"a": 1}, clock=clock)
        self.assertNotEqual(a.msg_id, b.msg_id)
        self.assertRegex(a.msg_id, r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-"
                                   r"[0-9a-f]{12}$")
        self.assertEqual(a.timestamp, 1234567)

    def test_new_response(self):
        """A response copies route from the request, parents to its id, op response."""
        req = m.new_message("metaManager", "meta", "query", "default/configmap/c", None)
        resp = m.new_response(req, {"kind": "ConfigMap"})
        self.assertEqual((resp.parent_msg_id, resp.source, resp.group, resp.resource,
                          resp.operation, resp.content),
                         (req.msg_id, "metaManager", "meta", "default/configmap/c",
                          names.OP_RESPONSE, {"kind": "ConfigMap"}))
        self.assertNotEqual(resp.msg_id, req.msg_id)
        self.assertTrue(resp.is_response)
        self.assertEqual(m.new_response(req, "OK", source="edgecontroller").source,
                         "edgecontroller")

    def test_new_error(self):
        """An error reply carries the reason as a string, parented to the request id."""
        req = m.new_message("edged", "meta", "update", "default/pod/x", None)
        err = m.new_error(req, ValueError("bad pod"))
        self.assertEqual((err.operation, err.content, err.parent_msg_id),
                         (names.OP_ERROR, "bad pod", req.msg_id))
        self.assertTrue(err.is_response)

    def test_describe(self):
        """describe() names operation, resource and id for log lines."""
        msg = m.Message(msg_id="i", operation="update", resource="r")
        self.assertEqual(msg.describe(), "update r (msg i)")
