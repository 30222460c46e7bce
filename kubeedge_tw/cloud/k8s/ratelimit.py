"""Client-side rate limiting: a token bucket on the injected clock.

The same policy as client-go's ``flowcontrol.NewTokenBucketRateLimiter(qps, burst)``
behind ``kubeAPIConfig.qps`` / ``burst``: the bucket starts full with ``burst`` tokens,
refills at ``qps`` tokens per second up to ``burst``, and every request takes one token,
waiting (FIFO) when none is left.
"""

import collections

from twisted.internet import defer

__all__ = ["TokenBucket"]

# Float slack so that refilling for exactly the computed wait yields a whole token.
_EPSILON = 1e-9


class TokenBucket:
    """``acquire()`` returns a Deferred that fires when the caller may send a request."""

    def __init__(self, clock, qps, burst):
        """A full bucket of ``burst`` tokens refilled at ``qps`` per second on ``clock``."""
        if qps <= 0 or burst < 1:
            raise ValueError("qps must be > 0 and burst >= 1, got qps={} burst={}".format(
                qps, burst))
        self.clock = clock
        self.qps = float(qps)
        self.burst = burst
        self._tokens = float(burst)
        self._last = clock.seconds()
        self._waiters = collections.deque()
        self._wakeup = None

    @property
    def tokens(self):
        """Tokens available now (a float; for tests and metrics)."""
        self._refill()
        return self._tokens

    @property
    def waiting(self):
        """How many ``acquire()`` calls are queued."""
        return len(self._waiters)

    def _refill(self):
        now = self.clock.seconds()
        if now > self._last:
            self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.qps)
        self._last = now

    def try_acquire(self):
        """Take a token if one is available without waiting; return whether one was taken."""
        self._refill()
        if not self._waiters and self._tokens >= 1 - _EPSILON:
            self._tokens -= 1
            return True
        return False

    def acquire(self):
        """A Deferred firing with ``None`` once a token is taken; cancelling it leaves the
        queue."""
        if self.try_acquire():
            return defer.succeed(None)
        d = defer.Deferred(self._cancel_waiter)
        self._waiters.append(d)
        self._schedule()
        return d

    def _cancel_waiter(self, d):
        try:
            self._waiters.remove(d)
        except ValueError:
            pass
        if not self._waiters and self._wakeup is not None:
            self._wakeup.cancel()
            self._wakeup = None

    def _schedule(self):
        if self._wakeup is not None or not self._waiters:
            return
        self._refill()
        delay = max(0.0, (1 - self._tokens) / self.qps)
        self._wakeup = self.clock.callLater(delay, self._wake)

    def _wake(self):
        self._wakeup = None
        self._refill()
        while self._waiters and self._tokens >= 1 - _EPSILON:
            self._tokens -= 1
            self._waiters.popleft().callback(None)
        self._schedule()

    def stop(self):
        """Cancel every queued ``acquire()`` (they fail with ``CancelledError``) and the
        pending wake-up, leaving no delayed call behind."""
        waiters, self._waiters = self._waiters, collections.deque()
        if self._wakeup is not None:
            self._wakeup.cancel()
            self._wakeup = None
        for d in waiters:
            d.cancel()
