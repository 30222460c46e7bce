"""What EdgeHub keeps while the cloud is unreachable, and in what order it sends it later.

KubeEdge's edgehub simply fails a send while disconnected; the status the edge reports then
stays stale in the cloud until the next periodic update. kubeedge-tw keeps the messages an
edge must not lose (issue 3): pod status (``podstatus``, ``podpatch``), node status
(``nodestatus``, ``nodepatch``, ``lease`` writes), twin reports
(``device/<id>/twin/edge_updated``, ``device/<id>/state``) and the twin's
``membership/detail`` get. Everything else (queries, ACKs, keepalives) is either answered at
once or dropped by the hub, because the cloud resends or the caller retries.

The queue is bounded and **newest per (operation, resource) wins**: a newer message for the
same resource and operation replaces the queued one and **moves to the end**, so the queue
is ordered by last update and overflow evicts the entry that has gone longest without one
(never the node status that is refreshed every 10 s). The operation is part of the key so
that an ``insert`` (registering a node or a lease) is never collapsed into the ``update``
that follows it.
"""

import collections

from kubeedge_tw.common import names
from kubeedge_tw.common.resource import resource_type

__all__ = ["OfflineQueue", "keep_while_offline", "DEFAULT_OFFLINE_QUEUE_SIZE"]

#: Default bound of the offline queue (messages).
DEFAULT_OFFLINE_QUEUE_SIZE = 1000

#: Resource types (edge-local form ``<ns>/<type>/<name>``) whose writes are kept.
_STATUS_TYPES = frozenset({
    names.RES_PODSTATUS, names.RES_PODPATCH, names.RES_NODESTATUS, names.RES_NODEPATCH,
    names.RES_LEASE,
})


def keep_while_offline(message):
    """Whether ``message`` (on its way to the cloud) must be kept while disconnected.

    True for status writes (any operation but ``query``/``keepalive`` on a pod/node status,
    patch or lease resource), twin reports and ``membership/detail``; False otherwise,
    keepalives always.
    """
    operation, resource = message.operation, message.resource or ""
    if operation in (names.OP_KEEPALIVE, names.OP_QUERY, names.OP_RESPONSE):
        return False
    if resource == "membership/detail":
        return True
    parts = resource.split("/")
    if parts[0] == names.RES_DEVICE and len(parts) >= 3 and parts[1]:
        # device/<id>/twin/edge_updated and device/<id>/state (reference 2.5, 2.9)
        return parts[2:] in (["twin", "edge_updated"], ["state"])
    return resource_type(resource) in _STATUS_TYPES


class OfflineQueue:
    """Bounded FIFO of messages, newest per ``(operation, resource)`` (see module doc)."""

    def __init__(self, limit=DEFAULT_OFFLINE_QUEUE_SIZE):
        if limit < 1:
            raise ValueError("offline queue limit must be at least 1, got {!r}".format(limit))
        self.limit = limit
        self._entries = collections.OrderedDict()

    @staticmethod
    def key(message):
        """The identity under which a newer message replaces an older one."""
        return (message.operation, message.resource)

    def put(self, message):
        """Queue ``message``; return ``(replaced, evicted)`` — the older message it replaced
        for the same key, and the oldest entry dropped to stay within the bound (each or
        None)."""
        key = self.key(message)
        replaced = self._entries.pop(key, None)
        evicted = None
        if replaced is None and len(self._entries) >= self.limit:
            _, evicted = self._entries.popitem(last=False)
        self._entries[key] = message
        return replaced, evicted

    def popleft(self):
        """Remove and return the oldest message; ``IndexError`` when empty."""
        if not self._entries:
            raise IndexError("offline queue is empty")
        return self._entries.popitem(last=False)[1]

    def putback(self, message):
        """Return ``message`` (just taken with :meth:`popleft`) to the front.

        A newer message queued for the same key in the meantime wins; then nothing changes.
        """
        key = self.key(message)
        if key in self._entries:
            return
        self._entries[key] = message
        self._entries.move_to_end(key, last=False)

    def messages(self):
        """The queued messages, oldest first (a copy)."""
        return list(self._entries.values())

    def clear(self):
        """Drop everything; return how many messages were dropped."""
        count = len(self._entries)
        self._entries.clear()
        return count

    def __len__(self):
        """How many messages are queued."""
        return len(self._entries)

    def __bool__(self):
        """True when something is queued."""
        return bool(self._entries)
