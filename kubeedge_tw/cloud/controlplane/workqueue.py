"""client-go's rate-limited work queue, on the injected clock.

Controllers put *keys* (``namespace/name``) in a :class:`WorkQueue`, never objects: the
worker reads the current state from the informer cache when it runs, so ten changes to one
object while it waits cost one sync. The semantics are those of
``k8s.io/client-go/util/workqueue``:

* a key is queued at most once (``add`` of a queued key does nothing);
* a key is processed by one worker at a time; added again while processing, it runs again
  once the current run ends;
* at most ``concurrency`` keys are processed at once (the controller's ``--concurrent-*``
  flag);
* ``add_after(key, seconds)`` queues later (the earliest wins);
* a run that fails is retried after a per-key exponential backoff
  (``ItemExponentialFailureRateLimiter``: ``base * 2**failures`` capped at ``max_delay``)
  and logged; a run that succeeds forgets the key's failures.

``process(key)`` may return a Deferred (or be a coroutine function: it is wrapped with
``Deferred.fromCoroutine``). :meth:`WorkQueue.stop` cancels the runs in flight and every
timer, leaving nothing on the reactor.
"""

import collections
import inspect

from twisted.internet import defer
from twisted.logger import Logger

from kubeedge_tw.cloud.k8s import K8sError

__all__ = ["WorkQueue"]


class WorkQueue:
    """A de-duplicating, rate-limited queue of keys with bounded concurrency; see the module
    docstring."""

    log = Logger()

    def __init__(self, clock, process, name, concurrency=5, base_delay=0.005, max_delay=300.0):
        """``process(key)`` syncs one key; ``name`` appears in log lines."""
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1, got {}".format(concurrency))
        self.clock = clock
        self.process = process
        self.name = name
        self.concurrency = concurrency
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._queue = collections.deque()
        self._dirty = set()          # keys waiting to run (queued or re-added while running)
        self._processing = {}        # key -> Deferred of the run in flight
        self._delayed = {}           # key -> (fire time, DelayedCall)
        self._failures = collections.Counter()
        self._pump_call = None
        self._running = False
        self._stopping = False

    # -- public ---------------------------------------------------------------------------

    def __len__(self):
        """Keys waiting to run (not counting those in flight or delayed)."""
        return len(self._queue)

    @property
    def in_flight(self):
        """How many keys are being processed now."""
        return len(self._processing)

    @property
    def idle(self):
        """Nothing queued, delayed or in flight."""
        return not self._queue and not self._processing and not self._delayed

    def start(self):
        """Begin processing (keys added before are kept and run now)."""
        self._running = True
        self._stopping = False
        self._schedule_pump()

    def add(self, key):
        """Queue ``key`` (once)."""
        if self._stopping or key in self._dirty:
            return
        self._dirty.add(key)
        if key in self._processing:
            return  # queued again when the current run ends
        self._queue.append(key)
        self._schedule_pump()

    def add_after(self, key, delay):
        """Queue ``key`` after ``delay`` seconds (at once when ``delay <= 0``); of several
        pending delays the earliest wins."""
        if self._stopping:
            return
        if delay <= 0:
            self._cancel_delayed(key)
            self.add(key)
            return
        due = self.clock.seconds() + delay
        pending = self._delayed.get(key)
        if pending is not None:
            if pending[0] <= due:
                return
            pending[1].cancel()
        self._delayed[key] = (due, self.clock.callLater(delay, self._fire_delayed, key))

    def add_rate_limited(self, key):
        """Queue ``key`` after its backoff (grows with each call until :meth:`forget`)."""
        self.add_after(key, self.when(key))

    def when(self, key):
        """The backoff for ``key``'s next rate-limited add, and count it."""
        failures = self._failures[key]
        self._failures[key] += 1
        return min(self.base_delay * (2 ** min(failures, 60)), self.max_delay)

    def forget(self, key):
        """Reset ``key``'s backoff."""
        self._failures.pop(key, None)

    def num_requeues(self, key):
        """How many rate-limited adds ``key`` had since it was last forgotten."""
        return self._failures[key]

    def stop(self):
        """Stop: cancel the runs in flight, the pump and every delayed add; returns a
        Deferred that fires once the cancelled runs have ended."""
        self._running = False
        self._stopping = True
        if self._pump_call is not None and self._pump_call.active():
            self._pump_call.cancel()
        self._pump_call = None
        for _, call in self._delayed.values():
            if call.active():
                call.cancel()
        self._delayed.clear()
        self._queue.clear()
        self._dirty.clear()
        runs = list(self._processing.values())
        for d in runs:
            d.cancel()
        return defer.DeferredList(runs, consumeErrors=True)

    # -- machinery ----------------------------------------------------------------------------

    def _cancel_delayed(self, key):
        pending = self._delayed.pop(key, None)
        if pending is not None and pending[1].active():
            pending[1].cancel()

    def _fire_delayed(self, key):
        self._delayed.pop(key, None)
        self.add(key)

    def _schedule_pump(self):
        # One pump per reactor turn: a burst of informer events becomes one batch.
        if self._running and self._pump_call is None and self._queue:
            self._pump_call = self.clock.callLater(0, self._pump)

    def _pump(self):
        self._pump_call = None
        while self._running and self._queue and len(self._processing) < self.concurrency:
            key = self._queue.popleft()
            self._dirty.discard(key)
            self._run(key)

    def _run(self, key):
        try:
            result = self.process(key)
            if inspect.iscoroutine(result):
                result = defer.Deferred.fromCoroutine(result)
            d = defer.maybeDeferred(lambda: result)
        except Exception:
            d = defer.fail()
        self._processing[key] = d
        d.addCallbacks(self._done, self._failed, callbackArgs=(key,), errbackArgs=(key,))

    def _done(self, _, key):
        self._finish(key)
        self.forget(key)

    def _failed(self, failure, key):
        self._finish(key)
        if failure.check(defer.CancelledError) and self._stopping:
            return None
        delay = self.when(key)
        if failure.check(K8sError):
            # An API answer (a Conflict on a stale object, a timeout): expected now and then,
            # the retry reads the fresh state.
            self.log.info("{queue}: sync of {key} failed: {error}; retrying in {delay:.3f}s",
                          queue=self.name, key=key, error=failure.value, delay=delay,
                          log_event="controlplane_sync_retry")
        else:
            self.log.failure("{queue}: sync of {key} failed; retrying in {delay:.3f}s",
                             failure, queue=self.name, key=key, delay=delay,
                             log_event="controlplane_sync_failed")
        if self._running:
            self.add_after(key, delay)
        return None

    def _finish(self, key):
        self._processing.pop(key, None)
        if key in self._dirty and self._running:
            self._queue.append(key)
        if self._running:
            if self._queue and self._pump_call is None:
                self._schedule_pump()
