"""Unit tests for the sqlite store: resourceVersions, durability, group commit, the watch
log and its compaction (410), on a real temporary sqlite file with a synchronous pool."""

import os
import sqlite3

from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase, TestCase

from kubeedge_tw.cloud.apiserver import errors
from kubeedge_tw.cloud.apiserver.store import DryRun, Store
from tests.cloud.apiserver.fakes import sync_store


def put_txn(name, value="v", resource="/configmaps", namespace="default"):
    """A write function storing one config map."""
    def txn(t):
        prev = t.get(resource, namespace, name)
        obj = {"metadata": {"name": name, "namespace": namespace}, "data": {"k": value}}
        return t.put(resource, namespace, name, obj, prev=prev)
    return txn


class StoreTests(SynchronousTestCase):
    """The store's transactions, resourceVersions and watch log."""

    def setUp(self):
        self.path = os.path.abspath(self.mktemp())
        self.store = self.open_store()

    def open_store(self, window=None, immediate=True):
        store, _ = sync_store(self.path, window=window, immediate=immediate)
        self.successResultOf(store.open())
        self.addCleanup(lambda: store.pool and self.successResultOf(store.close()))
        return store

    def reopen(self, window=None):
        self.successResultOf(self.store.close())
        self.store = self.open_store(window)

    def test_resource_versions_increase(self):
        """Every write takes the next resourceVersion, stored in the object's metadata."""
        first = self.successResultOf(self.store.write(put_txn("a")))
        second = self.successResultOf(self.store.write(put_txn("b")))
        third = self.successResultOf(self.store.write(put_txn("a", "w")))
        versions = [int(o["metadata"]["resourceVersion"]) for o in (first, second, third)]
        self.assertEqual(versions, sorted(set(versions)))
        self.assertEqual(self.store.current_rv, versions[-1])

    def test_survives_reopen(self):
        """Objects and the counter survive closing and reopening the file."""
        stored = self.successResultOf(self.store.write(put_txn("a")))
        self.reopen()
        text = self.successResultOf(self.store.read(
            lambda t: t.get_json("/configmaps", "default", "a")))
        self.assertIn('"resourceVersion":"{}"'.format(stored["metadata"]["resourceVersion"])
                      .encode(), text)
        after = self.successResultOf(self.store.write(put_txn("b")))
        self.assertGreater(int(after["metadata"]["resourceVersion"]),
                           int(stored["metadata"]["resourceVersion"]))

    def test_durable_settings(self):
        """The database runs in WAL mode and the connection fsyncs every commit."""
        mode = self.successResultOf(self.store.read(
            lambda t: (t._cur.execute("PRAGMA journal_mode"), t._cur.fetchone()[0])[1]))
        sync = self.successResultOf(self.store.read(
            lambda t: (t._cur.execute("PRAGMA synchronous"), t._cur.fetchone()[0])[1]))
        self.assertEqual(mode, "wal")
        self.assertEqual(sync, 2)  # FULL

    def test_committed_before_acknowledged(self):
        """When a write's Deferred fires, another connection already sees it."""
        self.successResultOf(self.store.write(put_txn("a")))
        other = sqlite3.connect(self.path)
        self.addCleanup(other.close)
        rows = other.execute("SELECT name FROM objects").fetchall()
        self.assertEqual(rows, [("a",)])

    def test_failed_write_rolls_back_alone(self):
        """A failing write in a group commit is undone; the others in the batch commit."""
        store = self.store
        pool = store.pool.threadpool
        pool.immediate = False
        ok1 = store.write(put_txn("a"))

        def failing(t):
            put_txn("b")(t)
            raise errors.conflict("configmaps", "b", "nope")

        bad = store.write(failing)
        ok2 = store.write(put_txn("c"))
        # The first write started a transaction; the other two wait for the next one.
        pool.run_pending()
        pool.immediate = True
        a = self.successResultOf(ok1)
        self.assertEqual(a["metadata"]["name"], "a")
        self.assertEqual(self.failureResultOf(bad, errors.APIError).value.code, 409)
        c = self.successResultOf(ok2)
        self.assertEqual(int(c["metadata"]["resourceVersion"]),
                         int(a["metadata"]["resourceVersion"]) + 1)
        names = self.successResultOf(self.store.read(
            lambda t: [key[1] for key, _ in t.scan("/configmaps")]))
        self.assertEqual(names, ["a", "c"])

    def test_group_commit_batches(self):
        """Writes queued while a transaction runs share the next transaction."""
        pool = self.store.pool.threadpool
        pool.immediate = False
        ds = [self.store.write(put_txn("n{}".format(i))) for i in range(5)]
        # One transaction for the first write, one for the four that queued behind it.
        self.assertEqual(pool.run_pending(), 2)
        self.assertEqual(len([self.successResultOf(d) for d in ds]), 5)

    def test_dry_run_rolls_back(self):
        """A write raising DryRun succeeds with its result but changes nothing."""
        before = self.store.current_rv

        def dry(t):
            raise DryRun(put_txn("a")(t))

        result = self.successResultOf(self.store.write(dry))
        self.assertEqual(result["metadata"]["name"], "a")
        self.assertEqual(self.store.current_rv, before)
        self.assertIsNone(self.successResultOf(self.store.read(
            lambda t: t.get("/configmaps", "default", "a"))))

    def test_subscribers_see_changes_in_order(self):
        """Committed changes are published in resourceVersion order with their type."""
        seen = []
        self.store.subscribe(seen.append)
        self.successResultOf(self.store.write(put_txn("a")))
        self.successResultOf(self.store.write(put_txn("a", "w")))

        def remove(t):
            obj = t.get("/configmaps", "default", "a")
            return t.remove("/configmaps", "default", "a", obj)

        self.successResultOf(self.store.write(remove))
        self.assertEqual([c.type for c in seen], ["ADDED", "MODIFIED", "DELETED"])
        self.assertEqual([c.rv for c in seen], sorted(c.rv for c in seen))
        self.assertEqual(seen[1].prev["data"], {"k": "v"})
        self.assertEqual(seen[2].obj["metadata"]["resourceVersion"], str(seen[2].rv))

    def test_changes_since(self):
        """The log returns the changes of one resource after a resourceVersion."""
        a = self.successResultOf(self.store.write(put_txn("a")))
        self.successResultOf(self.store.write(put_txn("x", resource="/secrets")))
        self.successResultOf(self.store.write(put_txn("b")))
        changes = self.successResultOf(self.store.changes_since(
            "/configmaps", int(a["metadata"]["resourceVersion"])))
        self.assertEqual([(c.type, c.name) for c in changes], [("ADDED", "b")])

    def test_compaction_gives_gone(self):
        """Versions older than the log window are 410 Gone; recent ones still resume."""
        self.reopen(window=10)
        first = self.successResultOf(self.store.write(put_txn("a")))
        for i in range(30):
            self.successResultOf(self.store.write(put_txn("a", str(i))))
        f = self.failureResultOf(self.store.changes_since(
            "/configmaps", int(first["metadata"]["resourceVersion"])), errors.APIError)
        self.assertEqual(f.value.code, 410)
        self.assertIn("too old resource version", f.value.message)
        recent = self.store.current_rv - 5
        changes = self.successResultOf(self.store.changes_since("/configmaps", recent))
        self.assertEqual(len(changes), 5)
        count = self.successResultOf(self.store.read(
            lambda t: (t._cur.execute("SELECT count(*) FROM watch_log"),
                       t._cur.fetchone()[0])[1]))
        self.assertLessEqual(count, 11)

    def test_close_waits_for_queued_writes(self):
        """close() lets queued writes commit, then stops the pool."""
        pool = self.store.pool.threadpool
        pool.immediate = False
        d = self.store.write(put_txn("a"))
        closed = self.store.close()
        self.assertNoResult(closed)
        pool.run_pending()
        self.successResultOf(d)
        self.successResultOf(closed)
        self.assertTrue(pool.joined)
        self.failureResultOf(self.store.write(put_txn("b")), errors.APIError)

    def test_scan_pages_and_filters(self):
        """scan() walks keys in order, after a key, with a limit and a substring filter."""
        for name in ("c", "a", "b"):
            self.successResultOf(self.store.write(put_txn(name, value=name)))
        keys = self.successResultOf(self.store.read(
            lambda t: [k for k, _ in t.scan("/configmaps", "default", after=("default", "a"),
                                             limit=1)]))
        self.assertEqual(keys, [("default", "b")])
        keys = self.successResultOf(self.store.read(
            lambda t: [k for k, _ in t.scan("/configmaps", contains=b'"k":"c"')]))
        self.assertEqual(keys, [("default", "c")])


class RealThreadStoreTests(TestCase):
    """The store on adbapi's real thread pool (as in production)."""

    @defer.inlineCallbacks
    def test_real_pool_round_trip(self):
        """Concurrent writes on the real pool commit with distinct, increasing versions
        and close() stops the pool's thread."""
        from twisted.internet import reactor
        store = Store(os.path.abspath(self.mktemp()), reactor)
        yield store.open()
        results = yield defer.gatherResults(
            [store.write(put_txn("n{}".format(i))) for i in range(50)])
        versions = [int(r["metadata"]["resourceVersion"]) for r in results]
        self.assertEqual(len(set(versions)), 50)
        pool = store.pool
        yield store.close()
        self.assertFalse(pool.running)
        self.assertFalse([t for t in pool.threadpool.threads if t.is_alive()])
