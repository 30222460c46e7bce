"""Verification of the test doubles in ``fakes``: they behave like the real parts they
stand in for, as far as the API server's code uses them."""

from twisted.internet import defer, reactor, threads
from twisted.python import threadpool
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.cloud.apiserver.fakes import ManualThreadPool, ThreadlessReactor


def double(x):
    """Work for a pool."""
    return x * 2


def explode(x):
    """Failing work for a pool."""
    raise ValueError(x)


class ManualThreadPoolTests(SynchronousTestCase):
    """The manual pool reports results exactly as deferToThreadPool expects."""

    def test_success_and_failure(self):
        """Results and exceptions reach the Deferred as with a real pool."""
        clock = ThreadlessReactor()
        pool = ManualThreadPool()
        self.assertEqual(self.successResultOf(
            threads.deferToThreadPool(clock, pool, double, 21)), 42)
        self.failureResultOf(threads.deferToThreadPool(clock, pool, explode, 1), ValueError)

    def test_manual_mode_queues(self):
        """Without ``immediate`` work waits for run_pending, in order."""
        clock = ThreadlessReactor()
        pool = ManualThreadPool(immediate=False)
        first = threads.deferToThreadPool(clock, pool, double, 1)
        second = threads.deferToThreadPool(clock, pool, double, 2)
        self.assertNoResult(first)
        self.assertEqual(pool.run_pending(), 2)
        self.assertEqual((self.successResultOf(first), self.successResultOf(second)), (2, 4))

    def test_reactor_triggers(self):
        """System event triggers can be added and removed; unknown ids raise."""
        clock = ThreadlessReactor()
        trigger = clock.addSystemEventTrigger("during", "shutdown", lambda: None)
        clock.removeSystemEventTrigger(trigger)
        self.assertRaises(KeyError, clock.removeSystemEventTrigger, trigger)


class RealPoolAgreementTests(TestCase):
    """The same calls through a real ThreadPool give the same outcomes."""

    @defer.inlineCallbacks
    def test_real_pool_same_outcomes(self):
        """Success values and exception types match the manual pool's."""
        pool = threadpool.ThreadPool(1, 1)
        pool.start()
        self.addCleanup(pool.stop)
        value = yield threads.deferToThreadPool(reactor, pool, double, 21)
        self.assertEqual(value, 42)
        with self.assertRaises(ValueError):
            yield threads.deferToThreadPool(reactor, pool, explode, 1)
