"""Unit tests for the DeviceTwin module on a Clock with a real sqlite file (SyncPool):
membership from the cloud, mapper twin updates and gets, state reports, cloud syncs,
attribute updates, deletions, error results, the confirm map and the cloud link, and
garbage that must never crash it."""

import json
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from kubeedge_tw.common import names
from kubeedge_tw.common.config import EDGE, default_config
from kubeedge_tw.common.core import Core, SetupError
from kubeedge_tw.edge.devicetwin import create_devicetwin, parse_topic
from kubeedge_tw.edge.devicetwin.twin import DETAIL_RESOURCE
from tests.edge.devicetwin.fakes import EPOCH, TwinHarness, db_rows
from tests.edge.fakes import capture_logs, named

NOW = EPOCH * 1000
DEV = "$hw/events/device/dev1/"
TEMP = {"temp": {"expected": {"value": "20"}, "optional": False,
                 "metadata": {"type": "int"},
                 "expected_version": {"cloud": 5, "edge": 0}}}
ATTRS = {"model": {"value": "x1", "optional": False, "metadata": {"type": "string"}}}


def harness(testcase, **kw):
    """A started TwinHarness with device dev1 (twin temp desired 20, attribute model)."""
    h = TwinHarness(testcase, **kw)
    h.add_device("dev1", twins=TEMP, attributes=ATTRS)
    h.clear()
    return h


class TopicTests(SynchronousTestCase):
    """Mapper topics are classified as KubeEdge's classifyMsg does."""

    def test_parse_topic(self):
        """Device id at level 3, or 4 after a v1.17 namespace; membership get by node."""
        self.assertEqual(parse_topic(DEV + "twin/update"), ("twin/update", "dev1", "dev1"))
        self.assertEqual(parse_topic("$hw/events/device/ns/dev1/twin/get"),
                         ("twin/get", "ns/dev1", "dev1"))
        self.assertEqual(parse_topic(DEV + "state/update"), ("state/update", "dev1", "dev1"))
        self.assertEqual(parse_topic("$hw/events/node/n1/membership/get"),
                         ("membership/get", "n1", "n1"))
        for other in (DEV + "twin/update/result", "$hw/events/node/n1/membership/updated",
                      "$hw/events/device//twin/update", "$hw/events/connected/x", "a/b"):
            self.assertIsNone(parse_topic(other), other)


class MembershipTests(SynchronousTestCase):
    """Devices come and go with the cloud's membership messages."""

    def test_added_device_stored_and_announced(self):
        """An added device is stored, announced without versions and its delta sent."""
        h = TwinHarness(self)
        h.add_device("dev1", twins=dict(TEMP, old={"metadata": {"type": "deleted"},
                                                   "expected_version": {"cloud": 1,
                                                                        "edge": 0}}),
                     attributes=ATTRS, description="thermometer")
        update = h.last("$hw/events/node/edge-1/membership/updated")
        added, = update["added_devices"]
        self.assertEqual(update["removed_devices"], None)
        self.assertEqual(added["id"], "dev1")
        self.assertEqual(added["description"], "thermometer")
        self.assertEqual(added["twin"]["temp"], {"expected": {"value": "20"},
                                                 "optional": False,
                                                 "metadata": {"type": "int"}})
        self.assertIsNone(added["twin"]["old"])
        self.assertEqual(h.last(DEV + "twin/update/delta")["delta"], {"temp": "20"})
        self.assertEqual([r["id"] for r in db_rows(h.path, "device")], ["dev1"])
        twins = {r["name"]: r for r in db_rows(h.path, "device_twin")}
        self.assertEqual(twins["temp"]["expected_version"], '{"cloud":5,"edge":0}')
        self.assertEqual(twins["old"]["attr_type"], "deleted")
        self.assertEqual(db_rows(h.path, "device_attr")[0]["value"], "x1")

    def test_removed_device(self):
        """A removed device loses its rows and is announced."""
        h = harness(self)
        h.cloud("membership", {"added_devices": [], "removed_devices": [{"id": "dev1"}]})
        self.assertEqual(h.last("$hw/events/node/edge-1/membership/updated")
                         ["removed_devices"], [{"id": "dev1"}])
        for table in ("device", "device_attr", "device_twin"):
            self.assertEqual(db_rows(h.path, table), [], table)
        self.assertNotIn("dev1", h.twin.devices)

    def test_readding_updates_attributes(self):
        """Adding a known device again updates its attributes and syncs its twins."""
        h = harness(self)
        h.add_device("dev1", attributes={"model": {"value": "x2"}},
                     twins={"temp": {"expected": {"value": "22"},
                                     "expected_version": {"cloud": 6, "edge": 0}}})
        self.assertEqual(h.last(DEV + "updated")["attributes"]["model"]["value"], "x2")
        self.assertEqual(h.twin.devices["dev1"].twins["temp"].expected.value, "22")
        self.assertEqual(len(db_rows(h.path, "device")), 1)

    def test_detail_reconciles(self):
        """membership/detail adds what is missing and removes what is not listed."""
        h = harness(self)
        h.add_device("dev2")
        h.clear()
        h.cloud(DETAIL_RESOURCE, {"event_id": "", "devices": [
            {"id": "dev2", "name": "dev2"}, {"id": "dev3", "name": "dev3"}]})
        self.assertEqual(sorted(h.twin.devices), ["dev2", "dev3"])
        announced = h.payloads("$hw/events/node/edge-1/membership/updated")
        self.assertEqual([a["added_devices"][0]["id"] for a in announced
                          if a["added_devices"]], ["dev3"])
        self.assertEqual([a["removed_devices"][0]["id"] for a in announced
                          if a["removed_devices"]], ["dev1"])
        self.assertEqual(sorted(r["id"] for r in db_rows(h.path, "device")),
                         ["dev2", "dev3"])

    def test_membership_get(self):
        """A mapper's membership get is answered with the devices, without twins."""
        h = harness(self)
        h.mqtt("$hw/events/node/edge-1/membership/get", {"event_id": "g1"})
        result = h.last("$hw/events/node/edge-1/membership/get/result")
        self.assertEqual(result["event_id"], "g1")
        self.assertEqual(result["devices"], [{
            "id": "dev1", "name": "dev1",
            "attributes": {"model": {"value": "x1", "optional": False,
                                     "metadata": {"type": "string"}}}}])

    def test_membership_get_bad_payload(self):
        """A membership get that is not JSON gets a 400 on the result topic."""
        h = harness(self)
        h.mqtt("$hw/events/node/edge-1/membership/get", "nope")
        self.assertEqual(h.last("$hw/events/node/edge-1/membership/get/result")["code"], 400)

    def test_bad_membership(self):
        """A membership update with a bad device id is refused whole, logged."""
        events = capture_logs(self)
        h = harness(self)
        h.cloud("membership", {"added_devices": [{"id": "ok"}, {"id": "bad/id"}]})
        self.assertNotIn("ok", h.twin.devices)
        self.assertEqual(len(named(events, "twin_membership_refused")), 1)


class TwinUpdateTests(SynchronousTestCase):
    """A mapper's twin update (reference 4.2/4.3)."""

    def test_report_publishes_result_document_delta_then_cloud(self):
        """Result, document and delta go out in order, then edge_updated to the cloud."""
        h = harness(self)
        h.mqtt(DEV + "twin/update", {"event_id": "u1", "timestamp": 1,
                                     "twin": {"temp": {"actual": {"value": "19"},
                                                       "metadata": {"type": "int"}}}})
        self.assertEqual([t for t, _ in h.published()], [
            DEV + "twin/update/result", DEV + "twin/update/document",
            DEV + "twin/update/delta"])
        result = h.last(DEV + "twin/update/result")
        self.assertEqual(result, {"event_id": "u1", "timestamp": NOW, "twin": {"temp": {
            "actual": {"value": "19", "metadata": {"timestamp": NOW}}, "optional": False,
            "metadata": {"type": "int"}}}})
        document = h.last(DEV + "twin/update/document")
        self.assertEqual(document["event_id"], "u1")
        self.assertNotIn("actual", document["twin"]["temp"]["last"])
        self.assertEqual(document["twin"]["temp"]["current"]["actual"]["value"], "19")
        delta = h.last(DEV + "twin/update/delta")
        self.assertEqual(delta["delta"], {"temp": "20"})
        self.assertNotIn("expected_version", delta["twin"]["temp"])
        report, = h.to_cloud("device/dev1/twin/edge_updated")
        self.assertEqual((report.source, report.group, report.operation),
                         ("twin", "twin", "update"))
        self.assertEqual(report.content["twin"]["temp"]["actual_version"],
                         {"cloud": 0, "edge": 1})
        row, = db_rows(h.path, "device_twin")
        self.assertEqual((row["actual"], row["actual_version"]), ("19", '{"cloud":0,"edge":1}'))

    def test_no_delta_when_reported_matches(self):
        """Reporting the desired value publishes no delta."""
        h = harness(self)
        h.mqtt(DEV + "twin/update", {"twin": {"temp": {"actual": {"value": "20"}}}})
        self.assertEqual(h.payloads(DEV + "twin/update/delta"), [])
        self.assertEqual(len(h.payloads(DEV + "twin/update/result")), 1)

    def test_new_twin_from_mapper(self):
        """A mapper may add a twin, stored as optional."""
        h = harness(self)
        h.mqtt(DEV + "twin/update", {"twin": {"hum": {"actual": {"value": "40.5"},
                                                      "metadata": {"type": "float"}}}})
        rows = {r["name"]: r for r in db_rows(h.path, "device_twin")}
        self.assertEqual((rows["hum"]["optional"], rows["hum"]["attr_type"]), (1, "float"))

    def assertError(self, h, topic, code, fragment, event_id=""):
        """The last result on ``topic`` is an error with ``code`` and ``event_id``."""
        result = h.last(topic)
        self.assertEqual((result["code"], result["event_id"]), (code, event_id), result)
        self.assertIn(fragment, result["reason"])
        self.assertEqual(set(result), {"event_id", "timestamp", "code", "reason"})

    def test_errors(self):
        """Bad payloads get 400, unknown devices 404, event id echoed, nothing stored."""
        h = harness(self)
        before = db_rows(h.path, "device_twin")
        topic = DEV + "twin/update/result"
        cases = [
            ("not json", 400, "not JSON", ""),
            ('{"event_id":"e2"}', 400, "key:twin does not exist", "e2"),
            ('{"event_id":"e3","twin":{"bad key":{}}}', 400, "The key of twin", "e3"),
            ('{"event_id":"e4","twin":{"temp":{"actual":{"value":"x y"}}}}', 400,
             "The value of twin", "e4"),
            ('{"event_id":"e5","twin":{"temp":{"actual":{"value":"hot"}}}}', 400,
             "not int", "e5"),
            ('{"event_id":"e6","twin":{"temp":null}}', 400, "not optional", "e6"),
            ('{"event_id":"e7","twin":{"temp":{"actual":{"value":5}}}}', 400,
             "must be a string", "e7"),
            (b'\xff{"twin":{}}', 400, "not UTF-8", ""),
            ("[]", 400, "JSON object", ""),
        ]
        for payload, code, fragment, event_id in cases:
            h.mqtt(DEV + "twin/update", payload)
            self.assertError(h, topic, code, fragment, event_id)
        h.mqtt("$hw/events/device/ghost/twin/update", {"event_id": "e8", "twin": {}})
        self.assertError(h, "$hw/events/device/ghost/twin/update/result", 404, "ghost", "e8")
        self.assertEqual(db_rows(h.path, "device_twin"), before)
        self.assertEqual(h.to_cloud("device/dev1/twin/edge_updated"), [])
        self.assertEqual(h.twin.stats["failed"], 0)

    def test_optional_delete_and_tombstone(self):
        """null deletes an optional twin: result null, tombstone row, get omits it."""
        h = harness(self)
        h.mqtt(DEV + "twin/update", {"twin": {"hum": {"actual": {"value": "1"}}}})
        h.mqtt(DEV + "twin/update", {"event_id": "d1", "twin": {"hum": None}})
        self.assertEqual(h.last(DEV + "twin/update/result")["twin"], {"hum": None})
        self.assertIsNone(h.last(DEV + "twin/update/document")["twin"]["hum"]["current"])
        row = {r["name"]: r for r in db_rows(h.path, "device_twin")}["hum"]
        self.assertEqual((row["attr_type"], row["actual"], row["actual_version"]),
                         ("deleted", None, '{"cloud":0,"edge":2}'))
        h.mqtt(DEV + "twin/get", {"event_id": "g"})
        self.assertEqual(list(h.last(DEV + "twin/get/result")["twin"]), ["temp"])

    def test_namespaced_topics(self):
        """A v1.17 namespaced request is answered on namespaced topics."""
        h = harness(self)
        h.mqtt("$hw/events/device/default/dev1/twin/update",
               {"twin": {"temp": {"actual": {"value": "3"}}}})
        topics = [t for t, _ in h.published()]
        self.assertIn("$hw/events/device/default/dev1/twin/update/result", topics)
        self.assertIn("$hw/events/device/default/dev1/twin/update/delta", topics)

    def test_write_failure_gives_500_and_restores(self):
        """A write failing all retries answers 500 and restores the copy from sqlite."""
        events = capture_logs(self)
        h = harness(self)
        h.pool.fail_next(5)
        h.mqtt(DEV + "twin/update", {"event_id": "w", "twin": {"temp": {
            "actual": {"value": "1"}}}})
        self.assertEqual(h.payloads(DEV + "twin/update/result"), [])
        for _ in range(4):
            h.clock.advance(10)
            h.run()
        self.assertError(h, DEV + "twin/update/result", 500, "after 5 attempts", "w")
        self.assertIsNone(h.twin.devices["dev1"].twins["temp"].actual)
        self.assertEqual(len(named(events, "twin_db_write_failed")), 1)


class TwinGetTests(SynchronousTestCase):
    """A mapper's twin get."""

    def test_get(self):
        """The result echoes event_id and has every live twin without versions."""
        h = harness(self)
        h.mqtt(DEV + "twin/get", {"event_id": "g1"})
        result = h.last(DEV + "twin/get/result")
        self.assertEqual(result["event_id"], "g1")
        self.assertEqual(result["twin"]["temp"], {
            "expected": {"value": "20", "metadata": {"timestamp": NOW}}, "optional": False,
            "metadata": {"type": "int"}})

    def test_get_errors(self):
        """Unknown device 404, bad JSON 400."""
        h = harness(self)
        h.mqtt("$hw/events/device/x/twin/get", {"event_id": "g"})
        self.assertEqual(h.last("$hw/events/device/x/twin/get/result")["code"], 404)
        h.mqtt(DEV + "twin/get", "{")
        self.assertEqual(h.last(DEV + "twin/get/result")["code"], 400)


class StateTests(SynchronousTestCase):
    """A mapper's device state report."""

    def test_state_update(self):
        """The state and last_online are stored, published and sent to the cloud."""
        h = harness(self)
        h.mqtt(DEV + "state/update", {"event_id": "s1", "state": "online"})
        result = h.last(DEV + "state/update/result")
        self.assertEqual(result["device"]["state"], "online")
        self.assertRegex(result["device"]["last_online"],
                         r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")
        self.assertEqual(result["event_id"], "s1")
        report, = h.to_cloud("device/dev1/state")
        self.assertEqual(json.loads(report.content), result)
        self.assertEqual(db_rows(h.path, "device")[0]["state"], "online")

    def test_state_errors(self):
        """An unknown state is 400 and not stored; an unknown device is 404."""
        h = harness(self)
        h.mqtt(DEV + "state/update", {"event_id": "s", "state": "sleeping"})
        self.assertEqual(h.last(DEV + "state/update/result")["code"], 400)
        self.assertEqual(db_rows(h.path, "device")[0]["state"], "")
        h.mqtt("$hw/events/device/x/state/update", {"state": "online"})
        self.assertEqual(h.last("$hw/events/device/x/state/update/result")["code"], 404)


class CloudSyncTests(SynchronousTestCase):
    """Desired values and attributes from the cloud."""

    def test_cloud_update_accepted(self):
        """A newer desired value is stored and published as document and delta."""
        h = harness(self)
        h.cloud("device/dev1/twin/cloud_updated", {"event_id": "c1", "twin": {"temp": {
            "expected": {"value": "25"}, "metadata": {"type": "int"},
            "expected_version": {"cloud": 6, "edge": 0}}}})
        self.assertEqual(h.last(DEV + "twin/update/delta")["delta"], {"temp": "25"})
        self.assertEqual(h.last(DEV + "twin/update/document")["event_id"], "c1")
        self.assertEqual(db_rows(h.path, "device_twin")[0]["expected"], "25")
        self.assertEqual(h.to_cloud("device/dev1/twin/edge_updated"), [])

    def test_stale_cloud_update_sends_edge_value_back(self):
        """A stale desired value is refused and the edge's value goes back."""
        h = harness(self)
        h.cloud("device/dev1/twin/cloud_updated", {"twin": {"temp": {
            "expected": {"value": "99"}, "expected_version": {"cloud": 4, "edge": 0}}}})
        self.assertEqual(db_rows(h.path, "device_twin")[0]["expected"], "20")
        report, = h.to_cloud("device/dev1/twin/edge_updated")
        self.assertEqual(report.content["twin"]["temp"]["expected"]["value"], "20")
        self.assertEqual(report.content["twin"]["temp"]["expected_version"],
                         {"cloud": 5, "edge": 0})

    def test_cloud_update_bad(self):
        """A cloud update for an unknown device or without twin is logged, not stored."""
        events = capture_logs(self)
        h = harness(self)
        h.cloud("device/ghost/twin/cloud_updated", {"twin": {}})
        h.cloud("device/dev1/twin/cloud_updated", {"event_id": "x"})
        self.assertEqual(len(named(events, "twin_sync_refused")), 2)

    def test_attribute_update(self):
        """Attribute changes are stored and published on $hw/events/device/<id>/updated."""
        h = harness(self)
        h.cloud("device/dev1", {"event_id": "a1", "attributes": {
            "model": {"value": "x9"}, "site": {"value": "lab"}}}, operation="updated")
        updated = h.last(DEV + "updated")
        self.assertEqual(updated["event_id"], "a1")
        self.assertEqual(updated["attributes"]["model"], {"value": "x9"})
        self.assertEqual(sorted(r["name"] for r in db_rows(h.path, "device_attr")),
                         ["model", "site"])

    def test_content_as_json_string(self):
        """Cloud content that is a JSON string is understood."""
        h = harness(self)
        h.cloud("device/dev1/twin/cloud_updated", json.dumps({"twin": {"temp": {
            "expected": {"value": "26"}, "expected_version": {"cloud": 7, "edge": 0}}}}))
        self.assertEqual(h.twin.devices["dev1"].twins["temp"].expected.value, "26")


class CloudLinkTests(SynchronousTestCase):
    """membership/detail on connect, the confirm map and resends."""

    def test_detail_on_connect(self):
        """cloud_connected sends one membership/detail get with KubeEdge's content."""
        h = harness(self)
        h.connection(names.CLOUD_CONNECTED)
        request, = h.to_cloud(DETAIL_RESOURCE)
        self.assertEqual((request.operation, request.source), ("get", "twin"))
        self.assertEqual(json.loads(request.content), {
            "event_type": "group_membership_event", "event_id": "123", "group_id": "edge-1",
            "operation": "detail", "timestamp": NOW})
        h.connection(names.CLOUD_CONNECTED)
        self.assertEqual(len(h.to_cloud(DETAIL_RESOURCE)), 1)
        h.connection(names.CLOUD_DISCONNECTED)
        h.connection(names.CLOUD_CONNECTED)
        self.assertEqual(len(h.to_cloud(DETAIL_RESOURCE)), 2)
        self.assertEqual(len(h.twin.unconfirmed), 1, "the older detail request is dropped")

    def test_resend_until_confirmed(self):
        """Unconfirmed reports are resent every 60 s until a reply names them."""
        h = harness(self)
        h.connection(names.CLOUD_CONNECTED)
        detail, = h.to_cloud(DETAIL_RESOURCE)
        h.cloud("twin", "OK", operation="response", parent=detail.msg_id)
        h.mqtt(DEV + "state/update", {"state": "online"})
        report, = h.to_cloud("device/dev1/state")
        h.clear()
        h.clock.advance(60)
        h.run()
        self.assertEqual([m.msg_id for m in h.to_cloud()], [report.msg_id])
        h.cloud("twin", "OK", operation="response", parent=report.msg_id)
        h.clear()
        h.clock.advance(60)
        h.run()
        self.assertEqual(h.to_cloud(), [])
        self.assertEqual(h.twin.counters["confirmed"], 2)

    def test_no_resend_while_disconnected_then_at_reconnect(self):
        """Reports made while the cloud is away are resent at once on reconnect."""
        h = harness(self)
        h.mqtt(DEV + "state/update", {"state": "offline"})
        h.clear()
        h.clock.advance(120)
        h.run()
        self.assertEqual(h.to_cloud(), [])
        h.connection(names.CLOUD_CONNECTED)
        self.assertEqual(sorted(m.resource for m in h.to_cloud()),
                         ["device/dev1/state", DETAIL_RESOURCE])

    def test_newer_report_supersedes(self):
        """A newer report on the same device and twins replaces the unconfirmed one."""
        h = harness(self)
        for value in ("1", "2"):
            h.mqtt(DEV + "twin/update", {"twin": {"temp": {"actual": {"value": value}}}})
        self.assertEqual(len(h.twin.unconfirmed), 1)
        h.mqtt(DEV + "twin/update", {"twin": {"hum": {"actual": {"value": "3"}}}})
        self.assertEqual(len(h.twin.unconfirmed), 2)
        h.mqtt(DEV + "twin/update", {"twin": {"hum": {"actual": {"value": "4"}},
                                              "temp": {"actual": {"value": "5"}}}})
        self.assertEqual(len(h.twin.unconfirmed), 1)

    def test_resend_never_reverts_a_newer_report(self):
        """An older unconfirmed report that a newer one only partly covers is resent
        without the covered twins, so a resend cannot put an older value back."""
        h = harness(self)
        h.connection(names.CLOUD_CONNECTED)
        detail, = h.to_cloud(DETAIL_RESOURCE)
        h.cloud("twin", "OK", operation="response", parent=detail.msg_id)
        h.mqtt(DEV + "twin/update", {"twin": {"temp": {"actual": {"value": "1"}},
                                              "hum": {"actual": {"value": "3"}}}})
        h.mqtt(DEV + "twin/update", {"twin": {"temp": {"actual": {"value": "5"}}}})
        older, newer = h.to_cloud("device/dev1/twin/edge_updated")
        self.assertEqual(sorted(older.content["twin"]), ["hum", "temp"], "sent as it was")
        h.cloud("twin", "OK", operation="response", parent=newer.msg_id)
        h.clear()
        h.clock.advance(60)
        h.run()
        resent, = h.to_cloud()
        self.assertEqual(resent.msg_id, older.msg_id, "a confirm still names it")
        self.assertEqual(list(resent.content["twin"]), ["hum"])
        self.assertEqual(resent.content["twin"]["hum"]["actual"]["value"], "3")
        h.cloud("twin", "OK", operation="response", parent=older.msg_id)
        self.assertEqual(h.twin.unconfirmed, {})

    def test_confirm_map_bound(self):
        """Past confirm_limit the oldest report is given up with a log line."""
        events = capture_logs(self)
        h = harness(self, confirm_limit=2)
        for device in ("a", "b", "c"):
            h.add_device(device)
            h.mqtt("$hw/events/device/{}/state/update".format(device), {"state": "online"})
        self.assertEqual(len(h.twin.unconfirmed), 2)
        self.assertEqual(len(named(events, "twin_confirm_map_full")), 1)

    def test_no_cloud_module(self):
        """Without EdgeHub reports are kept and the failure is logged."""
        events = capture_logs(self)
        h = TwinHarness(self, start=False)
        h.bus._modules.pop(names.EDGEHUB)
        h.bus._groups[names.HUB_GROUP].remove(h.hub)
        h.start()
        h.add_device("dev1")
        h.mqtt(DEV + "state/update", {"state": "online"})
        self.assertEqual(len(h.twin.unconfirmed), 1)
        self.assertEqual(len(named(events, "twin_cloud_send_failed")), 1)


class LifecycleTests(SynchronousTestCase):
    """Start-up, restart and shutdown."""

    def test_restart_reloads_from_sqlite(self):
        """A new twin on the same file knows the devices and twin values."""
        h = harness(self)
        h.mqtt(DEV + "twin/update", {"twin": {"temp": {"actual": {"value": "19"}}}})
        self.successResultOf(h.stop())
        self.assertTrue(h.pool.closed)
        again = TwinHarness(self, path=h.path)
        twin = again.twin.devices["dev1"].twins["temp"]
        self.assertEqual((twin.expected.value, twin.actual.value), ("20", "19"))
        again.mqtt(DEV + "twin/get", {"event_id": "g"})
        self.assertEqual(again.last(DEV + "twin/get/result")["twin"]["temp"]["actual"]
                         ["value"], "19")

    def test_stop_leaves_no_timers(self):
        """After stopService no delayed call is left."""
        h = harness(self)
        self.successResultOf(h.stop())
        h.run()
        self.assertEqual(h.clock.getDelayedCalls(), [])

    def test_bad_resource_and_unknown_topic(self):
        """A bad resource or an unhandled topic is logged and dropped."""
        events = capture_logs(self)
        h = harness(self)
        from kubeedge_tw.common import message as m
        h.bus.send(names.DEVICETWIN, m.new_message("bus", "user", "response", "%%%", "{}"))
        h.mqtt("$hw/events/device/dev1/twin/edge_updated", "{}")
        h.run()
        self.assertEqual(len(named(events, "twin_bad_resource")), 1)
        self.assertEqual(len(named(events, "twin_unknown_topic")), 1)
        self.assertEqual(h.published(), [])

    def test_factory(self):
        """The factory creates the tables; an unusable file is a SetupError."""
        state = os.path.abspath(self.mktemp())
        config = default_config(EDGE, overrides={"stateDir": state,
                                                 "modules.edged.hostnameOverride": "e9"})
        twin = create_devicetwin(Core("kubeedge-edge", None, config), config)
        self.assertEqual(twin.node_name, "e9")
        self.assertEqual(db_rows(os.path.join(state, "edgecore.db"), "device"), [])
        with open(os.path.join(state, "bad.db"), "wb") as f:
            f.write(b"garbage" * 1000)
        config = default_config(EDGE, overrides={"stateDir": state,
                                                 "database.dataSource": "bad.db"})
        self.assertRaises(SetupError, create_devicetwin, Core("e", None, config), config)


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=12)
TWIN_ENTRY = st.fixed_dictionaries({}, optional={
    "expected": st.fixed_dictionaries({}, optional={"value": JSON}) | JSON,
    "actual": st.fixed_dictionaries({}, optional={"value": JSON}) | JSON,
    "optional": JSON, "metadata": st.fixed_dictionaries({}, optional={"type": JSON}) | JSON,
}) | JSON


class GarbageTests(SynchronousTestCase):
    """Whatever a mapper publishes, the twin answers with one result and keeps going."""

    @settings(max_examples=150, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture,
                                     HealthCheck.too_slow])
    @given(st.one_of(
        st.binary(max_size=40),
        JSON.map(json.dumps),
        st.fixed_dictionaries({"twin": st.dictionaries(
            st.sampled_from(["temp", "hum", "bad key", ""]), TWIN_ENTRY, max_size=3)},
            optional={"event_id": JSON}).map(json.dumps)))
    def test_any_payload(self, payload):
        """Any twin/update payload gets exactly one result and no handler failure."""
        h = harness(self)
        h.mqtt(DEV + "twin/update", payload)
        results = h.payloads(DEV + "twin/update/result")
        self.assertEqual(len(results), 1, payload)
        if "code" in results[0]:
            self.assertIn(results[0]["code"], (400, 404))
        self.assertEqual(h.twin.stats["failed"], 0)
