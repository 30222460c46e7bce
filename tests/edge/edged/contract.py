"""The container runtime contract: what edged relies on from an ``IContainerRuntime``.

:class:`RuntimeContract` is a mixin of tests. ``tests.edge.edged.test_fake_runtime`` runs
it against the in-memory ``FakeRuntime`` and ``tests.integration.test_edged_docker``
against the real ``DockerRuntime`` on the Docker engine; both must pass, which is what
makes the fake a verified fake (STYLE.md 2.12).

A subclass provides ``self.runtime``, ``self.image`` (a local image with busybox),
``self.labels`` (labels unique to the test, put on every container it creates, which its
cleanup removes) and :meth:`settle` (let a little time pass: the fake's clock advances,
the real test waits on the reactor).
"""

import os
import uuid

from twisted.internet import defer

from kubeedge_tw.edge.edged.runtime import (
    ContainerConfig, ContainerCreateError, ContainerNotFound, ContainerStartError,
    ImageNotFound, ImagePullError, NameConflict, RuntimeFailure)

__all__ = ["RuntimeContract"]

#: An image reference that no registry here can serve (the network is loopback only).
UNPULLABLE = "registry.invalid/kubeedge-tw/absent:1.0"


class RuntimeContract:
    """Tests every runtime implementation must pass (see the module docstring)."""

    #: How many :meth:`settle` calls a state change may take.
    max_settles = 100

    def settle(self):
        """Let a little time pass; a Deferred."""
        raise NotImplementedError

    def config(self, command, **kw):
        """A ContainerConfig with a fresh name and the test's labels."""
        labels = dict(self.labels)
        labels.update(kw.pop("labels", {}))
        return ContainerConfig(name="kubeedge-tw-contract-" + uuid.uuid4().hex[:12],
                               image=kw.pop("image", self.image), labels=labels,
                               command=command, **kw)

    @defer.inlineCallbacks
    def launch(self, command, **kw):
        """Create and start a container; its id."""
        cid = yield self.runtime.create_container(self.config(command, **kw))
        yield self.runtime.start_container(cid)
        return cid

    @defer.inlineCallbacks
    def wait_info(self, cid, predicate, what):
        """Inspect ``cid`` until ``predicate(info)``; fail naming ``what`` otherwise."""
        info = None
        for _ in range(self.max_settles):
            info = yield self.runtime.inspect_container(cid)
            if predicate(info):
                return info
            yield self.settle()
        raise AssertionError("container never {}: {}".format(what, info))

    @defer.inlineCallbacks
    def test_version(self):
        """The runtime reports a version string."""
        version = yield self.runtime.version()
        self.assertIsInstance(version, str)
        self.assertTrue(version)

    @defer.inlineCallbacks
    def test_create_start_list(self):
        """A started container is listed running with its labels, name, image and id."""
        config = self.config(["sleep", "3600"], labels={"extra": "x"})
        cid = yield self.runtime.create_container(config)
        created = yield self.runtime.inspect_container(cid)
        self.assertEqual(created.state, "created")
        self.assertFalse(created.running)
        self.assertFalse(created.dead)
        yield self.runtime.start_container(cid)
        infos = yield self.runtime.list_containers(self.labels)
        self.assertEqual([i.id for i in infos], [cid])
        info = infos[0]
        self.assertTrue(info.running)
        self.assertEqual(info.name, config.name)
        self.assertEqual(info.label("extra"), "x")
        self.assertEqual(info.image, self.image)
        self.assertTrue(info.image_id.startswith("sha256:"), info.image_id)
        self.assertRegex(info.started_at, r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertEqual(info.finished_at, "")
        self.assertGreater(info.created, 0)

    @defer.inlineCallbacks
    def test_list_filters_by_labels(self):
        """Listing returns only containers carrying every label asked for."""
        a = yield self.runtime.create_container(self.config(["true"], labels={"which": "a"}))
        yield self.runtime.create_container(self.config(["true"], labels={"which": "b"}))
        infos = yield self.runtime.list_containers(dict(self.labels, which="a"))
        self.assertEqual([i.id for i in infos], [a])
        everything = yield self.runtime.list_containers(self.labels)
        self.assertEqual(len(everything), 2)

    @defer.inlineCallbacks
    def test_exit_code(self):
        """A command that exits reports exited, its exit code and its finish time."""
        cid = yield self.launch(["sh", "-c", "exit 3"])
        info = yield self.wait_info(cid, lambda i: i.state == "exited", "exited")
        self.assertEqual(info.exit_code, 3)
        self.assertTrue(info.dead)
        self.assertFalse(info.running)
        self.assertRegex(info.finished_at, r"Z$")

    @defer.inlineCallbacks
    def test_sigterm_ignored_by_pid_1_sigkill_kills(self):
        """PID 1 without a handler ignores SIGTERM; SIGKILL ends it with 137."""
        cid = yield self.launch(["sleep", "3600"])
        yield self.runtime.kill_container(cid, "SIGTERM")
        yield self.settle()
        info = yield self.runtime.inspect_container(cid)
        self.assertTrue(info.running)
        yield self.runtime.kill_container(cid, "SIGKILL")
        info = yield self.wait_info(cid, lambda i: not i.running, "stopped")
        self.assertEqual(info.exit_code, 137)

    @defer.inlineCallbacks
    def test_sigterm_trapped(self):
        """A script that traps SIGTERM exits with its own code."""
        cid = yield self.launch(["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"])
        yield self.wait_info(cid, lambda i: i.running, "running")
        yield self.settle()
        yield self.runtime.kill_container(cid, "SIGTERM")
        info = yield self.wait_info(cid, lambda i: not i.running, "stopped")
        self.assertEqual(info.exit_code, 0)

    @defer.inlineCallbacks
    def test_kill_stopped_container_is_no_error(self):
        """Signalling a container that does not run does nothing."""
        cid = yield self.launch(["sh", "-c", "exit 0"])
        yield self.wait_info(cid, lambda i: not i.running, "stopped")
        yield self.runtime.kill_container(cid, "SIGKILL")
        info = yield self.runtime.inspect_container(cid)
        self.assertEqual(info.exit_code, 0)

    @defer.inlineCallbacks
    def test_remove(self):
        """A removed container is gone; removing it again is no error; inspecting it is
        ContainerNotFound."""
        cid = yield self.launch(["sleep", "3600"])
        yield self.runtime.remove_container(cid)
        infos = yield self.runtime.list_containers(self.labels)
        self.assertEqual(infos, [])
        yield self.runtime.remove_container(cid)
        yield self.assertFailure(self.runtime.inspect_container(cid), ContainerNotFound)

    @defer.inlineCallbacks
    def test_name_conflict(self):
        """Creating a second container with a name in use is NameConflict."""
        config = self.config(["true"])
        yield self.runtime.create_container(config)
        yield self.assertFailure(self.runtime.create_container(config), NameConflict)

    @defer.inlineCallbacks
    def test_create_with_missing_image(self):
        """Creating from an image that is not here is ImageNotFound."""
        yield self.assertFailure(
            self.runtime.create_container(self.config(["true"], image=UNPULLABLE)),
            ImageNotFound)

    @defer.inlineCallbacks
    def test_memory_limit_below_minimum(self):
        """A memory limit the engine refuses (under 6 MB) is ContainerCreateError."""
        yield self.assertFailure(
            self.runtime.create_container(self.config(["true"], mem_limit=1024 * 1024)),
            ContainerCreateError)

    @defer.inlineCallbacks
    def test_start_missing_executable(self):
        """A command that does not exist fails to start, and the container reads as
        dead with the reason."""
        cid = yield self.runtime.create_container(self.config(["/no/such/program"]))
        e = yield self.assertFailure(self.runtime.start_container(cid), ContainerStartError)
        self.assertIn("/no/such/program", str(e))
        info = yield self.runtime.inspect_container(cid)
        self.assertTrue(info.dead)
        self.assertFalse(info.running)
        self.assertIn("/no/such/program", info.error)
        self.assertEqual(info.started_at, "")

    @defer.inlineCallbacks
    def test_exec(self):
        """Exec runs commands in a running container and gives their exit codes; in a
        stopped one it fails."""
        cid = yield self.launch(["sleep", "3600"])
        ok = yield self.runtime.exec_in_container(cid, ["true"], 5)
        self.assertEqual(ok.exit_code, 0)
        bad = yield self.runtime.exec_in_container(cid, ["false"], 5)
        self.assertEqual(bad.exit_code, 1)
        three = yield self.runtime.exec_in_container(cid, ["sh", "-c", "exit 3"], 5)
        self.assertEqual(three.exit_code, 3)
        echo = yield self.runtime.exec_in_container(cid, ["echo", "hello"], 5)
        self.assertEqual(echo.output.strip(), b"hello")
        yield self.runtime.kill_container(cid, "SIGKILL")
        yield self.wait_info(cid, lambda i: not i.running, "stopped")
        yield self.assertFailure(self.runtime.exec_in_container(cid, ["true"], 5),
                                 RuntimeFailure)

    @defer.inlineCallbacks
    def test_env_and_bind_mount(self):
        """The environment and read-only bind mounts reach the container."""
        host = os.path.abspath(self.mktemp())
        os.makedirs(host)
        with open(os.path.join(host, "file"), "wb") as f:
            f.write(b"content\n")
        cid = yield self.launch(["sleep", "3600"], env=["GREETING=hi there"],
                             binds=[(host, "/mnt/data", True)])
        env = yield self.runtime.exec_in_container(cid, ["env"], 5)
        self.assertIn(b"GREETING=hi there\n", env.output)
        cat = yield self.runtime.exec_in_container(cid, ["cat", "/mnt/data/file"], 5)
        self.assertEqual((cat.exit_code, cat.output), (0, b"content\n"))

    @defer.inlineCallbacks
    def test_images(self):
        """The image is listed and inspectable by reference; an absent one inspects as
        None."""
        info = yield self.runtime.inspect_image(self.image)
        self.assertTrue(info.id.startswith("sha256:"))
        images = yield self.runtime.list_images()
        mine = [i for i in images if i.id == info.id]
        self.assertEqual(len(mine), 1)
        self.assertIn(self.image, mine[0].tags)
        absent = yield self.runtime.inspect_image(UNPULLABLE)
        self.assertIsNone(absent)

    @defer.inlineCallbacks
    def test_pull_failure(self):
        """Pulling what no registry serves is ImagePullError with a reason."""
        e = yield self.assertFailure(self.runtime.pull_image(UNPULLABLE), ImagePullError)
        self.assertIn(UNPULLABLE, str(e))

    @defer.inlineCallbacks
    def test_image_in_use_not_removed(self):
        """An image a container uses cannot be removed."""
        yield self.runtime.create_container(self.config(["true"]))
        info = yield self.runtime.inspect_image(self.image)
        yield self.assertFailure(self.runtime.remove_image(info.id), RuntimeFailure)

    @defer.inlineCallbacks
    def test_fs_usage(self):
        """The image filesystem has a capacity and no more free space than that."""
        usage = yield self.runtime.image_fs_usage()
        self.assertGreater(usage.capacity, 0)
        self.assertLessEqual(usage.available, usage.capacity)
        self.assertTrue(0 <= usage.used_percent <= 100)
