"""Tests for MetaManager on a Clock, with the real schema and transactions on a sqlite
file run synchronously, and one test through the real adbapi pool."""

import json
import os
import sqlite3

from twisted.internet import defer, reactor
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase

from kubeedge_tw.common import message as m
from kubeedge_tw.common import names
from kubeedge_tw.common.bus import Bus
from kubeedge_tw.common.config import EDGE, default_config
from kubeedge_tw.common.core import Core, SetupError
from kubeedge_tw.common.module import Module
from kubeedge_tw.edge.metamanager import MetaManager, MetaStore, create_metamanager
from kubeedge_tw.edge.metamanager.store import SCHEMA_VERSION, StoreError, check_and_upgrade


class SyncPool:
    """Runs an interaction at once on one sqlite3 connection, committing or rolling back
    like adbapi's ``runInteraction``; checked by ``SyncPoolTests``."""

    def __init__(self, path):
        self.conn = sqlite3.connect(path)

    def runInteraction(self, interaction, *args, **kw):
        cursor = self.conn.cursor()
        try:
            result = interaction(cursor, *args, **kw)
        except Exception:
            self.conn.rollback()
            return defer.fail()
        self.conn.commit()
        return defer.succeed(result)

    def close(self):
        self.conn.close()


class Recorder(Module):
    """Records messages; can answer sync messages with a prepared reply."""

    def __init__(self, clock, name, group):
        super().__init__(clock, name=name, group=group)
        self.seen = []
        self.answers = {}

    def handle(self, message):
        self.seen.append(message)
        if message.sync and message.resource in self.answers:
            answer = self.answers[message.resource]
            if answer is not None:
                self.send_resp(m.new_response(message, answer))


class Harness:
    """MetaManager with a cloud stand-in (``websocket``) and an ``edged`` recorder."""

    def __init__(self, testcase, connected=True):
        self.clock = Clock()
        self.path = os.path.join(testcase.mktemp() + ".d", "edgecore.db")
        check_and_upgrade(self.path)
        self.bus = Bus(self.clock)
        self.store = MetaStore(self.path, pool=SyncPool(self.path))
        self.meta = MetaManager(self.clock, self.store, remote_query_timeout=10,
                                pod_status_sync_interval=60)
        self.cloud = Recorder(self.clock, names.EDGEHUB, names.HUB_GROUP)
        self.edged = Recorder(self.clock, names.EDGED, names.EDGED_GROUP)
        for module in (self.meta, self.cloud, self.edged):
            self.bus.register(module)
            module.startService()
        if connected:
            self.bus.send(names.METAMANAGER, m.new_message(
                "edgehub", "meta", names.OP_PUBLISH, names.RES_NODE_CONNECTION,
                names.CLOUD_CONNECTED))
            self.run()

    def run(self, seconds=0):
        self.clock.advance(seconds)
        for _ in range(10):
            self.clock.advance(0)

    def rows(self, rtype=None):
        conn = sqlite3.connect(self.path)
        try:
            if rtype:
                return dict(conn.execute("SELECT key, value FROM meta WHERE type = ?",
                                         (rtype,)).fetchall())
            return dict(conn.execute("SELECT key, value FROM meta").fetchall())
        finally:
            conn.close()

    def from_cloud(self, op, resource, content, **kw):
        msg = m.new_message(names.EDGECONTROLLER, "resource", op, resource, content, **kw)
        self.bus.send(names.METAMANAGER, msg)
        self.run()
        return msg

    def query(self, resource):
        d = self.bus.send_sync(names.METAMANAGER, m.new_message(
            names.EDGED, names.META_GROUP, names.OP_QUERY, resource, None), 30)
        self.run()
        return d


def pod(name="web", rv="5", image="busybox"):
    return {"metadata": {"name": name, "namespace": "default", "uid": "u-" + name,
                         "resourceVersion": rv},
            "spec": {"containers": [{"name": "c", "image": image}]}}


class CloudWriteTests(SynchronousTestCase):
    """Cloud writes are persisted, then forwarded to edged, then ACKed."""

    def test_persist_forward_ack(self):
        """A pod update is stored, reaches edged, and is ACKed with OK to its msg id."""
        h = Harness(self)
        msg = h.from_cloud("update", "default/pod/web", pod())
        self.assertEqual(json.loads(h.rows("pod")["default/pod/web"]), pod())
        self.assertEqual([x.msg_id for x in h.edged.seen], [msg.msg_id])
        acks = [x for x in h.cloud.seen if x.operation == "response"]
        self.assertEqual([(a.parent_msg_id, a.content) for a in acks], [(msg.msg_id, "OK")])
        self.assertEqual(acks[0].resource, "default/pod/web")

    def test_persisted_before_forwarding(self):
        """When edged gets the pod, the row is already in the database."""
        h = Harness(self)
        seen_rows = []
        original = h.edged.handle
        h.edged.handle = lambda msg: (seen_rows.append(h.rows("pod")), original(msg))[1]
        h.from_cloud("update", "default/pod/web", pod())
        self.assertIn("default/pod/web", seen_rows[0])

    def test_duplicate_changes_nothing(self):
        """The same update twice is ACKed twice but forwarded once."""
        h = Harness(self)
        first = h.from_cloud("update", "default/pod/web", pod())
        second = h.from_cloud("update", "default/pod/web", pod())
        self.assertEqual(len(h.edged.seen), 1)
        self.assertEqual([x.parent_msg_id for x in h.cloud.seen if x.operation == "response"],
                         [first.msg_id, second.msg_id])

    def test_insert_keeps_existing(self):
        """An insert of a stored key keeps the stored object (KubeEdge's rule)."""
        h = Harness(self)
        h.from_cloud("update", "default/pod/web", pod(rv="5"))
        h.from_cloud("insert", "default/pod/web", pod(rv="9", image="other"))
        self.assertEqual(json.loads(h.rows("pod")["default/pod/web"])["metadata"]
                         ["resourceVersion"], "5")
        self.assertEqual(len(h.edged.seen), 1)

    def test_stale_update_ignored(self):
        """An update older (by resourceVersion) than what is stored is ACKed, not applied."""
        h = Harness(self)
        h.from_cloud("update", "default/pod/web", pod(rv="9"))
        h.from_cloud("update", "default/pod/web", pod(rv="7", image="old"))
        stored = json.loads(h.rows("pod")["default/pod/web"])
        self.assertEqual(stored["metadata"]["resourceVersion"], "9")
        self.assertEqual(len(h.edged.seen), 1)
        self.assertEqual(len([x for x in h.cloud.seen if x.operation == "response"]), 2)

    def test_delete(self):
        """A pod delete removes the pod and its status row, reaches edged and is ACKed."""
        h = Harness(self)
        h.from_cloud("update", "default/pod/web", pod())
        h.bus.send(names.METAMANAGER, m.new_message(names.EDGED, "meta", "update",
                                                    "default/podstatus/web", {"UID": "u"}))
        h.run()
        h.from_cloud("delete", "default/pod/web", pod())
        self.assertEqual(h.rows(), {})
        self.assertEqual([x.operation for x in h.edged.seen], ["update", "delete"])

    def test_bad_resource(self):
        """A cloud write with a malformed resource gets an error reply, nothing stored."""
        h = Harness(self)
        msg = h.from_cloud("update", "nonsense", {})
        self.assertEqual(h.cloud.seen[-1].operation, "error")
        self.assertEqual(h.cloud.seen[-1].parent_msg_id, msg.msg_id)
        self.assertEqual(h.rows(), {})


class QueryTests(SynchronousTestCase):
    """edged's queries: local, remote, offline."""

    def test_local_hit(self):
        """A stored object is answered locally as a list of JSON strings."""
        h = Harness(self)
        h.from_cloud("update", "default/configmap/cfg", {"metadata": {"name": "cfg"}})
        reply = self.successResultOf(h.query("default/configmap/cfg"))
        self.assertEqual([json.loads(x) for x in reply.content], [{"metadata": {"name": "cfg"}}])
        self.assertFalse([x for x in h.cloud.seen if x.operation == "query"])

    def test_all_of_a_type(self):
        """A query without a name lists every stored object of the type, all namespaces."""
        h = Harness(self)
        h.from_cloud("update", "default/pod/a", pod("a"))
        h.from_cloud("update", "kube-system/pod/b", pod("b"))
        reply = self.successResultOf(h.query("default/pod"))
        self.assertEqual(sorted(json.loads(x)["metadata"]["name"] for x in reply.content),
                         ["a", "b"])

    def test_remote_miss_stored(self):
        """A missing configmap is asked of the cloud, stored and answered."""
        h = Harness(self)
        cm = {"kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"k": "v"}}
        h.cloud.answers["default/configmap/cfg"] = cm
        reply = self.successResultOf(h.query("default/configmap/cfg"))
        self.assertEqual([json.loads(x) for x in reply.content], [cm])
        self.assertIn("default/configmap/cfg", h.rows("configmap"))

    def test_remote_wrapper_and_not_found(self):
        """cloudcore's {Object, Err} wrapper is unwrapped; a NotFound Status answers empty."""
        h = Harness(self)
        h.cloud.answers["default/secret/s"] = {"Object": {"metadata": {"name": "s"}}, "Err": None}
        h.cloud.answers["default/secret/gone"] = {"kind": "Status", "code": 404,
                                                  "reason": "NotFound"}
        # What cloudcore v1.15 really sends for a missing node, and for a missing lease.
        h.cloud.answers["default/node/n1"] = {"ErrStatus": {
            "metadata": {}, "status": "Failure", "reason": "NotFound", "code": 404}}
        h.cloud.answers["kube-node-lease/lease/n1"] = {"Object": None, "Err": {"ErrStatus": {
            "status": "Failure", "reason": "NotFound", "code": 404}}}
        self.assertEqual(len(self.successResultOf(h.query("default/secret/s")).content), 1)
        self.assertEqual(self.successResultOf(h.query("default/secret/gone")).content, [])
        self.assertEqual(self.successResultOf(h.query("default/node/n1")).content, [])
        self.assertEqual(self.successResultOf(h.query("kube-node-lease/lease/n1")).content, [])
        self.assertEqual(set(h.rows()), {"default/secret/s"})
        self.assertNotIn("default/secret/gone", h.rows())

    def test_remote_timeout(self):
        """Without a cloud answer the query fails with an error reply after the timeout."""
        h = Harness(self)
        h.cloud.answers["default/configmap/slow"] = None
        d = h.query("default/configmap/slow")
        self.assertNoResult(d)
        h.run(10)
        self.assertEqual(self.successResultOf(d).operation, "error")

    def test_offline_answers_from_db(self):
        """While the cloud is disconnected a miss is answered at once, empty."""
        h = Harness(self, connected=False)
        reply = self.successResultOf(h.query("default/configmap/cfg"))
        self.assertEqual(reply.content, [])
        self.assertFalse([x for x in h.cloud.seen if x.operation == "query"])

    def test_pods_are_not_remote(self):
        """Pods are never asked of the cloud: a miss is an empty answer."""
        h = Harness(self)
        self.assertEqual(self.successResultOf(h.query("default/pod/none")).content, [])


class UpstreamTests(SynchronousTestCase):
    """Status and registration from edged to the cloud."""

    def status(self, h, name="web", phase="Running", sync=False):
        d = None
        msg = m.new_message(names.EDGED, "meta", "update", "default/podstatus/" + name,
                            {"UID": "u-" + name, "Name": name, "Status": {"phase": phase}})
        if sync:
            d = h.bus.send_sync(names.METAMANAGER, msg, 10)
        else:
            h.bus.send(names.METAMANAGER, msg)
        h.run()
        return d

    def test_pod_status_forwarded_once(self):
        """A pod status is stored and forwarded; an identical one is not sent again."""
        h = Harness(self)
        self.status(h)
        self.status(h)
        self.status(h, phase="Succeeded")
        sent = [x for x in h.cloud.seen if x.resource == "default/podstatus/web"]
        self.assertEqual([x.content["Status"]["phase"] for x in sent], ["Running", "Succeeded"])

    def test_sync_status_answered(self):
        """A sync status update is answered OK."""
        h = Harness(self)
        self.assertEqual(self.successResultOf(self.status(h, sync=True)).content, "OK")

    def test_registration_relayed(self):
        """A node registration insert goes to the cloud and the reply comes back to edged
        with its own id as parent."""
        h = Harness(self)
        h.cloud.answers["default/node/edge-1"] = {"Object": {"metadata": {"name": "edge-1"}}}
        request = m.new_message(names.EDGED, "meta", "insert", "default/node/edge-1",
                                {"metadata": {"name": "edge-1"}})
        d = h.bus.send_sync(names.METAMANAGER, request, 30)
        h.run()
        reply = self.successResultOf(d)
        self.assertEqual(reply.parent_msg_id, request.msg_id)

    def test_registration_offline(self):
        """While disconnected a sync registration is refused at once, not left hanging."""
        h = Harness(self, connected=False)
        d = h.bus.send_sync(names.METAMANAGER, m.new_message(
            names.EDGED, "meta", "insert", "default/node/edge-1", {}), 30)
        h.run()
        self.assertEqual(self.successResultOf(d).operation, "error")

    def test_bulk_resync(self):
        """Every 60 s pod statuses of existing pods go up in one message; orphans are
        deleted; nothing is sent while disconnected."""
        h = Harness(self)
        h.from_cloud("update", "default/pod/web", pod())
        self.status(h, "web")
        self.status(h, "orphan")
        h.run(60)
        bulk = [x for x in h.cloud.seen if x.resource == "default/podstatus"]
        self.assertEqual(len(bulk), 1)
        self.assertEqual([s["Name"] for s in bulk[0].content], ["web"])
        self.assertNotIn("default/podstatus/orphan", h.rows())
        h.bus.send(names.METAMANAGER, m.new_message("edgehub", "meta", "publish",
                                                    "node/connection", "cloud_disconnected"))
        h.run(60)
        self.assertEqual(len([x for x in h.cloud.seen if x.resource == "default/podstatus"]), 1)

    def test_stop_leaves_nothing(self):
        """stopService stops the resync timer and closes the store."""
        h = Harness(self)
        self.successResultOf(h.meta.stopService())
        for module in (h.cloud, h.edged):
            module.stopService()
        self.assertEqual(h.clock.getDelayedCalls(), [])


class SchemaTests(SynchronousTestCase):
    """The database is checked, adopted and upgraded at start."""

    def test_fresh(self):
        """A new file gets the current schema version."""
        path = os.path.join(self.mktemp(), "edgecore.db")
        self.assertEqual(check_and_upgrade(path), SCHEMA_VERSION)
        conn = sqlite3.connect(path)
        self.assertEqual(conn.execute("PRAGMA user_version").fetchone()[0], SCHEMA_VERSION)
        conn.close()

    def test_adopts_kubeedge_db(self):
        """A KubeEdge-written meta table (version 0) keeps its rows after the upgrade."""
        path = os.path.join(self.mktemp(), "edge.db")
        os.makedirs(os.path.dirname(path))
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE meta (key VARCHAR(256) PRIMARY KEY, type VARCHAR(32), "
                     "value TEXT)")
        conn.execute("INSERT INTO meta VALUES ('default/pod/x', 'pod', '{}')")
        conn.commit()
        conn.close()
        check_and_upgrade(path)
        conn = sqlite3.connect(path)
        self.assertEqual(conn.execute("SELECT key FROM meta").fetchall(), [("default/pod/x",)])
        conn.close()

    def test_corrupt_refused(self):
        """A corrupt file is refused with a clear message; the edge does not start."""
        path = os.path.join(self.mktemp(), "edgecore.db")
        os.makedirs(os.path.dirname(path))
        with open(path, "wb") as f:
            f.write(b"this is not a database at all" * 100)
        e = self.assertRaises(StoreError, check_and_upgrade, path)
        self.assertIn("refusing", str(e))
        config = default_config(EDGE, overrides={"stateDir": os.path.dirname(path)})
        core = Core("kubeedge-edge", Clock(), config)
        self.assertRaises(SetupError, create_metamanager, core, config)

    def test_newer_schema_refused(self):
        """A database from a newer version is refused."""
        path = os.path.join(self.mktemp(), "edgecore.db")
        check_and_upgrade(path)
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA user_version = 99")
        conn.close()
        self.assertRaises(StoreError, check_and_upgrade, path)


class SyncPoolTests(SynchronousTestCase):
    """The synchronous pool behaves like adbapi: commit on success, rollback on error."""

    def test_commit_and_rollback(self):
        """A failing interaction leaves no partial write."""
        path = os.path.join(self.mktemp(), "t.db")
        check_and_upgrade(path)
        pool = SyncPool(path)

        def write_then_fail(txn):
            txn.execute("INSERT INTO meta VALUES ('k', 't', 'v')")
            raise ValueError("boom")
        self.failureResultOf(pool.runInteraction(write_then_fail), ValueError)
        self.assertEqual(self.successResultOf(pool.runInteraction(
            MetaStore._get_txn, "k")), None)
        pool.close()


class RealPoolTests(TestCase):
    """The store through the real adbapi pool on its thread."""

    @defer.inlineCallbacks
    def test_round_trip(self):
        """put/get/by_type/delete work through adbapi, and the pool closes cleanly."""
        path = os.path.join(os.path.abspath(self.mktemp()), "edgecore.db")
        check_and_upgrade(path)
        store = MetaStore(path, reactor=reactor)
        self.addCleanup(store.close)
        self.assertEqual((yield store.put("default/pod/a", "pod", {"a": 1})), "written")
        self.assertEqual((yield store.put("default/pod/a", "pod", {"a": 1})), "same")
        self.assertEqual(json.loads((yield store.get("default/pod/a"))), {"a": 1})
        self.assertEqual([k for k, _ in (yield store.by_type("pod"))], ["default/pod/a"])
        self.assertTrue((yield store.delete("default/pod/a")))
