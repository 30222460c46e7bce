"""End-to-end: scripts/demo.sh, the README's first Quick start command, as a user runs it:
it brings up cloud and edge, deploys the example app and fetches it; a second run reuses
what runs; `stop` stops its processes and removes its node's containers; a failing step
names itself."""

import os
import socket
import sys

from tests.e2e.harness import TOP, command
from tests.integration.parts import LOOPBACK, missing_part, require_executable

from twisted.trial.unittest import TestCase

#: The ports the demo uses as shipped (conf/cloudcore.yaml, the edge's defaults, the app).
DEMO_PORTS = (6443, 10000, 10002, 1884, 10255, 8080)


def busy(port):
    with socket.socket() as s:
        return s.connect_ex((LOOPBACK, port)) == 0


class DemoScriptTests(TestCase):

    timeout = 600

    def setUp(self):
        require_executable("kubectl", "kubernetes-client")
        require_executable("docker", "docker.io")
        taken = [port for port in DEMO_PORTS if busy(port)]
        if taken:
            raise missing_part("scripts/demo.sh needs ports {} on 127.0.0.1, in use: {} "
                               "(is a demo running? scripts/demo.sh stop)".format(
                                   DEMO_PORTS, taken))
        self.state = os.path.abspath(self.mktemp())
        self.env = dict(os.environ, KUBEEDGE_TW_DEMO_DIR=self.state,
                        KUBEEDGE_TW_VENV=sys.prefix, KUBEEDGE_TW_NODE="demo-node")
        self.addCleanup(self.demo, "stop")

    async def demo(self, *args, env=None):
        code, out, err = await command(["env"] + ["{}={}".format(k, v) for k, v in
                                                  (env or self.env).items()
                                                  if k.startswith("KUBEEDGE_TW_")] +
                                       ["bash", os.path.join(TOP, "scripts", "demo.sh")] +
                                       list(args), timeout=500)
        return code, out + err

    async def test_demo_runs_reuses_and_stops(self):
        code, out = await self.demo()
        self.assertEqual(code, 0, out)
        self.assertIn("deployment.apps/sample-app created", out)
        self.assertRegex(out, r"demo-node\s+Ready\s+agent,edge")
        self.assertRegex(out, r"sample-app-\S+\s+1/1\s+Running\s+0\s+\S+\s+\S+\s+demo-node")
        self.assertIn("Hello from kubeedge-tw", out)
        kubeconfig = os.path.join(self.state, "cloud", "kubeconfig")
        self.assertIn("export KUBECONFIG=" + kubeconfig, out)
        self.assertIn("mosquitto_pub -h 127.0.0.1 -p 1884", out)
        pids = {}
        for side in ("cloud", "edge"):
            with open(os.path.join(self.state, side, "kubeedge-{}.pid".format(side))) as f:
                pids[side] = int(f.read())
        self.assertTrue(os.path.exists(os.path.join(self.state, "edge",
                                                    "kubeedge-edge.log")))

        code, again = await self.demo()
        self.assertEqual(code, 0, again)
        self.assertIn("kubeedge-cloud already runs (pid {}), reusing it".format(
            pids["cloud"]), again)
        self.assertIn("kubeedge-edge already runs (pid {}), reusing it".format(
            pids["edge"]), again)
        self.assertIn("deployment.apps/sample-app unchanged", again)
        self.assertIn("Hello from kubeedge-tw", again)

        code, stopped = await self.demo("stop")
        self.assertEqual(code, 0, stopped)
        for pid in pids.values():
            self.assertFalse(os.path.exists("/proc/{}".format(pid)) and
                             _is_running(pid), "pid {} still runs".format(pid))
        code, ids, _ = await command(["docker", "ps", "-aq", "--filter",
                                      "label=io.kubeedge-tw.node=demo-node"])
        self.assertEqual(ids.split(), [])
        self.assertFalse(busy(8080), "the app still answers after stop")

    async def test_failing_step_names_itself(self):
        """A node name Kubernetes refuses stops the demo at its join, saying so."""
        env = dict(self.env, KUBEEDGE_TW_NODE="Not_A_Node")
        code, out = await self.demo(env=env)
        self.assertEqual(code, 1, out)
        self.assertIn('scripts/demo.sh: step "3 cloud and edge" failed', out)
        self.assertIn("join", out)


def _is_running(pid):
    try:
        with open("/proc/{}/stat".format(pid)) as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False
