"""Tests for CloudHub's outbound encoder: the same bytes as ``message.encode``, with the
content of a message sent to many nodes serialised once."""

from twisted.trial.unittest import SynchronousTestCase

from kubeedge_tw.cloud.cloudhub.encoding import SharedContentEncoder
from kubeedge_tw.common import message as m
from kubeedge_tw.common import names


def update(node, content, rv="7"):
    """An EdgeController update for ``node`` (edge-local resource form)."""
    return m.Message(msg_id="id-" + node, timestamp=1700000000000, resource_version=rv,
                     source=names.EDGECONTROLLER, group=names.WIRE_GROUP_RESOURCE,
                     operation=names.OP_UPDATE, resource="default/configmap/" + node,
                     content=content)


class SharedContentEncoderTests(SynchronousTestCase):
    """SharedContentEncoder."""

    def setUp(self):
        self.encoder = SharedContentEncoder()

    def test_same_bytes_as_encode(self):
        """Every kind of content gives exactly the bytes message.encode gives."""
        contents = [{"metadata": {"name": "a"}, "data": {"k": "v\u00e9\n"}}, [1, 2.5, None],
                    "OK", None, b"\x00raw", 3, {}, {"nested": [{"x": True}]}]
        for content in contents:
            for message in (update("n1", content), m.new_message("edgecontroller", "",
                                                                 "query", "x/y/z", content,
                                                                 sync=True,
                                                                 parent_msg_id="p")):
                self.assertEqual(self.encoder.encode(message), m.encode(message))
                self.assertEqual(self.encoder.encode(message), m.encode(message))

    def test_content_shared_between_nodes(self):
        """The same content object to two nodes: serialised once, each frame with its
        own header and route."""
        content = {"metadata": {"name": "cm", "resourceVersion": "7"}, "data": {"a": "b"}}
        first = self.encoder.encode(update("n1", content))
        second = self.encoder.encode(update("n2", content))
        self.assertEqual(self.encoder.stats, {"encoded": 2, "content_reused": 1})
        self.assertEqual(second, m.encode(update("n2", content)))
        self.assertEqual((m.decode(first).msg_id, m.decode(second).msg_id), ("id-n1", "id-n2"))
        self.assertEqual(m.decode(second).resource, "default/configmap/n2")
        self.assertEqual(m.decode(second).content, content)

    def test_changed_in_place_is_encoded_again(self):
        """A dict changed in place between two sends is not taken from the cache."""
        content = {"data": {"a": "1"}}
        self.encoder.encode(update("n1", content))
        content["data"]["a"] = "2"
        self.assertEqual(m.decode(self.encoder.encode(update("n2", content))).content,
                         {"data": {"a": "2"}})
        self.assertEqual(self.encoder.stats["content_reused"], 0)

    def test_equal_but_other_object_is_encoded_again(self):
        """Only the very same object is shared; an equal copy is encoded on its own."""
        self.encoder.encode(update("n1", {"a": 1}))
        self.encoder.encode(update("n2", {"a": 1}))
        self.assertEqual(self.encoder.stats["content_reused"], 0)

    def test_content_that_json_reads_back_differently(self):
        """Tuples (JSON arrays) never compare equal to what was written: always fresh,
        and still the same bytes."""
        content = {"a": (1, 2)}
        for node in ("n1", "n2"):
            self.assertEqual(self.encoder.encode(update(node, content)),
                             m.encode(update(node, content)))
        self.assertEqual(self.encoder.stats["content_reused"], 0)

    def test_not_serialisable(self):
        """Content JSON cannot hold raises MessageError, as message.encode does."""
        message = update("n1", {"x": object()})
        error = self.assertRaises(m.MessageError, self.encoder.encode, message)
        self.assertEqual(error.msg_id, "id-n1")
        self.assertRaises(m.MessageError, self.encoder.encode,
                          update("n2", {"x": float("nan")}))

    def test_forget(self):
        """forget() drops the kept content."""
        content = {"a": 1}
        self.encoder.encode(update("n1", content))
        self.encoder.forget()
        self.encoder.encode(update("n2", content))
        self.assertEqual(self.encoder.stats["content_reused"], 0)
