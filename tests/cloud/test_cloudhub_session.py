"""Tests for NodeSession's ACK deadlines on a shared AckTimer, on a Clock."""

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from kubeedge_tw.cloud.cloudhub.session import AckTimer, NodeSession
from kubeedge_tw.common import message as m
from kubeedge_tw.common import names


class Events:
    """What CloudHub receives from a session, recorded."""

    def __init__(self):
        self.acked = []
        self.undelivered = []
        self.expired = []
        self.fail_next_undelivered = False

    def session_acked(self, session, message, key):
        self.acked.append((session.node, message.msg_id, key))

    def session_undelivered(self, session, message, reason):
        self.undelivered.append((session.node, message.msg_id, reason))
        if self.fail_next_undelivered:
            self.fail_next_undelivered = False
            raise RuntimeError("observer failed")

    def session_expired(self, session):
        self.expired.append(session.node)


def pod_update(name="nginx", rv="1"):
    """An update that needs an ACK (edge-local form)."""
    return m.new_message(names.EDGECONTROLLER, names.WIRE_GROUP_RESOURCE, names.OP_UPDATE,
                         "default/pod/" + name, {"metadata": {"name": name}},
                         resource_version=rv)


class SharedAckTimerTests(SynchronousTestCase):
    """Sessions sharing one AckTimer resend exactly as with a timer each."""

    def setUp(self):
        self.clock = Clock()
        self.events = Events()
        self.timer = AckTimer(self.clock, 5.0)
        self.writes = []

    def session(self, node, **kwargs):
        return NodeSession(node, self.clock, lambda msg: self.writes.append((node, msg)),
                           self.events, keepalive_interval=1000, ack_interval=5.0,
                           ack_timer=self.timer, **kwargs)

    def ack_timer_calls(self):
        return [c for c in self.clock.getDelayedCalls() if c.func == self.timer._expire]

    def test_resends_at_each_deadline_on_one_call(self):
        """Two nodes' messages sent 1 s apart are resent 5 s after each send, and
        only one delayed call serves both."""
        a, b = self.session("a"), self.session("b")
        a.enqueue(pod_update())
        self.clock.advance(1)
        b.enqueue(pod_update())
        self.assertEqual(len(self.ack_timer_calls()), 1)
        self.clock.advance(4)
        self.assertEqual([n for n, _ in self.writes], ["a", "b", "a"])
        self.clock.advance(1)
        self.assertEqual([n for n, _ in self.writes], ["a", "b", "a", "b"])
        self.assertEqual((a.stats["resent"], b.stats["resent"]), (1, 1))
        self.assertEqual(len(self.ack_timer_calls()), 1)

    def test_ack_disarms(self):
        """An acknowledged message is never resent and its deadline leaves no call."""
        a = self.session("a")
        message = pod_update()
        a.enqueue(message)
        self.assertTrue(a.ack(message.msg_id))
        self.clock.advance(5)
        self.assertEqual(len(self.writes), 1)
        self.assertEqual(self.events.acked, [("a", message.msg_id, "pod/default/nginx")])
        self.assertEqual(self.clock.getDelayedCalls(), [a._keepalive])

    def test_undelivered_after_max_sends(self):
        """ack_max_sends sends, ack_interval apart, then undelivered."""
        a = self.session("a", ack_max_sends=3)
        message = pod_update()
        a.enqueue(message)
        for _ in range(3):
            self.clock.advance(5)
        self.assertEqual(len(self.writes), 3)
        self.assertEqual(self.events.undelivered, [("a", message.msg_id,
                                                    "no ACK after 3 sends")])
        self.assertEqual(a.awaiting_ack, 0)
        self.assertEqual(self.ack_timer_calls(), [])

    def test_acked_head_does_not_delay_the_next(self):
        """The earliest deadline acknowledged, the next one still fires on time."""
        a, b = self.session("a"), self.session("b")
        first = pod_update("first")
        a.enqueue(first)
        self.clock.advance(2)
        b.enqueue(pod_update("second"))
        a.ack(first.msg_id)
        self.clock.advance(3)   # first's deadline: nothing due
        self.assertEqual(len(self.writes), 2)
        self.clock.advance(2)   # second's deadline
        self.assertEqual([n for n, _ in self.writes], ["a", "b", "b"])

    def test_close_disarms(self):
        """A closed session's messages are reported once and never resent."""
        a = self.session("a")
        message = pod_update()
        a.enqueue(message)
        a.close("node disconnected")
        self.clock.advance(25)
        self.assertEqual(len(self.writes), 1)
        self.assertEqual(self.events.undelivered, [("a", message.msg_id,
                                                    "node disconnected")])

    def test_failing_callback_keeps_the_timer(self):
        """An observer raising while a deadline expires does not stop later deadlines."""
        a, b = self.session("a", ack_max_sends=1), self.session("b")
        a.enqueue(pod_update())
        self.events.fail_next_undelivered = True
        self.assertRaises(RuntimeError, self.clock.advance, 5)
        b.enqueue(pod_update())
        self.clock.advance(5)
        self.assertEqual(b.stats["resent"], 1)

    def test_stop(self):
        """stop() forgets every deadline and cancels its call."""
        self.session("a").enqueue(pod_update())
        self.timer.stop()
        self.assertEqual(self.ack_timer_calls(), [])
        self.assertEqual(len(self.timer), 0)

    def test_interval_must_match(self):
        """A shared timer of another interval is refused."""
        self.assertRaises(ValueError, NodeSession, "a", self.clock, self.writes.append,
                          self.events, keepalive_interval=30, ack_interval=2.0,
                          ack_timer=self.timer)


class OwnAckTimerTests(SynchronousTestCase):
    """A session without a shared timer."""

    def test_close_leaves_no_calls(self):
        """Its own timer is stopped on close: no delayed call is left."""
        clock = Clock()
        session = NodeSession("a", clock, lambda msg: None, Events(), keepalive_interval=30)
        session.enqueue(pod_update())
        session.close("gone")
        self.assertEqual(clock.getDelayedCalls(), [])
