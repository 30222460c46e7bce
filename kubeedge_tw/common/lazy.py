"""Modules loaded when a feature is first used, and loaded off the reactor thread.

Every imported module stays in memory for the life of the process (its code objects,
classes and tables), so the edge keeps packages that only some uses of a feature need out
of its startup imports; certificate renewal's HTTP client (treq) is one. When the feature
is used, :func:`import_on_pool` imports the module on a thread pool, so that the reactor
does not wait while the package loads.
"""

import importlib

from twisted.internet import threads

__all__ = ["import_on_pool"]


def import_on_pool(reactor, name, pool=None):
    """A Deferred firing with the module ``name``, imported on ``pool`` (by default the
    reactor's own thread pool); it fails with the ``ImportError`` (or whatever the
    module raised while loading) when the import fails.

    Python's import locks make this safe while other threads import: a module that is
    already loaded costs a dictionary look-up on the pool thread.
    """
    if pool is None:
        pool = reactor.getThreadPool()
    return threads.deferToThreadPool(reactor, pool, importlib.import_module, name)
