"""create_edged builds Edged from the edge config, and the edge tap wires it in."""

import os

from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from kubeedge_tw.common import names
from kubeedge_tw.common.config import EDGE, default_config
from kubeedge_tw.common.core import Core
from kubeedge_tw.edge import tap as edge_tap
from kubeedge_tw.edge.edged import DockerRuntime, Edged, Prober, create_edged


class CreateEdgedTests(SynchronousTestCase):
    """The factory reads modules.edged (and metaManager's query timeout)."""

    def config(self, **overrides):
        """A default edge config in a fresh state dir, with ``overrides``."""
        self.state = os.path.abspath(self.mktemp())
        values = {"stateDir": self.state}
        values.update(overrides)
        return default_config(EDGE, overrides=values)

    def test_reads_config(self):
        """Node name, namespace, registration, frequencies, Docker address, GC
        thresholds and the read-only port come from the config."""
        config = self.config(**{
            "modules.edged.hostnameOverride": "edge-7",
            "modules.edged.registerNode": False,
            "modules.edged.nodeStatusUpdateFrequency": 20,
            "modules.edged.nodeIP": "192.0.2.9",
            "modules.edged.dockerAddress": "tcp://127.0.0.1:2375",
            "modules.edged.runtimeRequestTimeout": 3,
            "modules.edged.imageGCHighThreshold": 90,
            "modules.edged.imageGCLowThreshold": 50,
            "modules.edged.version": "v1.10.9-kubeedge-v1.0.0",
            "modules.edged.readOnlyPort": 10266,
            "modules.metaManager.remoteQueryTimeout": 7})
        clock = MemoryReactorClock()
        edged = create_edged(Core("kubeedge-edge", clock, config), config)
        self.assertIsInstance(edged, Edged)
        self.assertEqual((edged.name, edged.group), ("edged", "edged"))
        self.assertIs(edged.clock, clock)
        self.assertEqual(edged.node_name, "edge-7")
        self.assertFalse(edged.register_node)
        self.assertEqual(edged.node_status_frequency, 20)
        self.assertEqual(edged.node_ip, "192.0.2.9")
        self.assertEqual(edged.version, "v1.10.9-kubeedge-v1.0.0")
        self.assertEqual((edged.image_gc_high, edged.image_gc_low), (90, 50))
        self.assertEqual(edged.query_timeout, 12)
        self.assertIsInstance(edged.runtime, DockerRuntime)
        self.assertEqual(edged.runtime.base_url, "tcp://127.0.0.1:2375")
        self.assertEqual(edged.runtime.timeout, 180)
        self.assertIs(edged.runtime.pool, edged.pool)
        self.assertEqual(edged.pool.name, "docker")
        self.assertIsInstance(edged.prober, Prober)
        self.assertEqual(edged.volumes.root, os.path.join(self.state, "edged"))
        self.assertEqual(edged.http_endpoint._port, 10266)
        self.assertEqual(edged.http_endpoint._interface, "127.0.0.1")

    def test_read_only_port_zero(self):
        """readOnlyPort 0 means no HTTP endpoint."""
        config = self.config(**{"modules.edged.readOnlyPort": 0})
        edged = create_edged(Core("kubeedge-edge", MemoryReactorClock(), config), config)
        self.assertIsNone(edged.http_endpoint)

    def test_wired_into_the_edge_tap(self):
        """The edge service tree builds Edged as module edged."""
        config = self.config(**{"modules.metaManager.enable": False})
        core = edge_tap.create_edge_service(config, MemoryReactorClock())
        self.assertIsInstance(core.bus.module(names.EDGED), Edged)
        self.assertNotIn(names.EDGED, core.unavailable)
