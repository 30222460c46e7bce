"""The control plane's helpers: quantities, time, selectors, int-or-percent, pod state."""

from fractions import Fraction

from twisted.trial.unittest import SynchronousTestCase

from kubeedge_tw.cloud.controlplane import util


class QuantityTests(SynchronousTestCase):
    """resource.Quantity parsing."""

    def test_forms(self):
        """Decimal and binary suffixes, milli, exponents and plain numbers parse exactly."""
        self.assertEqual(util.parse_quantity("500m"), Fraction(1, 2))
        self.assertEqual(util.parse_quantity("128Mi"), 128 * 2 ** 20)
        self.assertEqual(util.parse_quantity("1G"), 10 ** 9)
        self.assertEqual(util.parse_quantity("1e3"), 1000)
        self.assertEqual(util.parse_quantity(2), 2)
        self.assertEqual(util.parse_quantity("0.5"), Fraction(1, 2))

    def test_rounding(self):
        """MilliValue and Value round up."""
        self.assertEqual(util.milli_value("1"), 1000)
        self.assertEqual(util.milli_value("0.0001"), 1)
        self.assertEqual(util.whole_value("1.5"), 2)

    def test_bad(self):
        """Garbage is a ValueError."""
        for bad in ("abc", "1Zi", None, True, ""):
            self.assertRaises(ValueError, util.parse_quantity, bad)


class TimeTests(SynchronousTestCase):
    """RFC 3339 timestamps."""

    def test_round_trip(self):
        """format_time and parse_time agree; offsets and fractions are understood."""
        self.assertEqual(util.format_time(0), "1970-01-01T00:00:00Z")
        self.assertEqual(util.parse_time("1970-01-01T00:00:10Z"), 10)
        self.assertEqual(util.parse_time("1970-01-01T01:00:10+01:00"), 10)
        self.assertEqual(util.parse_time("1970-01-01T00:00:10.5Z"), 10.5)
        self.assertIsNone(util.parse_time("yesterday"))
        self.assertIsNone(util.parse_time(None))


class SelectorTests(SynchronousTestCase):
    """metav1.LabelSelector matching."""

    def test_operators(self):
        """matchLabels and every matchExpressions operator."""
        selector = {"matchLabels": {"app": "web"}, "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["a", "b"]},
            {"key": "env", "operator": "NotIn", "values": ["prod"]},
            {"key": "team", "operator": "Exists"},
            {"key": "legacy", "operator": "DoesNotExist"}]}
        good = {"app": "web", "tier": "a", "team": "x"}
        self.assertTrue(util.selector_matches(selector, good))
        self.assertFalse(util.selector_matches(selector, dict(good, env="prod")))
        self.assertFalse(util.selector_matches(selector, dict(good, legacy="1")))
        self.assertFalse(util.selector_matches(selector, dict(good, tier="c")))

    def test_empty_and_none(self):
        """An empty selector matches everything, None nothing."""
        self.assertTrue(util.selector_matches({}, {"a": "b"}))
        self.assertFalse(util.selector_matches(None, {"a": "b"}))


class ScaledValueTests(SynchronousTestCase):
    """intstr.GetScaledValueFromIntOrPercent."""

    def test_values(self):
        """Ints pass; percentages round up or down as asked."""
        self.assertEqual(util.scaled_value(3, 10, True), 3)
        self.assertEqual(util.scaled_value("25%", 10, True), 3)
        self.assertEqual(util.scaled_value("25%", 10, False), 2)
        self.assertEqual(util.scaled_value("25%", 1, False), 0)
        self.assertRaises(ValueError, util.scaled_value, "x%", 10, True)


class PodStateTests(SynchronousTestCase):
    """Active, ready and available pods."""

    def test_available_needs_min_ready(self):
        """A pod Ready since t is available at t + minReadySeconds, not before."""
        pod = {"status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": "1970-01-01T00:00:10Z"}]}}
        self.assertTrue(util.pod_is_ready(pod))
        self.assertFalse(util.pod_is_available(pod, 5, 14))
        self.assertTrue(util.pod_is_available(pod, 5, 15))
        self.assertTrue(util.pod_is_active(pod))
        self.assertFalse(util.pod_is_active({"metadata": {"deletionTimestamp": "x"}}))
        self.assertFalse(util.pod_is_active({"status": {"phase": "Failed"}}))
