"""Integration: the treq client's informer against the embedded API server, over real TLS,
across a server restart on the same sqlite file: no event is missed."""

import os

from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase

from kubeedge_tw.cloud.apiserver import create_apiserver
from kubeedge_tw.cloud.k8s import Informer, K8sConnectionError, make_kube_client
from kubeedge_tw.cloud.k8s.errors import ServiceUnavailable
from kubeedge_tw.cloud.k8s.kubeconfig import load_kubeconfig
from kubeedge_tw.common.config import CLOUD, default_config
from kubeedge_tw.common.core import Core
from tests.integration.parts import free_port
from tests.integration.test_cloud_edge import poll


def pod(name):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


class InformerAcrossRestartTests(TestCase):
    """An informer keeps an exact picture through a restart of the embedded server."""

    timeout = 90

    def setUp(self):
        self.state = os.path.abspath(self.mktemp())
        self.config = default_config(CLOUD, overrides={
            "stateDir": self.state, "modules.apiServer.address": "127.0.0.1",
            "modules.apiServer.port": free_port()})
        self.server = None
        self.addCleanup(self.stop_server)

    @defer.inlineCallbacks
    def start_server(self):
        core = Core("kubeedge-cloud", reactor, self.config)
        self.server = create_apiserver(core, self.config)
        self.server.startService()
        yield self.server.when_ready()

    @defer.inlineCallbacks
    def stop_server(self):
        if self.server is not None and self.server.running:
            yield self.server.stopService()

    @defer.inlineCallbacks
    def retrying(self, call):
        """A write right after the restart may meet a connection to the old server."""
        for _ in range(20):
            try:
                result = yield call()
                defer.returnValue(result)
            except (K8sConnectionError, ServiceUnavailable):
                yield poll(lambda: True)
        self.fail("the restarted server never answered")

    @defer.inlineCallbacks
    def test_no_missed_events_across_restart(self):
        """Changes made after the server restarted reach the handlers exactly once, and
        the informer's cache matches the server."""
        yield self.start_server()
        client = make_kube_client(reactor, load_kubeconfig(self.server.kubeconfig_path))
        self.addCleanup(client.close)
        for name in ("a", "b"):
            yield client.create("pods", pod(name), namespace="default")
        events = []
        informer = Informer(client, "pods", reactor, namespace="default",
                            retry_policy=lambda attempt: 0.2,
                            on_add=lambda o: events.append(("add", o["metadata"]["name"])),
                            on_update=lambda old, new: events.append(
                                ("update", new["metadata"]["name"])),
                            on_delete=lambda o: events.append(("delete", o["metadata"]["name"])))
        informer.startService()
        self.addCleanup(informer.stopService)
        yield informer.wait_synced()
        self.assertEqual(sorted(events), [("add", "a"), ("add", "b")])

        yield self.stop_server()
        yield self.start_server()  # same sqlite file, same resourceVersions
        yield self.retrying(lambda: client.create("pods", pod("c"), namespace="default"))
        yield self.retrying(lambda: client.delete("pods", "a", namespace="default",
                                                  grace_period_seconds=0))
        yield self.retrying(lambda: client.patch("pods", "b", {"metadata": {"labels": {
            "x": "1"}}}, namespace="default"))
        yield poll(lambda: len(events) >= 5, 30)
        yield poll(lambda: True)
        self.assertEqual(sorted(events[2:]), [("add", "c"), ("delete", "a"), ("update", "b")])
        listed = yield client.list("pods", namespace="default")
        self.assertEqual(sorted(p["metadata"]["name"] for p in listed["items"]), ["b", "c"])
        self.assertEqual(sorted(k.split("/")[1] for k in informer.keys()), ["b", "c"])
