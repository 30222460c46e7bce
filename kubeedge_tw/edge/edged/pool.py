"""The named thread pool edged's blocking work runs on (STYLE.md 2.10).

Every docker SDK call, and the file work of volumes and node facts, runs in a ``_thd_*``
function on one :class:`BlockingPool` named ``docker`` (a Twisted ``ThreadPool``, at most
four threads), through ``deferToThreadPool``: the reactor never waits on Docker. The pool
starts and stops with edged. :class:`InlinePool` runs the same functions at once on the
caller's thread, for unit tests whose runtime is in memory.
"""

from twisted.internet import defer, threads
from twisted.python.threadpool import ThreadPool

__all__ = ["BlockingPool", "InlinePool", "POOL_NAME", "MAX_THREADS"]

POOL_NAME = "docker"
MAX_THREADS = 4



class PoolStopped(RuntimeError):
    """Work was submitted after the pool stopped (the service is shutting down)."""

class BlockingPool:
    """A started-on-demand ``ThreadPool``; :meth:`run` returns a Deferred."""

    def __init__(self, reactor, name=POOL_NAME, max_threads=MAX_THREADS):
        self.reactor = reactor
        self.name = name
        self._pool = ThreadPool(minthreads=0, maxthreads=max_threads, name=name)
        self._users = 0

    @property
    def started(self):
        """Whether the pool takes work."""
        return self._pool.started

    def start(self):
        """Start the threads (counted: each ``start`` needs its ``stop``)."""
        self._users += 1
        if not self._pool.started:
            self._pool.start()

    def stop(self):
        """Stop the pool once its last user stops; joins threads that finish a call."""
        self._users = max(0, self._users - 1)
        if not self._users and self._pool.started:
            self._pool.stop()

    def run(self, f, *args, **kwargs):
        """``f(*args, **kwargs)`` on a pool thread; a Deferred with its result."""
        if not self._pool.started:
            return defer.fail(PoolStopped("the {} thread pool is stopped".format(self.name)))
        return threads.deferToThreadPool(self.reactor, self._pool, f, *args, **kwargs)


class InlinePool:
    """Runs each function at once (unit tests): the same API as :class:`BlockingPool`."""

    name = "inline"
    started = True

    def start(self):
        """Nothing to start."""

    def stop(self):
        """Nothing to stop."""

    def run(self, f, *args, **kwargs):
        """``f(*args, **kwargs)`` now; a fired Deferred."""
        return defer.maybeDeferred(f, *args, **kwargs)
