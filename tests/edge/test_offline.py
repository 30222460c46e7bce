"""Tests for what EdgeHub keeps while the cloud is unreachable (edgehub.offline)."""

from twisted.trial.unittest import SynchronousTestCase

from kubeedge_tw.common import message as m
from kubeedge_tw.edge.edgehub.offline import OfflineQueue, keep_while_offline


def msg(resource, operation="update", source="edged", group="meta", content=None):
    """An edge-to-cloud message."""
    return m.new_message(source, group, operation, resource, content)


class KeepWhileOfflineTests(SynchronousTestCase):
    """keep_while_offline picks the status and twin reports that must not be lost."""

    def test_kept(self):
        """Pod/node status, patches, lease writes, twin reports and membership/detail are kept."""
        for operation, resource in [
                ("update", "default/podstatus/nginx"),
                ("update", "default/podstatus"),
                ("patch", "default/podpatch/nginx"),
                ("update", "default/nodestatus/edge-1"),
                ("insert", "default/nodestatus/edge-1"),
                ("patch", "default/nodepatch/edge-1"),
                ("update", "kube-node-lease/lease/edge-1"),
                ("insert", "kube-node-lease/lease/edge-1"),
                ("update", "device/dev-1/twin/edge_updated"),
                ("update", "device/dev-1/state"),
                ("get", "membership/detail")]:
            self.assertTrue(keep_while_offline(msg(resource, operation)),
                            (operation, resource))

    def test_not_kept(self):
        """Keepalives, queries, ACKs, pods, config maps and other device resources are not kept."""
        for operation, resource in [
                ("keepalive", "node"),
                ("query", "default/configmap/cfg"),
                ("query", "kube-node-lease/lease/edge-1"),
                ("query", "default/node/edge-1"),
                ("response", "default/pod/nginx"),
                ("insert", "default/node/edge-1"),
                ("delete", "default/pod/nginx"),
                ("update", "device/dev-1"),
                ("update", "device/dev-1/twin/cloud_updated"),
                ("update", "membership"),
                ("update", ""),
                ("update", "device//state")]:
            self.assertFalse(keep_while_offline(msg(resource, operation)),
                             (operation, resource))


class OfflineQueueTests(SynchronousTestCase):
    """OfflineQueue is bounded, newest per (operation, resource) wins and moves to the end."""

    def test_fifo(self):
        """Messages come out oldest first."""
        q = OfflineQueue(10)
        a, b = msg("default/podstatus/a"), msg("default/podstatus/b")
        q.put(a)
        q.put(b)
        self.assertEqual(len(q), 2)
        self.assertEqual(q.popleft(), a)
        self.assertEqual(q.popleft(), b)
        self.assertFalse(q)
        self.assertRaises(IndexError, q.popleft)

    def test_newest_wins_and_moves_to_end(self):
        """A newer message for the same resource replaces the older and goes to the end."""
        q = OfflineQueue(10)
        a1, n, a2 = (msg("default/podstatus/a", content=1), msg("default/nodestatus/e"),
                     msg("default/podstatus/a", content=2))
        self.assertEqual(q.put(a1), (None, None))
        q.put(n)
        self.assertEqual(q.put(a2), (a1, None))
        self.assertEqual(q.messages(), [n, a2])

    def test_operation_is_part_of_the_key(self):
        """An insert is not replaced by the update that follows it."""
        q = OfflineQueue(10)
        insert = msg("kube-node-lease/lease/e", "insert")
        update1 = msg("kube-node-lease/lease/e", "update", content=1)
        update2 = msg("kube-node-lease/lease/e", "update", content=2)
        for item in (insert, update1, update2):
            q.put(item)
        self.assertEqual(q.messages(), [insert, update2])

    def test_bound_evicts_oldest(self):
        """Past the limit the oldest entry is evicted and returned; a replacement never evicts."""
        q = OfflineQueue(2)
        a, b, c = (msg("default/podstatus/a"), msg("default/podstatus/b"),
                   msg("default/podstatus/c"))
        q.put(a)
        q.put(b)
        self.assertEqual(q.put(c), (None, a))
        self.assertEqual(q.messages(), [b, c])
        b2 = msg("default/podstatus/b", content=2)
        self.assertEqual(q.put(b2), (b, None))
        self.assertEqual(q.messages(), [c, b2])

    def test_putback(self):
        """putback returns a message to the front unless a newer one for its key arrived."""
        q = OfflineQueue(5)
        a, b = msg("default/podstatus/a"), msg("default/podstatus/b")
        q.put(a)
        q.put(b)
        first = q.popleft()
        q.putback(first)
        self.assertEqual(q.messages(), [a, b])
        first = q.popleft()
        newer = msg("default/podstatus/a", content="newer")
        q.put(newer)
        q.putback(first)
        self.assertEqual(q.messages(), [b, newer])

    def test_clear_and_limit(self):
        """clear empties the queue and says how many it dropped; a limit below 1 is refused."""
        q = OfflineQueue(3)
        q.put(msg("default/podstatus/a"))
        self.assertEqual(q.clear(), 1)
        self.assertEqual(len(q), 0)
        self.assertRaises(ValueError, OfflineQueue, 0)
