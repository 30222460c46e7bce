"""Unit tests for the device tables: KubeEdge's exact schema in a file shared with
MetaManager, row formats, transactional device add/delete, group commit in order, retries
5 x 10 s on the clock, and a real adbapi pool on a temp file."""

import os
import sqlite3

from twisted.internet import defer, reactor
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase

from kubeedge_tw.edge.devicetwin.model import Attr, Device, Twin, TwinValue, Version
from kubeedge_tw.edge.devicetwin.store import (
    DeviceStore, StoreError, WriteFailed, delete_device_txn, open_pool, prepare_database,
    put_twin_txn, twin_row, update_device_txn)
from kubeedge_tw.edge.metamanager.store import check_and_upgrade
from tests.edge.devicetwin.fakes import SyncPool, db_rows

#: The columns of KubeEdge's tables (beego DDL of dtclient.Device/DeviceAttr/DeviceTwin):
#: (name, declared type, not null, primary key).
KUBEEDGE_COLUMNS = {
    "device": [("id", "varchar(64)", 1, 1), ("name", "text", 0, 0),
               ("description", "text", 0, 0), ("state", "text", 0, 0),
               ("last_online", "text", 0, 0)],
    "device_attr": [("id", "integer", 1, 1), ("deviceid", "text", 0, 0),
                    ("name", "text", 0, 0), ("description", "text", 0, 0),
                    ("value", "text", 0, 0), ("optional", "integer", 0, 0),
                    ("attr_type", "text", 0, 0), ("metadata", "text", 0, 0)],
    "device_twin": [("id", "integer", 1, 1), ("deviceid", "text", 0, 0),
                    ("name", "text", 0, 0), ("description", "text", 0, 0),
                    ("expected", "text", 0, 0), ("actual", "text", 0, 0),
                    ("expected_meta", "text", 0, 0), ("actual_meta", "text", 0, 0),
                    ("expected_version", "text", 0, 0), ("actual_version", "text", 0, 0),
                    ("optional", "integer", 0, 0), ("attr_type", "text", 0, 0),
                    ("metadata", "text", 0, 0)],
}


def sample_device(device_id="d1"):
    """A device with one attribute and one twin."""
    return Device(device_id, "name", "desc", "online", "2023-11-14 22:13:20",
                  attributes={"model": Attr("x1", optional=False)},
                  twins={"temp": Twin(expected=TwinValue("20", 5), actual=TwinValue("19", 6),
                                      optional=False, attr_type="int",
                                      expected_version=Version(3, 0),
                                      actual_version=Version(0, 2))})


class SchemaTests(SynchronousTestCase):
    """The tables are KubeEdge's, in the shared edge database."""

    def path(self):
        """A database path in a fresh directory that does not exist yet."""
        return os.path.join(os.path.abspath(self.mktemp()), "sub", "edgecore.db")

    def test_columns_exactly_as_kubeedge(self):
        """Every table has KubeEdge's columns, types, NOT NULL and keys, in order."""
        path = self.path()
        prepare_database(path)
        conn = sqlite3.connect(path)
        for table, columns in KUBEEDGE_COLUMNS.items():
            # sqlite reports built-in type names in upper case.
            info = [(row[1], row[2].lower(), row[3], row[5]) for row in
                    conn.execute('PRAGMA table_info("{}")'.format(table))]
            self.assertEqual(info, columns, table)
        sql = conn.execute("SELECT sql FROM sqlite_master WHERE name='device_twin'").fetchone()
        self.assertIn("AUTOINCREMENT", sql[0])
        self.assertEqual(conn.execute("PRAGMA journal_mode").fetchone()[0], "wal")
        conn.close()

    def test_shares_the_file_with_metamanager(self):
        """MetaManager's meta and the device tables share one file in either order."""
        path = self.path()
        prepare_database(path)
        check_and_upgrade(path)
        prepare_database(path)
        conn = sqlite3.connect(path)
        tables = {row[0] for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table'")}
        conn.close()
        self.assertTrue({"meta", "device", "device_attr", "device_twin"} <= tables)

    def test_unusable_file(self):
        """A file that is not a database is a StoreError naming it."""
        path = self.path()
        os.makedirs(os.path.dirname(path))
        with open(path, "wb") as f:
            f.write(b"this is not sqlite" * 100)
        with self.assertRaises(StoreError) as caught:
            prepare_database(path)
        self.assertIn(path, str(caught.exception))

    def test_row_formats(self):
        """Values, metadata and versions are stored the way KubeEdge stores them."""
        path = self.path()
        prepare_database(path)
        store = DeviceStore(SyncPool(path), Clock())
        self.successResultOf(store.write([store.insert_device(sample_device())]))
        twin, = db_rows(path, "device_twin")
        self.assertEqual(
            {k: twin[k] for k in twin if k != "id"},
            {"deviceid": "d1", "name": "temp", "description": "", "expected": "20",
             "actual": "19", "expected_meta": '{"timestamp":5}',
             "actual_meta": '{"timestamp":6}', "expected_version": '{"cloud":3,"edge":0}',
             "actual_version": '{"cloud":0,"edge":2}', "optional": 0, "attr_type": "int",
             "metadata": "{}"})
        attr, = db_rows(path, "device_attr")
        self.assertEqual((attr["value"], attr["optional"], attr["attr_type"]),
                         ("x1", 0, "string"))
        self.assertEqual(db_rows(path, "device")[0]["last_online"], "2023-11-14 22:13:20")

    def test_reads_kubeedge_rows(self):
        """Rows as KubeEdge writes them (empty strings, null versions) load."""
        path = self.path()
        prepare_database(path)
        conn = sqlite3.connect(path)
        conn.execute('INSERT INTO device (id, name) VALUES ("k1", "kube")')
        conn.execute('INSERT INTO device_twin (deviceid, name, expected, actual, '
                     'expected_meta, expected_version, optional, attr_type, metadata) '
                     'VALUES ("k1", "p", "7", "", \'{"timestamp":9}\', '
                     '\'{"cloud":2,"edge":0}\', 1, "int", "")')
        conn.commit()
        conn.close()
        store = DeviceStore(SyncPool(path), Clock())
        device, = self.successResultOf(store.load_all())
        twin = device.twins["p"]
        self.assertEqual((twin.expected, twin.actual, twin.expected_version, twin.actual_version),
                         (TwinValue("7", 9), None, Version(2, 0), None))


class WriteTests(SynchronousTestCase):
    """Writes are transactional, grouped, ordered and retried on the clock."""

    def setUp(self):
        self.path = os.path.join(os.path.abspath(self.mktemp()), "edgecore.db")
        prepare_database(self.path)
        self.pool = SyncPool(self.path)
        self.clock = Clock()
        self.store = DeviceStore(self.pool, self.clock)

    def test_add_and_delete_device(self):
        """A device with attributes and twins is added and removed as a whole."""
        self.successResultOf(self.store.write([self.store.insert_device(sample_device())]))
        loaded, = self.successResultOf(self.store.load_all())
        self.assertEqual(loaded, sample_device())
        self.successResultOf(self.store.write([(delete_device_txn, ("d1",))]))
        for table in ("device", "device_attr", "device_twin"):
            self.assertEqual(db_rows(self.path, table), [], table)

    def test_failed_add_leaves_nothing(self):
        """When part of a device add fails, no row of it remains."""
        device = sample_device()
        add = self.store.insert_device(device)
        broken = (put_twin_txn, (("d1", "x") + (None,) * 9,))  # too few columns
        d = self.store.write([add, broken])
        for _ in range(4):
            self.clock.advance(10)
        self.failureResultOf(d).trap(WriteFailed)
        self.flushLoggedErrors()
        for table in ("device", "device_attr", "device_twin"):
            self.assertEqual(db_rows(self.path, table), [], table)

    def test_twin_upsert(self):
        """put_twin_txn updates the row in place, or inserts a new one."""
        twin = Twin(actual=TwinValue("1", 1), actual_version=Version(0, 1))
        self.successResultOf(self.store.write([(put_twin_txn, (twin_row("d", "t", twin),))]))
        twin.actual = TwinValue("2", 2)
        self.successResultOf(self.store.write([(put_twin_txn, (twin_row("d", "t", twin),))]))
        rows = db_rows(self.path, "device_twin")
        self.assertEqual([(r["name"], r["actual"]) for r in rows], [("t", "2")])

    def test_retry_five_times_ten_seconds(self):
        """A failing commit is retried every 10 s, 5 attempts in all; then WriteFailed."""
        self.pool.fail_next(5)
        d = self.store.write([(update_device_txn, ("d", "online", "x"))])
        self.assertNoResult(d)
        for _ in range(3):
            self.clock.advance(10)
            self.assertNoResult(d)
        self.clock.advance(9.9)
        self.assertNoResult(d)
        self.clock.advance(0.1)
        self.failureResultOf(d).trap(WriteFailed)
        self.assertEqual(self.pool.interactions, 5)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.flushLoggedErrors()

    def test_retry_succeeds(self):
        """A commit that fails twice succeeds on the third attempt, 20 s later."""
        self.successResultOf(self.store.write([self.store.insert_device(Device("d"))]))
        self.pool.fail_next(2)
        d = self.store.write([(update_device_txn, ("d", "online", "t"))])
        self.clock.advance(10)
        self.assertNoResult(d)
        self.clock.advance(10)
        self.successResultOf(d)
        self.assertEqual(db_rows(self.path, "device")[0]["state"], "online")
        self.assertEqual(self.store.stats["retries"], 2)

    def test_group_commit_in_order(self):
        """Writes made during a commit share the next one; callers hear in order."""
        self.pool.fail_next(1)
        order = []
        first = self.store.write([self.store.insert_device(Device("d"))])
        first.addCallback(lambda _: order.append(1))
        second = self.store.write([(update_device_txn, ("d", "a", "1"))])
        second.addCallback(lambda _: order.append(2))
        barrier = self.store.write([])
        barrier.addCallback(lambda _: order.append(3))
        third = self.store.write([(update_device_txn, ("d", "b", "2"))])
        third.addCallback(lambda _: order.append(4))
        self.assertEqual(order, [])
        self.assertEqual(self.store.backlog, 4)
        self.clock.advance(10)
        self.assertEqual(order, [1, 2, 3, 4])
        self.assertEqual(self.store.stats["commits"], 2)
        self.assertEqual(db_rows(self.path, "device")[0]["state"], "b")

    def test_close_commits_pending_retry(self):
        """close() runs a waiting retry at once, then closes the pool."""
        self.pool.fail_next(1)
        d = self.store.write([self.store.insert_device(Device("d"))])
        closed = self.store.close()
        self.successResultOf(d)
        self.successResultOf(closed)
        self.assertTrue(self.pool.closed)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_lazy_pool(self):
        """A store given a pool factory opens it at first use only."""
        opened = []

        def factory():
            opened.append(1)
            return self.pool
        store = DeviceStore(factory, self.clock)
        self.assertEqual(opened, [])
        self.successResultOf(store.close())
        self.assertEqual(opened, [])
        store = DeviceStore(factory, self.clock)
        self.successResultOf(store.load_all())
        self.assertEqual(opened, [1])


class RealPoolTests(TestCase):
    """The store over a real adbapi pool (a thread) on a temp file."""

    timeout = 30

    @defer.inlineCallbacks
    def test_round_trip_and_group_commit(self):
        """Many writes submitted at once commit in fewer transactions and read back."""
        path = os.path.join(os.path.abspath(self.mktemp()), "edgecore.db")
        prepare_database(path)
        store = DeviceStore(lambda: open_pool(path, reactor), reactor)
        self.addCleanup(store.close)
        yield store.write([store.insert_device(sample_device())])
        writes = []
        for i in range(50):
            twin = Twin(actual=TwinValue(str(i), i), actual_version=Version(0, i))
            writes.append(store.write([(put_twin_txn, (twin_row("d1", "t", twin),))]))
        yield defer.gatherResults(writes)
        self.assertLess(store.stats["commits"], 51)
        device, = yield store.load_all()
        self.assertEqual(device.twins["t"].actual, TwinValue("49", 49))
        self.assertEqual(device.twins["temp"], sample_device().twins["temp"])
