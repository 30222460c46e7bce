"""Watch streams: decoding chunked watch events and running one watch.

A Kubernetes watch is a ``GET ...?watch=true`` whose chunked response body is a sequence
of JSON objects, one per line: ``{"type": "ADDED", "object": {...}}``. Chunk boundaries
have nothing to do with event boundaries: an event may be split over several chunks and
one chunk may hold several events. :class:`WatchDecoder` turns body bytes into events;
:class:`Watch` feeds a response body through it into a callback and reports how the
stream ended.

Event types are client-go's (``watch.EventType``): ``ADDED``, ``MODIFIED``, ``DELETED``,
``BOOKMARK`` and ``ERROR``, whose object is a ``Status``; an ``ERROR`` ends the watch
with the matching :class:`~kubeedge_tw.cloud.k8s.errors.K8sError` (``Gone`` for a
compacted resourceVersion, which an informer answers with a relist).
"""

import json

from twisted.internet import defer
from twisted.internet.protocol import Protocol
from twisted.web.client import ResponseDone
from twisted.web.http import PotentialDataLoss

from kubeedge_tw.cloud.k8s.errors import (
    K8sConnectionError, K8sError, WatchDecodeError, error_from_status)

__all__ = ["WatchDecoder", "Watch", "EVENT_TYPES", "MAX_EVENT_SIZE"]

#: Event types a watch stream may carry.
EVENT_TYPES = frozenset({"ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"})

#: Largest single event accepted (bytes). etcd caps objects at 1.5 MiB; JSON escaping
#: and the event envelope add some, so this leaves ample room while bounding memory.
MAX_EVENT_SIZE = 16 * 1024 * 1024


class WatchDecoder:
    """Incremental decoder: ``feed(bytes)`` returns the complete events seen so far.

    Each event is ``(type, object)``. A partial line is kept until its newline arrives.
    A line that is not a watch event raises :class:`WatchDecodeError`, as does a partial
    line longer than ``max_event_size``.
    """

    def __init__(self, max_event_size=MAX_EVENT_SIZE):
        """An empty decoder."""
        self._buffer = b""
        self.max_event_size = max_event_size

    @property
    def pending(self):
        """Bytes of an incomplete event held back (``b""`` between events)."""
        return self._buffer

    def feed(self, data):
        """Add body bytes; return the list of ``(type, object)`` events they complete."""
        buffer = self._buffer + data
        lines = buffer.split(b"\n")
        self._buffer = lines.pop()
        if len(self._buffer) > self.max_event_size:
            size, self._buffer = len(self._buffer), b""
            raise WatchDecodeError("watch event larger than {} bytes (at least {})".format(
                self.max_event_size, size))
        events = []
        for line in lines:
            line = line.strip()
            if line:
                events.append(decode_event(line))
        return events

    def finish(self):
        """The stream ended: decode a last event that had no newline (``[]`` if none)."""
        rest, self._buffer = self._buffer.strip(), b""
        return [decode_event(rest)] if rest else []


def decode_event(line):
    """One watch event from one JSON line (bytes): ``(type, object)``."""
    try:
        event = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise WatchDecodeError("watch stream: not JSON ({}): {!r}".format(
            e, line[:80])) from None
    if not isinstance(event, dict):
        raise WatchDecodeError("watch stream: event is not an object: {!r}".format(line[:80]))
    etype, obj = event.get("type"), event.get("object")
    if etype not in EVENT_TYPES:
        raise WatchDecodeError("watch stream: unknown event type {!r}".format(etype))
    if not isinstance(obj, dict):
        raise WatchDecodeError("watch stream: {} event without an object".format(etype))
    return etype, obj


class _WatchBody(Protocol):
    """Receives the response body of one watch and hands it to its :class:`Watch`."""

    def __init__(self, watch):
        self.watch = watch

    def dataReceived(self, data):
        """Body bytes: decode and deliver."""
        self.watch._data(data)

    def connectionLost(self, reason):
        """The body ended (``ResponseDone``) or broke."""
        self.watch._ended(reason)


class Watch:
    """One running watch on a response: events go to ``on_event(type, object)``.

    ``done`` is a Deferred that fires when the stream is over:

    * with ``None`` when the server ended it (``timeoutSeconds`` reached, server shut
      down cleanly) or :meth:`stop` was called;
    * with a :class:`K8sError` failure for an ``ERROR`` event (:class:`Gone` for 410);
    * with :class:`K8sConnectionError` when the connection broke mid-stream;
    * with :class:`WatchDecodeError` when the stream carried garbage;
    * with the exception ``on_event`` raised, if it raised (the stream is closed).

    Cancelling ``done`` closes the stream and fails it with ``CancelledError``.
    ``events`` counts events delivered (bookmarks included).
    """

    def __init__(self, response, on_event, description="watch"):
        """Start reading ``response`` (a treq/``IResponse`` with status 200)."""
        self.description = description
        self.events = 0
        self.done = defer.Deferred(self._cancel)
        self._on_event = on_event
        self._decoder = WatchDecoder()
        self._finished = False
        self._body = _WatchBody(self)
        response.deliverBody(self._body)

    def _close_stream(self):
        transport = self._body.transport
        if transport is not None:
            transport.stopProducing()

    def _finish(self, result):
        if self._finished:
            return
        self._finished = True
        if isinstance(result, Exception):
            self.done.errback(result)
        else:
            self.done.callback(result)

    def _fail_and_close(self, error):
        self._finish(error)
        self._close_stream()

    def _cancel(self, d):
        # Deferred canceller: mark finished so the connectionLost that follows is ignored;
        # the Deferred machinery errbacks ``done`` with CancelledError.
        self._finished = True
        self._close_stream()

    def stop(self):
        """Close the stream from our side; ``done`` fires with ``None``."""
        if not self._finished:
            self._finish(None)
            self._close_stream()

    def _data(self, data):
        if self._finished:
            return
        try:
            events = self._decoder.feed(data)
        except WatchDecodeError as e:
            self._fail_and_close(e)
            return
        self._deliver(events)

    def _deliver(self, events):
        for etype, obj in events:
            if self._finished:
                return
            if etype == "ERROR":
                self._fail_and_close(error_from_status(obj))
                return
            self.events += 1
            try:
                self._on_event(etype, obj)
            except Exception as e:
                # The consumer failed: stop reading and hand its error to ``done``.
                self._fail_and_close(e)
                return

    def _ended(self, reason):
        if self._finished:
            return
        if reason.check(ResponseDone, PotentialDataLoss):
            try:
                self._deliver(self._decoder.finish())
            except WatchDecodeError as e:
                self._finish(e)
                return
            self._finish(None)
            return
        self._finish(connection_error(reason.value, self.description + " stream broke"))


def connection_error(exc, what):
    """A :class:`K8sConnectionError` describing a treq / ``twisted.web`` failure."""
    if isinstance(exc, K8sError):
        return exc
    reasons = getattr(exc, "reasons", None)  # ResponseFailed, ResponseNeverReceived ...
    if reasons:
        detail = "; ".join(_describe(getattr(r, "value", r)) for r in reasons)
    else:
        detail = _describe(exc)
    error = K8sConnectionError("{}: {}".format(what, detail))
    error.__cause__ = exc
    return error


def _describe(exc):
    text = str(exc)
    name = type(exc).__name__
    return "{}: {}".format(name, text) if text else name
