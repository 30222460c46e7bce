"""The event sink: Event objects, dedup into counts, aggregation, spam filter, bounds."""

from twisted.trial.unittest import SynchronousTestCase

from kubeedge_tw.cloud.controlplane.events import (
    COMBINED_PREFIX, EventSink, NORMAL, WARNING)
from tests.cloud.controlplane.support import HarnessMixin


def pod_ref(name="p", uid="u1"):
    """A pod as the recorder sees it."""
    return {"kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": name, "namespace": "default", "uid": uid}}


class EventTests(HarnessMixin, SynchronousTestCase):
    """Events land in the API the way kubectl describe reads them."""

    def setUp(self):
        self.h = self.harness()
        self.sink = EventSink(self.h.clock, self.h.kube)
        self.sink.start()
        self.addCleanup(lambda: self.h.call(self.sink.stop()))
        self.recorder = self.sink.recorder("test-controller")

    def test_event_fields(self):
        """An event carries the involved object, reason, type, counts, times and source."""
        self.recorder.event(pod_ref(), NORMAL, "Scheduled", "assigned")
        self.h.run()
        [event] = self.h.events()
        self.assertEqual(event["involvedObject"], {"kind": "Pod", "apiVersion": "v1",
                                                   "name": "p", "uid": "u1",
                                                   "namespace": "default"})
        self.assertEqual((event["reason"], event["type"], event["message"], event["count"]),
                         ("Scheduled", "Normal", "assigned", 1))
        self.assertEqual(event["source"], {"component": "test-controller"})
        self.assertTrue(event["firstTimestamp"] and event["lastTimestamp"])
        self.assertTrue(event["metadata"]["name"].startswith("p."))

    def test_cluster_scoped_in_default(self):
        """Events about nodes go to the default namespace."""
        self.recorder.event({"kind": "Node", "apiVersion": "v1",
                             "metadata": {"name": "n1", "uid": "n"}}, NORMAL, "NodeReady", "ok")
        self.h.run()
        self.assertEqual(self.h.events()[0]["metadata"]["namespace"], "default")

    def test_dedup_counts(self):
        """The same event again patches count and lastTimestamp instead of a new object."""
        self.recorder.event(pod_ref(), WARNING, "FailedScheduling", "no")
        self.h.run(10)
        self.recorder.event(pod_ref(), WARNING, "FailedScheduling", "no")
        self.recorder.event(pod_ref(), WARNING, "FailedScheduling", "no")
        self.h.run()
        [event] = self.h.events()
        self.assertEqual(event["count"], 3)
        self.assertNotEqual(event["firstTimestamp"], event["lastTimestamp"])

    def test_aggregation(self):
        """More than ten different messages for one object and reason are combined."""
        for i in range(15):
            self.recorder.event(pod_ref(), NORMAL, "Pulled", "image {}".format(i))
        self.h.run()
        events = self.h.events()
        self.assertEqual(len(events), 10)
        combined = [e for e in events if e["message"].startswith(COMBINED_PREFIX)]
        self.assertEqual(len(combined), 1)
        self.assertEqual(combined[0]["count"], 6)

    def test_spam_filter(self):
        """One object gets 25 events at once, then one per five minutes."""
        for i in range(40):
            self.recorder.event(pod_ref(), NORMAL, "Created", "same")
        self.h.run()
        self.assertEqual(self.h.events()[0]["count"], 25)
        self.h.run(300, step=100)
        self.recorder.event(pod_ref(), NORMAL, "Created", "same")
        self.recorder.event(pod_ref(), NORMAL, "Created", "same")
        self.h.run()
        self.assertEqual(self.h.events()[0]["count"], 26)

    def test_bounded_queue(self):
        """Beyond the queue bound events are dropped and counted, not queued."""
        sink = EventSink(self.h.clock, self.h.kube, max_queued=5)
        recorder = sink.recorder("x")
        for i in range(8):
            recorder.event(pod_ref("p{}".format(i), "u{}".format(i)), NORMAL, "R", "m")
        self.assertEqual(sink.dropped, 3)
        sink.start()
        self.h.run()
        self.assertEqual(len(self.h.events()), 5)
        self.h.call(sink.stop())

    def test_failed_write_logged_not_raised(self):
        """A failing write is logged and the sink goes on."""
        self.h.api.fail_next(500, "InternalError", matching="/events")
        self.recorder.event(pod_ref(), NORMAL, "A", "first")
        self.recorder.event(pod_ref("q", "u2"), NORMAL, "A", "second")
        self.h.run()
        self.assertEqual([e["message"] for e in self.h.events()], ["second"])
        self.assertTrue(self.sink.idle)
        self.flushLoggedErrors()
