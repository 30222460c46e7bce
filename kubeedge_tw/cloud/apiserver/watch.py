"""Watches: a stream of ``{"type": ..., "object": ...}`` events for one resource.

A :class:`Watch` starts from a resourceVersion like kube-apiserver's watch cache:

* none or ``"0"``: synthetic ``ADDED`` events for every matching object (a consistent
  snapshot), then every later change;
* a number: every change after it, from the store's watch log; a version the log no
  longer reaches gives one ``ERROR`` event carrying a 410 ``Expired`` Status ("too old
  resource version"), which is how kube-apiserver reports it on a watch and what
  client-go's reflector relists on.

It subscribes to the store *before* reading the snapshot or the log, buffering live
changes meanwhile, then delivers each resourceVersion once, in order, so nothing is lost
or doubled between the two. Selectors apply to every event; an object that stops (starts)
matching is sent as ``DELETED`` (``ADDED``), as kube-apiserver does. With
``allowWatchBookmarks`` a ``BOOKMARK`` carrying the latest resourceVersion is sent every
``bookmark_interval`` seconds. The watch ends after its timeout, when the client goes
away, or when the server stops. Every timer is on the injected clock.
"""

import json

from twisted.internet import defer, task
from twisted.logger import Logger

from kubeedge_tw.cloud.apiserver import errors

__all__ = ["Watch", "BOOKMARK_INTERVAL"]

#: Seconds between bookmarks (kube-apiserver sends one about every minute).
BOOKMARK_INTERVAL = 60.0


class Watch:
    """One watch; ``emit(type, json_bytes, obj)`` writes an event, ``finish()`` ends the
    response. ``start(resource_version)`` fires once the initial events are written."""

    log = Logger()

    def __init__(self, store, server, rtype, namespace, label_selector, field_selector,
                 emit, finish, clock, timeout, bookmarks=False,
                 bookmark_interval=BOOKMARK_INTERVAL):
        """Watch ``rtype`` objects in ``namespace`` (all when empty) matching the
        selectors; end after ``timeout`` seconds."""
        self.store = store
        self.server = server
        self.rtype = rtype
        self.namespace = namespace if rtype.namespaced else ""
        self.label_selector = label_selector
        self.field_selector = field_selector
        self._emit = emit
        self._finish = finish
        self.clock = clock
        self.timeout = timeout
        self.bookmarks = bookmarks
        self.bookmark_interval = bookmark_interval
        self.last_rv = 0
        self.stopped = False
        self._buffer = []
        self._buffering = True
        self._timer = None
        self._bookmark_loop = None
        self._filtering = not label_selector.empty() or not field_selector.empty()

    # -- matching ------------------------------------------------------------------------

    def _matches(self, obj):
        if obj is None:
            return False
        if self.namespace and (obj.get("metadata") or {}).get("namespace") != self.namespace:
            return False
        if not self._filtering:
            return True
        if not self.label_selector.matches((obj.get("metadata") or {}).get("labels")):
            return False
        return self.field_selector.matches(lambda f: self.rtype.field(obj, f))

    # -- life cycle ----------------------------------------------------------------------

    @defer.inlineCallbacks
    def start(self, resource_version):
        """Send the initial events for ``resource_version`` (a string: ``""``, ``"0"`` or
        a number) and go live."""
        if resource_version not in ("", "0"):
            try:
                since = int(resource_version)
            except ValueError:
                raise errors.bad_request("invalid resource version {!r}".format(
                    resource_version))
        else:
            since = None
        self.store.subscribe(self._on_change)
        try:
            if since is None:
                rv, items, _ = yield self.server.list(
                    self.rtype, self.namespace, self.label_selector, self.field_selector)
                if self.stopped:
                    return
                for text, obj in items:
                    self._emit("ADDED", text, obj)
                self.last_rv = rv
            else:
                try:
                    changes = yield self.store.changes_since(self.rtype.key, since)
                except errors.APIError as e:
                    if e.code != 410 or self.stopped:
                        raise
                    self._emit("ERROR", None, e.to_status())
                    self.stop()
                    return
                if self.stopped:
                    return
                self.last_rv = since
                for change in changes:
                    self._deliver(change)
        except BaseException:
            self.store.unsubscribe(self._on_change)
            raise
        buffered, self._buffer = self._buffer, []
        self._buffering = False
        for change in buffered:
            self._deliver(change)
        if self.stopped:
            return
        self._timer = self.clock.callLater(self.timeout, self.stop)
        if self.bookmarks:
            self._bookmark_loop = task.LoopingCall(self._bookmark)
            self._bookmark_loop.clock = self.clock
            self._bookmark_loop.start(self.bookmark_interval, now=False)

    def stop(self, write=True):
        """End the watch: stop timers, unsubscribe, end the response (unless ``write``
        is False because the client is gone)."""
        if self.stopped:
            return
        self.stopped = True
        self.store.unsubscribe(self._on_change)
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if self._bookmark_loop is not None and self._bookmark_loop.running:
            self._bookmark_loop.stop()
        self._bookmark_loop = None
        if write:
            self._finish()

    # -- events --------------------------------------------------------------------------

    def _on_change(self, change):
        if change.resource != self.rtype.key or self.stopped:
            return
        if self._buffering:
            self._buffer.append(change)
        else:
            self._deliver(change)

    def _deliver(self, change):
        if change.rv <= self.last_rv:
            return
        self.last_rv = change.rv
        if self.namespace and change.namespace != self.namespace:
            return
        if not self._filtering:
            self._emit(change.type, change.text, change.obj)
            return
        now_matches = self._matches(change.obj)
        if change.type == "MODIFIED" and change.prev is not None:
            before = self._matches(change.prev)
            if now_matches and not before:
                self._emit("ADDED", change.text, change.obj)
            elif before and not now_matches:
                self._emit("DELETED", change.text, change.obj)
            elif now_matches:
                self._emit("MODIFIED", change.text, change.obj)
        elif now_matches:
            self._emit(change.type, change.text, change.obj)

    def _bookmark(self):
        rv = max(self.last_rv, self.store.current_rv or 0)
        obj = {"kind": self.rtype.kind, "apiVersion": self.rtype.api_version,
               "metadata": {"resourceVersion": str(rv)}}
        self._emit("BOOKMARK", json.dumps(obj, separators=(",", ":")).encode("utf-8"), obj)
