"""SyncPool behaves like adbapi's ConnectionPool for the twin's transactions: the same
results, commit on success, rollback of the whole interaction on an exception."""

import os
import sqlite3

from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase

from kubeedge_tw.edge.devicetwin.model import Device, Twin, TwinValue, Version
from kubeedge_tw.edge.devicetwin.store import (
    DeviceStore, load_devices_txn, open_pool, prepare_database)
from tests.edge.devicetwin.fakes import SyncPool, db_rows


def failing_txn(txn, device_id):
    """Insert a device row, then fail."""
    txn.execute('INSERT INTO "device" ("id") VALUES (?)', (device_id,))
    raise sqlite3.IntegrityError("boom")


class SyncPoolMatchesAdbapiTests(TestCase):
    """The same operations through SyncPool and a real ConnectionPool agree."""

    timeout = 30

    def pools(self):
        """A real adbapi pool and a SyncPool, each on its own prepared file."""
        paths = []
        for name in ("real", "fake"):
            directory = os.path.abspath(self.mktemp())
            path = os.path.join(directory, "edgecore.db")
            prepare_database(path)
            paths.append(path)
        real = open_pool(paths[0], reactor)
        self.addCleanup(real.close)
        fake = SyncPool(paths[1])
        self.addCleanup(fake.close)
        return (real, paths[0]), (fake, paths[1])

    @defer.inlineCallbacks
    def test_same_results(self):
        """A device written and read back through either pool is the same."""
        device = Device("d1", "n", twins={"t": Twin(expected=TwinValue("1", 5),
                                                    expected_version=Version(2, 0))})
        results = []
        for pool, path in self.pools():
            store = DeviceStore(pool, reactor)
            yield store.write([store.insert_device(device)])
            loaded = yield store.load_all()
            results.append((loaded, db_rows(path, "device_twin")))
        (real_devices, real_rows), (fake_devices, fake_rows) = results
        self.assertEqual(real_devices, fake_devices)
        self.assertEqual(real_devices[0].twins["t"], device.twins["t"])
        self.assertEqual(real_rows, fake_rows)

    @defer.inlineCallbacks
    def test_same_rollback(self):
        """A raising interaction rolls back in both pools and the caller sees the error."""
        for pool, path in self.pools():
            with self.assertRaises(sqlite3.IntegrityError):
                yield pool.runInteraction(failing_txn, "d1")
            self.assertEqual(db_rows(path, "device"), [])
            self.assertEqual((yield pool.runInteraction(load_devices_txn)), [])
