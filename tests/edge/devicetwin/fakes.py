"""Test doubles for DeviceTwin: :class:`SyncPool`, a synchronous stand-in for adbapi's
``ConnectionPool`` over a real sqlite file (checked against the real pool in
``test_fakes``), and :class:`TwinHarness`, a DeviceTwin on a bus with recorder modules in
the places of EventBus and EdgeHub, all on a Clock."""

import json
import os
import sqlite3

from twisted.internet import defer
from twisted.internet.task import Clock

from kubeedge_tw.common import message as m
from kubeedge_tw.common import names
from kubeedge_tw.common.bus import Bus
from kubeedge_tw.edge.devicetwin.store import DeviceStore, _configure, prepare_database
from kubeedge_tw.edge.devicetwin.twin import DeviceTwin
from kubeedge_tw.edge.eventbus.topics import topic_to_resource
from tests.edge.fakes import Recorder

#: 2023-11-14T22:13:20Z, so that timestamps in tests are readable.
EPOCH = 1_700_000_000


class SyncPool:
    """``runInteraction`` run at once on the calling thread, on one sqlite connection,
    with adbapi's semantics: commit after the function, rollback when it raises, the
    result or failure in an already-fired Deferred.

    ``fail_next(n)`` makes the next ``n`` interactions fail (before running) with
    ``sqlite3.OperationalError('database is locked')``, as a busy database would."""

    def __init__(self, path):
        self.path = path
        self.conn = sqlite3.connect(path, check_same_thread=False)
        _configure(self.conn)
        self.interactions = 0
        self._failures = 0
        self.closed = False

    def fail_next(self, count=1):
        """Make the next ``count`` interactions fail."""
        self._failures = count

    def runInteraction(self, function, *args, **kw):
        """Run ``function(cursor, *args, **kw)`` in a transaction."""
        self.interactions += 1
        if self._failures:
            self._failures -= 1
            return defer.fail(sqlite3.OperationalError("database is locked"))
        cursor = self.conn.cursor()
        try:
            result = function(cursor, *args, **kw)
        except BaseException:
            self.conn.rollback()
            return defer.fail()
        self.conn.commit()
        return defer.succeed(result)

    def close(self):
        """Close the connection."""
        self.closed = True
        self.conn.close()


def db_rows(path, table):
    """Every row of ``table`` as dicts, read with a separate connection."""
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in conn.execute(
            'SELECT * FROM "{}" ORDER BY "id"'.format(table))]
    finally:
        conn.close()


class TwinHarness:
    """A started DeviceTwin with an ``eventbus`` and a ``websocket`` recorder."""

    def __init__(self, testcase, node_name="edge-1", path=None, start=True, **kw):
        self.clock = Clock()
        self.clock.advance(EPOCH)
        self.path = path or os.path.join(os.path.abspath(testcase.mktemp()), "edgecore.db")
        prepare_database(self.path)
        self.pool = SyncPool(self.path)
        self.store = DeviceStore(self.pool, self.clock)
        self.bus = Bus(self.clock)
        self.twin = DeviceTwin(self.clock, node_name=node_name, store=self.store, **kw)
        self.eventbus = Recorder(self.clock, names.EVENTBUS, names.BUS_GROUP)
        self.hub = Recorder(self.clock, names.EDGEHUB, names.HUB_GROUP)
        for module in (self.twin, self.eventbus, self.hub):
            self.bus.register(module)
        if start:
            self.start()

    def start(self):
        """Start the modules and let the twin load."""
        for module in (self.eventbus, self.hub, self.twin):
            module.startService()
        self.clock.advance(0)

    def run(self):
        """Let every module handle what is queued."""
        for _ in range(20):
            self.clock.advance(0)

    def mqtt(self, topic, payload):
        """A mapper publishes ``payload`` (str, bytes, or JSON value) on ``topic``,
        delivered as EventBus would."""
        if not isinstance(payload, (str, bytes)):
            payload = json.dumps(payload)
        self.bus.send(names.DEVICETWIN, m.new_message(
            "bus", names.USER_GROUP, names.OP_RESPONSE, topic_to_resource(topic), payload))
        self.run()

    def cloud(self, resource, content, operation="update", source="devicecontroller",
              parent=""):
        """The cloud sends the twin a message (through EdgeHub)."""
        self.bus.send(names.DEVICETWIN, m.new_message(
            source, names.WIRE_GROUP_TWIN, operation, resource, content,
            parent_msg_id=parent))
        self.run()

    def connection(self, content):
        """EdgeHub's node/connection broadcast."""
        self.bus.send(names.DEVICETWIN, m.new_message(
            "edgehub", names.TWIN_GROUP, names.OP_PUBLISH, names.RES_NODE_CONNECTION, content))
        self.run()

    def add_device(self, device_id="dev1", twins=None, attributes=None, **fields):
        """The cloud adds a device through a membership update."""
        device = dict({"id": device_id, "name": device_id}, **fields)
        if twins is not None:
            device["twin"] = twins
        if attributes is not None:
            device["attributes"] = attributes
        self.cloud("membership", {"event_id": "m", "timestamp": 1,
                                  "added_devices": [device], "removed_devices": []})

    def published(self, topic=None):
        """``(topic, decoded payload)`` of everything the twin asked EventBus to publish
        (only ``topic`` when given)."""
        out = []
        for msg in self.eventbus.seen:
            self._check_publish(msg)
            if topic is None or msg.resource == topic:
                out.append((msg.resource, json.loads(msg.content)))
        return out

    def payloads(self, topic):
        """The decoded payloads published on ``topic``."""
        return [payload for _, payload in self.published(topic)]

    def last(self, topic):
        """The last payload published on ``topic``."""
        payloads = self.payloads(topic)
        if not payloads:
            raise AssertionError("nothing published on {}; published: {}".format(
                topic, [t for t, _ in self.published()]))
        return payloads[-1]

    @staticmethod
    def _check_publish(msg):
        if (msg.source, msg.group, msg.operation) != ("twin", "bus", "publish"):
            raise AssertionError("not a publish request: {}".format(msg))

    def to_cloud(self, resource=None):
        """Messages the twin sent to the cloud (only ``resource`` when given)."""
        return [msg for msg in self.hub.seen if resource is None or msg.resource == resource]

    def clear(self):
        """Forget what was published and sent so far."""
        del self.eventbus.seen[:]
        del self.hub.seen[:]

    def stop(self):
        """Stop the twin; returns its Deferred."""
        return self.twin.stopService()
