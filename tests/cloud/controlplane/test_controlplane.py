"""The ControlPlane service: its tree, start after the Kubernetes client is ready, shared
informers started by other modules, and how the cloud side adds it."""

import os

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from kubeedge_tw.cloud import tap as cloud_tap
from kubeedge_tw.cloud.controlplane import ControlPlane, create_controlplane
from kubeedge_tw.cloud.kube import KubeContext
from kubeedge_tw.common.config import CLOUD, default_config
from tests.cloud.controlplane.fake_extensions import ControlPlaneCluster
from tests.cloud.controlplane.support import Harness, HarnessMixin, node, pod


class _Core:
    """What create_controlplane reads of the cloud core."""

    def __init__(self, clock, kube):
        self.clock = clock
        self.kube = kube


class TreeTests(SynchronousTestCase):
    """The service tree and its defaults."""

    def test_children_and_defaults(self):
        """Five named controllers; 40 s node grace and no eviction by default."""
        clock = Clock()
        cp = create_controlplane(_Core(clock, KubeContext(clock, lambda: None)), None)
        self.assertEqual(cp.name, "controlplane")
        self.assertEqual([s.name for s in cp], [
            "scheduler", "replicaset-controller", "deployment-controller",
            "node-lifecycle-controller", "garbage-collector"])
        self.assertEqual((cp.nodes.grace_period, cp.nodes.eviction_timeout), (40.0, None))

    def test_cloud_side_adds_it_with_embedded_api(self):
        """The cloud tree has the control plane when the embedded API server is used and
        not with an external cluster."""
        state = os.path.abspath(self.mktemp())
        config = default_config(CLOUD, overrides={"stateDir": state})
        core = cloud_tap.create_cloud_service(config, Clock())
        self.assertIs(core.getServiceNamed("controlplane"), core.controlplane)
        names = [s.name for s in core]
        self.assertLess(names.index("kube"), names.index("controlplane"))
        external = default_config(CLOUD, overrides={
            "stateDir": os.path.abspath(self.mktemp()),
            "kubeAPIConfig.master": "https://10.0.0.1:6443"})
        core = cloud_tap.create_cloud_service(external, Clock())
        self.assertNotIn("controlplane", [s.name for s in core])


class StartTests(HarnessMixin, SynchronousTestCase):
    """Controllers wait for the client and the caches."""

    def test_waits_for_client(self):
        """Nothing is read or written before KubeContext is ready; then pods bind."""
        cluster = ControlPlaneCluster()
        client = cluster.client()
        ready = defer.Deferred()
        kube = KubeContext(cluster.clock, lambda: ready)
        cp = ControlPlane(cluster.clock, kube)
        kube.startService()
        cp.startService()
        cluster.api.put("nodes", node("n1"))
        cluster.api.put("pods", pod("p"))
        for _ in range(20):
            cluster.flush()
            cluster.clock.advance(0)
        self.assertEqual(cluster.api.requests, [])
        ready.callback(client)
        for _ in range(50):
            cluster.flush()
            cluster.clock.advance(0)
        self.assertEqual(cluster.api.object("pods", "p", "default")["spec"]["nodeName"], "n1")
        for d in (cp.stopService(), kube.stopService()):
            d.addBoth(lambda _: None)
        cluster.flush()
        self.assertEqual(cluster.clock.getDelayedCalls(), [])

    def test_informers_synced_by_others(self):
        """When another module already synced the shared informers, their objects are
        handed over: a pending pod is scheduled."""
        h = Harness(start=False)
        self.addCleanup(h.stop)
        h.api.put("nodes", node("n1"))
        h.api.put("pods", pod("p"))
        for resource in ("pods", "nodes"):
            h.kube.informer(resource)
        h.run()
        self.assertTrue(h.kube.informer("pods").has_synced)
        h.cp.startService()
        h.run()
        self.assertEqual(h.get("pods", "p")["spec"]["nodeName"], "n1")

    def test_stop_is_clean(self):
        """Stopping with retries pending (the API server went away mid-work) leaves no
        delayed call (checked at cleanup)."""
        h = self.harness()
        h.create("nodes", node("n1"))
        h.api.down = True
        h.api.put("pods", pod("p"))
        h.cluster.flush()
        h.clock.advance(0)
        self.assertTrue(h.clock.getDelayedCalls())
        self.flushLoggedErrors()
