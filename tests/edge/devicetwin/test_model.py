"""Unit tests for DeviceTwin's values and payload parsing: KubeEdge's key/value patterns
and value types, the JSON shapes (Go omitempty), and request validation errors."""

from twisted.trial.unittest import SynchronousTestCase

from kubeedge_tw.edge.devicetwin import model
from kubeedge_tw.edge.devicetwin.model import (
    Attr, Device, PayloadError, Twin, TwinValue, Version, parse_device, parse_twin_update,
    validate_value)


class ValidationTests(SynchronousTestCase):
    """Keys, values and types are checked as KubeEdge's dtcommon does."""

    def test_keys(self):
        """Keys allow letters, digits and -_.,:/@# up to 128 characters."""
        for good in ("temp", "a-b_c.d,e:f/g@h#i", "x" * 128):
            self.assertTrue(model.valid_twin_key(good), good)
        for bad in ("", "x" * 129, "a b", "a+b", "é", "a\n", "a$"):
            self.assertFalse(model.valid_twin_key(bad), bad)

    def test_values(self):
        """Non-empty values follow the same alphabet, up to 512 characters."""
        self.assertTrue(model.valid_twin_value("ON"))
        self.assertTrue(model.valid_twin_value("-12.5"))
        for bad in ("x" * 513, "a b", "1e+5", '"q"', "a\n"):
            self.assertFalse(model.valid_twin_value(bad), bad)

    def test_types(self):
        """int, float and boolean are checked; string-like types take anything."""
        self.assertIsNone(validate_value("int", "-42"))
        self.assertIsNone(validate_value("integer", "9223372036854775807"))
        self.assertIsNotNone(validate_value("int", "9223372036854775808"))
        self.assertIsNotNone(validate_value("int", "4.2"))
        self.assertIsNotNone(validate_value("int", ""))
        self.assertIsNone(validate_value("float", "4.2"))
        self.assertIsNone(validate_value("double", "-1e5"))
        self.assertIsNone(validate_value("float", "7"))
        self.assertIsNotNone(validate_value("float", "abc"))
        self.assertIsNone(validate_value("boolean", "true"))
        self.assertIsNotNone(validate_value("boolean", "True"))
        for anything in ("string", "bytes", "deleted", ""):
            self.assertIsNone(validate_value(anything, "whatever"))
        self.assertIn("not allowed Updated", validate_value("Updated", "1"))

    def test_device_ids(self):
        """Ids that cannot be a topic level are refused."""
        self.assertIsNone(model.device_id_error("sensor-1"))
        for bad in ("", "a/b", "+", "#", "a\x00", None, 5):
            self.assertIsNotNone(model.device_id_error(bad), bad)


class ShapeTests(SynchronousTestCase):
    """Documents have Go's keys, order and omitempty behaviour."""

    def test_twin_json(self):
        """A twin lists expected, actual, optional, metadata, then versions."""
        twin = Twin(expected=TwinValue("1", 10), actual=TwinValue("2", 0), optional=False,
                    attr_type="int", expected_version=Version(3, 1))
        self.assertEqual(list(twin.to_json()), ["expected", "actual", "optional", "metadata",
                                                "expected_version"])
        self.assertEqual(twin.to_json()["expected"],
                         {"value": "1", "metadata": {"timestamp": 10}})
        self.assertEqual(twin.to_json()["actual"], {"value": "2", "metadata": {}})
        self.assertNotIn("expected_version", twin.to_json(versions=False))

    def test_copy_is_deep(self):
        """Changing a copy's values or versions leaves the original alone."""
        twin = Twin(expected=TwinValue("1", 1), expected_version=Version(1, 1))
        other = twin.copy()
        other.expected.value = "2"
        other.expected_version.edge = 9
        self.assertEqual((twin.expected.value, twin.expected_version.edge), ("1", 1))

    def test_device_summary(self):
        """A device summary has no twins and omits empty fields."""
        device = Device("d", name="n", attributes={"a": Attr("v")},
                        twins={"t": Twin()})
        self.assertEqual(device.summary_json(), {
            "id": "d", "name": "n",
            "attributes": {"a": {"value": "v", "optional": True,
                                 "metadata": {"type": "string"}}}})

    def test_error_result(self):
        """An error result carries event_id, timestamp, code and reason."""
        self.assertEqual(model.error_result("e", 404, "gone", 5),
                         {"event_id": "e", "timestamp": 5, "code": 404, "reason": "gone"})


class ParseTests(SynchronousTestCase):
    """Requests are parsed strictly, with readable reasons."""

    def assertRefused(self, payload, fragment):
        """Parsing ``payload`` as a twin update raises PayloadError naming ``fragment``."""
        with self.assertRaises(PayloadError) as caught:
            parse_twin_update(model.parse_object(payload))
        self.assertIn(fragment, caught.exception.reason)
        self.assertEqual(caught.exception.code, 400)
        return caught.exception

    def test_twin_update(self):
        """A mapper's update parses into patches; null is a deletion."""
        event_id, patches = parse_twin_update({
            "event_id": "e1", "timestamp": 5,
            "twin": {"temp": {"actual": {"value": "20"}, "metadata": {"type": "int"}},
                     "gone": None}})
        self.assertEqual(event_id, "e1")
        self.assertEqual(patches["temp"].actual.value, "20")
        self.assertEqual((patches["temp"].attr_type, patches["temp"].has_metadata),
                         ("int", True))
        self.assertIsNone(patches["gone"])

    def test_not_json(self):
        """Text that is not a JSON object is refused."""
        self.assertRefused("{", "not JSON")
        self.assertRefused("[1]", "must be a JSON object")
        self.assertRefused(b"\xff", "not UTF-8")

    def test_missing_twin(self):
        """A request without twin gets KubeEdge's message, with the event id kept."""
        error = self.assertRefused('{"event_id":"e9"}', "key:twin does not exist")
        self.assertEqual(error.event_id, "e9")

    def test_bad_key_and_value(self):
        """A bad key or value gets KubeEdge's messages."""
        self.assertRefused('{"twin":{"a b":{}}}', "The key of twin")
        self.assertRefused('{"twin":{"a":{"actual":{"value":"a b"}}}}', "The value of twin")

    def test_wrong_json_types(self):
        """Fields of the wrong JSON type are refused, naming the field."""
        self.assertRefused('{"twin":{"a":{"actual":{"value":5}}}}', "twin.a.actual.value")
        self.assertRefused('{"twin":{"a":{"optional":"yes"}}}', "twin.a.optional")
        self.assertRefused('{"twin":{"a":{"expected_version":{"cloud":"1"}}}}',
                           "expected_version.cloud")
        self.assertRefused('{"twin":{"a":[]}}', "twin.a must be an object")
        self.assertRefused('{"twin":[]}', "twin must be an object")
        self.assertRefused('{"event_id":5,"twin":{}}', "event_id")
        self.assertRefused('{"timestamp":"now","twin":{}}', "timestamp")

    def test_deep_nesting(self):
        """Absurd nesting is refused, not a crash."""
        self.assertRefused("[" * 100000, "")

    def test_device(self):
        """A cloud device parses with attributes and twins; bad ids are refused."""
        spec = parse_device({"id": "d1", "name": "n", "attributes": {
            "a": {"value": "v", "metadata": {"type": "string"}}},
            "twin": {"t": {"expected": {"value": "1"},
                           "expected_version": {"cloud": 3, "edge": 0}}}})
        self.assertEqual((spec.id, spec.name, spec.attributes["a"].value),
                         ("d1", "n", "v"))
        self.assertEqual(spec.twins["t"].expected_version, Version(3, 0))
        self.assertRaises(PayloadError, parse_device, {"id": "a/b"})
        self.assertRaises(PayloadError, parse_device, {"name": "x"})
        self.assertRaises(PayloadError, parse_device, "d1")
