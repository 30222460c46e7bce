"""Watch streams: incremental decoding of chunked event lines, and a Watch's lifecycle."""

import json

from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase

from kubeedge_tw.cloud.k8s.errors import Gone, K8sConnectionError, WatchDecodeError
from kubeedge_tw.cloud.k8s.watch import WatchDecoder
from tests.cloud.k8s.fake_apiserver import FakeCluster


def line(etype, name, rv="1"):
    """One encoded watch event line."""
    return json.dumps({"type": etype, "object": {
        "kind": "Pod", "metadata": {"name": name, "resourceVersion": rv}}}).encode() + b"\n"


def names(events):
    return [(t, o["metadata"]["name"]) for t, o in events]


class DecoderTests(SynchronousTestCase):
    """WatchDecoder against the chunk boundaries a real stream produces."""

    def test_one_event_per_chunk(self):
        """One complete line is one event."""
        self.assertEqual(names(WatchDecoder().feed(line("ADDED", "a"))), [("ADDED", "a")])

    def test_several_events_per_chunk(self):
        """Several lines in one chunk are several events, in order."""
        chunk = line("ADDED", "a") + line("MODIFIED", "a") + line("DELETED", "a")
        self.assertEqual(names(WatchDecoder().feed(chunk)),
                         [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")])

    def test_event_split_across_chunks(self):
        """An event split over chunks (even one byte at a time) comes out whole, once."""
        data = line("ADDED", "a") + line("MODIFIED", "b")
        decoder = WatchDecoder()
        events = []
        for i in range(len(data)):
            events.extend(decoder.feed(data[i:i + 1]))
        self.assertEqual(names(events), [("ADDED", "a"), ("MODIFIED", "b")])
        self.assertEqual(decoder.pending, b"")

    def test_chunk_ends_mid_event(self):
        """A chunk holding one event and half of the next yields the first only."""
        data = line("ADDED", "a") + line("ADDED", "b")
        cut = len(line("ADDED", "a")) + 10
        decoder = WatchDecoder()
        self.assertEqual(names(decoder.feed(data[:cut])), [("ADDED", "a")])
        self.assertEqual(names(decoder.feed(data[cut:])), [("ADDED", "b")])

    def test_utf8_split_inside_a_character(self):
        """A multi-byte character cut by a chunk boundary survives."""
        data = json.dumps({"type": "ADDED", "object": {"metadata": {"name": "ü"}}},
                          ensure_ascii=False).encode() + b"\n"
        cut = data.index("ü".encode()) + 1
        decoder = WatchDecoder()
        self.assertEqual(decoder.feed(data[:cut]), [])
        self.assertEqual(names(decoder.feed(data[cut:])), [("ADDED", "ü")])

    def test_blank_lines_and_crlf(self):
        """Blank lines and CRLF line ends are tolerated."""
        data = b"\n" + line("ADDED", "a").replace(b"\n", b"\r\n") + b"\r\n"
        self.assertEqual(names(WatchDecoder().feed(data)), [("ADDED", "a")])

    def test_error_event(self):
        """An ERROR event is decoded with its Status object."""
        data = json.dumps({"type": "ERROR", "object": {"kind": "Status", "code": 410,
                                                      "reason": "Expired"}}).encode() + b"\n"
        [(etype, obj)] = WatchDecoder().feed(data)
        self.assertEqual((etype, obj["code"]), ("ERROR", 410))

    def test_last_event_without_newline(self):
        """finish() decodes a final event that had no newline."""
        decoder = WatchDecoder()
        self.assertEqual(decoder.feed(line("ADDED", "a")[:-1]), [])
        self.assertEqual(names(decoder.finish()), [("ADDED", "a")])
        self.assertEqual(decoder.finish(), [])

    def test_garbage(self):
        """Non-JSON, non-event JSON, unknown types and missing objects are refused."""
        for bad in (b"not json\n", b"[1,2]\n", b'{"type":"WEIRD","object":{}}\n',
                    b'{"type":"ADDED"}\n'):
            self.assertRaises(WatchDecodeError, WatchDecoder().feed, bad)

    def test_oversized_event(self):
        """A partial event beyond max_event_size is refused instead of buffered forever."""
        decoder = WatchDecoder(max_event_size=100)
        self.assertRaises(WatchDecodeError, decoder.feed, b"x" * 101)


class WatchStreamTests(SynchronousTestCase):
    """KubeClient.watch over StubTreq against the fake server's chunked stream."""

    def setUp(self):
        self.cluster = FakeCluster()
        self.client = self.cluster.client()
        self.events = []

    def start(self, **kwargs):
        d = self.client.watch("configmaps", lambda t, o: self.events.append(
            (t, o["metadata"]["name"])), namespace="default", **kwargs)
        self.cluster.flush()
        return self.successResultOf(d)

    def put(self, name, **data):
        self.cluster.api.put("configmaps", {"metadata": {"name": name, "namespace": "default"},
                                            "data": data})
        self.cluster.flush()

    def test_events_arrive_as_written(self):
        """Each server-side change reaches the callback as it is flushed."""
        watch = self.start(resource_version=str(self.cluster.api.rv))
        self.put("a")
        self.assertEqual(self.events, [("ADDED", "a")])
        self.put("a", k="v")
        self.cluster.api.remove("configmaps", "a", "default")
        self.cluster.flush()
        self.assertEqual(self.events, [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")])
        self.assertEqual(watch.events, 3)
        self.assertNoResult(watch.done)

    def test_clean_end(self):
        """A stream the server ends (timeoutSeconds) fires done with None."""
        watch = self.start(timeout_seconds=10)
        self.cluster.server_clock.advance(10)
        self.cluster.flush()
        self.assertIsNone(self.successResultOf(watch.done))
        self.assertIn("timeoutSeconds=10", self.cluster.api.requests[-1][1])

    def test_broken_stream(self):
        """A connection cut mid-stream fails done with K8sConnectionError."""
        watch = self.start()
        self.cluster.api.drop_connections()
        self.cluster.flush()
        self.failureResultOf(watch.done, K8sConnectionError)

    def test_error_event_is_gone(self):
        """An ERROR 410 event ends the watch with Gone, and is not handed to the callback."""
        self.put("a")
        self.put("b")
        old = str(self.cluster.api.rv - 1)
        self.cluster.api.compact()
        watch = self.start(resource_version=old)
        failure = self.failureResultOf(watch.done, Gone)
        self.assertEqual(failure.value.code, 410)
        self.assertEqual(self.events, [])

    def test_expired_while_watching(self):
        """An ERROR 410 in the middle of a stream ends it with Gone."""
        watch = self.start()
        self.cluster.api.expire_watches()
        self.cluster.flush()
        self.failureResultOf(watch.done, Gone)

    def test_stop(self):
        """stop() closes the stream; done fires with None; later data is ignored."""
        watch = self.start()
        watch.stop()
        self.cluster.flush()
        self.assertIsNone(self.successResultOf(watch.done))
        self.put("late")
        self.assertEqual(self.events, [])
        self.assertEqual(self.cluster.api.watchers, set())

    def test_cancel(self):
        """Cancelling done closes the stream with CancelledError."""
        watch = self.start()
        watch.done.cancel()
        self.cluster.flush()
        self.failureResultOf(watch.done, defer.CancelledError)
        self.assertEqual(self.cluster.api.watchers, set())

    def test_callback_failure_ends_watch(self):
        """If the callback raises, the watch closes and done carries that error."""
        d = self.client.watch("configmaps", lambda t, o: 1 / 0, namespace="default")
        self.cluster.flush()
        watch = self.successResultOf(d)
        self.put("a")
        self.failureResultOf(watch.done, ZeroDivisionError)

    def test_refused_watch(self):
        """A watch the server refuses with a Status fails the returned Deferred."""
        self.cluster.api.fail_next(403, "Forbidden", "no")
        d = self.client.watch("configmaps", self.events.append, namespace="default")
        from kubeedge_tw.cloud.k8s.errors import Forbidden
        self.failureResultOf(d, Forbidden)

    def test_watch_query(self):
        """Selectors, resourceVersion and bookmarks go into the query string."""
        watch = self.start(label_selector="app=web", field_selector="metadata.name=a",
                           resource_version="7", allow_bookmarks=True)
        self.failureResultOf(watch.done, Gone)  # 7 predates the fake's history
        method, uri = self.cluster.api.requests[-1]
        self.assertEqual(uri, "/api/v1/namespaces/default/configmaps?watch=true&labelSelector="
                              "app%3Dweb&fieldSelector=metadata.name%3Da&resourceVersion=7"
                              "&allowWatchBookmarks=true")
