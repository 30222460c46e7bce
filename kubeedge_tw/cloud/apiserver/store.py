"""Durable object storage for the embedded API server: sqlite through one adbapi
connection (Synapse's pattern: one writer, ``*_txn`` functions run on the pool's thread).

Tables:

* ``objects (resource, namespace, name, rv, value)``: the current objects, keyed by the
  storage key (``group/plural``), namespace (``""`` when cluster-scoped) and name; ``value``
  is the object's UTF-8 JSON (a BLOB, served as stored) with ``metadata.resourceVersion``
  already set;
* ``meta (key, value)``: ``rv``, the last resourceVersion handed out, and ``compacted``, the
  newest resourceVersion no longer in the log;
* ``watch_log (rv, type, resource, namespace, name, value)``: recent changes, what a watch
  resumes from. It keeps the last ``window`` resourceVersions; asking for an older one is
  410 Gone ("too old resource version"), as etcd compaction is for kube-apiserver.

Every change takes the next value of one global counter, updated in the transaction that
stores the change, so resourceVersions increase strictly and survive restarts.

Writes are *group-committed*: while one transaction is running, new writes queue; the next
transaction runs all of them, each inside its own SAVEPOINT so that one failing (a 409, a
422) rolls back alone, and commits once. Each write's Deferred fires only after that
COMMIT returned, and the database runs with ``journal_mode=WAL`` and ``synchronous=FULL``:
an acknowledged write survives ``kill -9`` and power loss. Committed changes are then
published, in resourceVersion order, to subscribers (the watches).
"""

import json
import uuid

from twisted.enterprise import adbapi
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python import failure

from kubeedge_tw.cloud.apiserver import errors

__all__ = ["Store", "StoreTxn", "Change", "DryRun", "DEFAULT_WINDOW", "connection_pool"]

#: How many resourceVersions the watch log keeps by default.
DEFAULT_WINDOW = 10000
#: Upper bound of writes in one transaction.
MAX_BATCH = 500

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS objects (
        resource TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
        rv INTEGER NOT NULL, value TEXT NOT NULL,
        PRIMARY KEY (resource, namespace, name)) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS watch_log (
        rv INTEGER PRIMARY KEY, type TEXT NOT NULL, resource TEXT NOT NULL,
        namespace TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL)""",
    """INSERT OR IGNORE INTO meta (key, value) VALUES ('rv', 1)""",
    """INSERT OR IGNORE INTO meta (key, value) VALUES ('compacted', 1)""",
    """INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', 1)""",
)


def encode(obj):
    """Compact UTF-8 JSON bytes, as stored and sent (no str/bytes copies on the way)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class Change:
    """One committed change: ``type`` is ``ADDED``, ``MODIFIED`` or ``DELETED``; ``obj``
    the object after the change (for DELETED: its last state, with the deletion's
    resourceVersion), ``text`` its JSON as UTF-8 bytes, ``prev`` the object before (None for ADDED and
    for changes replayed from the log)."""

    __slots__ = ("rv", "type", "resource", "namespace", "name", "obj", "text", "prev")

    def __init__(self, rv, type_, resource, namespace, name, obj, text, prev=None):
        """Record the change."""
        self.rv = rv
        self.type = type_
        self.resource = resource
        self.namespace = namespace
        self.name = name
        self.obj = obj
        self.text = text
        self.prev = prev

    def __repr__(self):
        return "Change({} {} {}/{}/{})".format(self.rv, self.type, self.resource,
                                               self.namespace, self.name)


class DryRun(Exception):
    """Raised by a write function to roll its changes back but still succeed with
    ``result`` (``dryRun=All``)."""

    def __init__(self, result):
        super().__init__("dry run")
        self.result = result


class StoreTxn:
    """What a ``*_txn`` function gets: reads and writes of objects inside the current
    sqlite transaction. Not thread-safe; only used on the pool's thread."""

    def __init__(self, cursor, rv):
        """Wrap an adbapi transaction whose last handed-out resourceVersion is ``rv``."""
        self._cur = cursor
        self.rv = rv
        self.changes = []

    @staticmethod
    def decode(text):
        """Parse a stored value."""
        return json.loads(text)

    @staticmethod
    def new_uid():
        """A fresh object uid."""
        return str(uuid.uuid4())

    def get_json(self, resource, namespace, name):
        """The stored JSON (bytes) of one object, or None."""
        self._cur.execute("SELECT value FROM objects WHERE resource = ? AND namespace = ? "
                          "AND name = ?", (resource, namespace, name))
        row = self._cur.fetchone()
        return row[0] if row else None

    def get(self, resource, namespace, name):
        """One object as a dict, or None."""
        text = self.get_json(resource, namespace, name)
        return None if text is None else json.loads(text)

    def scan(self, resource, namespace=None, after=None, limit=None, contains=None):
        """``((namespace, name), json_bytes)`` of stored objects of ``resource`` in key
        order: in one namespace or all, after the key ``after``, at most ``limit`` of them,
        and only those whose JSON contains the bytes ``contains`` (a cheap prefilter)."""
        sql = ["SELECT namespace, name, value FROM objects WHERE resource = ?"]
        args = [resource]
        if namespace is not None:
            sql.append("AND namespace = ?")
            args.append(namespace)
        if after is not None:
            sql.append("AND (namespace, name) > (?, ?)")
            args.extend(after)
        if contains is not None:
            sql.append("AND instr(value, ?) > 0")
            args.append(contains)
        sql.append("ORDER BY namespace, name")
        if limit is not None:
            sql.append("LIMIT ?")
            args.append(limit)
        self._cur.execute(" ".join(sql), args)
        return [((ns, name), value) for ns, name, value in self._cur.fetchall()]

    def count(self, resource, namespace=None):
        """How many objects of ``resource`` (in ``namespace``) are stored."""
        if namespace is None:
            self._cur.execute("SELECT count(*) FROM objects WHERE resource = ?", (resource,))
        else:
            self._cur.execute("SELECT count(*) FROM objects WHERE resource = ? AND "
                              "namespace = ?", (resource, namespace))
        return self._cur.fetchone()[0]

    def stored_rv(self):
        """The last committed resourceVersion as stored (reads)."""
        self._cur.execute("SELECT value FROM meta WHERE key = 'rv'")
        return self._cur.fetchone()[0]

    def put(self, resource, namespace, name, obj, prev=None):
        """Store ``obj`` under the next resourceVersion (set in its metadata) and log the
        change, ``ADDED`` when ``prev`` is None else ``MODIFIED``. Returns ``obj``."""
        self.rv += 1
        obj.setdefault("metadata", {})["resourceVersion"] = str(self.rv)
        text = encode(obj)
        self._cur.execute("INSERT OR REPLACE INTO objects (resource, namespace, name, rv, "
                          "value) VALUES (?, ?, ?, ?, ?)",
                          (resource, namespace, name, self.rv, text))
        kind = "ADDED" if prev is None else "MODIFIED"
        self._log(kind, resource, namespace, name, obj, text, prev)
        return obj

    def remove(self, resource, namespace, name, obj):
        """Delete the object; its last state ``obj`` gets the deletion's resourceVersion
        and is logged as ``DELETED``. Returns ``obj``."""
        self._cur.execute("DELETE FROM objects WHERE resource = ? AND namespace = ? AND "
                          "name = ?", (resource, namespace, name))
        self.rv += 1
        obj.setdefault("metadata", {})["resourceVersion"] = str(self.rv)
        text = encode(obj)
        self._log("DELETED", resource, namespace, name, obj, text, None)
        return obj

    def _log(self, kind, resource, namespace, name, obj, text, prev):
        self._cur.execute("INSERT INTO watch_log (rv, type, resource, namespace, name, value) "
                          "VALUES (?, ?, ?, ?, ?, ?)",
                          (self.rv, kind, resource, namespace, name, text))
        self.changes.append(Change(self.rv, kind, resource, namespace, name, obj, text, prev))


def _open_connection(connection):
    """cp_openfun: WAL, fsync on every commit, wait instead of failing on a busy file."""
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("PRAGMA busy_timeout=5000")


def connection_pool(path, reactor):
    """The one-connection adbapi pool on the sqlite file ``path``: autocommit mode (the
    ``*_txn`` functions issue BEGIN/COMMIT themselves), WAL, ``synchronous=FULL``."""
    return adbapi.ConnectionPool(
        "sqlite3", path, check_same_thread=False, isolation_level=None, cp_min=1, cp_max=1,
        cp_openfun=_open_connection, cp_reactor=reactor, cp_noisy=False)


def schema_txn(txn):
    """Create the tables if needed; return ``(rv, compacted)``."""
    for statement in _SCHEMA:
        txn.execute(statement)
    txn.execute("SELECT key, value FROM meta WHERE key IN ('rv', 'compacted')")
    values = dict(txn.fetchall())
    return values["rv"], values["compacted"]


def batch_txn(txn, functions, window):
    """Run ``functions`` (each ``fn(StoreTxn)``) in one transaction, each in a SAVEPOINT.

    Returns ``(outcomes, changes, rv, compacted)``: per function ``(True, result, changes)``
    or ``(False, Failure, [])``; the committed changes; the new last resourceVersion; the
    new compaction point (None when unchanged).
    """
    txn.execute("BEGIN IMMEDIATE")
    txn.execute("SELECT key, value FROM meta WHERE key IN ('rv', 'compacted')")
    values = dict(txn.fetchall())
    ctx = StoreTxn(txn, values["rv"])
    outcomes = []
    for function in functions:
        start_rv, start = ctx.rv, len(ctx.changes)
        txn.execute("SAVEPOINT op")
        try:
            result = function(ctx)
        except DryRun as e:
            txn.execute("ROLLBACK TO SAVEPOINT op")
            txn.execute("RELEASE SAVEPOINT op")
            ctx.rv = start_rv
            del ctx.changes[start:]
            outcomes.append((True, e.result, []))
        except Exception:
            f = failure.Failure()
            txn.execute("ROLLBACK TO SAVEPOINT op")
            txn.execute("RELEASE SAVEPOINT op")
            ctx.rv = start_rv
            del ctx.changes[start:]
            outcomes.append((False, f, []))
        else:
            txn.execute("RELEASE SAVEPOINT op")
            outcomes.append((True, result, ctx.changes[start:]))
    compacted = None
    if ctx.rv != values["rv"]:
        txn.execute("UPDATE meta SET value = ? WHERE key = 'rv'", (ctx.rv,))
        # Compact with some slack so that the DELETE runs once per window/10 writes.
        if ctx.rv - values["compacted"] > window + window // 10:
            compacted = ctx.rv - window
            txn.execute("DELETE FROM watch_log WHERE rv <= ?", (compacted,))
            txn.execute("UPDATE meta SET value = ? WHERE key = 'compacted'", (compacted,))
    txn.execute("COMMIT")
    return outcomes, ctx.changes, ctx.rv, compacted


def read_txn(txn, function):
    """Run a read-only ``function(StoreTxn)``."""
    txn.execute("SELECT value FROM meta WHERE key = 'rv'")
    return function(StoreTxn(txn, txn.fetchone()[0]))


def changes_since_txn(txn, resource, rv):
    """Logged changes of ``resource`` after ``rv``, or 410 Gone when the log no longer
    reaches back to ``rv``."""
    txn.execute("SELECT value FROM meta WHERE key = 'compacted'")
    compacted = txn.fetchone()[0]
    if rv < compacted:
        raise errors.gone("too old resource version: {} ({})".format(rv, compacted))
    txn.execute("SELECT rv, type, namespace, name, value FROM watch_log WHERE rv > ? AND "
                "resource = ? ORDER BY rv", (rv, resource))
    return [Change(row_rv, kind, resource, namespace, name, json.loads(value), value)
            for row_rv, kind, namespace, name, value in txn.fetchall()]


class Store:
    """The sqlite store; see the module docstring. ``open()`` before use, ``close()`` at
    the end (it waits for queued writes, then stops the pool's thread)."""

    log = Logger()

    def __init__(self, path, reactor, window=DEFAULT_WINDOW, pool_factory=None):
        """A store on the sqlite file ``path``; the pool's thread is started on
        ``reactor``. ``pool_factory(path, reactor)`` builds the ConnectionPool (tests give
        one whose thread pool runs work synchronously)."""
        self.path = path
        self.reactor = reactor
        self.window = window
        self._pool_factory = pool_factory or connection_pool
        self.pool = None
        #: The last committed resourceVersion (after open()).
        self.current_rv = None
        #: Changes with a resourceVersion <= this are no longer in the log.
        self.compacted_rv = None
        self._pending = []
        self._running = False
        self._subscribers = []
        self._idle = []
        self._closed = False

    # -- life cycle ------------------------------------------------------------------------

    @defer.inlineCallbacks
    def open(self):
        """Open the database and create the schema; fires when ready."""
        self.pool = self._pool_factory(self.path, self.reactor)
        if not self.pool.running:
            # The reactor is running (the normal case once twistd started services, and
            # in trial): start the pool's thread now rather than at reactor start-up.
            self.pool.start()
        try:
            self.current_rv, self.compacted_rv = yield self.pool.runInteraction(schema_txn)
        except Exception:
            self.pool.close()
            self.pool = None
            raise
        self.log.info("apiserver store {path} open at resourceVersion {rv}", path=self.path,
                      rv=self.current_rv, log_event="apiserver_store_open")

    @defer.inlineCallbacks
    def close(self):
        """Let queued writes finish, then close the database and stop its thread."""
        self._closed = True
        if self._running or self._pending:
            d = defer.Deferred()
            self._idle.append(d)
            yield d
        if self.pool is not None:
            pool, self.pool = self.pool, None
            pool.close()
        self._subscribers = []

    # -- watching ------------------------------------------------------------------------

    def subscribe(self, callback):
        """Call ``callback(change)`` for every committed change, in order."""
        self._subscribers.append(callback)

    def unsubscribe(self, callback):
        """Stop calling ``callback``."""
        try:
            self._subscribers.remove(callback)
        except ValueError:
            pass

    def changes_since(self, resource, rv):
        """Deferred list of the logged :class:`Change` of ``resource`` after ``rv``, or
        failing with a 410 :class:`~.errors.APIError`."""
        if self.pool is None:
            return defer.fail(errors.unavailable("the API server is stopping"))
        return self.pool.runInteraction(changes_since_txn, resource, rv)

    # -- reads and writes ----------------------------------------------------------------

    def read(self, function, *args):
        """Run ``function(StoreTxn, *args)`` on the pool's thread; a Deferred of its
        result."""
        if self.pool is None:
            return defer.fail(errors.unavailable("the API server is stopping"))
        return self.pool.runInteraction(read_txn, lambda txn: function(txn, *args))

    def write(self, function):
        """Queue ``function(StoreTxn)`` for the next group commit; a Deferred firing with
        its result after the commit, or with its exception (its changes rolled back)."""
        if self._closed or self.pool is None:
            return defer.fail(errors.unavailable("the API server is stopping"))
        d = defer.Deferred()
        self._pending.append((function, d))
        if not self._running:
            self._run_batch()
        return d

    def _run_batch(self):
        batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
        self._running = True
        d = self.pool.runInteraction(batch_txn, [fn for fn, _ in batch], self.window)
        d.addBoth(self._batch_done, batch)

    def _batch_done(self, result, batch):
        self._running = False
        if isinstance(result, failure.Failure):
            self.log.failure("apiserver store: a transaction of {count} writes failed",
                             result, count=len(batch), log_event="apiserver_store_failed")
            for _, d in batch:
                d.errback(errors.internal_error("storage failure: {}".format(
                    result.getErrorMessage())))
        else:
            outcomes, changes, rv, compacted = result
            self.current_rv = rv
            if compacted is not None:
                self.compacted_rv = compacted
            for change in changes:
                for callback in list(self._subscribers):
                    try:
                        callback(change)
                    except Exception:
                        self.log.failure("apiserver watch subscriber failed on {change}",
                                         change=change, log_event="apiserver_watch_failed")
            for (ok, value, _), (_, d) in zip(outcomes, batch):
                if ok:
                    d.callback(value)
                else:
                    d.errback(value)
        if self._pending and self.pool is not None:
            self._run_batch()
        else:
            idle, self._idle = self._idle, []
            for d in idle:
                d.callback(None)
