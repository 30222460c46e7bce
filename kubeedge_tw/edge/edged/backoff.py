"""Per-key exponential back-off on the injected clock, as kubelet's ``flowcontrol.Backoff``.

Used twice by edged: for restarting crashed containers (the first restart at once, then
10 s, 20 s, ... up to 300 s after each further death: ``CrashLoopBackOff``) and for image
pulls (``ErrImagePull``, then ``ImagePullBackOff`` for 10 s, 20 s, ...). An entry not
touched for twice the maximum starts again at the initial delay, so a container that ran
fine for ten minutes restarts at once again.
"""

__all__ = ["Backoff", "INITIAL_BACKOFF", "MAX_BACKOFF"]

INITIAL_BACKOFF = 10.0
MAX_BACKOFF = 300.0


class Backoff:
    """Delays per key: ``next`` lengthens, ``remaining_*`` say how long to wait."""

    def __init__(self, clock, initial=INITIAL_BACKOFF, maximum=MAX_BACKOFF):
        self.clock = clock
        self.initial = initial
        self.maximum = maximum
        # key -> [delay, time of last update]
        self._entries = {}

    def _live(self, key):
        entry = self._entries.get(key)
        if entry is None:
            return None
        if self.clock.seconds() - entry[1] > 2 * self.maximum:
            del self._entries[key]
            return None
        return entry

    def delay(self, key):
        """The current delay of ``key`` (0 when it has none)."""
        entry = self._live(key)
        return entry[0] if entry else 0.0

    def next(self, key):
        """Record an attempt now: the first gets the initial delay, each later one twice
        the previous, at most the maximum. Returns the new delay."""
        entry = self._live(key)
        delay = self.initial if entry is None else min(entry[0] * 2, self.maximum)
        self._entries[key] = [delay, self.clock.seconds()]
        return delay

    def remaining_since(self, key, event_time):
        """Seconds still to wait after an event (a container's death) at ``event_time``
        before acting again; 0 when ``key`` is not backing off (kubelet's
        ``IsInBackOffSince``)."""
        entry = self._live(key)
        if entry is None:
            return 0.0
        return max(0.0, event_time + entry[0] - self.clock.seconds())

    def remaining_since_update(self, key):
        """Seconds until the delay that started at the last :meth:`next` ends (kubelet's
        ``IsInBackOffSinceUpdate``, used for image pulls)."""
        entry = self._live(key)
        if entry is None:
            return 0.0
        return max(0.0, entry[1] + entry[0] - self.clock.seconds())

    def reset(self, key):
        """Forget ``key``."""
        self._entries.pop(key, None)

    def forget_where(self, predicate):
        """Forget every key for which ``predicate(key)`` is true (a deleted pod's)."""
        for key in [k for k in self._entries if predicate(k)]:
            del self._entries[key]

    def __len__(self):
        return len(self._entries)
