"""End-to-end 2: ConfigMaps and Secrets reach the containers. The examples
conf/examples/configmap-pod.yaml and secret-pod.yaml applied with kubectl; checked inside the
containers with docker exec; a ConfigMap update reaches the mounted file."""

import copy
import os

from tests.e2e.harness import EXAMPLES, WalkthroughCase, example_documents


class ConfigAndSecretsTests(WalkthroughCase):

    async def single_container(self, pod):
        found = await self.containers(pod)
        self.assertEqual(len(found), 1, "containers of pod {}: {}".format(pod, found))
        return found[0]["Id"]

    async def environment(self, container_id):
        out = await self.docker_exec(container_id, "env")
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    async def test_configmap_file_and_env_secret_env_and_update(self):
        """The ConfigMap is a file and an env var, the Secret decoded env vars (by key and
        with a prefix); an updated ConfigMap shows in the file without a restart."""
        await self.start_both()
        for name in ("configmap-pod.yaml", "secret-pod.yaml"):
            out = await self.kubectl("apply", "-f", os.path.join(EXAMPLES, name))
            self.assertEqual(out.count(" created"), 2, out)
        await self.wait_pods_running("app=config-reader", 1)
        await self.wait_pods_running("app=secret-reader", 1)

        config_map, _ = example_documents("configmap-pod.yaml")
        reader = await self.single_container("config-reader")
        self.assertEqual(await self.docker_exec(reader, "cat", "/etc/app/app.properties"),
                         config_map["data"]["app.properties"])
        self.assertEqual(await self.docker_exec(reader, "cat", "/etc/app/greeting"),
                         config_map["data"]["greeting"])
        self.assertEqual((await self.environment(reader))["GREETING"],
                         config_map["data"]["greeting"])

        secret, _ = example_documents("secret-pod.yaml")
        env = await self.environment(await self.single_container("secret-reader"))
        self.assertEqual(env["APP_USER"], secret["stringData"]["username"])
        self.assertEqual(env["SECRET_username"], secret["stringData"]["username"])
        self.assertEqual(env["SECRET_password"], secret["stringData"]["password"])

        updated = copy.deepcopy(config_map)
        updated["data"]["app.properties"] = "mode=edge\ninterval=20\n"
        await self.apply(updated)

        async def file_updated():
            text = await self.docker_exec(reader, "cat", "/etc/app/app.properties")
            return text == updated["data"]["app.properties"]
        await self.wait_until(file_updated, 90, "the updated ConfigMap in the mounted file")
        # Same container: a file update needs no restart.
        self.assertEqual(await self.single_container("config-reader"), reader)
        pod, = await self.pods("app=config-reader")
        self.assertEqual(pod["status"]["containerStatuses"][0]["restartCount"], 0)
