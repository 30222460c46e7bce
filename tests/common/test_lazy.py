"""Tests for :mod:`kubeedge_tw.common.lazy`: modules imported on a thread pool, on demand."""

import os
import sys

from twisted.trial.unittest import SynchronousTestCase

from kubeedge_tw.common.lazy import import_on_pool


class RecordingPool:
    """Runs work at once on the calling thread, with ``ThreadPool.callInThreadWithCallback``'s
    contract (``on_result(True, result)`` or ``on_result(False, failure)``), and records
    what it ran."""

    def __init__(self):
        self.ran = []

    def callInThreadWithCallback(self, on_result, f, *args, **kwargs):
        """Run ``f`` now and report its outcome to ``on_result``."""
        from twisted.python.failure import Failure
        self.ran.append((f, args))
        try:
            result = f(*args, **kwargs)
        except BaseException:
            on_result(False, Failure())
        else:
            on_result(True, result)


class ThreadlessReactor:
    """The reactor's thread API without threads: ``callFromThread`` calls at once, and
    ``getThreadPool`` hands out one :class:`RecordingPool`."""

    def __init__(self):
        self.pool = RecordingPool()

    def callFromThread(self, f, *args, **kwargs):
        """Call ``f`` now (there is no other thread)."""
        f(*args, **kwargs)

    def getThreadPool(self):
        """The reactor's pool."""
        return self.pool


class FakesTests(SynchronousTestCase):
    """The fakes keep ThreadPool's result contract."""

    def test_pool_reports_result_and_failure(self):
        """Success reports (True, result); an exception reports (False, its Failure)."""
        pool, outcomes = RecordingPool(), []
        pool.callInThreadWithCallback(lambda ok, r: outcomes.append((ok, r)), len, "abc")
        pool.callInThreadWithCallback(lambda ok, r: outcomes.append((ok, r)), int, "x")
        self.assertEqual(outcomes[0], (True, 3))
        self.assertFalse(outcomes[1][0])
        self.assertTrue(outcomes[1][1].check(ValueError))
        self.assertEqual(len(pool.ran), 2)


class ImportOnPoolTests(SynchronousTestCase):
    """import_on_pool imports on the pool and fires with the module or the import error."""

    def setUp(self):
        # A module of our own that nothing has imported yet.
        directory = self.mktemp()
        os.makedirs(directory)
        with open(os.path.join(directory, "lazy_probe_target.py"), "w") as f:
            f.write("VALUE = 42\n")
        sys.path.insert(0, directory)
        self.addCleanup(sys.path.remove, directory)
        self.addCleanup(sys.modules.pop, "lazy_probe_target", None)
        self.reactor = ThreadlessReactor()

    def test_imports_on_the_reactors_pool(self):
        """Without a pool the reactor's pool does the import; the Deferred has the module."""
        self.assertNotIn("lazy_probe_target", sys.modules)
        module = self.successResultOf(import_on_pool(self.reactor, "lazy_probe_target"))
        self.assertEqual(module.VALUE, 42)
        self.assertIs(sys.modules["lazy_probe_target"], module)
        self.assertEqual(len(self.reactor.pool.ran), 1)
        self.assertEqual(self.reactor.pool.ran[0][1], ("lazy_probe_target",))

    def test_given_pool(self):
        """A given pool is used instead of the reactor's."""
        pool = RecordingPool()
        module = self.successResultOf(import_on_pool(self.reactor, "lazy_probe_target", pool))
        self.assertEqual(module.VALUE, 42)
        self.assertEqual(len(pool.ran), 1)
        self.assertEqual(self.reactor.pool.ran, [])

    def test_loaded_module_is_the_same_object(self):
        """A second request gives the module already loaded."""
        first = self.successResultOf(import_on_pool(self.reactor, "lazy_probe_target"))
        second = self.successResultOf(import_on_pool(self.reactor, "lazy_probe_target"))
        self.assertIs(first, second)

    def test_missing_module_fails(self):
        """A module that does not exist fails the Deferred with ModuleNotFoundError."""
        failure = self.failureResultOf(import_on_pool(self.reactor, "no_such_module_here_"),
                                       ModuleNotFoundError)
        self.assertIn("no_such_module_here_", failure.getErrorMessage())
