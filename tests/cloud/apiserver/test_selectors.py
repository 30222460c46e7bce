"""Unit tests for label and field selector parsing and matching."""

from twisted.trial.unittest import SynchronousTestCase

from kubeedge_tw.cloud.apiserver.selectors import (
    SelectorError, label_selector_string, parse_field_selector, parse_label_selector,
    selector_from_label_selector)


class LabelSelectorTests(SynchronousTestCase):
    """The label selector language of kubectl -l / labelSelector."""

    def matches(self, text, labels):
        return parse_label_selector(text).matches(labels)

    def test_equality(self):
        """=, == and != compare values; != also matches when the key is absent."""
        self.assertTrue(self.matches("app=web", {"app": "web"}))
        self.assertTrue(self.matches("app==web", {"app": "web"}))
        self.assertFalse(self.matches("app=web", {"app": "db"}))
        self.assertTrue(self.matches("app!=web", {"app": "db"}))
        self.assertTrue(self.matches("app!=web", {}))
        self.assertFalse(self.matches("app!=web", {"app": "web"}))

    def test_sets(self):
        """in and notin with spaces; notin matches an absent key."""
        self.assertTrue(self.matches("tier in (a, b)", {"tier": "b"}))
        self.assertFalse(self.matches("tier in (a,b)", {"tier": "c"}))
        self.assertTrue(self.matches("tier notin (a,b)", {"tier": "c"}))
        self.assertTrue(self.matches("tier notin (a,b)", {}))
        self.assertFalse(self.matches("tier in (a,b)", {}))

    def test_exists(self):
        """A bare key requires it, !key forbids it; empty values count as present."""
        self.assertTrue(self.matches("node-role.kubernetes.io/edge", {
            "node-role.kubernetes.io/edge": ""}))
        self.assertFalse(self.matches("edge", {}))
        self.assertTrue(self.matches("!edge", {}))
        self.assertFalse(self.matches("!edge", {"edge": "x"}))

    def test_conjunction_and_numbers(self):
        """Requirements are ANDed; > and < compare integers."""
        sel = "app=web,env notin (prod),rank>2"
        self.assertTrue(self.matches(sel, {"app": "web", "env": "dev", "rank": "3"}))
        self.assertFalse(self.matches(sel, {"app": "web", "env": "dev", "rank": "2"}))
        self.assertFalse(self.matches(sel, {"app": "web", "env": "prod", "rank": "3"}))
        self.assertTrue(self.matches("x<5", {"x": "4"}))

    def test_empty_selects_everything(self):
        """An empty or missing selector matches any labels."""
        self.assertTrue(parse_label_selector("").matches({"a": "b"}))
        self.assertTrue(parse_label_selector(None).matches(None))

    def test_empty_value(self):
        """key= selects an empty value."""
        self.assertTrue(self.matches("a=", {"a": ""}))
        self.assertFalse(self.matches("a=", {"a": "x"}))

    def test_syntax_errors(self):
        """Malformed selectors raise SelectorError."""
        for bad in ("a in b", "a in (", "=x", "a=b,", "a b", "a=(x)", "a in ()", "x>y",
                    "-bad=1", "a=" + "v" * 64):
            self.assertRaises(SelectorError, parse_label_selector, bad)

    def test_metav1_selector(self):
        """matchLabels and matchExpressions convert to a selector and a kubectl string."""
        spec = {"matchLabels": {"app": "x"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a"]},
                                     {"key": "old", "operator": "DoesNotExist"}]}
        sel = selector_from_label_selector(spec)
        self.assertTrue(sel.matches({"app": "x", "tier": "a"}))
        self.assertFalse(sel.matches({"app": "x", "tier": "a", "old": "1"}))
        self.assertEqual(label_selector_string(spec), "app=x,tier in (a),!old")
        self.assertEqual(label_selector_string(None), "<none>")
        self.assertRaises(SelectorError, selector_from_label_selector,
                          {"matchExpressions": [{"key": "a", "operator": "Near"}]})


class FieldSelectorTests(SynchronousTestCase):
    """The field selector language of --field-selector / fieldSelector."""

    def test_parse_and_match(self):
        """=, == and != on fields; all must hold."""
        sel = parse_field_selector("spec.nodeName=edge-1,status.phase!=Failed")
        values = {"spec.nodeName": "edge-1", "status.phase": "Running"}
        self.assertTrue(sel.matches(values.get))
        values["status.phase"] = "Failed"
        self.assertFalse(sel.matches(values.get))
        self.assertEqual(sel.fields(), ["spec.nodeName", "status.phase"])
        self.assertEqual(sel.exact("spec.nodeName"), "edge-1")
        self.assertIsNone(sel.exact("status.phase"))

    def test_escapes(self):
        """Backslash escapes commas and equals signs in values."""
        sel = parse_field_selector(r"metadata.name=a\,b\=c")
        self.assertEqual(sel.requirements, [("metadata.name", "=", "a,b=c")])

    def test_double_equals(self):
        """== is the same as =."""
        self.assertEqual(parse_field_selector("a==b").requirements, [("a", "=", "b")])

    def test_errors(self):
        """A term without an operator or with a bad escape is an error."""
        for bad in ("name", "=x", r"a=b\q"):
            self.assertRaises(SelectorError, parse_field_selector, bad)
