"""End-to-end 7: joining and certificates. An edge joined with a token from gettoken
connects; a forged token, a token for another CA and an edge certificate from another CA
are all refused with a clear message, and the cloud keeps serving the edge it has."""

import os
import shutil

import yaml

from tests.e2e.harness import SideProcess, WalkthroughCase, twistd_command
from tests.integration.parts import free_port

from twisted.internet import reactor


def forge(token):
    """The token with its signature's last characters changed."""
    replacement = "AAAA" if not token.endswith("AAAA") else "BBBB"
    return token[:-4] + replacement


class JoinAndCertificatesTests(WalkthroughCase):

    def assert_not_joined(self, state_dir):
        for path in ("edgecore.yaml", os.path.join("certs", "edge.crt"),
                     os.path.join("certs", "edge.key")):
            self.assertFalse(os.path.exists(os.path.join(state_dir, path)),
                             "a refused join left " + path)

    async def test_token_join_and_refusals(self):
        await self.start_both()
        self.assertIn("node {} connected".format(self.node), self.cloud.text())

        # A token whose signature does not match: the bootstrap server refuses it.
        forged_dir = os.path.join(self.base, "forged")
        err = await self.join_edge(token=forge(await self.get_token()), node="forged-edge",
                                   state_dir=forged_dir, expect=1)
        self.assertIn("token", err.lower())
        self.assert_not_joined(forged_dir)

        # A token made for another CA: join stops before it sends anything, as the CA the
        # cloud presents does not match the token's hash.
        other_pki = os.path.join(self.base, "other-pki")
        code, _, err = await self.kubeedge("certs", "init", "--dir", other_pki)
        self.assertEqual(code, 0, err)
        code, other_token, err = await self.kubeedge("gettoken", "--dir", other_pki)
        self.assertEqual(code, 0, err)
        other_dir = os.path.join(self.base, "other-ca")
        err = await self.join_edge(token=other_token.strip(), node="other-edge",
                                   state_dir=other_dir, expect=1)
        self.assertIn("CA", err)
        self.assert_not_joined(other_dir)

        # An edge whose certificate another CA signed: CloudHub refuses its TLS handshake.
        rogue_dir = os.path.join(self.base, "rogue")
        os.makedirs(os.path.join(rogue_dir, "ca"))
        code, _, err = await self.kubeedge("certs", "issue-edge", "--dir", other_pki,
                                           "--node", "rogue-edge", "--out",
                                           os.path.join(rogue_dir, "certs"))
        self.assertEqual(code, 0, err)
        shutil.copy(os.path.join(self.edge_dir, "ca", "rootCA.crt"),
                    os.path.join(rogue_dir, "ca", "rootCA.crt"))
        with open(os.path.join(self.edge_dir, "edgecore.yaml")) as f:
            config = yaml.safe_load(f)
        config["stateDir"] = rogue_dir
        hub = config["modules"]["edgeHub"]
        hub.update(tlsCertFile="certs/rogue-edge.crt", tlsPrivateKeyFile="certs/rogue-edge.key",
                   rotateCertificates=False)
        config["modules"]["edged"].update(hostnameOverride="rogue-edge",
                                          readOnlyPort=free_port())
        config["modules"]["eventBus"]["mqttServerInternal"] = "tcp://127.0.0.1:{}".format(
            free_port())
        rogue_config = os.path.join(rogue_dir, "edgecore.yaml")
        with open(rogue_config, "w") as f:
            yaml.safe_dump(config, f)
        rogue = SideProcess("rogue edge", os.path.join(rogue_dir, "kubeedge-edge.log"))
        argv = twistd_command() + ["-n", "kubeedge-edge", "--state-dir", rogue_dir,
                                   "--config", rogue_config]
        rogue.transport = reactor.spawnProcess(rogue, argv[0], argv, env=dict(os.environ),
                                               path=self.base)
        self.addCleanup(rogue.stop)
        await self.wait_until(lambda: self._said(rogue, "kubeedge-edge started"), 60,
                              "the rogue edge to start")
        mark = len(self.cloud.output)

        async def refused():
            return "certificate verify failed" in self.cloud.text(mark)
        await self.wait_until(refused, 60, "CloudHub to refuse the rogue edge's certificate")
        # It keeps trying (with back-off) and keeps being refused.
        await self.wait_until(lambda: self._said(rogue, "unknown ca"), 60,
                              "the rogue edge to log its refusal")
        self.assertNotIn("node rogue-edge connected", self.cloud.text())
        nodes = await self.kubectl("get", "nodes", "-o", "name")
        self.assertNotIn("rogue-edge", nodes)
        self.assertNotIn("forged-edge", nodes)
        self.assertNotIn("other-edge", nodes)

        # The cloud kept serving: the joined edge is still connected and Ready, and a new
        # join with a good token still works.
        self.assertFalse(self.cloud.exited)
        self.assertNotIn("node {} disconnected".format(self.node), self.cloud.text())
        await self.wait_node_ready()
        good_dir = os.path.join(self.base, "second")
        path = await self.join_edge(node="second-edge", state_dir=good_dir)
        self.assertTrue(os.path.exists(path))

    async def _said(self, process, text):
        return text in process.text()
