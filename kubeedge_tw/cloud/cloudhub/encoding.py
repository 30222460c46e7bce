"""Outbound frame encoding for CloudHub: the content of a message sent to many nodes is
serialised once.

The EdgeController hands CloudHub one message per node for an object several nodes need
(a ConfigMap or Secret to every node running a pod that mounts it, a Service or its
Endpoints to every node): the header (own ``msg_id``) and the route (the node's resource
path) differ, the content is the very same object. Serialising a 2 KB pod costs about
40 us, the envelope around it about 6 us, so a fan-out to 10,000 nodes spends most of
its encoding time writing the same JSON again.

:class:`SharedContentEncoder` keeps the JSON text of the last object content it encoded.
It reuses that text only when a message carries the *same object* and that object is
still *equal* to what was encoded (a snapshot parsed back from the text), so a dict
changed in place between two sends is encoded afresh. Header and route are always
encoded per message. The bytes are exactly what :func:`kubeedge_tw.common.message.encode`
writes for the message (tested), and anything unusual (bytes, scalars, content that is
not serialisable) goes through that function itself.
"""

import json

from kubeedge_tw.common.message import encode, to_dict

__all__ = ["SharedContentEncoder"]

_DUMPS = dict(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_NOTHING = object()


class SharedContentEncoder:
    """``encode(message)`` -> websocket payload bytes, as ``message.encode``."""

    def __init__(self):
        self._content = _NOTHING
        self._snapshot = _NOTHING
        self._text = None
        self.stats = {"encoded": 0, "content_reused": 0}

    def encode(self, message):
        """The payload for ``message``."""
        self.stats["encoded"] += 1
        content = message.content
        if not isinstance(content, (dict, list)):
            return encode(message)
        if content is self._content and content == self._snapshot:
            self.stats["content_reused"] += 1
            text = self._text
        else:
            try:
                text = json.dumps(content, **_DUMPS)
            except (TypeError, ValueError):
                return encode(message)  # raises MessageError naming the message
            self._content, self._snapshot, self._text = content, json.loads(text), text
        envelope = to_dict(message)
        head = json.dumps({"header": envelope["header"], "route": envelope["route"]}, **_DUMPS)
        return (head[:-1] + ',"content":' + text + "}\n").encode("utf-8")

    def forget(self):
        """Drop the kept content (and the reference to it)."""
        self._content = self._snapshot = _NOTHING
        self._text = None
