"""The client-side token bucket, timed on a Clock."""

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from kubeedge_tw.cloud.k8s.ratelimit import TokenBucket


class TokenBucketTests(SynchronousTestCase):
    """qps/burst semantics of client-go's token bucket limiter."""

    def setUp(self):
        self.clock = Clock()

    def fired(self, ds):
        return [d.called for d in ds]

    def test_burst_is_immediate(self):
        """A full bucket lets ``burst`` requests through at once, then makes them wait."""
        bucket = TokenBucket(self.clock, qps=2, burst=3)
        ds = [bucket.acquire() for _ in range(4)]
        self.assertEqual(self.fired(ds), [True, True, True, False])
        self.assertEqual(bucket.waiting, 1)

    def test_refill_at_qps(self):
        """Waiters are released one per 1/qps seconds, in order."""
        bucket = TokenBucket(self.clock, qps=2, burst=1)
        ds = [bucket.acquire() for _ in range(3)]
        self.assertEqual(self.fired(ds), [True, False, False])
        self.clock.advance(0.49)
        self.assertEqual(self.fired(ds), [True, False, False])
        self.clock.advance(0.01)
        self.assertEqual(self.fired(ds), [True, True, False])
        self.clock.advance(0.5)
        self.assertEqual(self.fired(ds), [True, True, True])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_sustained_rate(self):
        """Over 10 s at qps 5 (burst 5) 5 + 50 requests get through."""
        bucket = TokenBucket(self.clock, qps=5, burst=5)
        ds = [bucket.acquire() for _ in range(100)]
        self.clock.pump([1] * 10)
        self.assertEqual(sum(self.fired(ds)), 55)
        bucket.stop()
        for d in ds[55:]:
            self.failureResultOf(d, defer.CancelledError)

    def test_idle_refills_up_to_burst(self):
        """An idle bucket refills, but never beyond burst."""
        bucket = TokenBucket(self.clock, qps=10, burst=2)
        bucket.acquire(), bucket.acquire()
        self.clock.advance(100)
        self.assertEqual(bucket.tokens, 2)
        ds = [bucket.acquire() for _ in range(3)]
        self.assertEqual(self.fired(ds), [True, True, False])
        bucket.stop()
        self.failureResultOf(ds[2], defer.CancelledError)

    def test_cancel_leaves_the_queue(self):
        """A cancelled acquire leaves the queue; the last one cancels the timer."""
        bucket = TokenBucket(self.clock, qps=1, burst=1)
        bucket.acquire()
        d1, d2 = bucket.acquire(), bucket.acquire()
        d1.cancel()
        self.failureResultOf(d1, defer.CancelledError)
        self.clock.advance(1)
        self.assertTrue(d2.called)
        d3 = bucket.acquire()
        d3.cancel()
        self.failureResultOf(d3, defer.CancelledError)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_stop(self):
        """stop() fails every waiter with CancelledError and leaves no delayed call."""
        bucket = TokenBucket(self.clock, qps=1, burst=1)
        bucket.acquire()
        waiting = [bucket.acquire() for _ in range(3)]
        bucket.stop()
        for d in waiting:
            self.failureResultOf(d, defer.CancelledError)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_bad_parameters(self):
        """qps <= 0 or burst < 1 is refused."""
        self.assertRaises(ValueError, TokenBucket, self.clock, 0, 1)
        self.assertRaises(ValueError, TokenBucket, self.clock, 1, 0)
