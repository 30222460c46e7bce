"""Unit tests for topic validation and matching (MQTT 3.1.1 section 4.7) and for
KubeEdge's topic routing and resource encoding."""

import base64

from twisted.trial.unittest import SynchronousTestCase

from kubeedge_tw.edge.eventbus import topics as t


class ValidationTests(SynchronousTestCase):
    """Topic names and filters are checked as the specification says."""

    def test_topic_names(self):
        """Names with wildcards, U+0000 or nothing are refused; $-names are fine."""
        self.assertIsNone(t.topic_name_error("a/b"))
        self.assertIsNone(t.topic_name_error("$hw/events/device/d1/twin/update"))
        self.assertIsNone(t.topic_name_error("/"))
        for bad in ("", "a/+", "a/#", "#", "a\x00b", "x" * 70000, 5):
            self.assertIsNotNone(t.topic_name_error(bad), bad)

    def test_filters(self):
        """'#' must be a whole last level and '+' a whole level."""
        for good in ("#", "+", "a/#", "a/+/b", "+/+", "/+", "$hw/events/device/+/twin/+",
                     "a//b"):
            self.assertIsNone(t.topic_filter_error(good), good)
        for bad in ("", "a#", "a/#/b", "a/b#", "a+", "a/+b", "#/a", "a\x00"):
            self.assertIsNotNone(t.topic_filter_error(bad), bad)

    def test_lone_surrogate(self):
        """A string that cannot be UTF-8 is refused."""
        self.assertIn("UTF-8", t.topic_name_error("a\udc80"))


class MatchingTests(SynchronousTestCase):
    """Filters match topic names by the rules of section 4.7."""

    CASES = [
        ("a/b", "a/b", True), ("a/b", "a/c", False), ("a/+", "a/b", True),
        ("a/+", "a/b/c", False), ("a/+", "a", False), ("a/+", "a/", True),
        ("a/#", "a", True), ("a/#", "a/b/c", True), ("#", "a/b", True),
        ("+/+", "/a", True), ("+", "/a", False), ("a/+/c", "a/b/c", True),
        ("a/+/c", "a/b/d", False), ("#", "$SYS/x", False), ("+/x", "$hw/x", False),
        ("$hw/#", "$hw/x", True), ("$hw/events/device/+/twin/+",
                                   "$hw/events/device/d1/twin/update", True),
        ("$hw/events/device/+/twin/+", "$hw/events/device/d1/twin/update/result", False),
        ("$hw/events/device/+/+/twin/+", "$hw/events/device/ns/d1/twin/update", True),
        ("$hw/events/device/+/+/twin/+",
         "$hw/events/device/d1/twin/update/result", False),
        ("$hw/events/upload/#", "$hw/events/upload", True),
    ]

    def test_cases(self):
        """Each (filter, topic) pair matches as specified."""
        for topic_filter, topic, expected in self.CASES:
            self.assertEqual(t.topic_matches(topic_filter, topic), expected,
                             (topic_filter, topic))

    def test_subscribed_topics_are_valid(self):
        """Every KubeEdge filter EventBus subscribes is a valid filter."""
        for topic_filter in t.SUBSCRIBED_TOPICS:
            self.assertIsNone(t.topic_filter_error(topic_filter))

    def test_edge_publications_do_not_loop(self):
        """No topic the twin publishes matches a filter EventBus subscribes."""
        published = ["$hw/events/device/d1/twin/update/result",
                     "$hw/events/device/d1/twin/update/document",
                     "$hw/events/device/d1/twin/update/delta",
                     "$hw/events/device/d1/twin/get/result",
                     "$hw/events/device/d1/state/update/result",
                     "$hw/events/device/d1/updated",
                     "$hw/events/device/ns/d1/twin/update/result",
                     "$hw/events/node/n1/membership/updated",
                     "$hw/events/node/n1/membership/get/result"]
        for topic in published:
            self.assertFalse(any(t.topic_matches(f, topic) for f in t.SUBSCRIBED_TOPICS),
                             topic)


class RoutingTests(SynchronousTestCase):
    """KubeEdge's routing rule and resource encoding."""

    def test_goes_to_twin(self):
        """Device and node event topics go to the twin; others to the cloud."""
        self.assertTrue(t.goes_to_twin("$hw/events/device/d/twin/update"))
        self.assertTrue(t.goes_to_twin("$hw/events/node/n/membership/get"))
        self.assertFalse(t.goes_to_twin("$hw/events/upload/x"))
        self.assertFalse(t.goes_to_twin(t.UPLOAD_RECORDS_TOPIC))

    def test_resource_is_urlsafe_base64(self):
        """The resource is Go's base64.URLEncoding of the topic (padding kept)."""
        topic = "$hw/events/upload/a?b>c"
        resource = t.topic_to_resource(topic)
        self.assertEqual(resource, base64.urlsafe_b64encode(topic.encode()).decode())
        self.assertNotIn("+", resource)
        self.assertNotIn("/", resource)
        self.assertEqual(t.resource_to_topic(resource), topic)

    def test_upload_records_literal(self):
        """SYS/dis/upload_records keeps its topic as the resource."""
        self.assertEqual(t.topic_to_resource(t.UPLOAD_RECORDS_TOPIC), t.UPLOAD_RECORDS_TOPIC)
        self.assertEqual(t.resource_to_topic(t.UPLOAD_RECORDS_TOPIC), t.UPLOAD_RECORDS_TOPIC)

    def test_bad_resource(self):
        """A resource that is not base64 of UTF-8 raises ValueError."""
        for bad in ("", "!!!!", base64.urlsafe_b64encode(b"\xff\xfe").decode()):
            self.assertRaises(ValueError, t.resource_to_topic, bad)
