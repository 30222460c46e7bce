"""End-to-end 3: node status as kubectl shows it. A node added by hand from
conf/examples/node.json (as on a real cluster) becomes Ready when its edge connects, with
this host's capacity and the edge's versions; NotReady once the edge is gone for the
cloud's nodeUpdateFrequency; Ready again when it comes back."""

import os

from twisted.internet import reactor

from tests.e2e.harness import WalkthroughCase, command, example_documents


def memory_total_ki():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1])
    raise AssertionError("no MemTotal in /proc/meminfo")


class NodeStatusTests(WalkthroughCase):

    async def test_ready_capacity_version_notready_ready(self):
        """node.json applied -> edge connects -> Ready with capacity and versions; edge
        stopped -> NotReady after the grace, not before; edge restarted -> Ready."""
        await self.start_cloud()
        node, = example_documents("node.json")
        out = await self.apply(self.for_this_node(node))
        self.assertIn("node/{} created".format(self.node), out)
        await self.join_edge()
        await self.start_edge()

        obj = await self.kubectl_json("get", "node", self.node)
        # The labels the operator gave are kept; the edge adds its own.
        self.assertEqual(obj["metadata"]["labels"]["name"], self.node)
        self.assertIn("node-role.kubernetes.io/edge", obj["metadata"]["labels"])
        capacity = obj["status"]["capacity"]
        self.assertEqual(capacity["cpu"], str(len(os.sched_getaffinity(0))))
        self.assertEqual(capacity["memory"], "{}Ki".format(memory_total_ki()))
        self.assertEqual(capacity["pods"], "110")
        code, version, _ = await self.kubeedge("version")
        self.assertEqual(code, 0)
        ours = version.split()[1]
        info = obj["status"]["nodeInfo"]
        self.assertEqual(info["kubeletVersion"], "v1.26.15-kubeedge-tw-" + ours)
        _, docker_version, _ = await command([self.docker_path, "info", "--format",
                                              "{{.ServerVersion}}"])
        self.assertEqual(info["containerRuntimeVersion"], "docker://" + docker_version.strip())
        row, = [line.split() for line in (await self.kubectl("get", "nodes")).splitlines()
                if line.split()[0] == self.node]
        self.assertEqual(row[1], "Ready")
        self.assertEqual(row[-1], info["kubeletVersion"])

        await self.edge.stop()
        stopped = reactor.seconds()
        self.assertEqual(self.edge.exit_code, 0, self.edge.tail())
        grace = self.node_update_frequency
        await self.wait_node_ready(status="Unknown", timeout=grace + 20)
        elapsed = reactor.seconds() - stopped
        self.assertGreaterEqual(elapsed, grace - 1, "NotReady before the grace")
        row, = [line.split() for line in (await self.kubectl("get", "nodes")).splitlines()
                if line.split()[0] == self.node]
        self.assertEqual(row[1], "NotReady")

        await self.start_edge()
        obj = await self.kubectl_json("get", "node", self.node)
        ready, = [c for c in obj["status"]["conditions"] if c["type"] == "Ready"]
        self.assertEqual((ready["status"], ready["reason"]), ("True", "EdgeReady"))
