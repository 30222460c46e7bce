"""One connected edge node as CloudHub sees it: outbound queue, reliable delivery and the
keepalive deadline (reference 2.4, 2.7).

* **Outbound queue**, bounded. Messages about a Kubernetes object are keyed
  ``<type>/<namespace>/<name>``; a newer message for a key already queued replaces the
  queued one in place, and one older than it (by resourceVersion) is dropped — KubeEdge's
  per-node workqueue + store. Other messages queue by their id.
* **Window**: at most ``window`` ACK-awaiting messages are outstanding per node, and
  nothing is written while the transport asks us to pause (a slow edge fills its own
  queue, never the process's memory, and never delays other nodes).
* **Reliable delivery**: a message that needs an ACK is resent every ``ack_interval``
  seconds (5 s in KubeEdge) until the edge answers ``response`` with ``parent_msg_id`` =
  its id, at most ``ack_max_sends`` sends (5); then it is reported undelivered.
* **Keepalive**: the edge's ``keepalive`` message resets a deadline of
  ``keepalive_interval`` seconds; when it passes the session is expired.

ACK deadlines are kept by an :class:`AckTimer`, which CloudHub shares between all its
sessions: every deadline is ``ack_interval`` after a send, so they expire in the order
they were set and one delayed call for the earliest serves them all (a fan-out to 10,000
nodes would otherwise push and cancel 10,000 entries on the reactor's timer heap).

The session does no I/O itself: it calls ``write(message)`` to send and reports through
the ``events`` object (the hub) so it can be tested on a ``Clock`` alone.
"""

import collections

from kubeedge_tw.common import names
from kubeedge_tw.common.resource import ResourceError, parse_edge_resource

__all__ = ["NodeSession", "AckTimer", "needs_ack", "object_key", "DEFAULT_QUEUE_SIZE"]

DEFAULT_QUEUE_SIZE = 1024
DEFAULT_WINDOW = 16
ACK_INTERVAL = 5.0
ACK_MAX_SENDS = 5

#: Resource types KubeEdge sends fire-and-forget even in the resource group (reference 2.7).
NO_ACK_TYPES = frozenset({
    names.RES_PODLIST, names.RES_MEMBERSHIP, "serviceaccounttoken", "k8s", "volume",
})
ACK_OPERATIONS = frozenset({names.OP_INSERT, names.OP_UPDATE, names.OP_DELETE})


def _edge_parts(message):
    try:
        return parse_edge_resource(message.resource)
    except ResourceError:
        return None


def needs_ack(message):
    """Whether CloudHub must get an ACK for this (edge-local form) message: object
    insert/update/delete in the ``resource`` group, except the no-ACK types."""
    if message.group != names.WIRE_GROUP_RESOURCE or message.operation not in ACK_OPERATIONS:
        return False
    parts = _edge_parts(message)
    return parts is not None and bool(parts.name) and parts.type not in NO_ACK_TYPES


def object_key(message):
    """``<type>/<namespace>/<name>`` for a message about one object, else None."""
    if message.group != names.WIRE_GROUP_RESOURCE or message.operation not in ACK_OPERATIONS:
        return None
    parts = _edge_parts(message)
    if parts is None or not parts.name:
        return None
    return "{}/{}/{}".format(parts.type, parts.namespace, parts.name)


def _rv(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class _Pending:
    """A sent message waiting for its ACK; ``armed`` while its deadline counts."""

    __slots__ = ("message", "key", "sends", "armed")

    def __init__(self, message, key):
        self.message = message
        self.key = key
        self.sends = 0
        self.armed = False


class AckTimer:
    """ACK deadlines of one ``interval``, for any number of sessions, on one delayed call.

    :meth:`arm` sets a deadline ``interval`` seconds from now for a pending message;
    when it passes, ``session._ack_timeout(pending)`` runs unless the pending message was
    disarmed meanwhile (acknowledged, or its session closed). Deadlines are set in time
    order, so they wait in a FIFO and a disarmed one is dropped when it reaches the head.
    """

    def __init__(self, clock, interval):
        self.clock = clock
        self.interval = interval
        self._deadlines = collections.deque()   # (deadline, session, pending, sends)
        self._call = None
        self._call_at = None
        self._expiring = False

    def __len__(self):
        return len(self._deadlines)

    def arm(self, session, pending):
        """Start ``pending``'s deadline."""
        pending.armed = True
        self._deadlines.append((self.clock.seconds() + self.interval, session, pending,
                                pending.sends))
        if self._call is None and not self._expiring:
            self._schedule()

    def stop(self):
        """Forget every deadline and cancel the delayed call."""
        self._deadlines.clear()
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def _schedule(self):
        deadlines = self._deadlines
        while deadlines and not _live(deadlines[0]):
            deadlines.popleft()
        if not deadlines:
            self._call = None
            return
        self._call_at = deadlines[0][0]
        self._call = self.clock.callLater(max(0.0, self._call_at - self.clock.seconds()),
                                          self._expire)

    def _expire(self):
        self._call = None
        # Everything due by the time this call was set for (the clock may land a hair
        # before it: float arithmetic).
        due = max(self.clock.seconds(), self._call_at)
        deadlines = self._deadlines
        expired = []
        while deadlines and deadlines[0][0] <= due:
            entry = deadlines.popleft()
            if _live(entry):
                entry[2].armed = False
                expired.append(entry)
        self._expiring = True
        try:
            for _, session, pending, _ in expired:
                session._ack_timeout(pending)
        finally:
            self._expiring = False
            self._schedule()


def _live(entry):
    """Whether a deadline entry still counts: armed and not superseded by a resend."""
    pending = entry[2]
    return pending.armed and pending.sends == entry[3]


class NodeSession:
    """Delivery state of one connection of one node.

    ``events`` receives ``session_acked(session, message, key)``,
    ``session_undelivered(session, message, reason)`` and ``session_expired(session)``.
    ``ack_timer`` is an :class:`AckTimer` of ``ack_interval`` shared with other sessions;
    without one the session makes its own.
    """

    def __init__(self, node, clock, write, events, *, keepalive_interval,
                 queue_size=DEFAULT_QUEUE_SIZE, window=DEFAULT_WINDOW,
                 ack_interval=ACK_INTERVAL, ack_max_sends=ACK_MAX_SENDS, ack_timer=None):
        self.node = node
        self.clock = clock
        self._write = write
        self._events = events
        self.keepalive_interval = keepalive_interval
        self.queue_size = queue_size
        self.window = window
        self.ack_interval = ack_interval
        self.ack_max_sends = ack_max_sends
        self._own_ack_timer = ack_timer is None
        if ack_timer is None:
            ack_timer = AckTimer(clock, ack_interval)
        elif ack_timer.interval != ack_interval:
            raise ValueError("ack_timer interval {} is not ack_interval {}".format(
                ack_timer.interval, ack_interval))
        self._ack_timer = ack_timer
        self._queue = collections.OrderedDict()
        self._pending = {}
        self._paused = False
        self._closed = False
        self._pumping = False
        self._keepalive = self.clock.callLater(keepalive_interval, self._expire)
        self.stats = {"sent": 0, "resent": 0, "acked": 0, "undelivered": 0, "collapsed": 0}

    # -- keepalive ----------------------------------------------------------------------------

    def keepalive(self):
        """The edge said it is alive: push the deadline back (a new deadline after one
        that passed without expiring the session)."""
        if self._keepalive is not None and self._keepalive.active():
            self._keepalive.reset(self.keepalive_interval)
        elif self._keepalive is None and not self._closed:
            self._keepalive = self.clock.callLater(self.keepalive_interval, self._expire)

    def _expire(self):
        self._keepalive = None
        self._events.session_expired(self)

    # -- outbound -----------------------------------------------------------------------------

    @property
    def queued(self):
        """How many messages wait to be written."""
        return len(self._queue)

    @property
    def awaiting_ack(self):
        """How many written messages wait for their ACK."""
        return len(self._pending)

    def enqueue(self, message):
        """Queue ``message`` (edge-local resource form) for the node.

        Returns False, after reporting it undelivered, when the queue is full.
        """
        if self._closed:
            self._undelivered(message, "node connection closed")
            return False
        key = object_key(message)
        if key is not None and key in self._queue:
            queued = self._queue[key]
            old, new = _rv(queued.resource_version), _rv(message.resource_version)
            self.stats["collapsed"] += 1
            if old is not None and new is not None and new < old:
                return True  # an older event than the one queued: drop it (reference 2.7)
            self._queue[key] = message
            return True
        if len(self._queue) >= self.queue_size:
            self._undelivered(message, "node queue full ({} messages)".format(self.queue_size))
            return False
        self._queue[key if key is not None else "id:" + message.msg_id] = message
        self.pump()
        return True

    def pause(self):
        """The transport's buffer is full: stop writing."""
        self._paused = True

    def resume(self):
        """The transport drained: write again."""
        self._paused = False
        self.pump()

    def pump(self):
        """Write queued messages while the window and the transport allow."""
        if self._pumping:
            return
        self._pumping = True
        try:
            while (self._queue and not self._paused and not self._closed
                   and len(self._pending) < self.window):
                key, message = self._queue.popitem(last=False)
                if needs_ack(message):
                    pending = _Pending(message, key if not key.startswith("id:") else None)
                    self._pending[message.msg_id] = pending
                    self._send_pending(pending)
                else:
                    self._write(message)
                    self.stats["sent"] += 1
        finally:
            self._pumping = False

    def _send_pending(self, pending):
        pending.sends += 1
        if pending.sends > 1:
            self.stats["resent"] += 1
        self.stats["sent"] += 1
        self._ack_timer.arm(self, pending)
        self._write(pending.message)

    def _ack_timeout(self, pending):
        """Called by the :class:`AckTimer` when ``pending``'s deadline passed."""
        if self._closed or self._pending.get(pending.message.msg_id) is not pending:
            return
        if pending.sends >= self.ack_max_sends:
            del self._pending[pending.message.msg_id]
            self._undelivered(pending.message, "no ACK after {} sends".format(pending.sends))
            self.pump()
            return
        self._send_pending(pending)

    def ack(self, parent_msg_id):
        """The edge answered ``parent_msg_id``; True when that was a message awaiting ACK."""
        pending = self._pending.pop(parent_msg_id, None)
        if pending is None:
            return False
        pending.armed = False
        self.stats["acked"] += 1
        self._events.session_acked(self, pending.message, pending.key)
        self.pump()
        return True

    def _undelivered(self, message, reason):
        self.stats["undelivered"] += 1
        self._events.session_undelivered(self, message, reason)

    def close(self, reason):
        """The connection is gone: cancel timers and report what was not delivered."""
        if self._closed:
            return
        self._closed = True
        if self._keepalive is not None and self._keepalive.active():
            self._keepalive.cancel()
        self._keepalive = None
        pending, self._pending = list(self._pending.values()), {}
        queued, self._queue = list(self._queue.values()), collections.OrderedDict()
        for item in pending:
            item.armed = False
        if self._own_ack_timer:
            self._ack_timer.stop()
        for item in pending:
            self._undelivered(item.message, reason)
        for message in queued:
            if needs_ack(message):
                self._undelivered(message, reason)
