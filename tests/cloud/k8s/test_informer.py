"""Informer: initial sync, watch events, resume, relist on 410, backoff, restarts, stop."""

from twisted.application.internet import backoffPolicy
from twisted.application.service import MultiService
from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase

from kubeedge_tw.cloud.k8s.informer import Informer, object_key
from tests.cloud.k8s.fake_apiserver import FakeCluster


def cm(name, namespace="default", labels=None, **data):
    """A ConfigMap manifest."""
    return {"metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
            "data": data}


class Recorder:
    """Handlers that log what they saw and mirror the cache from the events alone."""

    def __init__(self):
        self.seen = []
        self.mirror = {}

    def on_add(self, obj):
        self.seen.append(("add", obj["metadata"]["name"]))
        self.mirror[object_key(obj)] = obj

    def on_update(self, old, new):
        self.seen.append(("update", new["metadata"]["name"]))
        self.mirror[object_key(new)] = new

    def on_delete(self, obj):
        self.seen.append(("delete", obj["metadata"]["name"]))
        self.mirror.pop(object_key(obj), None)

    def take(self):
        seen, self.seen = self.seen, []
        return seen


class InformerTestCase(SynchronousTestCase):
    """A fake cluster, a client, an informer with deterministic backoff (1, 2, 4, 8 s)."""

    def setUp(self):
        self.cluster = FakeCluster()
        self.api = self.cluster.api
        self.clock = self.cluster.clock
        self.client = self.cluster.client()
        self.rec = Recorder()

    def informer(self, resource="configmaps", **kwargs):
        policy = backoffPolicy(initialDelay=1.0, maxDelay=8.0, factor=2.0, jitter=lambda: 0)
        kwargs.setdefault("retry_policy", policy)
        informer = Informer(self.client, resource, self.clock, on_add=self.rec.on_add,
                            on_update=self.rec.on_update, on_delete=self.rec.on_delete,
                            **kwargs)
        self.addCleanup(self.stop, informer)
        return informer

    def stop(self, informer):
        informer.stop()
        self.cluster.flush()

    def put(self, obj, plural="configmaps"):
        result = self.api.put(plural, obj)
        self.cluster.flush()
        return result

    def remove(self, name, namespace="default", plural="configmaps"):
        self.api.remove(plural, name, namespace)
        self.cluster.flush()

    def server_state(self, plural="configmaps"):
        return {object_key(o): o["metadata"]["resourceVersion"] for o in self.api.objects(plural)}

    def assert_converged(self, informer):
        """Cache, handler mirror and server agree, object by object and version."""
        server = self.server_state()
        self.assertEqual({k: o["metadata"]["resourceVersion"] for k, o in
                          ((object_key(o), o) for o in informer.list())}, server)
        self.assertEqual({k: o["metadata"]["resourceVersion"]
                          for k, o in self.rec.mirror.items()}, server)

    def requests(self, method="GET"):
        return [uri for m, uri in self.api.requests if m == method]


class SyncTests(InformerTestCase):
    """Initial list and the watch that follows."""

    def test_initial_sync(self):
        """Existing objects are added, has_synced turns true, wait_synced fires."""
        self.put(cm("a"))
        self.put(cm("b"))
        informer = self.informer()
        waiting = informer.wait_synced()
        self.assertFalse(informer.has_synced)
        informer.start()
        self.assertTrue(informer.has_synced)
        self.successResultOf(waiting)
        self.successResultOf(informer.wait_synced())
        self.assertEqual(self.rec.take(), [("add", "a"), ("add", "b")])
        self.assertEqual(informer.resource_version, str(self.api.rv))
        self.assertEqual(sorted(informer.keys()), ["default/a", "default/b"])

    def test_list_items_get_kind(self):
        """Objects from the list carry kind and apiVersion like watch objects do."""
        self.put(cm("a"))
        informer = self.informer()
        informer.start()
        self.assertEqual((informer.get("a", "default")["kind"],
                          informer.get("a", "default")["apiVersion"]), ("ConfigMap", "v1"))

    def test_watch_events(self):
        """After the list, the watch delivers add, update and delete to the handlers."""
        informer = self.informer()
        informer.start()
        self.assertEqual(self.requests()[-1],
                         "/api/v1/configmaps?watch=true&resourceVersion={}"
                         "&timeoutSeconds=300&allowWatchBookmarks=true".format(self.api.rv))
        self.put(cm("a"))
        self.put(cm("a", k="v"))
        self.remove("a")
        self.assertEqual(self.rec.take(), [("add", "a"), ("update", "a"), ("delete", "a")])
        self.assertEqual(informer.list(), [])
        self.assertEqual(informer.resource_version, str(self.api.rv))

    def test_cache_updated_before_handlers(self):
        """A handler reading the cache sees the new state."""
        informer = self.informer()
        seen = []
        informer.add_handler(on_update=lambda old, new: seen.append(
            (old["data"], informer.get("a", "default")["data"])))
        informer.start()
        self.put(cm("a", k="1"))
        self.put(cm("a", k="2"))
        self.assertEqual(seen, [({"k": "1"}, {"k": "2"})])

    def test_update_carries_old_and_new(self):
        """on_update gets the previous and the new object."""
        informer = self.informer()
        pairs = []
        informer.add_handler(on_update=lambda old, new: pairs.append((old["data"], new["data"])))
        informer.start()
        self.put(cm("a", k="1"))
        self.put(cm("a", k="2"))
        self.assertEqual(pairs, [({"k": "1"}, {"k": "2"})])

    def test_namespace_and_selectors(self):
        """A scoped informer lists and watches only its slice; leaving it is a delete."""
        self.put(cm("in", labels={"app": "x"}))
        self.put(cm("out", labels={"app": "y"}))
        self.put(cm("elsewhere", namespace="other", labels={"app": "x"}))
        informer = self.informer(namespace="default", label_selector="app=x")
        informer.start()
        self.assertEqual(self.rec.take(), [("add", "in")])
        self.put(cm("in", labels={"app": "y"}))
        self.assertEqual(self.rec.take(), [("delete", "in")])
        self.assertEqual(informer.list(), [])
        self.assertIn("/api/v1/namespaces/default/configmaps?labelSelector=app%3Dx",
                      self.requests()[0])

    def test_bookmark_moves_resource_version(self):
        """A BOOKMARK advances the resourceVersion without calling handlers."""
        informer = self.informer()
        informer.start()
        self.api.put("secrets", {"metadata": {"name": "s", "namespace": "default"}})
        self.api.send_bookmarks()
        self.cluster.flush()
        self.assertEqual(informer.resource_version, str(self.api.rv))
        self.assertEqual(self.rec.take(), [])

    def test_paged_list(self):
        """The list is read in pages of page_size; every item arrives."""
        for name in "abcde":
            self.put(cm(name))
        informer = self.informer(page_size=2)
        informer.start()
        lists = [u for u in self.requests() if "watch=true" not in u]
        self.assertEqual(len(lists), 3)
        self.assertIn("limit=2&continue=", lists[1])
        self.assertEqual([n for _, n in self.rec.take()], list("abcde"))
        self.assertEqual(informer.resource_version, str(self.api.rv))

    def test_expired_continue_falls_back_to_one_list(self):
        """A 410 on a continue token: one unpaged list instead, as client-go's pager."""
        for name in "abc":
            self.put(cm(name))
        self.api.fail_next(410, "Expired", "continue too old", matching="continue=")
        informer = self.informer(page_size=2)
        informer.start()
        lists = [u for u in self.requests() if "watch=true" not in u]
        self.assertEqual(len(lists), 3)
        self.assertNotIn("limit", lists[-1])
        self.assertEqual([n for _, n in self.rec.take()], list("abc"))
        self.assertEqual(informer.attempt, 0)

    def test_start_twice(self):
        """A second start while running does not start a second list+watch."""
        informer = self.informer()
        informer.start()
        informer.start()
        self.assertEqual(len(self.api.requests), 2)
        self.assertEqual(len(self.api.watchers), 1)

    def test_restart_after_stop(self):
        """Started again after a stop, the informer relists and reports what changed."""
        self.put(cm("a"))
        informer = self.informer()
        informer.start()
        informer.stop()
        self.cluster.flush()
        self.remove("a")
        self.put(cm("b"))
        informer.start()
        self.assertEqual(self.rec.take(), [("add", "a"), ("add", "b"), ("delete", "a")])

    def test_as_a_service(self):
        """An informer runs under a MultiService like any other child."""
        parent = MultiService()
        informer = self.informer()
        informer.setServiceParent(parent)
        parent.startService()
        self.assertTrue(informer.has_synced)
        self.successResultOf(parent.stopService())
        self.assertFalse(informer.running)


class ResumeTests(InformerTestCase):
    """Watches resume from the last resourceVersion; 410 relists with an exact diff."""

    def test_clean_end_resumes_from_last_version(self):
        """When the server ends the watch, the next one starts at the last version."""
        informer = self.informer()
        informer.start()
        self.put(cm("a"))
        rv = informer.resource_version
        self.clock.advance(300)
        self.api.end_watches()
        self.cluster.flush()
        self.assertIn("resourceVersion={}&".format(rv), self.requests()[-1])
        self.assertEqual(len([u for u in self.requests() if "watch=true" not in u]), 1)
        self.put(cm("b"))
        self.assertEqual(self.rec.take(), [("add", "a"), ("add", "b")])

    def test_changes_during_an_outage_are_replayed(self):
        """After a broken stream the watch resumes; changes made meanwhile arrive as events."""
        self.put(cm("a"))
        self.put(cm("b"))
        informer = self.informer()
        informer.start()
        self.rec.take()
        self.api.drop_connections()
        self.cluster.flush()
        self.put(cm("a", k="changed"))
        self.remove("b")
        self.put(cm("c"))
        self.clock.advance(1)
        self.cluster.flush()
        self.assertEqual(self.rec.take(), [("update", "a"), ("delete", "b"), ("add", "c")])
        self.assertEqual(len([u for u in self.requests() if "watch=true" not in u]), 1,
                         "no relist was needed")
        self.assert_converged(informer)

    def test_gone_relists_with_exact_diff(self):
        """410 after a compaction: relist; handlers see exactly what changed."""
        for name in "abcd":
            self.put(cm(name))
        informer = self.informer()
        informer.start()
        self.rec.take()
        self.api.drop_connections()
        self.cluster.flush()
        self.put(cm("a", k="changed"))   # updated
        self.remove("b")                  # deleted
        self.put(cm("e"))                 # added
        self.remove("d")                  # deleted and recreated: a new uid
        self.put(cm("d"))
        self.api.compact()                # c unchanged
        self.clock.advance(1)
        self.cluster.flush()
        self.assertEqual(sorted(self.rec.take()), sorted([
            ("update", "a"), ("delete", "b"), ("add", "e"), ("delete", "d"), ("add", "d")]))
        self.assertEqual(len([u for u in self.requests() if "watch=true" not in u]), 2)
        self.assert_converged(informer)
        self.put(cm("f"))
        self.assertEqual(self.rec.take(), [("add", "f")])

    def test_gone_mid_stream_relists_at_once(self):
        """An ERROR 410 during a watch triggers an immediate relist, without backoff."""
        self.put(cm("a"))
        informer = self.informer()
        informer.start()
        self.api.expire_watches()
        self.cluster.flush()
        self.assertEqual(len([u for u in self.requests() if "watch=true" not in u]), 2)
        self.assertEqual(informer.attempt, 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.rec.take(), [("add", "a")])  # nothing changed: no handler call

    def test_gone_as_http_status(self):
        """A watch refused with a 410 response (not an event) also relists."""
        informer = self.informer()
        informer.start()
        self.clock.advance(5)
        self.api.fail_next(410, "Gone", "gone")
        self.api.end_watches()
        self.cluster.flush()
        self.assertEqual(len([u for u in self.requests() if "watch=true" not in u]), 2)
        self.assertTrue(informer.has_synced)

    def test_modified_for_unknown_object_is_an_add(self):
        """Events are reconciled with the cache: MODIFIED of an unknown key is an add."""
        informer = self.informer()
        informer.start()
        informer._on_event("MODIFIED", cm("x"))
        informer._on_event("ADDED", cm("x", k="v"))
        informer._on_event("DELETED", cm("never-seen"))
        self.assertEqual(self.rec.take(), [("add", "x"), ("update", "x"),
                                           ("delete", "never-seen")])


class BackoffTests(InformerTestCase):
    """Failures retry after the backoff policy's delays, on the injected clock."""

    def test_list_failures_back_off(self):
        """A refused list is retried after 1, 2, 4 s; success resets the attempts."""
        self.api.down = True
        informer = self.informer()
        informer.start()
        self.cluster.flush()
        self.assertEqual(len(self.api.requests), 1)
        for delay, total in ((1, 2), (2, 3), (4, 4)):
            self.clock.advance(delay - 0.01)
            self.cluster.flush()
            self.assertEqual(len(self.api.requests), total - 1)
            self.clock.advance(0.01)
            self.cluster.flush()
            self.assertEqual(len(self.api.requests), total)
        self.assertEqual(informer.attempt, 4)
        self.assertFalse(informer.has_synced)
        self.api.down = False
        self.clock.advance(8)
        self.cluster.flush()
        self.assertTrue(informer.has_synced)
        self.assertEqual(informer.attempt, 0)

    def test_server_errors_back_off(self):
        """5xx answers back off like connection errors, and are logged, not raised."""
        self.api.fail_next(500, "InternalError", "etcd unavailable", count=2)
        informer = self.informer()
        informer.start()
        self.assertFalse(informer.has_synced)
        self.clock.advance(1)
        self.assertFalse(informer.has_synced)
        self.clock.advance(2)
        self.assertTrue(informer.has_synced)

    def test_watch_failure_retries_watch_not_list(self):
        """A failing watch is retried from the last version, not by relisting."""
        informer = self.informer()
        informer.start()
        self.clock.advance(5)
        self.api.fail_next(503, "ServiceUnavailable", "busy")
        self.api.end_watches()
        self.cluster.flush()
        self.assertEqual(informer.attempt, 1)
        self.clock.advance(1)
        self.cluster.flush()
        self.assertEqual(len([u for u in self.requests() if "watch=true" not in u]), 1)
        self.assertEqual(len(self.api.watchers), 1)

    def test_short_watches_back_off(self):
        """A watch that ends at once without events counts as a failure (no tight loop)."""
        informer = self.informer()
        informer.start()
        watches = len(self.requests())
        self.api.end_watches()
        self.cluster.flush()
        self.assertEqual(len(self.requests()), watches)
        self.assertEqual(informer.attempt, 1)
        self.clock.advance(1)
        self.cluster.flush()
        self.assertEqual(len(self.requests()), watches + 1)

    def test_default_policy_is_bounded(self):
        """Without a policy, Twisted's backoffPolicy (1 s x1.5, at most 30 s) is used."""
        informer = Informer(self.client, "configmaps", self.clock)
        delays = [informer.retry_policy(n) for n in range(20)]
        self.assertTrue(1 <= delays[0] <= 2)
        self.assertTrue(all(d <= 31 for d in delays))


class RestartTests(InformerTestCase):
    """No event is lost across a server restart."""

    def churn(self, step):
        """Server-side changes: create one object, update one, delete the last created."""
        created = [o["metadata"]["name"] for o in self.api.objects("configmaps")
                   if o["metadata"]["name"].startswith("new-")]
        self.put(cm("new-{}".format(step)))
        self.put(cm("keep", n=str(step)))
        for name in created:
            self.remove(name)

    def restart_cycle(self, keep_history):
        self.put(cm("keep"))
        informer = self.informer()
        informer.start()
        for step in range(3):
            self.churn(step)
            self.api.down = True
            self.api.drop_connections()     # the server goes away
            self.cluster.flush()
            self.churn(step + 10)           # changes the informer cannot see (storage writes)
            self.clock.advance(1)           # a retry against the server still down
            self.cluster.flush()
            self.api.restart(keep_history=keep_history)
            self.api.down = False           # back, possibly with a fresh watch cache
            self.clock.advance(8)
            self.cluster.flush()
            self.assert_converged(informer)
        return informer

    def test_restart_with_history(self):
        """A server that kept its history: the informer resumes and replays, no relist."""
        self.restart_cycle(keep_history=True)
        self.assertEqual(len([u for u in self.requests() if "watch=true" not in u]), 1)

    def test_restart_without_history(self):
        """A server that lost its history: 410, relist, and the diff covers the gap."""
        self.restart_cycle(keep_history=False)
        self.assertEqual(len([u for u in self.requests() if "watch=true" not in u]), 4)

    def test_every_change_seen_with_history(self):
        """With history kept, every single change reaches the handlers, in order."""
        self.put(cm("a"))
        informer = self.informer()
        informer.start()
        self.rec.take()
        self.api.restart(keep_history=True)
        self.cluster.flush()
        for n in range(3):
            self.put(cm("a", n=str(n)))
        self.clock.advance(1)
        self.cluster.flush()
        self.assertEqual(self.rec.take(), [("update", "a")] * 3)


class StopTests(InformerTestCase):
    """stop() cancels everything and leaves no delayed call."""

    def test_stop_while_watching(self):
        """Stopping during a watch closes the stream."""
        informer = self.informer()
        informer.start()
        self.assertEqual(len(self.api.watchers), 1)
        self.successResultOf(informer.stop())
        self.cluster.flush()
        self.assertEqual(self.api.watchers, set())
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.put(cm("late"))
        self.assertEqual(self.rec.take(), [])

    def test_stop_during_backoff(self):
        """Stopping while a retry is scheduled cancels the timer."""
        self.api.down = True
        informer = self.informer()
        informer.start()
        self.cluster.flush()
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        informer.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_stop_before_sync_fails_waiters(self):
        """wait_synced() callers get CancelledError if the informer stops first."""
        self.api.down = True
        informer = self.informer()
        informer.start()
        waiting = informer.wait_synced()
        informer.stop()
        self.failureResultOf(waiting, defer.CancelledError)

    def test_stop_during_rate_limited_request(self):
        """A request queued in the rate limiter is cancelled too."""
        self.client = self.cluster.client(qps=1, burst=1)
        self.successResultOf(self.client.list("pods"))
        informer = self.informer()
        informer.start()
        self.assertTrue(self.clock.getDelayedCalls())  # token wait + request timeout
        self.assertEqual(len(self.api.requests), 1)
        informer.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_cancelled_wait_synced(self):
        """A wait_synced() Deferred can be cancelled on its own."""
        self.api.down = True
        informer = self.informer()
        informer.start()
        waiting = informer.wait_synced()
        waiting.cancel()
        self.failureResultOf(waiting, defer.CancelledError)
        informer.stop()


class HandlerFailureTests(InformerTestCase):
    """A failing handler is logged; the informer and other handlers go on."""

    def test_raising_handler(self):
        """An exception is logged with its traceback; later handlers and events still run."""
        informer = self.informer()
        informer.add_handler(on_add=lambda obj: 1 / 0)
        after = []
        informer.add_handler(on_add=lambda obj: after.append(obj["metadata"]["name"]))
        informer.start()
        self.put(cm("a"))
        self.put(cm("b"))
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 2)
        self.assertEqual(after, ["a", "b"])
        self.assertEqual(self.rec.take(), [("add", "a"), ("add", "b")])
        self.assertEqual(len(self.api.watchers), 1)

    def test_failing_deferred_handler(self):
        """A handler's failed Deferred is logged too."""
        informer = self.informer()
        informer.add_handler(on_add=lambda obj: defer.fail(KeyError("boom")))
        informer.start()
        self.put(cm("a"))
        self.assertEqual(len(self.flushLoggedErrors(KeyError)), 1)
        self.assertEqual(self.rec.take(), [("add", "a")])

    def test_raising_handler_during_relist(self):
        """A failing handler during a relist does not stop the diff."""
        self.put(cm("a"))
        informer = self.informer()
        informer.add_handler(on_delete=lambda obj: 1 / 0)
        informer.start()
        self.api.drop_connections()
        self.cluster.flush()
        self.remove("a")
        self.put(cm("b"))
        self.api.compact()
        self.clock.advance(1)
        self.cluster.flush()
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        self.assertEqual(self.rec.take(), [("add", "a"), ("add", "b"), ("delete", "a")])
        self.assertTrue(informer.running)
