"""Per-key exponential back-off on the clock (kubelet's flowcontrol.Backoff)."""

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from kubeedge_tw.edge.edged.backoff import Backoff


class BackoffTests(SynchronousTestCase):
    """Delays double from 10 s to 300 s and start over after a quiet spell."""

    def setUp(self):
        self.clock = Clock()
        self.backoff = Backoff(self.clock, 10, 300)

    def test_doubling_up_to_the_maximum(self):
        """Successive attempts get 10, 20, 40, 80, 160, 300, 300 seconds."""
        delays = []
        for _ in range(7):
            delays.append(self.backoff.next("k"))
            self.clock.advance(1)
        self.assertEqual(delays, [10, 20, 40, 80, 160, 300, 300])

    def test_remaining_since_event(self):
        """No entry means no wait; after next() the wait counts from the event."""
        self.assertEqual(self.backoff.remaining_since("k", 0), 0)
        self.backoff.next("k")
        self.clock.advance(4)
        self.assertEqual(self.backoff.remaining_since("k", 3), 9)
        self.assertEqual(self.backoff.remaining_since("k", -20), 0)

    def test_remaining_since_update(self):
        """Image pulls wait for the delay counted from the last next()."""
        self.backoff.next("img")
        self.clock.advance(3)
        self.assertEqual(self.backoff.remaining_since_update("img"), 7)
        self.clock.advance(7)
        self.assertEqual(self.backoff.remaining_since_update("img"), 0)

    def test_expiry_after_twice_the_maximum(self):
        """An entry untouched for 2 x maximum starts again at the initial delay."""
        self.backoff.next("k")
        self.backoff.next("k")
        self.clock.advance(601)
        self.assertEqual(self.backoff.delay("k"), 0)
        self.assertEqual(self.backoff.next("k"), 10)

    def test_reset_and_forget(self):
        """reset forgets a key; forget_where forgets matching keys."""
        self.backoff.next(("u1", "a"))
        self.backoff.next(("u2", "a"))
        self.backoff.reset(("u1", "a"))
        self.assertEqual(self.backoff.delay(("u1", "a")), 0)
        self.backoff.forget_where(lambda key: key[0] == "u2")
        self.assertEqual(len(self.backoff), 0)
