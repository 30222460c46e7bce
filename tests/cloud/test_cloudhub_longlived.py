"""Tests for CloudHub's long-lived object freezer: the policy on a Clock with a verified
fake collector, the fake checked against the real :mod:`gc`, and the policy once with
the real collector on a real reference cycle."""

import gc
import weakref

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from kubeedge_tw.cloud.cloudhub.longlived import LongLivedFreezer


class FakeCollector:
    """The part of :mod:`gc` the freezer uses. ``tracked`` objects are what a freeze
    moves to the permanent generation; ``calls`` records what was asked, in order."""

    def __init__(self, tracked=100):
        self.tracked = tracked
        self.frozen = 0
        self.calls = []

    def freeze(self):
        self.calls.append("freeze")
        self.frozen += self.tracked
        self.tracked = 0

    def unfreeze(self):
        self.calls.append("unfreeze")
        self.tracked += self.frozen
        self.frozen = 0

    def collect(self, generation=2):
        self.calls.append("collect({})".format(generation))
        return 0

    def get_freeze_count(self):
        return self.frozen


class Cycle:
    """Half of a reference cycle (what a closed connection leaves behind)."""


def make_cycle(holder=None):
    """A reference cycle, garbage unless ``holder`` (a list) keeps it; returns a weak
    reference to one of its objects."""
    a, b = Cycle(), Cycle()
    a.other, b.other = b, a
    if holder is not None:
        holder.append(a)
    return weakref.ref(a)


class CollectorContractMixin:
    """What the freezer relies on, checked against a real and a fake collector."""

    def collector(self):
        raise NotImplementedError

    def test_freeze_then_unfreeze(self):
        """freeze() leaves tracked objects counted as frozen; unfreeze() leaves none."""
        collector = self.collector()
        collector.freeze()
        self.assertGreater(collector.get_freeze_count(), 0)
        collector.unfreeze()
        self.assertEqual(collector.get_freeze_count(), 0)

    def test_collect_takes_a_generation(self):
        """collect(1) and collect(2) are accepted and return a count."""
        collector = self.collector()
        self.assertIsInstance(collector.collect(1), int)
        self.assertIsInstance(collector.collect(2), int)


class RealCollectorContractTests(CollectorContractMixin, SynchronousTestCase):
    """The real gc module honours the contract."""

    def collector(self):
        self.addCleanup(gc.unfreeze)
        return gc

    def test_frozen_cycle_survives_until_unfrozen(self):
        """A frozen reference cycle is not reclaimed by a full collection until unfrozen
        (why the freezer must unfreeze before reclaiming closed connections)."""
        self.addCleanup(gc.unfreeze)
        ref = make_cycle()
        gc.freeze()
        gc.collect(2)
        self.assertIsNotNone(ref())
        gc.unfreeze()
        gc.collect(2)
        self.assertIsNone(ref())


class FakeCollectorContractTests(CollectorContractMixin, SynchronousTestCase):
    """The fake honours the same contract."""

    def collector(self):
        return FakeCollector()


class FreezerPolicyTests(SynchronousTestCase):
    """The freeze policy on a Clock."""

    def setUp(self):
        self.clock = Clock()
        self.gc = FakeCollector()
        self.freezer = LongLivedFreezer(self.clock, collector=self.gc, settle=10,
                                        min_churn=3, churn_fraction=0.5)

    def test_freezes_once_a_burst_settles(self):
        """Connections opening within the settle time give one young collection and
        one freeze, settle seconds after the first of them."""
        for n in range(1, 6):
            self.freezer.opened(n)
            self.clock.advance(1)
        self.assertEqual(self.gc.calls, [])
        self.clock.advance(5)
        self.assertEqual(self.gc.calls, ["collect(1)", "freeze"])
        self.assertEqual(self.freezer.frozen_connections, 5)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_nothing_opened_nothing_frozen(self):
        """Closes alone, below the churn limit, freeze nothing."""
        self.freezer.opened(4)
        self.clock.advance(10)
        self.gc.calls.clear()
        self.freezer.closed(3)
        self.clock.advance(10)
        self.assertEqual(self.gc.calls, [])
        self.assertEqual(self.freezer.closed_while_frozen, 1)

    def test_churn_reclaims_then_refreezes(self):
        """Enough closed-while-frozen connections make the next run unfreeze, collect
        fully and freeze again."""
        self.freezer.opened(10)
        self.clock.advance(10)
        self.assertEqual(self.freezer.churn_limit(), 5)  # max(3, 0.5 * 10)
        self.gc.calls.clear()
        for n in range(9, 4, -1):
            self.freezer.closed(n)
        self.clock.advance(10)
        self.assertEqual(self.gc.calls, ["unfreeze", "collect(2)", "collect(1)", "freeze"])
        self.assertEqual(self.freezer.stats, {"freezes": 2, "reclaims": 1,
                                              "reclaim_seconds_max": 0.0})
        self.assertEqual(self.freezer.closed_while_frozen, 0)
        self.assertEqual(self.freezer.frozen_connections, 5)

    def test_closes_before_any_freeze_do_not_count(self):
        """Nothing frozen yet: a close is the ordinary collector's business."""
        self.freezer.closed(0)
        self.clock.advance(10)
        self.assertEqual(self.gc.calls, [])
        self.assertEqual(self.freezer.closed_while_frozen, 0)

    def test_stop_cancels(self):
        """stop() leaves no delayed call behind, closes after it schedule none, and the
        next open starts the policy again."""
        self.freezer.opened(1)
        self.freezer.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.freezer.closed(0)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(10)
        self.assertEqual(self.gc.calls, [])
        self.freezer.opened(1)
        self.clock.advance(10)
        self.assertEqual(self.gc.calls, ["collect(1)", "freeze"])


class FreezerWithRealCollectorTests(SynchronousTestCase):
    """The policy with the real gc module: a connection's cycle left frozen is reclaimed
    once enough connections closed."""

    def test_reclaims_frozen_cycles(self):
        """A frozen cycle survives until the churn limit, then is collected."""
        self.addCleanup(gc.unfreeze)
        clock = Clock()
        freezer = LongLivedFreezer(clock, settle=1, min_churn=2, churn_fraction=0)
        connection = []
        ref = make_cycle(connection)
        freezer.opened(2)
        clock.advance(1)
        self.assertGreater(gc.get_freeze_count(), 0)
        del connection[:]  # the connection closes: its cycle is garbage, but frozen
        gc.collect(2)
        self.assertIsNotNone(ref())
        freezer.closed(1)
        clock.advance(1)
        self.assertIsNotNone(ref())
        freezer.closed(0)
        clock.advance(1)
        self.assertIsNone(ref())
        self.assertEqual(freezer.stats["reclaims"], 1)
