"""Unit tests for the twin rules (reference 4.2/4.3, KubeEdge dtmanager/twin.go): version
bumps and checks, local adds/updates/deletions, cloud syncs accepted and rejected,
tombstones, the delta, and attribute updates."""

from twisted.trial.unittest import SynchronousTestCase

from kubeedge_tw.edge.devicetwin.logic import (
    REST, SYNC, build_delta, deal_attrs, deal_twins, deal_version)
from kubeedge_tw.edge.devicetwin.model import (
    Attr, AttrPatch, Twin, TwinPatch, TwinValue, ValuePatch, Version)

NOW = 1000


def twin(expected=None, actual=None, ev=None, av=None, optional=True, attr_type="string"):
    """A stored twin."""
    return Twin(expected=TwinValue(expected, 1) if expected is not None else None,
                actual=TwinValue(actual, 1) if actual is not None else None,
                expected_version=Version(*ev) if ev else None,
                actual_version=Version(*av) if av else None,
                optional=optional, attr_type=attr_type)


def patch(expected=None, actual=None, ev=None, av=None, attr_type=None, optional=None):
    """A request's twin."""
    return TwinPatch(expected=ValuePatch(expected) if expected is not None else None,
                     actual=ValuePatch(actual) if actual is not None else None,
                     expected_version=Version(*ev) if ev else None,
                     actual_version=Version(*av) if av else None,
                     attr_type=attr_type, has_metadata=attr_type is not None,
                     optional=optional)


class VersionTests(SynchronousTestCase):
    """dealVersion: edge bump locally, checks on sync."""

    def test_rest_bumps_edge(self):
        """A local update increments the edge counter."""
        version = Version(3, 4)
        self.assertEqual(deal_version(version, None, REST), (True, None))
        self.assertEqual(version, Version(3, 5))

    def test_sync_rules(self):
        """A sync needs a version not behind on either counter, then copies it."""
        version = Version(3, 4)
        self.assertFalse(deal_version(version.copy(), None, SYNC)[0])
        self.assertFalse(deal_version(version.copy(), Version(2, 9), SYNC)[0])
        self.assertFalse(deal_version(version.copy(), Version(9, 3), SYNC)[0])
        ok, _ = deal_version(version, Version(5, 4), SYNC)
        self.assertTrue(ok)
        self.assertEqual(version, Version(5, 4))


class RestTests(SynchronousTestCase):
    """Updates from a mapper."""

    def test_report_actual(self):
        """A report bumps actual_version.edge and yields result, sync and document."""
        twins = {"temp": twin(expected="20", ev=(5, 0), attr_type="int", optional=False)}
        out = deal_twins(twins, {"temp": patch(actual="19")}, REST, NOW)
        self.assertIsNone(out.error)
        new = out.twins["temp"]
        self.assertEqual((new.actual.value, new.actual.timestamp, new.actual_version),
                         ("19", NOW, Version(0, 1)))
        self.assertEqual(out.result["temp"], {
            "actual": {"value": "19", "metadata": {"timestamp": NOW}}, "optional": False,
            "metadata": {"type": "int"}})
        self.assertEqual(out.sync["temp"]["actual_version"], {"cloud": 0, "edge": 1})
        self.assertEqual(out.document["temp"]["last"], twins["temp"].to_json(False))
        self.assertEqual(out.document["temp"]["current"], new.to_json(False))
        self.assertEqual(out.changed, ["temp"])
        self.assertIsNone(twins["temp"].actual, "the input is not modified")

    def test_same_value_still_bumps(self):
        """As KubeEdge does, reporting the same value again bumps version and time."""
        twins = {"t": twin(actual="1", av=(0, 3))}
        out = deal_twins(twins, {"t": patch(actual="1")}, REST, NOW)
        self.assertEqual(out.twins["t"].actual_version, Version(0, 4))

    def test_type_checked_against_the_twin(self):
        """A value unsuited to a live twin's type is refused; the request's type is ignored."""
        twins = {"t": twin(actual="1", attr_type="int")}
        out = deal_twins(twins, {"t": patch(actual="abc", attr_type="string")}, REST, NOW)
        self.assertEqual(out.error[0], 400)
        self.assertIn("not int", out.error[1])
        self.assertIs(out.twins["t"], twins["t"])
        out = deal_twins(twins, {"t": patch(actual="7", attr_type="Updated")}, REST, NOW)
        self.assertIsNone(out.error)
        self.assertEqual(out.twins["t"].attr_type, "int")

    def test_error_anywhere_rejects_all(self):
        """One bad twin rejects the whole update."""
        twins = {"a": twin(), "b": twin(attr_type="boolean")}
        out = deal_twins(twins, {"a": patch(actual="ok"), "b": patch(actual="maybe")},
                         REST, NOW)
        self.assertIsNotNone(out.error)
        self.assertEqual(out.changed, [])

    def test_add_new_twin(self):
        """A mapper-added twin is optional, typed by its metadata, at version {0, 1}."""
        out = deal_twins({}, {"h": patch(actual="50", attr_type="float")}, REST, NOW)
        new = out.twins["h"]
        self.assertEqual((new.optional, new.attr_type, new.actual_version),
                         (True, "float", Version(0, 1)))
        self.assertEqual(out.document["h"], {"last": None, "current": new.to_json(False)})
        self.assertEqual(out.sync["h"], new.to_json(True))

    def test_add_with_bad_type(self):
        """Adding with an unknown type is refused."""
        out = deal_twins({}, {"h": patch(actual="1", attr_type="Updated")}, REST, NOW)
        self.assertEqual(out.error[0], 400)

    def test_missing_value(self):
        """"actual": {} without a value is refused."""
        out = deal_twins({"t": twin()}, {"t": TwinPatch(actual=ValuePatch(None))}, REST, NOW)
        self.assertIn("actual.value is missing", out.error[1])

    def test_delete_optional(self):
        """null tombstones an optional twin: versions bumped, result and current null."""
        twins = {"t": twin(expected="1", actual="2", ev=(3, 0), av=(0, 2))}
        out = deal_twins(twins, {"t": None}, REST, NOW)
        tomb = out.twins["t"]
        self.assertTrue(tomb.deleted)
        self.assertEqual((tomb.expected, tomb.actual), (None, None))
        self.assertEqual((tomb.expected_version, tomb.actual_version),
                         (Version(3, 1), Version(0, 3)))
        self.assertEqual(out.result, {"t": None})
        self.assertEqual(out.document["t"]["current"], None)
        self.assertEqual(out.sync["t"]["metadata"], {"type": "deleted"})

    def test_delete_not_optional(self):
        """null on a twin that is not optional is refused."""
        out = deal_twins({"t": twin(optional=False)}, {"t": None}, REST, NOW)
        self.assertIn("not optional", out.error[1])

    def test_delete_unknown(self):
        """null on an unknown twin is refused."""
        out = deal_twins({}, {"t": None}, REST, NOW)
        self.assertEqual(out.error[0], 400)

    def test_delete_tombstone_again(self):
        """Deleting a tombstone changes nothing."""
        out = deal_twins({"t": twin(attr_type="deleted", ev=(1, 1))}, {"t": None}, REST, NOW)
        self.assertEqual((out.changed, out.error), ([], None))

    def test_write_revives_tombstone(self):
        """A value for a tombstone revives it with the request's type and no last state."""
        out = deal_twins({"t": twin(attr_type="deleted", av=(0, 4))},
                         {"t": patch(actual="5", attr_type="int")}, REST, NOW)
        new = out.twins["t"]
        self.assertEqual((new.attr_type, new.actual.value, new.actual_version),
                         ("int", "5", Version(0, 5)))
        self.assertIsNone(out.document["t"]["last"])

    def test_optional_only_true_to_false(self):
        """optional can be switched off, never on (KubeEdge)."""
        out = deal_twins({"t": twin(optional=True)}, {"t": patch(optional=False)}, REST, NOW)
        self.assertFalse(out.twins["t"].optional)
        out = deal_twins({"t": twin(optional=False)}, {"t": patch(optional=True)}, REST, NOW)
        self.assertEqual(out.changed, [])


class SyncTests(SynchronousTestCase):
    """Updates from the cloud (cloud_updated, membership)."""

    def test_accepted(self):
        """A newer cloud version is accepted; versions are copied; nothing goes back."""
        twins = {"t": twin(expected="1", ev=(3, 0), attr_type="int")}
        out = deal_twins(twins, {"t": patch(expected="2", ev=(4, 0))}, SYNC, NOW)
        self.assertEqual((out.twins["t"].expected.value, out.twins["t"].expected_version),
                         ("2", Version(4, 0)))
        self.assertEqual(out.sync, {})
        self.assertEqual(out.result, {})
        self.assertIn("t", out.document)

    def test_stale_cloud_rejected(self):
        """An older cloud version is rejected and the edge's value goes back."""
        twins = {"t": twin(expected="1", ev=(5, 0), attr_type="int")}
        out = deal_twins(twins, {"t": patch(expected="9", ev=(4, 0))}, SYNC, NOW)
        self.assertEqual(out.twins["t"].expected.value, "1")
        self.assertEqual(out.sync["t"]["expected"]["value"], "1")
        self.assertEqual(out.sync["t"]["expected_version"], {"cloud": 5, "edge": 0})
        self.assertEqual(out.changed, [])
        self.assertEqual(out.document, {})

    def test_edge_newer_rejected(self):
        """A sync that has not seen the edge's local change is rejected."""
        twins = {"t": twin(expected="1", ev=(5, 2))}
        out = deal_twins(twins, {"t": patch(expected="9", ev=(6, 1))}, SYNC, NOW)
        self.assertEqual(out.sync["t"]["expected_version"], {"cloud": 5, "edge": 2})

    def test_missing_version_rejected(self):
        """A sync without a version is rejected."""
        out = deal_twins({"t": twin(expected="1", ev=(1, 0))}, {"t": patch(expected="2")},
                         SYNC, NOW)
        self.assertIn("t", out.sync)
        self.assertEqual(out.twins["t"].expected.value, "1")

    def test_invalid_value_skipped(self):
        """An invalid value from the cloud is skipped without an error."""
        out = deal_twins({"t": twin(expected="1", ev=(1, 0), attr_type="int")},
                         {"t": patch(expected="x", ev=(2, 0))}, SYNC, NOW)
        self.assertEqual((out.error, out.changed), (None, []))

    def test_add_from_cloud(self):
        """The cloud adds a twin with its versions; without version it is not added."""
        out = deal_twins({}, {"t": patch(expected="1", ev=(7, 0), attr_type="int",
                                         optional=False),
                              "n": patch(expected="1")}, SYNC, NOW)
        self.assertEqual(out.twins["t"].expected_version, Version(7, 0))
        self.assertFalse(out.twins["t"].optional)
        self.assertNotIn("n", out.twins)

    def test_cloud_delete(self):
        """metadata type deleted from the cloud tombstones the twin, versions copied."""
        out = deal_twins({"t": twin(expected="1", ev=(3, 0))},
                         {"t": patch(attr_type="deleted", ev=(4, 0))}, SYNC, NOW)
        self.assertTrue(out.twins["t"].deleted)
        self.assertEqual(out.twins["t"].expected_version, Version(4, 0))
        self.assertEqual(out.sync, {})

    def test_cloud_delete_rejected(self):
        """A stale cloud deletion is rejected and the twin goes back to the cloud."""
        out = deal_twins({"t": twin(expected="1", ev=(5, 0))},
                         {"t": patch(attr_type="deleted", ev=(4, 0))}, SYNC, NOW)
        self.assertFalse(out.twins["t"].deleted)
        self.assertEqual(out.sync["t"]["expected"]["value"], "1")

    def test_cloud_tombstone_add(self):
        """A deleted twin the edge never had is stored as a tombstone with versions."""
        out = deal_twins({}, {"t": patch(attr_type="deleted", ev=(4, 0))}, SYNC, NOW)
        self.assertTrue(out.twins["t"].deleted)
        self.assertEqual(out.document["t"], {"last": None, "current": None})


class DeltaTests(SynchronousTestCase):
    """The delta lists desired values that differ from the reported ones."""

    def test_delta(self):
        """Only twins with a desired value appear; delta only where it differs."""
        twins = {"same": twin(expected="1", actual="1"), "diff": twin(expected="2", actual="1"),
                 "unreported": twin(expected="3"), "reported_only": twin(actual="4"),
                 "empty": twin(expected=""), "gone": twin(attr_type="deleted")}
        docs, delta = build_delta(twins)
        self.assertEqual(delta, {"diff": "2", "unreported": "3"})
        self.assertEqual(sorted(docs), ["diff", "same", "unreported"])
        self.assertNotIn("expected_version", docs["diff"])

    def test_no_delta(self):
        """No differences, no delta."""
        self.assertEqual(build_delta({"a": twin(expected="1", actual="1")})[1], {})


class AttrTests(SynchronousTestCase):
    """Attribute updates (KubeEdge DealMsgAttr)."""

    def test_update_add_delete(self):
        """Attributes are updated, added, and removed by null when optional."""
        attrs = {"a": Attr("1"), "b": Attr("x", optional=False), "c": Attr("c")}
        out = deal_attrs(attrs, {"a": AttrPatch("2"), "n": AttrPatch("new"), "c": None,
                                 "b": None}, detail=False)
        self.assertEqual(out.attributes["a"].value, "2")
        self.assertEqual(out.result["a"], {"value": "2"})
        self.assertEqual(out.result["n"]["value"], "new")
        self.assertEqual(out.result["c"], None)
        self.assertIn("b", out.attributes)
        self.assertEqual(sorted(out.changed), ["a", "n"])
        self.assertEqual(out.deleted, ["c"])
        self.assertEqual(attrs["a"].value, "1", "the input is not modified")

    def test_detail_removes_unlisted(self):
        """In detail mode attributes the cloud no longer lists are removed."""
        out = deal_attrs({"a": Attr("1"), "b": Attr("2")}, {"a": AttrPatch("1")}, detail=True)
        self.assertEqual(out.deleted, ["b"])
        self.assertEqual(out.changed, [])
