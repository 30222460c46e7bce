"""DeviceTwin's sqlite tables ``device``, ``device_attr``, ``device_twin`` (reference 4.4).

The tables are KubeEdge's, column for column (beego ORM's DDL for ``dtclient.Device``,
``DeviceAttr`` and ``DeviceTwin``), in the edge database file MetaManager also uses
(``database.dataSource``, ``edgecore.db``). Two indexes on ``(deviceid, name)`` are added
so that a twin write does not scan the table; they do not change the tables. Values are
stored as KubeEdge stores them: ``expected``/``actual`` the raw value text,
``*_meta`` ``{"timestamp":<ms>}``, ``*_version`` ``{"cloud":n,"edge":n}``, ``optional``
0/1, ``attr_type`` the type, ``metadata`` the type metadata with its type blanked (``{}``).

The module keeps every device in memory (as KubeEdge's ``DeviceList``) and writes through
:class:`DeviceStore`: one adbapi connection (WAL, ``busy_timeout``) of its own on the shared
file, ``*_txn`` functions run on the pool's thread, and **group commit** -- writes submitted
while a transaction is running are committed together in the next one, in submission
order, each caller's Deferred firing after the commit that holds its rows. A failed commit
is retried as a whole 5 times 10 s apart on the injected clock (KubeEdge's ``RetryTimes`` /
``RetryInterval``); after that its callers get :class:`WriteFailed`. Adding or removing a
device with its attributes and twins is one transaction.
"""

import collections
import json
import os
import sqlite3

from twisted.enterprise import adbapi
from twisted.internet import defer
from twisted.logger import Logger

from kubeedge_tw.edge.devicetwin.model import Attr, Device, Twin, TwinValue, Version

__all__ = ["DeviceStore", "StoreError", "WriteFailed", "prepare_database", "open_pool",
           "SCHEMA", "RETRY_TIMES", "RETRY_INTERVAL", "twin_row", "attr_row"]

#: KubeEdge ``dtcommon.RetryTimes`` / ``RetryInterval``.
RETRY_TIMES = 5
RETRY_INTERVAL = 10.0

SCHEMA = (
    'CREATE TABLE IF NOT EXISTS "device" ('
    '"id" varchar(64) NOT NULL PRIMARY KEY, "name" text, "description" text, '
    '"state" text, "last_online" text)',
    'CREATE TABLE IF NOT EXISTS "device_attr" ('
    '"id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "deviceid" text, "name" text, '
    '"description" text, "value" text, "optional" integer, "attr_type" text, '
    '"metadata" text)',
    'CREATE TABLE IF NOT EXISTS "device_twin" ('
    '"id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "deviceid" text, "name" text, '
    '"description" text, "expected" text, "actual" text, "expected_meta" text, '
    '"actual_meta" text, "expected_version" text, "actual_version" text, '
    '"optional" integer, "attr_type" text, "metadata" text)',
    'CREATE INDEX IF NOT EXISTS "device_attr_deviceid_name" ON "device_attr" '
    '("deviceid", "name")',
    'CREATE INDEX IF NOT EXISTS "device_twin_deviceid_name" ON "device_twin" '
    '("deviceid", "name")',
)


class StoreError(Exception):
    """The device tables cannot be used; the message says why and where."""


class WriteFailed(Exception):
    """A write was not committed after every retry."""


def _configure(conn):
    # busy_timeout first: switching to WAL needs a lock another connection may hold.
    conn.execute("PRAGMA busy_timeout=10000")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")


def prepare_database(path):
    """Create the directory, switch the file to WAL and create the tables (start-up,
    before the reactor runs). Raises :class:`StoreError` for an unusable file."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        conn = sqlite3.connect(path, timeout=10)
    except (OSError, sqlite3.Error) as e:
        raise StoreError("cannot open edge database {}: {}".format(path, e)) from None
    try:
        _configure(conn)
        with conn:
            for statement in SCHEMA:
                conn.execute(statement)
    except sqlite3.Error as e:
        raise StoreError("cannot create the device tables in {}: {}".format(path, e)) from None
    finally:
        conn.close()


def open_pool(path, reactor):
    """The adbapi pool DeviceTwin uses: one connection to ``path`` on ``reactor``."""
    return adbapi.ConnectionPool("sqlite3", path, check_same_thread=False, cp_min=1,
                                 cp_max=1, cp_openfun=_configure, cp_noisy=False,
                                 cp_reactor=reactor)


# -- rows ------------------------------------------------------------------------------------

def _dumps(value):
    return json.dumps(value, separators=(",", ":"))


def _loads(text, default=None):
    if not text:
        return default
    try:
        return json.loads(text)
    except ValueError:
        return default


def _version_from(text):
    data = _loads(text)
    if not isinstance(data, dict):
        return None
    try:
        return Version(int(data.get("cloud") or 0), int(data.get("edge") or 0))
    except (TypeError, ValueError):
        return None


def _value_from(value, meta):
    # KubeEdge DeviceTwinToMsgTwin: an empty value is no value.
    if not value:
        return None
    timestamp = None
    data = _loads(meta)
    if isinstance(data, dict):
        try:
            timestamp = int(data.get("timestamp") or 0)
        except (TypeError, ValueError):
            timestamp = 0
    return TwinValue(value, timestamp)


def twin_row(device_id, name, twin):
    """The ``device_twin`` column values (without ``id``) for ``twin``."""
    def side(value):
        if value is None or value.value is None:
            return None, None
        meta = _dumps({"timestamp": value.timestamp}) if value.timestamp else (
            "{}" if value.timestamp is not None else None)
        return value.value, meta
    expected, expected_meta = side(twin.expected)
    actual, actual_meta = side(twin.actual)
    return (device_id, name, twin.description, expected, actual, expected_meta, actual_meta,
            _dumps(twin.expected_version.to_json()) if twin.expected_version else None,
            _dumps(twin.actual_version.to_json()) if twin.actual_version else None,
            1 if twin.optional else 0, twin.attr_type, "{}")


def attr_row(device_id, name, attr):
    """The ``device_attr`` column values (without ``id``) for ``attr``."""
    return (device_id, name, attr.description, attr.value, 1 if attr.optional else 0,
            attr.attr_type, "{}")


def _twin_from(row):
    (_, name, description, expected, actual, expected_meta, actual_meta, expected_version,
     actual_version, optional, attr_type, _) = row
    return name, Twin(expected=_value_from(expected, expected_meta),
                      actual=_value_from(actual, actual_meta), optional=bool(optional),
                      attr_type=attr_type or "", description=description or "",
                      expected_version=_version_from(expected_version),
                      actual_version=_version_from(actual_version))


def _attr_from(row):
    _, name, description, value, optional, attr_type, _ = row
    return name, Attr(value=value or "", optional=bool(optional), attr_type=attr_type or "",
                      description=description or "")


_TWIN_COLUMNS = ('"deviceid", "name", "description", "expected", "actual", "expected_meta", '
                 '"actual_meta", "expected_version", "actual_version", "optional", '
                 '"attr_type", "metadata"')
_ATTR_COLUMNS = '"deviceid", "name", "description", "value", "optional", "attr_type", "metadata"'


# -- transactions (on the pool's thread) ------------------------------------------------------

def load_devices_txn(txn, device_id=None):
    """Every device (or the one with ``device_id``) with attributes and twins."""
    where, args = ("WHERE id = ?", (device_id,)) if device_id is not None else ("", ())
    txn.execute('SELECT "id", "name", "description", "state", "last_online" FROM "device" '
                + where + ' ORDER BY "id"', args)
    devices = collections.OrderedDict()
    for device_id_, name, description, state, last_online in txn.fetchall():
        devices[device_id_] = Device(device_id_, name or "", description or "", state or "",
                                     last_online or "")
    where = 'WHERE "deviceid" = ?' if device_id is not None else ""
    txn.execute('SELECT ' + _ATTR_COLUMNS + ' FROM "device_attr" ' + where + ' ORDER BY "id"',
                args)
    for row in txn.fetchall():
        device = devices.get(row[0])
        if device is not None:
            name, attr = _attr_from(row)
            device.attributes[name] = attr
    txn.execute('SELECT ' + _TWIN_COLUMNS + ' FROM "device_twin" ' + where + ' ORDER BY "id"',
                args)
    for row in txn.fetchall():
        device = devices.get(row[0])
        if device is not None:
            name, twin = _twin_from(row)
            device.twins[name] = twin
    return list(devices.values())


def insert_device_txn(txn, device_row, attr_rows, twin_rows):
    """Add (or replace) a device with its attributes and twins."""
    delete_device_txn(txn, device_row[0])
    txn.execute('INSERT INTO "device" ("id", "name", "description", "state", "last_online") '
                'VALUES (?, ?, ?, ?, ?)', device_row)
    for row in attr_rows:
        txn.execute('INSERT INTO "device_attr" (' + _ATTR_COLUMNS + ') VALUES '
                    '(?, ?, ?, ?, ?, ?, ?)', row)
    for row in twin_rows:
        txn.execute('INSERT INTO "device_twin" (' + _TWIN_COLUMNS + ') VALUES '
                    '(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)', row)


def delete_device_txn(txn, device_id):
    """Remove a device, its attributes and its twins."""
    txn.execute('DELETE FROM "device_twin" WHERE "deviceid" = ?', (device_id,))
    txn.execute('DELETE FROM "device_attr" WHERE "deviceid" = ?', (device_id,))
    txn.execute('DELETE FROM "device" WHERE "id" = ?', (device_id,))


def update_device_txn(txn, device_id, state, last_online):
    """Set a device's ``state`` and ``last_online``."""
    txn.execute('UPDATE "device" SET "state" = ?, "last_online" = ? WHERE "id" = ?',
                (state, last_online, device_id))


def put_twin_txn(txn, row):
    """Write a twin row: update it in place, or insert it when new."""
    device_id, name = row[0], row[1]
    txn.execute('UPDATE "device_twin" SET "description" = ?, "expected" = ?, "actual" = ?, '
                '"expected_meta" = ?, "actual_meta" = ?, "expected_version" = ?, '
                '"actual_version" = ?, "optional" = ?, "attr_type" = ?, "metadata" = ? '
                'WHERE "deviceid" = ? AND "name" = ?', row[2:] + (device_id, name))
    if txn.rowcount == 0:
        txn.execute('INSERT INTO "device_twin" (' + _TWIN_COLUMNS + ') VALUES '
                    '(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)', row)


def put_attr_txn(txn, row):
    """Write an attribute row: update it in place, or insert it when new."""
    device_id, name = row[0], row[1]
    txn.execute('UPDATE "device_attr" SET "description" = ?, "value" = ?, "optional" = ?, '
                '"attr_type" = ?, "metadata" = ? WHERE "deviceid" = ? AND "name" = ?',
                row[2:] + (device_id, name))
    if txn.rowcount == 0:
        txn.execute('INSERT INTO "device_attr" (' + _ATTR_COLUMNS + ') VALUES '
                    '(?, ?, ?, ?, ?, ?, ?)', row)


def delete_attr_txn(txn, device_id, name):
    """Remove one attribute."""
    txn.execute('DELETE FROM "device_attr" WHERE "deviceid" = ? AND "name" = ?',
                (device_id, name))


def apply_batch_txn(txn, operations):
    """Run every ``(txn_function, args)`` of one group commit."""
    for function, args in operations:
        function(txn, *args)
    return len(operations)


# -- the store --------------------------------------------------------------------------------

class DeviceStore:
    """Async access to the device tables through ``pool`` (an adbapi ``ConnectionPool``
    or anything with its ``runInteraction`` and ``close``), with group commit and retries
    on ``clock``. ``pool`` may instead be a callable making the pool, called at first use
    (so that building the module does not need a running reactor)."""

    log = Logger()

    def __init__(self, pool, clock, *, retry_times=RETRY_TIMES, retry_interval=RETRY_INTERVAL):
        if callable(pool) and not hasattr(pool, "runInteraction"):
            self._pool, self._open_pool = None, pool
        else:
            self._pool, self._open_pool = pool, None
        self.clock = clock
        self.retry_times = retry_times
        self.retry_interval = retry_interval
        self._queue = []
        self._busy = False
        self._retry_call = None
        self._retrying_batch = None
        self._idle_waiters = []
        self._closing = False
        #: Counters for operators, tests and the benchmark.
        self.stats = {"commits": 0, "operations": 0, "retries": 0, "failed": 0}

    @property
    def pool(self):
        """The connection pool, opened at first use."""
        if self._pool is None:
            self._pool = self._open_pool()
        return self._pool

    # reads

    def load_all(self):
        """Every device with its attributes and twins (a Deferred list)."""
        return self.pool.runInteraction(load_devices_txn)

    def load_device(self, device_id):
        """The stored device ``device_id``, or None (a Deferred)."""
        d = self.pool.runInteraction(load_devices_txn, device_id)
        d.addCallback(lambda devices: devices[0] if devices else None)
        return d

    # writes

    @property
    def backlog(self):
        """Writes submitted and not yet committed (or failed)."""
        return len(self._queue) + (1 if self._busy else 0)

    def write(self, operations):
        """Commit ``operations`` (``[(txn_function, args), ...]``) in order with everything
        submitted before; the Deferred fires after the commit (or fails with
        :class:`WriteFailed`). With no operations it fires once earlier writes are done."""
        d = defer.Deferred()
        self._queue.append((list(operations), d))
        self._kick()
        return d

    def insert_device(self, device):
        """The operation adding ``device`` with its attributes and twins."""
        return (insert_device_txn, (
            (device.id, device.name, device.description, device.state, device.last_online),
            [attr_row(device.id, n, a) for n, a in device.attributes.items()],
            [twin_row(device.id, n, t) for n, t in device.twins.items()]))

    def _kick(self):
        if self._busy or not self._queue:
            return
        batch, self._queue = self._queue, []
        operations = [op for ops, _ in batch for op in ops]
        if not operations:
            for _, d in batch:
                d.callback(None)
            self._idle()
            self._kick()
            return
        self._busy = True
        self._attempt(batch, operations, 1)

    def _attempt(self, batch, operations, attempt):
        self._retry_call = None
        self._retrying_batch = None
        d = self.pool.runInteraction(apply_batch_txn, operations)
        d.addCallbacks(self._committed, self._failed, callbackArgs=(batch, operations),
                       errbackArgs=(batch, operations, attempt))

    def _committed(self, _, batch, operations):
        self._busy = False
        self.stats["commits"] += 1
        self.stats["operations"] += len(operations)
        for _, d in batch:
            d.callback(None)
        self._idle()
        self._kick()

    def _failed(self, failure, batch, operations, attempt):
        if attempt < self.retry_times and not self._closing:
            self.stats["retries"] += 1
            self.log.warn("device database write failed (attempt {attempt} of {times}): "
                          "{reason}; retrying in {interval}s", attempt=attempt,
                          times=self.retry_times, reason=failure.getErrorMessage(),
                          interval=self.retry_interval, log_event="twin_db_retry")
            self._retrying_batch = batch
            self._retry_call = self.clock.callLater(self.retry_interval, self._attempt, batch,
                                                    operations, attempt + 1)
            return
        self._busy = False
        self.stats["failed"] += len(batch)
        self.log.error("device database write failed after {attempt} attempts, {count} "
                       "writes lost: {reason}", attempt=attempt, count=len(batch),
                       reason=failure.getErrorMessage(), log_event="twin_db_write_failed")
        error = WriteFailed("device database write failed after {} attempts: {}".format(
            attempt, failure.getErrorMessage()))
        for _, d in batch:
            d.errback(error)
        self._idle()
        self._kick()

    def _idle(self):
        if self._busy or self._queue:
            return
        waiters, self._idle_waiters = self._idle_waiters, []
        for d in waiters:
            d.callback(None)

    def wait_idle(self):
        """A Deferred firing when every submitted write is committed or failed."""
        if not self._busy and not self._queue:
            return defer.succeed(None)
        d = defer.Deferred()
        self._idle_waiters.append(d)
        return d

    def close(self):
        """Commit what is pending (a retry that is waiting runs now, once), then close
        the pool. The Deferred fires when done."""
        self._closing = True
        if self._retry_call is not None and self._retry_call.active():
            self._retry_call.cancel()
            batch = self._retrying_batch
            operations = [op for ops, _ in batch for op in ops]
            self._attempt(batch, operations, self.retry_times)
        d = self.wait_idle()
        d.addCallback(lambda _: self._pool.close() if self._pool is not None else None)
        return d
