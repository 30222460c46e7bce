"""End-to-end 1: the seed walkthrough. Cloud and edge processes, the example Deployment
applied with kubectl runs on the edge and answers on its hostPort; more replicas on the one
node; deleting removes the containers."""

import copy

from tests.e2e.harness import WalkthroughCase, example_documents
from tests.integration.parts import free_port


def sample_app(port, name=None, replicas=None):
    """conf/examples/deployment.yaml with its port (env PORT, containerPort, hostPort,
    probe) moved to ``port``, so the test never takes a port a user's demo might hold."""
    deployment, = example_documents("deployment.yaml")
    deployment = copy.deepcopy(deployment)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["ports"][0]["hostPort"] == container["ports"][0]["containerPort"]
    container["env"] = [dict(e, value=str(port)) if e["name"] == "PORT" else e
                        for e in container["env"]]
    container["ports"][0].update(containerPort=port, hostPort=port)
    container["readinessProbe"]["httpGet"]["port"] = port
    if name:
        deployment["metadata"]["name"] = name
        for labels in (deployment["metadata"]["labels"],
                       deployment["spec"]["selector"]["matchLabels"],
                       deployment["spec"]["template"]["metadata"]["labels"]):
            labels["app"] = name
    if replicas is not None:
        deployment["spec"]["replicas"] = replicas
    return deployment


class SeedWalkthroughTests(WalkthroughCase):

    async def test_deploy_reach_scale_delete(self):
        """kubectl apply deployment -> Running on the edge, reachable on 127.0.0.1:hostPort;
        a second replica of the hostPort app stays Pending with the scheduler's reason; a
        host-network app scaled to 3 runs 3 containers; deleting removes every container."""
        await self.start_both()
        rows = (await self.kubectl("get", "nodes")).splitlines()
        self.assertEqual(rows[0].split()[:2], ["NAME", "STATUS"])
        self.assertIn([self.node, "Ready"], [row.split()[:2] for row in rows[1:]])

        port = free_port()
        out = await self.apply(sample_app(port))
        self.assertIn("deployment.apps/sample-app created", out)
        pod, = await self.wait_pods_running("app=sample-app", 1)
        wide = await self.kubectl("get", "pods", "-o", "wide")
        row = [r.split() for r in wide.splitlines() if r.startswith(pod["metadata"]["name"])]
        self.assertEqual(row[0][1:3], ["1/1", "Running"])
        self.assertIn(self.node, row[0])
        answer = await self.wait_until(lambda: self.http_get(port), 30,
                                       "the app on 127.0.0.1:{}".format(port))
        self.assertEqual(answer[0], 200)
        self.assertIn("Hello from kubeedge-tw", answer[1])
        web, = await self.containers(pod["metadata"]["name"])
        self.assertEqual(web["Config"]["Image"], "kubeedge-tw/sample-app:1.0")
        self.assertEqual(web["HostConfig"]["NetworkMode"], "host")

        # Its port is taken on the one node: a second replica cannot be placed.
        await self.kubectl("scale", "deployment/sample-app", "--replicas=2")

        async def one_pending():
            pods = await self.pods("app=sample-app")
            pending = [p for p in pods if p["status"].get("phase") == "Pending"]
            return pending if len(pods) == 2 and len(pending) == 1 else None
        pending, = await self.wait_until(one_pending, 60, "one of two replicas Pending")
        events = await self.kubectl("get", "events", "--field-selector",
                                    "involvedObject.name=" + pending["metadata"]["name"])
        self.assertIn("free ports", events)
        await self.kubectl("scale", "deployment/sample-app", "--replicas=1")
        await self.wait_pods_running("app=sample-app", 1)

        # An app that declares no ports (a host-network worker) runs three times over.
        workers = sample_app(free_port(), name="workers", replicas=1)
        spec = workers["spec"]["template"]["spec"]
        spec["hostNetwork"] = True
        container = spec["containers"][0]
        del container["ports"], container["readinessProbe"]
        container["command"] = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
        await self.apply(workers)
        await self.wait_pods_running("app=workers", 1)
        await self.kubectl("scale", "deployment/workers", "--replicas=3")
        pods = await self.wait_pods_running("app=workers", 3)
        ids = set()
        for pod in pods:
            found = await self.containers(pod["metadata"]["name"])
            self.assertEqual(len(found), 1, pod["metadata"]["name"])
            ids.add(found[0]["Id"])
        self.assertEqual(len(ids), 3)

        await self.kubectl("delete", "deployment", "sample-app", "workers")

        async def all_gone():
            return not await self.pods() and not await self.containers(running_only=False)
        await self.wait_until(all_gone, 90, "every pod and container gone")
        self.assertIsNone(await self.http_get(port))
