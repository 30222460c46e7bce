"""Keeps CloudHub's long-lived connection objects out of the garbage collector's full passes.

A connected edge costs the cloud a few hundred tracked Python objects (the TCP and TLS
transports, the websocket protocol and its parser state, the node session) that live as
long as the connection, which is hours. With thousands of edges that is millions of
objects, and every full (generation 2) collection walks all of them: measured with
``bench/hub_bench.py`` at 10,000 edges, 300-600 ms during which the reactor does nothing,
once per fan-out of a pod update to every node.

:class:`LongLivedFreezer` moves them to the collector's permanent generation
(``gc.freeze()``) once a burst of connections has settled, so full collections walk only
what was allocated since. Freezing is a list splice (it costs nothing at any size), but a
frozen object in a reference cycle is not reclaimed when it becomes garbage; plain
reference counting still frees everything else. A closed connection leaves such cycles
behind, so after ``max_churn`` connections (or ``churn_fraction`` of those frozen) closed
while frozen, the next settle unfreezes, runs one full collection to reclaim them and
freezes again: at most one full pass per that much churn, instead of one whenever the
heap grows by a quarter.

Before each freeze the young generations are collected (cheap) so that short-lived
cyclic garbage is not frozen along. The collector is injected (the :mod:`gc` module in
production) and so is the clock, so the policy is tested deterministically.
"""

import gc

from twisted.logger import Logger

__all__ = ["LongLivedFreezer", "SETTLE_SECONDS", "MIN_CHURN", "CHURN_FRACTION"]

#: Seconds after a connection opens or closes before the policy runs (a ramp of thousands
#: of edges gets a few freezes, not one per connection).
SETTLE_SECONDS = 10.0
#: Closed-while-frozen connections that always allow a reclaiming collection.
MIN_CHURN = 64
#: ... or this fraction of the connections frozen, whichever is larger.
CHURN_FRACTION = 0.05


class LongLivedFreezer:
    """The freeze policy; CloudHub calls :meth:`opened` and :meth:`closed` with the number
    of connected nodes after the change, and :meth:`stop` when it stops.

    ``collector`` needs ``freeze()``, ``unfreeze()``, ``collect(generation)`` and
    ``get_freeze_count()`` (the :mod:`gc` module)."""

    log = Logger()

    def __init__(self, clock, *, collector=gc, settle=SETTLE_SECONDS, min_churn=MIN_CHURN,
                 churn_fraction=CHURN_FRACTION):
        self.clock = clock
        self.collector = collector
        self.settle = settle
        self.min_churn = min_churn
        self.churn_fraction = churn_fraction
        self.connected = 0
        #: Connections open at the last freeze, and how many of those closed since.
        self.frozen_connections = 0
        self.closed_while_frozen = 0
        self._opened_since_freeze = False
        self._call = None
        self._stopped = False
        self.stats = {"freezes": 0, "reclaims": 0, "reclaim_seconds_max": 0.0}

    def opened(self, connected):
        """A node connection opened; ``connected`` nodes are connected now."""
        self.connected = connected
        self._opened_since_freeze = True
        self._stopped = False
        self._schedule()

    def closed(self, connected):
        """A node connection closed; ``connected`` nodes are connected now."""
        self.connected = connected
        if self.frozen_connections:
            self.closed_while_frozen += 1
        self._schedule()

    def stop(self):
        """Cancel a pending run and schedule none for closes that follow (connections
        closing while CloudHub stops); what is frozen stays frozen. The next
        :meth:`opened` starts the policy again."""
        self._stopped = True
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def churn_limit(self):
        """Closed-while-frozen connections after which the next run reclaims."""
        return max(self.min_churn, int(self.churn_fraction * self.frozen_connections))

    def _schedule(self):
        if self._call is None and not self._stopped:
            self._call = self.clock.callLater(self.settle, self._run)

    def _run(self):
        self._call = None
        if self.frozen_connections and self.closed_while_frozen >= self.churn_limit():
            started = self.clock.seconds()
            self.collector.unfreeze()
            self.collector.collect(2)
            took = self.clock.seconds() - started
            self.stats["reclaims"] += 1
            self.stats["reclaim_seconds_max"] = max(self.stats["reclaim_seconds_max"], took)
            self.log.info("cloudhub collected garbage of {closed} closed connections "
                          "(full collection, {ms:.0f} ms)", closed=self.closed_while_frozen,
                          ms=took * 1000, log_event="cloudhub_gc_reclaim")
            self.closed_while_frozen = 0
            self.frozen_connections = 0
            self._opened_since_freeze = True
        if not self._opened_since_freeze:
            return
        self.collector.collect(1)
        self.collector.freeze()
        self.stats["freezes"] += 1
        self._opened_since_freeze = False
        self.frozen_connections = max(self.frozen_connections, self.connected)
        self.log.debug("cloudhub froze long-lived objects ({count} frozen, {nodes} nodes)",
                       count=self.collector.get_freeze_count(), nodes=self.connected)
