"""The Node edged registers and its status: capacity, conditions, addresses, nodeInfo."""

import socket
from dataclasses import replace

from twisted.trial.unittest import SynchronousTestCase

from kubeedge_tw import __version__
from kubeedge_tw.edge.edged.node import (
    _thd_node_facts, go_arch, interface_address, kubelet_version, node_object, node_status)
from kubeedge_tw.edge.edged.runtime import FsUsage
from tests.edge.edged.fakes import fixed_facts


def conditions(status):
    return {c["type"]: c for c in status["conditions"]}


class NodeStatusTests(SynchronousTestCase):
    """node_status and node_object build KubeEdge's shapes."""

    def test_ready_node(self):
        """A node whose runtime answers is Ready/EdgeReady with capacity, allocatable,
        addresses, the kubelet endpoint and nodeInfo."""
        status = node_status(fixed_facts(), "edge-1", "T1", runtime_version="20.10.24",
                             fs_usage=FsUsage(100 * 2 ** 30, 50 * 2 ** 30))
        self.assertEqual(status["capacity"]["cpu"], "2")
        self.assertEqual(status["capacity"]["memory"], "4194304Ki")
        self.assertEqual(status["allocatable"]["memory"], "4091904Ki")
        self.assertEqual(status["capacity"]["pods"], "110")
        self.assertIn("ephemeral-storage", status["capacity"])
        self.assertEqual(status["addresses"], [
            {"type": "InternalIP", "address": "192.0.2.10"},
            {"type": "Hostname", "address": "edge-1"}])
        self.assertEqual(status["daemonEndpoints"], {"kubeletEndpoint": {"Port": 10350}})
        info = status["nodeInfo"]
        self.assertEqual(info["containerRuntimeVersion"], "docker://20.10.24")
        self.assertEqual(info["kubeletVersion"], "v1.26.15-kubeedge-tw-" + __version__)
        self.assertEqual((info["operatingSystem"], info["architecture"]), ("linux", "amd64"))
        ready = conditions(status)["Ready"]
        self.assertEqual((ready["status"], ready["reason"], ready["message"]),
                         ("True", "EdgeReady", "edge is posting ready status"))
        self.assertEqual(conditions(status)["MemoryPressure"]["status"], "False")
        self.assertEqual(conditions(status)["DiskPressure"]["status"], "False")
        self.assertEqual(status["phase"], "Running")

    def test_not_ready_and_pressure(self):
        """No runtime answer is NotReady with the reason; little memory or disk is
        pressure; transition times survive heartbeats."""
        facts = replace(fixed_facts(), memory_available=10)
        first = node_status(facts, "edge-1", "T1", runtime_error="socket refused",
                            fs_usage=FsUsage(100, 5))
        ready = conditions(first)["Ready"]
        self.assertEqual((ready["status"], ready["reason"]), ("False", "EdgeNotReady"))
        self.assertIn("socket refused", ready["message"])
        self.assertEqual(conditions(first)["MemoryPressure"]["status"], "True")
        self.assertEqual(conditions(first)["DiskPressure"]["status"], "True")
        self.assertEqual(first["nodeInfo"]["containerRuntimeVersion"], "docker://unknown")
        second = node_status(facts, "edge-1", "T2", runtime_version="1",
                             previous_conditions=first["conditions"])
        self.assertEqual(conditions(second)["Ready"]["lastTransitionTime"], "T2")
        self.assertEqual(conditions(second)["MemoryPressure"]["lastTransitionTime"], "T1")
        self.assertEqual(conditions(second)["MemoryPressure"]["lastHeartbeatTime"], "T2")

    def test_node_object(self):
        """The registered Node has the edge and agent role labels and no kind."""
        node = node_object("edge-1", {"phase": "Running"}, "arm64")
        labels = node["metadata"]["labels"]
        self.assertEqual(labels["node-role.kubernetes.io/edge"], "")
        self.assertEqual(labels["node-role.kubernetes.io/agent"], "")
        self.assertEqual(labels["kubernetes.io/arch"], "arm64")
        self.assertEqual(node["metadata"]["name"], "edge-1")
        self.assertNotIn("kind", node)

    def test_versions_and_arch(self):
        """A configured version wins; uname machines map to GOARCH names."""
        self.assertEqual(kubelet_version("v1.10.9-kubeedge-v1.0.0"), "v1.10.9-kubeedge-v1.0.0")
        self.assertEqual((go_arch("x86_64"), go_arch("aarch64"), go_arch("armv7l")),
                         ("amd64", "arm64", "arm"))


class NodeFactsTests(SynchronousTestCase):
    """Reading this machine."""

    def test_facts_of_this_machine(self):
        """/proc gives CPUs and memory; a missing interface falls back to 127.0.0.1 and a
        configured node IP wins."""
        facts = _thd_node_facts("no-such-if0", "")
        self.assertGreaterEqual(facts.cpus, 1)
        self.assertGreater(facts.memory_total, 0)
        self.assertEqual(facts.ip, "127.0.0.1")
        self.assertTrue(facts.kernel)
        self.assertEqual(_thd_node_facts("lo", "192.0.2.7").ip, "192.0.2.7")

    def test_interface_address(self):
        """The loopback interface has 127.0.0.1; an unknown one has none."""
        self.assertEqual(interface_address("lo"), "127.0.0.1")
        self.assertEqual(interface_address("no-such-if0"), "")
        self.assertEqual(interface_address(""), "")
        self.assertTrue(socket.inet_aton(interface_address("lo")))
