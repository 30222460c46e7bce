"""Events for ``kubectl describe`` and ``kubectl get events``: client-go's event recorder.

A controller holds an :class:`EventRecorder` (its ``source.component``:
``default-scheduler``, ``deployment-controller`` ...) and calls
``recorder.event(obj, "Normal", "Scheduled", "Successfully assigned default/web to n1")``;
it never waits for the write. All recorders of the control plane share one
:class:`EventSink`, which reproduces client-go's ``EventCorrelator`` so that events never
flood the API server:

* **spam filter** (``EventSourceObjectSpamFilter``): a token bucket per source, involved
  object, type and reason: 25 events at once, then one per 5 minutes; the rest are dropped;
* **aggregation** (``EventAggregator``): more than 10 events with the same source, object,
  type and reason but different messages within 10 minutes become one event whose message
  starts with ``(combined from similar events):``;
* **deduplication** (``eventLogger``): an event identical to a recent one (same source,
  object, type, reason and message) is not created again: the existing one's ``count``
  and ``lastTimestamp`` are patched (``kubectl describe`` shows ``x5 over 2m``);
* a **bounded queue** (1000 writes, as client-go's broadcaster) drained by a few
  concurrent requests; when the API server cannot keep up, new events are dropped and
  counted rather than queued without bound.

The caches are LRU-bounded (4096 entries, client-go's ``maxLruCacheEntries``). Times come
from the injected clock.
"""

import collections

from twisted.internet import defer
from twisted.logger import Logger

from kubeedge_tw.cloud.controlplane.util import format_time, meta
from kubeedge_tw.cloud.k8s import K8sError, NotFound

__all__ = ["EventSink", "EventRecorder", "NORMAL", "WARNING", "object_reference"]

NORMAL = "Normal"
WARNING = "Warning"

#: client-go's defaults (``tools/record/events_cache.go``).
SPAM_BURST = 25
SPAM_QPS = 1.0 / 300
AGGREGATE_MAX_EVENTS = 10
AGGREGATE_INTERVAL = 600
CACHE_SIZE = 4096
MAX_QUEUED = 1000
MAX_MESSAGE = 1024
COMBINED_PREFIX = "(combined from similar events): "


def object_reference(obj):
    """The ``v1.ObjectReference`` of ``obj`` (``reference.GetReference``)."""
    m = meta(obj)
    ref = {"kind": obj.get("kind"), "apiVersion": obj.get("apiVersion"),
           "name": m.get("name"), "uid": m.get("uid"),
           "resourceVersion": m.get("resourceVersion")}
    if m.get("namespace"):
        ref["namespace"] = m["namespace"]
    return {k: v for k, v in ref.items() if v}


class _LRU(collections.OrderedDict):
    """An ordered dict that forgets its oldest entry beyond ``size``."""

    def __init__(self, size):
        super().__init__()
        self.size = size

    def touch(self, key, value):
        """Set ``key`` and make it the newest."""
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


class _Bucket:
    """A token bucket read lazily on the clock (``flowcontrol.NewTokenBucketRateLimiter``
    without waiting: ``take`` says yes or no)."""

    __slots__ = ("tokens", "last")

    def __init__(self, now):
        self.tokens = float(SPAM_BURST)
        self.last = now

    def take(self, now):
        self.tokens = min(float(SPAM_BURST), self.tokens + (now - self.last) * SPAM_QPS)
        self.last = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class EventSink:
    """Correlates and writes events through the shared Kubernetes client; see the module
    docstring. ``kube`` is the :class:`~kubeedge_tw.cloud.kube.KubeContext`; nothing is
    written before it is ready or after :meth:`stop`."""

    log = Logger()

    def __init__(self, clock, kube, host="", concurrency=4, max_queued=MAX_QUEUED):
        """``host`` is ``source.host`` / ``reportingInstance``."""
        self.clock = clock
        self.kube = kube
        self.host = host
        self.concurrency = concurrency
        self.max_queued = max_queued
        self.dropped = 0
        self.written = 0
        self._spam = _LRU(CACHE_SIZE)
        self._aggregate = _LRU(CACHE_SIZE)
        self._dedup = _LRU(CACHE_SIZE)
        self._queue = collections.deque()
        self._in_flight = set()
        self._pump_call = None
        self._running = False
        self._closed = False
        self._seq = 0
        self._last_drop_log = None
        self._last_error_log = None

    def recorder(self, component):
        """An :class:`EventRecorder` with ``source.component`` ``component``."""
        return EventRecorder(self, component)

    @property
    def idle(self):
        """No write queued or in flight."""
        return not self._queue and not self._in_flight

    def start(self):
        """Start writing (events recorded before are kept)."""
        self._running = True
        self._schedule()

    def stop(self):
        """Stop: drop the queue and cancel writes in flight; a Deferred firing when they
        ended."""
        self._running = False
        self._closed = True
        if self._pump_call is not None and self._pump_call.active():
            self._pump_call.cancel()
        self._pump_call = None
        self._queue.clear()
        writes = list(self._in_flight)
        for d in writes:
            d.cancel()
        return defer.DeferredList(writes, consumeErrors=True)

    # -- correlation --------------------------------------------------------------------

    def record(self, component, obj, event_type, reason, message):
        """Correlate one event and queue its write (or drop it); see the module
        docstring."""
        if self._closed:
            return
        now = self.clock.seconds()
        ref = object_reference(obj)
        if len(message) > MAX_MESSAGE:
            message = message[:MAX_MESSAGE - 3] + "..."
        source = (component, self.host)
        involved = (ref.get("kind"), ref.get("namespace"), ref.get("name"), ref.get("uid"),
                    ref.get("apiVersion"))
        spam_key = source + involved + (event_type, reason)
        bucket = self._spam.get(spam_key)
        if bucket is None:
            bucket = _Bucket(now)
        self._spam.touch(spam_key, bucket)
        if not bucket.take(now):
            return
        aggregate_key = source + involved + (event_type, reason)
        seen = self._aggregate.get(aggregate_key)
        if seen is None or now - seen[1] > AGGREGATE_INTERVAL:
            seen = (set(), now)
        messages, _ = seen
        messages.add(message)
        self._aggregate.touch(aggregate_key, (messages, now))
        if len(messages) >= AGGREGATE_MAX_EVENTS:
            message = COMBINED_PREFIX + message
            dedup_key = aggregate_key + (COMBINED_PREFIX,)
        else:
            dedup_key = aggregate_key + (message,)
        stamp = format_time(now)
        previous = self._dedup.get(dedup_key)
        if previous is not None:
            name, namespace, count, first = previous
            count += 1
            self._dedup.touch(dedup_key, (name, namespace, count, first))
            self._enqueue(("patch", namespace, name, {
                "count": count, "lastTimestamp": stamp, "message": message},
                self._event(name, namespace, ref, component, event_type, reason, message,
                            first, stamp, count)))
            return
        self._seq += 1
        namespace = ref.get("namespace") or "default"
        name = "{}.{:x}".format(ref.get("name") or "unknown", int(now * 1e9) + self._seq)
        self._dedup.touch(dedup_key, (name, namespace, 1, stamp))
        self._enqueue(("create", namespace, name, None, self._event(
            name, namespace, ref, component, event_type, reason, message, stamp, stamp, 1)))

    def _event(self, name, namespace, ref, component, event_type, reason, message, first,
               last, count):
        source = {"component": component}
        if self.host:
            source["host"] = self.host
        return {"apiVersion": "v1", "kind": "Event",
                "metadata": {"name": name, "namespace": namespace},
                "involvedObject": ref, "reason": reason, "message": message,
                "source": source, "firstTimestamp": first, "lastTimestamp": last,
                "count": count, "type": event_type, "eventTime": None,
                "reportingComponent": component, "reportingInstance": self.host}

    # -- writing ----------------------------------------------------------------------------

    def _enqueue(self, write):
        if len(self._queue) >= self.max_queued:
            self.dropped += 1
            now = self.clock.seconds()
            if self._last_drop_log is None or now - self._last_drop_log >= 60:
                self._last_drop_log = now
                self.log.warn("event queue full ({size}): dropping events ({dropped} so far)",
                              size=self.max_queued, dropped=self.dropped,
                              log_event="controlplane_events_dropped")
            return
        self._queue.append(write)
        self._schedule()

    def _schedule(self):
        if self._running and self._pump_call is None and self._queue \
                and len(self._in_flight) < self.concurrency:
            self._pump_call = self.clock.callLater(0, self._pump)

    def _pump(self):
        self._pump_call = None
        client = self.kube.client
        if client is None:
            return
        while self._running and self._queue and len(self._in_flight) < self.concurrency:
            write = self._queue.popleft()
            d = defer.Deferred.fromCoroutine(self._write(client, *write))
            self._in_flight.add(d)
            d.addBoth(self._written, d)

    async def _write(self, client, op, namespace, name, patch, full):
        if op == "patch":
            try:
                await client.patch("events", name, patch, namespace=namespace)
                return
            except NotFound:
                pass  # expired or never created: write it whole (client-go does the same)
        await client.create("events", full, namespace=namespace)

    def _written(self, result, d):
        self._in_flight.discard(d)
        if not hasattr(result, "check"):
            self.written += 1
        elif not result.check(defer.CancelledError):
            now = self.clock.seconds()
            if self._last_error_log is None or now - self._last_error_log >= 10:
                self._last_error_log = now
                if result.check(K8sError):
                    self.log.warn("writing an event failed: {error}", error=result.value,
                                  log_event="controlplane_event_failed")
                else:
                    self.log.failure("writing an event failed", result,
                                     log_event="controlplane_event_failed")
        self._schedule()
        return None


class EventRecorder:
    """``record.EventRecorder`` for one component: ``event(obj, type, reason, message)``."""

    def __init__(self, sink, component):
        """Record through ``sink`` as ``component``."""
        self.sink = sink
        self.component = component

    def event(self, obj, event_type, reason, message):
        """Record an event about ``obj`` (a Kubernetes object with kind and metadata);
        returns at once."""
        self.sink.record(self.component, obj, event_type, reason, message)
