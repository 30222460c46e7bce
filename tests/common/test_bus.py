"""Tests for the module bus and the module base class, on a deterministic Clock."""

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from kubeedge_tw.common import message as m
from kubeedge_tw.common.bus import Bus, BusError, BusStopped, QueueFull, SyncTimeout, UnknownModule
from kubeedge_tw.common.module import Module


class Recorder(Module):
    """A module that records what it handles; optionally fails or answers sync calls."""

    def __init__(self, clock, name, group, **kw):
        super().__init__(clock, name=name, group=group, **kw)
        self.seen = []
        self.fail_on = set()
        self.answer = False
        self.blocking = None

    def handle(self, message):
        self.seen.append(message)
        if message.resource in self.fail_on:
            raise RuntimeError("boom on " + message.resource)
        if self.answer and message.sync:
            self.send_resp(m.new_response(message, "answer to " + message.resource))
        if self.blocking is not None:
            return self.blocking


class Harness:
    """A bus on a Clock with started modules."""

    def __init__(self, *modules_spec, **kw):
        self.clock = Clock()
        self.bus = Bus(self.clock)
        self.modules = {}
        for name, group in modules_spec:
            mod = Recorder(self.clock, name, group, **kw)
            self.bus.register(mod)
            mod.startService()
            self.modules[name] = mod


class StepClock(Clock):
    """A Clock that can run one reactor turn: only the calls due when the turn starts."""

    def step(self):
        """Run the calls due now; return how many ran."""
        due = [c for c in self.calls if c.getTime() <= self.seconds()]
        for call in due:
            self.calls.remove(call)
            call.called = 1
            call.func(*call.args, **call.kw)
        return len(due)


def msg(resource="default/pod/x", operation="update"):
    return m.new_message("test", "meta", operation, resource, {"r": resource})


class SendTests(SynchronousTestCase):
    """send and send_to_group deliver asynchronously and in order."""

    def test_send_is_asynchronous_and_ordered(self):
        """A sent message is handled on the next reactor turn, in send order."""
        h = Harness(("edged", "edged"))
        first, second = msg("a/pod/1"), msg("a/pod/2")
        h.bus.send("edged", first)
        h.bus.send("edged", second)
        self.assertEqual(h.modules["edged"].seen, [])
        h.clock.advance(0)
        self.assertEqual(h.modules["edged"].seen, [first, second])
        self.assertEqual(h.clock.getDelayedCalls(), [])

    def test_send_unknown_module(self):
        """Sending to a name nobody registered raises UnknownModule naming what exists."""
        h = Harness(("edged", "edged"))
        e = self.assertRaises(UnknownModule, h.bus.send, "nope", msg())
        self.assertIn("edged", str(e))
        self.assertFalse(h.bus.has_module("nope"))

    def test_send_to_group(self):
        """send_to_group reaches every module of the group and no other."""
        h = Harness(("a", "g"), ("b", "g"), ("c", "other"))
        message = msg()
        self.assertEqual(h.bus.send_to_group("g", message), 2)
        h.clock.advance(0)
        self.assertEqual(h.modules["a"].seen, [message])
        self.assertEqual(h.modules["b"].seen, [message])
        self.assertEqual(h.modules["c"].seen, [])
        self.assertRaises(UnknownModule, h.bus.send_to_group, "empty", message)

    def test_duplicate_name(self):
        """Two modules cannot share a name."""
        h = Harness(("a", "g"))
        self.assertRaises(ValueError, h.bus.register, Recorder(h.clock, "a", "x"))

    def test_bounded_queue(self):
        """A full inbox refuses further messages with QueueFull and counts them."""
        h = Harness(("a", "g"), queue_size=2)
        h.bus.send("a", msg("n/pod/1"))
        h.bus.send("a", msg("n/pod/2"))
        self.assertRaises(QueueFull, h.bus.send, "a", msg("n/pod/3"))
        self.assertEqual(h.modules["a"].stats["refused"], 1)
        h.clock.advance(0)
        h.bus.send("a", msg("n/pod/4"))
        h.clock.advance(0)
        self.assertEqual([x.resource for x in h.modules["a"].seen],
                         ["n/pod/1", "n/pod/2", "n/pod/4"])

    def test_group_with_one_full_member(self):
        """A full member does not stop delivery to the rest of its group."""
        h = Harness(("a", "g"), ("b", "g"), queue_size=1)
        h.bus.send("a", msg("n/pod/0"))
        self.assertRaises(QueueFull, h.bus.send_to_group, "g", msg("n/pod/1"))
        h.clock.advance(0)
        self.assertEqual([x.resource for x in h.modules["b"].seen], ["n/pod/1"])

    def test_drain_batches_yield(self):
        """A long inbox is drained in batches, one reactor turn each."""
        clock = StepClock()
        bus = Bus(clock)
        mod = Recorder(clock, "a", "g")
        mod.drain_batch = 10
        bus.register(mod)
        mod.startService()
        for i in range(25):
            bus.send("a", msg("n/pod/%d" % i))
        seen_per_turn = []
        while clock.step():
            seen_per_turn.append(len(mod.seen))
        self.assertEqual(seen_per_turn, [10, 20, 25])


class HandlerFailureTests(SynchronousTestCase):
    """A failing handler is logged with its message id and the module goes on."""

    def test_failure_logged_and_module_survives(self):
        """An exception in handle is logged with msg id; later messages are handled."""
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        h = Harness(("a", "g"))
        bad, good = msg("n/pod/bad"), msg("n/pod/good")
        h.modules["a"].fail_on.add("n/pod/bad")
        h.bus.send("a", bad)
        h.bus.send("a", good)
        h.clock.advance(0)
        self.assertEqual(h.modules["a"].seen, [bad, good])
        self.assertEqual(h.modules["a"].stats["failed"], 1)
        failures = [e for e in events if e.get("log_event") == "module_handler_failed"]
        self.assertEqual(len(failures), 1)
        self.assertEqual(failures[0]["msg_id"], bad.msg_id)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_async_handler_failure(self):
        """A coroutine handler that fails is logged the same way."""
        class Async(Module):
            async def handle(self, message):
                raise KeyError(message.msg_id)
        clock = Clock()
        bus = Bus(clock)
        mod = Async(clock, name="x", group="g")
        bus.register(mod)
        mod.startService()
        bus.send("x", msg())
        clock.advance(0)
        self.assertEqual(mod.stats["failed"], 1)
        self.assertEqual(len(self.flushLoggedErrors(KeyError)), 1)

    def test_concurrency_limit(self):
        """With concurrency 1 the next message waits for a pending Deferred."""
        h = Harness(("a", "g"))
        mod = h.modules["a"]
        mod.blocking = defer.Deferred()
        h.bus.send("a", msg("n/pod/1"))
        h.bus.send("a", msg("n/pod/2"))
        h.clock.advance(0)
        self.assertEqual(len(mod.seen), 1)
        blocking, mod.blocking = mod.blocking, None
        blocking.callback(None)
        h.clock.advance(0)
        self.assertEqual(len(mod.seen), 2)

    def test_stop_waits_for_handler(self):
        """stopService waits for the handler in flight and leaves no timer behind."""
        h = Harness(("a", "g"))
        mod = h.modules["a"]
        mod.blocking = defer.Deferred()
        h.bus.send("a", msg("n/pod/1"))
        h.bus.send("a", msg("n/pod/2"))
        h.clock.advance(0)
        d = mod.stopService()
        self.assertNoResult(d)
        mod.blocking.callback(None)
        self.successResultOf(d)
        self.assertEqual(h.clock.getDelayedCalls(), [])
        self.assertEqual(mod.pending, 1)


class SyncTests(SynchronousTestCase):
    """send_sync / send_resp correlate by parent_msg_id with a timeout on the clock."""

    def test_reply_matches(self):
        """The reply whose parent_msg_id is the request id fires the Deferred."""
        h = Harness(("meta", "meta"))
        h.modules["meta"].answer = True
        request = msg("default/configmap/c", "query")
        d = h.bus.send_sync("meta", request, 10)
        self.assertNoResult(d)
        h.clock.advance(0)
        reply = self.successResultOf(d)
        self.assertEqual(reply.parent_msg_id, request.msg_id)
        self.assertEqual(reply.content, "answer to default/configmap/c")
        self.assertTrue(h.modules["meta"].seen[0].sync)
        self.assertEqual(h.clock.getDelayedCalls(), [])

    def test_other_replies_do_not_match(self):
        """A reply to another id does not fire the waiting Deferred."""
        h = Harness(("meta", "meta"))
        request = msg()
        d = h.bus.send_sync("meta", request, 10)
        self.assertFalse(h.bus.send_resp(m.new_response(msg(), "other")))
        self.assertNoResult(d)
        self.assertTrue(h.bus.is_waiting(request.msg_id))
        self.assertTrue(h.bus.send_resp(m.new_response(request, "mine")))
        self.assertEqual(self.successResultOf(d).content, "mine")
        self.assertFalse(h.bus.is_waiting(request.msg_id))

    def test_timeout(self):
        """Without a reply the Deferred fails with SyncTimeout after exactly timeout s."""
        h = Harness(("meta", "meta"))
        request = msg("default/secret/s", "query")
        d = h.bus.send_sync("meta", request, 10)
        h.clock.advance(9.9)
        self.assertNoResult(d)
        h.clock.advance(0.1)
        f = self.failureResultOf(d, SyncTimeout)
        self.assertIn("default/secret/s", str(f.value))
        self.assertIsInstance(f.value, TimeoutError)
        self.assertFalse(h.bus.send_resp(m.new_response(request, "late")))
        self.assertEqual(h.clock.getDelayedCalls(), [])

    def test_send_failure_fails_at_once(self):
        """send_sync to an unknown module fails at once and leaves no timer."""
        h = Harness()
        d = h.bus.send_sync("nope", msg(), 10)
        self.failureResultOf(d, UnknownModule)
        self.assertEqual(h.clock.getDelayedCalls(), [])

    def test_duplicate_and_idless(self):
        """Waiting twice on one id, or on no id, is refused."""
        h = Harness(("meta", "meta"))
        request = msg()
        h.bus.send_sync("meta", request, 10)
        self.failureResultOf(h.bus.send_sync("meta", request, 10), BusError)
        self.failureResultOf(h.bus.send_sync("meta", request.replace(msg_id=""), 10),
                             BusError)

    def test_cancel(self):
        """Cancelling the Deferred forgets the request and its timer."""
        h = Harness(("meta", "meta"))
        request = msg()
        d = h.bus.send_sync("meta", request, 10)
        h.clock.advance(0)
        d.cancel()
        self.failureResultOf(d, defer.CancelledError)
        self.assertFalse(h.bus.is_waiting(request.msg_id))
        self.assertEqual(h.clock.getDelayedCalls(), [])

    def test_stop_fails_waiters(self):
        """Stopping the bus fails waiting requests with BusStopped, cancels timers and
        refuses new ones."""
        h = Harness(("meta", "meta"))
        d = h.bus.send_sync("meta", msg(), 10)
        h.clock.advance(0)
        h.bus.stop()
        self.failureResultOf(d, BusStopped)
        self.assertEqual(h.clock.getDelayedCalls(), [])
        self.failureResultOf(h.bus.send_sync("meta", msg(), 10), BusStopped)

    def test_expect_reply(self):
        """expect_reply waits for a reply to a message sent by another path."""
        h = Harness()
        request = msg()
        d = h.bus.expect_reply(request, 5, "cloud")
        h.bus.send_resp(m.new_response(request, "OK"))
        self.assertEqual(self.successResultOf(d).content, "OK")
        d2 = h.bus.expect_reply(msg(), 5, "cloud")
        h.clock.advance(5)
        self.assertIn("cloud", str(self.failureResultOf(d2, SyncTimeout).value))
