"""The work queue: dedup, one run per key, bounded concurrency, backoff, clean stop."""

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from kubeedge_tw.cloud.controlplane.workqueue import WorkQueue
from kubeedge_tw.cloud.k8s import Conflict


class Recorder:
    """A process function whose runs stay pending until the test fires them."""

    def __init__(self):
        self.runs = []
        self.pending = {}

    def __call__(self, key):
        self.runs.append(key)
        d = defer.Deferred()
        self.pending.setdefault(key, []).append(d)
        return d

    def finish(self, key, failure=None):
        d = self.pending[key].pop(0)
        if failure is None:
            d.callback(None)
        else:
            d.errback(failure)


class WorkQueueTests(SynchronousTestCase):
    """client-go workqueue semantics on a Clock."""

    def setUp(self):
        self.clock = Clock()
        self.process = Recorder()
        self.queue = WorkQueue(self.clock, self.process, "test", concurrency=2)
        self.queue.start()

    def tearDown(self):
        self.successResultOf(self.queue.stop())
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_dedup(self):
        """A key added three times before it runs runs once."""
        for _ in range(3):
            self.queue.add("a")
        self.clock.advance(0)
        self.assertEqual(self.process.runs, ["a"])

    def test_readd_while_running(self):
        """A key added while running runs again after, never twice at once."""
        self.queue.add("a")
        self.clock.advance(0)
        self.queue.add("a")
        self.clock.advance(0)
        self.assertEqual(self.process.runs, ["a"])
        self.process.finish("a")
        self.clock.advance(0)
        self.assertEqual(self.process.runs, ["a", "a"])
        self.process.finish("a")

    def test_concurrency(self):
        """At most ``concurrency`` keys run at once; the next starts when one ends."""
        for key in "abc":
            self.queue.add(key)
        self.clock.advance(0)
        self.assertEqual(self.process.runs, ["a", "b"])
        self.process.finish("a")
        self.clock.advance(0)
        self.assertEqual(self.process.runs, ["a", "b", "c"])
        self.process.finish("b")
        self.process.finish("c")

    def test_failure_backoff(self):
        """A failed run is retried after a doubling backoff; success forgets it."""
        self.queue.base_delay = 1.0
        self.queue.add("a")
        self.clock.advance(0)
        self.process.finish("a", Conflict("stale"))
        self.clock.advance(0.9)
        self.assertEqual(len(self.process.runs), 1)
        self.clock.advance(0.1)
        self.assertEqual(len(self.process.runs), 2)
        self.process.finish("a", Conflict("stale"))
        self.clock.advance(1.9)
        self.assertEqual(len(self.process.runs), 2)
        self.clock.advance(0.1)
        self.assertEqual(len(self.process.runs), 3)
        self.process.finish("a")
        self.assertEqual(self.queue.num_requeues("a"), 0)

    def test_add_after_earliest_wins(self):
        """Of two delays the earlier one fires, once."""
        self.queue.add_after("a", 10)
        self.queue.add_after("a", 2)
        self.clock.advance(2)
        self.clock.advance(0)
        self.assertEqual(self.process.runs, ["a"])
        self.process.finish("a")
        self.clock.advance(10)
        self.assertEqual(self.process.runs, ["a"])

    def test_stop_cancels(self):
        """stop() cancels runs in flight and delayed adds, leaving nothing behind."""
        self.queue.add("a")
        self.queue.add_after("b", 5)
        self.clock.advance(0)
        self.successResultOf(self.queue.stop())
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertTrue(self.process.pending["a"][0].called)
        self.assertTrue(self.queue.idle)

    def test_synchronous_process(self):
        """A process function returning a plain value works, and coroutines too."""
        seen = []

        async def coroutine(key):
            seen.append(key)
        queue = WorkQueue(self.clock, coroutine, "sync", concurrency=1)
        queue.start()
        queue.add("x")
        queue.add("y")
        self.clock.advance(0)
        self.clock.advance(0)
        self.assertEqual(seen, ["x", "y"])
        self.successResultOf(queue.stop())
