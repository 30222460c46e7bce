"""Wire compatibility: every frame real KubeEdge sent (captured from v1.0 and v1.15 edges
and a v1.15 cloudcore <-> edgecore exchange) is replayed byte for byte into our hubs.

CloudHub takes every edge-to-cloud frame (text and binary, with Go's trailing LF) without
an error reply and routes it; EdgeHub takes every cloud-to-edge frame and routes it to
the right module group."""

from twisted.trial.unittest import SynchronousTestCase

from kubeedge_tw.common import message as m
from kubeedge_tw.common import names
from tests.cloud.test_cloudhub import HubHarness
from tests.common.test_message import sample_frames
from tests.edge.fakes import Harness, capture_logs, named

EDGE_SAMPLES = ("edge-v1.0.0.txt", "edge-v1.15.4.txt", "edge-v1.15.4-edged.txt",
                "cloud-edge-v1.15.4.txt")


class CloudHubReplayTests(SynchronousTestCase):
    """Real edges' frames into CloudHub."""

    def test_every_edge_frame_is_accepted(self):
        """No edge frame from any captured version gets an error or closes the link;
        all but keepalives and zero-value messages reach a controller with node/<id>/."""
        for sample in EDGE_SAMPLES:
            frames = [(op, p) for d, op, p in sample_frames(sample) if d == "E>C"]
            self.assertTrue(frames, sample)
            h = HubHarness(self)
            edge, factory, _, _ = h.connect("ke-edge-1")
            for opcode, payload in frames:
                edge.sendMessage(payload.encode("utf-8") + b"\n", isBinary=opcode == "2")
                h.flush()
            self.assertTrue(h.hub.is_connected("ke-edge-1"), sample)
            self.assertEqual([x for x in edge.received if x.operation == "error"], [], sample)
            decoded = [m.decode(p) for _, p in frames]
            expected = [x for x in decoded
                        if not x.is_empty and x.operation != names.OP_KEEPALIVE]
            routed = [x for x in h.edgecontroller.seen + h.devicecontroller.seen
                      if x.source != names.CLOUDHUB]
            self.assertEqual(sorted(x.msg_id for x in routed),
                             sorted(x.msg_id for x in expected), sample)
            for x in routed:
                self.assertTrue(x.resource.startswith("node/ke-edge-1/"), x.resource)


class EdgeHubReplayTests(SynchronousTestCase):
    """A real cloudcore's frames into EdgeHub."""

    def test_every_cloud_frame_is_routed(self):
        """Every cloudcore v1.15 frame is routed to meta or twin, none is refused."""
        events = capture_logs(self)
        frames = [p for d, _, p in sample_frames("cloud-edge-v1.15.4.txt") if d == "C>E"]
        self.assertGreater(len(frames), 5)
        h = Harness()
        server = h.connect()
        for payload in frames:
            server.sendMessage(payload.encode("utf-8") + b"\n", isBinary=False)
            h.flush()
        self.assertTrue(h.hub.connected)
        for bad in ("edgehub_bad_frame", "edgehub_unroutable", "edgehub_no_module"):
            self.assertEqual(named(events, bad), [], bad)
        routed = h.modules[names.META_GROUP].payload_seen() + \
            h.modules[names.TWIN_GROUP].payload_seen()
        self.assertEqual(sorted(x.msg_id for x in routed),
                         sorted(m.decode(p).msg_id for p in frames))
