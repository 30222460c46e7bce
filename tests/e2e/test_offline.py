"""End-to-end 4 and 5: the edge on its own. Pods keep running while the cloud is down and
across a ``kill -9`` of the edge with the cloud still down (the same containers adopted,
none duplicated or restarted); changes made in the cloud while the edge is away (a pod
deleted, a ConfigMap updated) reach it when it comes back."""

import copy
import datetime

import treq
from twisted.internet import reactor

from tests.e2e.harness import WalkthroughCase, example_documents, sleep
from tests.e2e.test_walkthrough import sample_app
from tests.integration.parts import LOOPBACK, free_port

#: The mounted file of conf/examples/configmap-pod.yaml's ConfigMap, in its container.
PROPERTIES = "/etc/app/app.properties"
#: Seconds the offline edge is watched for changes it must not make: more than two of
#: edged's relists (2 s) and of the example's readiness probes (2 s).
STEADY = 5


def configmap_example():
    """The ConfigMap and the Pod of conf/examples/configmap-pod.yaml."""
    documents = {doc["kind"]: doc for doc in example_documents("configmap-pod.yaml")}
    return documents["ConfigMap"], documents["Pod"]


def worker_pod(name, grace):
    """A host-network worker pod without ports or volumes, placed, imaged and idling like
    the example pod (which ends at once on SIGTERM); ``grace`` is its
    terminationGracePeriodSeconds."""
    _, example = configmap_example()
    reader = example["spec"]["containers"][0]
    return {
        "apiVersion": example["apiVersion"], "kind": example["kind"],
        "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
        "spec": {
            "nodeSelector": example["spec"]["nodeSelector"],
            "tolerations": example["spec"]["tolerations"],
            "hostNetwork": True,
            "terminationGracePeriodSeconds": grace,
            "containers": [{"name": "work", "image": reader["image"],
                            "imagePullPolicy": reader["imagePullPolicy"],
                            "command": reader["command"]}],
        },
    }


def utc_now_seconds():
    """Now in UTC, to the second (the resolution of the API's timestamps)."""
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def parse_time(text):
    """An API timestamp (RFC 3339, seconds, UTC) as an aware datetime."""
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc)


class OfflineTests(WalkthroughCase):
    """Scenarios 4 (offline autonomy) and 5 (changes while the edge is away)."""

    def container_facts(self, containers):
        """Container id -> (pod name, docker's RestartCount, State.StartedAt, Running)."""
        return {c["Id"]: (c["Config"]["Labels"].get("io.kubernetes.pod.name"),
                          c["RestartCount"], c["State"]["StartedAt"], c["State"]["Running"])
                for c in containers}

    async def edged_pods(self):
        """The pods on edged's read-only API (GET /pods), by name; None when it does not
        answer. No kept-alive connection: edged's server would hold it open past the
        test."""
        url = "http://{}:{}/pods".format(LOOPBACK, self.ports["edged"])
        try:
            response = await treq.get(url, timeout=5, persistent=False)
            body = await response.json()
        except Exception:   # refused or reset: edged is not listening (yet)
            return None
        if response.code != 200:
            return None
        return {pod["metadata"]["name"]: pod for pod in body["items"]}

    async def hold_steady(self, seconds, containers, port):
        """For ``seconds``, check every half second that this node's containers are
        exactly ``containers`` (their :meth:`container_facts`) and the app answers 200 on
        ``port``."""
        deadline = reactor.seconds() + seconds
        while reactor.seconds() < deadline:
            self.assertEqual(self.container_facts(await self.containers(running_only=False)),
                             containers)
            answer = await self.http_get(port)
            self.assertIsNotNone(answer, "the app on 127.0.0.1:{} stopped answering".format(
                port))
            self.assertEqual(answer[0], 200)
            await sleep(0.5)

    async def test_pods_survive_cloud_down_and_edge_kill(self):
        """With the cloud stopped the pods keep their containers and the app answers; a
        kill -9 and restart of the edge, cloud still down, adopts the same containers
        (none created, none restarted) and edged's /pods lists them; the cloud back, the
        node is Ready again and the pods' statuses name the same containers, restartCount
        0."""
        await self.start_both()
        port = free_port()
        configmap, reader = configmap_example()
        await self.apply(sample_app(port), configmap, reader)
        web, = await self.wait_pods_running("app=sample-app", 1)
        await self.wait_pods_running("app=config-reader", 1)
        web_name = web["metadata"]["name"]
        names = {web_name, "config-reader"}
        answer = await self.wait_until(lambda: self.http_get(port), 30,
                                       "the app on 127.0.0.1:{}".format(port))
        self.assertEqual(answer[0], 200)
        before = self.container_facts(await self.containers(running_only=False))
        self.assertEqual(sorted(pod for pod, _, _, _ in before.values()), sorted(names))
        self.assertTrue(all(running for _, _, _, running in before.values()))

        # The cloud goes away: nothing changes on the edge.
        self.assertEqual(await self.cloud.stop(), 0, self.cloud.tail())
        await self.hold_steady(STEADY, before, port)

        # kill -9 of the edge and a restart, the cloud still down.
        self.assertEqual(await self.edge.kill(), -9)
        self.assertEqual(self.container_facts(await self.containers(running_only=False)),
                         before, "killing the edge touched its containers")
        await self.start_edge(wait_ready=False)

        async def edged_lists_running():
            pods = await self.edged_pods()
            if pods is None or set(pods) != names:
                return None
            for pod in pods.values():
                ready = [c for c in pod["status"].get("conditions") or []
                         if c.get("type") == "Ready"]
                if pod["status"].get("phase") != "Running" or not ready or \
                        ready[0].get("status") != "True":
                    return None
            return pods
        offline_pods = await self.wait_until(
            edged_lists_running, 60, "edged's /pods to list {} Running and Ready".format(
                sorted(names)))
        self.assertEqual(
            sorted(status["containerID"]
                   for pod in offline_pods.values()
                   for status in pod["status"]["containerStatuses"]),
            sorted("docker://" + cid for cid in before))
        await self.hold_steady(STEADY, before, port)

        # The cloud comes back on its old state: the node posts status again.
        cloud_back = utc_now_seconds()
        await self.start_cloud()
        await self.wait_node_ready()

        async def heartbeat_after_restart():
            node = await self.kubectl_json("get", "node", self.node)
            ready, = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
            return ready["status"] == "True" and \
                parse_time(ready["lastHeartbeatTime"]) >= cloud_back
        await self.wait_until(heartbeat_after_restart, 60,
                              "a node status posted after the cloud restarted")

        async def statuses_current():
            pods = await self.pods()
            if sorted(p["metadata"]["name"] for p in pods) != sorted(names):
                return None
            found = {}
            for pod in pods:
                status = pod["status"]
                ready = [c for c in status.get("conditions") or [] if c["type"] == "Ready"]
                if status.get("phase") != "Running" or not ready or \
                        ready[0]["status"] != "True":
                    return None
                for container in status.get("containerStatuses") or []:
                    found[container["containerID"]] = container
            return found
        statuses = await self.wait_until(statuses_current, 60,
                                         "both pods Running and Ready in the API")
        self.assertEqual(sorted(statuses), sorted("docker://" + cid for cid in before))
        for container in statuses.values():
            self.assertEqual(container["restartCount"], 0, container)
            self.assertTrue(container["ready"], container)
            self.assertIn("running", container["state"], container)
        self.assertEqual(self.container_facts(await self.containers(running_only=False)),
                         before, "containers changed after the cloud came back")

    async def test_changes_while_edge_is_away(self):
        """With the edge stopped, a pod deleted in the cloud waits (deletionTimestamp, the
        object kept past its grace period) for the edge; a ConfigMap updated meanwhile
        reaches the edge when it returns: the deleted pod's container is removed and its
        object goes, the other pod keeps its container and its mounted file shows the
        new content."""
        await self.start_both()
        configmap, reader = configmap_example()
        worker = worker_pod("offline-worker", grace=2)
        await self.apply(configmap, reader, worker)
        await self.wait_pods_running("app=config-reader", 1)
        await self.wait_pods_running("app=offline-worker", 1)
        reader_ids = await self.container_ids("config-reader")
        worker_ids = await self.container_ids("offline-worker")
        self.assertEqual((len(reader_ids), len(worker_ids)), (1, 1))
        reader_id, = reader_ids
        self.assertEqual(await self.docker_exec(reader_id, "cat", PROPERTIES),
                         configmap["data"]["app.properties"])

        # The edge stops (its containers keep running) and the cloud sees it gone.
        self.assertEqual(await self.edge.stop(), 0, self.edge.tail())
        self.assertEqual(await self.container_ids("config-reader"), reader_ids)
        self.assertEqual(await self.container_ids("offline-worker"), worker_ids)

        await self.kubectl("delete", "pod", "offline-worker", "--wait=false")
        changed = copy.deepcopy(configmap)
        changed["data"]["app.properties"] = "mode=offline-edit\ninterval=20\n"
        await self.apply(changed)

        # Graceful deletion waits for the kubelet: the pod is marked, not removed, even
        # after its grace period and the node going NotReady (Unknown).
        await self.wait_node_ready(status="Unknown", timeout=self.node_update_frequency + 30)
        pod = await self.kubectl_json("get", "pod", "offline-worker")
        self.assertTrue(pod["metadata"].get("deletionTimestamp"), pod["metadata"])
        self.assertEqual(pod["metadata"].get("deletionGracePeriodSeconds"), 2)
        self.assertLess(parse_time(pod["metadata"]["deletionTimestamp"]), utc_now_seconds())
        row = (await self.kubectl("get", "pod", "offline-worker")).splitlines()[1].split()
        self.assertEqual((row[0], row[2]), ("offline-worker", "Terminating"))
        self.assertEqual(await self.container_ids("offline-worker"), worker_ids)
        self.assertEqual(await self.docker_exec(reader_id, "cat", PROPERTIES),
                         configmap["data"]["app.properties"])

        # The node is not ready, so neither are its pods (they still run on the edge).
        async def reader_not_ready():
            pod, = await self.pods("app=config-reader")
            ready = [c for c in pod["status"].get("conditions") or ()
                     if c.get("type") == "Ready"]
            return pod if ready and ready[0].get("status") == "False" else None
        marked = await self.wait_until(reader_not_ready, 30, "config-reader not ready")
        self.assertEqual(marked["status"]["phase"], "Running")
        events = await self.kubectl("get", "events", "--field-selector",
                                    "involvedObject.name=config-reader,reason=NodeNotReady")
        self.assertIn("Node is not ready", events)
        self.assertEqual(await self.container_ids("config-reader"), reader_ids)

        # The edge returns: it removes the worker, the pod object goes, the file changes
        # in the reader's (same) container, and the reader is Ready again.
        await self.start_edge()

        async def worker_gone():
            code, _, err = await self.kubectl_result("get", "pod", "offline-worker")
            if code == 0:
                return False
            self.assertIn("NotFound", err)
            return not await self.containers("offline-worker", running_only=False)
        await self.wait_until(worker_gone, 60, "the deleted pod and its container gone")
        self.assertEqual(set(await self.edged_pods() or ()), {"config-reader"})

        async def file_updated():
            text = await self.docker_exec(reader_id, "cat", PROPERTIES)
            return text == changed["data"]["app.properties"]
        await self.wait_until(file_updated, 60, "the updated ConfigMap in the mounted file")
        self.assertEqual(await self.container_ids("config-reader"), reader_ids)
        reader_pod, = await self.wait_pods_running("app=config-reader", 1)
        status, = reader_pod["status"]["containerStatuses"]
        self.assertEqual(status["containerID"], "docker://" + reader_id)
        self.assertEqual(status["restartCount"], 0)

