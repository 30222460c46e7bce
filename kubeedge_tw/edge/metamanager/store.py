"""MetaManager's sqlite store: KubeEdge's ``meta(key, type, value)`` table (reference 3.1).

``key`` is the edge-local resource string (``default/pod/nginx``), ``type`` the resource
type, ``value`` the object's JSON. The file is shared with DeviceTwin's tables, as in
KubeEdge. All access after start-up goes through one ``adbapi`` connection (WAL) in
``*_txn`` functions, so writes are serialised and never block the reactor.

The schema is versioned with ``PRAGMA user_version`` and upgraded step by step at start;
a database written by KubeEdge itself (a ``meta`` table, version 0) is adopted as is.
Opening checks the file first: a corrupt or unreadable database stops the edge with a
clear message instead of starting empty (which would make edged kill running pods).
"""

import json
import os
import sqlite3

from twisted.enterprise import adbapi

__all__ = ["MetaStore", "StoreError", "check_and_upgrade", "SCHEMA_VERSION"]


class StoreError(Exception):
    """The database cannot be used; the message says why and where."""


def _step_1(cursor):
    cursor.execute("CREATE TABLE IF NOT EXISTS meta ("
                   "key VARCHAR(256) NOT NULL PRIMARY KEY, "
                   "type VARCHAR(32) NOT NULL DEFAULT '', "
                   "value TEXT)")


def _step_2(cursor):
    cursor.execute("CREATE INDEX IF NOT EXISTS meta_type ON meta (type)")


#: Upgrade steps; step N brings the schema from version N-1 to N.
UPGRADES = (_step_1, _step_2)
SCHEMA_VERSION = len(UPGRADES)


def check_and_upgrade(path):
    """Check the database file and bring its schema to :data:`SCHEMA_VERSION`.

    Runs once at start-up, before the reactor serves anything. Raises
    :class:`StoreError` for a file that is not a healthy sqlite database, or one written
    by a newer version.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    if os.path.exists(path) and not os.access(path, os.R_OK | os.W_OK):
        raise StoreError("edge database {} is not readable and writable".format(path))
    try:
        conn = sqlite3.connect(path, timeout=10)
    except sqlite3.Error as e:
        raise StoreError("cannot open edge database {}: {}".format(path, e)) from None
    try:
        try:
            result = conn.execute("PRAGMA quick_check").fetchone()
        except sqlite3.DatabaseError as e:
            raise StoreError("edge database {} is unreadable or corrupt ({}); refusing to "
                             "start with an empty one, which would remove running pods. "
                             "Restore it from a backup, or move it away to start afresh"
                             .format(path, e)) from None
        if result is None or result[0] != "ok":
            raise StoreError("edge database {} failed its integrity check ({}); refusing "
                             "to start".format(path, result and result[0]))
        conn.execute("PRAGMA journal_mode=WAL")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError("edge database {} has schema version {}, newer than this "
                             "kubeedge-tw understands ({})".format(path, version,
                                                                   SCHEMA_VERSION))
        for number in range(version + 1, SCHEMA_VERSION + 1):
            with conn:
                UPGRADES[number - 1](conn.cursor())
                conn.execute("PRAGMA user_version = {}".format(number))
        return SCHEMA_VERSION
    finally:
        conn.close()


def _open_connection(conn):
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA busy_timeout=10000")
    conn.execute("PRAGMA synchronous=FULL")


def _parse(value):
    try:
        return json.loads(value) if value is not None else None
    except ValueError:
        return value


class MetaStore:
    """Async access to the ``meta`` table through one adbapi connection."""

    def __init__(self, path, reactor=None, pool=None):
        """``pool`` replaces the adbapi pool (tests pass a synchronous one that runs the
        same ``*_txn`` functions)."""
        self.path = path
        if pool is not None:
            self.pool = pool
            return
        kwargs = {"check_same_thread": False, "cp_min": 1, "cp_max": 1,
                  "cp_openfun": _open_connection, "cp_noisy": False}
        if reactor is not None:
            kwargs["cp_reactor"] = reactor
        self.pool = adbapi.ConnectionPool("sqlite3", path, **kwargs)

    def close(self):
        """Stop the pool's thread."""
        self.pool.close()

    # -- transactions (run on the pool's thread) ---------------------------------------------

    @staticmethod
    def _get_txn(txn, key):
        txn.execute("SELECT value FROM meta WHERE key = ?", (key,))
        row = txn.fetchone()
        return row[0] if row else None

    @staticmethod
    def _put_txn(txn, key, rtype, value, only_if_absent):
        """Store; returns ``"same"``, ``"kept"`` (absent-only and present), ``"stale"``
        (older resourceVersion than stored) or ``"written"``."""
        txn.execute("SELECT value FROM meta WHERE key = ?", (key,))
        row = txn.fetchone()
        if row is not None:
            if row[0] == value:
                return "same"
            if only_if_absent:
                return "kept"
            if _is_older(value, row[0]):
                return "stale"
        txn.execute("INSERT OR REPLACE INTO meta (key, type, value) VALUES (?, ?, ?)",
                    (key, rtype, value))
        return "written"

    @staticmethod
    def _delete_txn(txn, key):
        txn.execute("DELETE FROM meta WHERE key = ?", (key,))
        return txn.rowcount > 0

    @staticmethod
    def _by_type_txn(txn, rtype):
        txn.execute("SELECT key, value FROM meta WHERE type = ? ORDER BY key", (rtype,))
        return txn.fetchall()

    @staticmethod
    def _prune_podstatus_txn(txn):
        """Delete podstatus rows whose pod row is gone; return the rest ``(key, value)``."""
        txn.execute("SELECT key, value FROM meta WHERE type = 'podstatus'")
        rows = txn.fetchall()
        kept = []
        for key, value in rows:
            namespace, _, name = key.split("/", 2)
            txn.execute("SELECT 1 FROM meta WHERE key = ?",
                        ("{}/pod/{}".format(namespace, name),))
            if txn.fetchone() is None:
                txn.execute("DELETE FROM meta WHERE key = ?", (key,))
            else:
                kept.append((key, value))
        return kept

    # -- the async API ------------------------------------------------------------------------

    def get(self, key):
        """The stored JSON text for ``key``, or None."""
        return self.pool.runInteraction(self._get_txn, key)

    def put(self, key, rtype, obj, only_if_absent=False):
        """Store ``obj`` (JSON-encoded); see :meth:`_put_txn` for the result."""
        value = obj if isinstance(obj, str) else json.dumps(obj, separators=(",", ":"),
                                                             sort_keys=True)
        return self.pool.runInteraction(self._put_txn, key, rtype, value, only_if_absent)

    def delete(self, key):
        """Remove ``key``; True when a row was removed."""
        return self.pool.runInteraction(self._delete_txn, key)

    def by_type(self, rtype):
        """Every ``(key, value)`` of one type (any namespace), ordered by key."""
        return self.pool.runInteraction(self._by_type_txn, rtype)

    def prune_podstatus(self):
        """Drop orphaned podstatus rows; the remaining ``(key, value)`` pairs."""
        return self.pool.runInteraction(self._prune_podstatus_txn)


def _resource_version(value):
    data = _parse(value)
    if isinstance(data, dict):
        rv = (data.get("metadata") or {}).get("resourceVersion")
        try:
            return int(rv)
        except (TypeError, ValueError):
            return None
    return None


def _is_older(new_value, stored_value):
    """Whether ``new_value`` carries an older resourceVersion than ``stored_value``."""
    new, old = _resource_version(new_value), _resource_version(stored_value)
    return new is not None and old is not None and new < old
