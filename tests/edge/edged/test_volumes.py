"""Pod volumes on disk: the atomic layout, modes, items, updates in place, hostPath
checks, emptyDir and teardown."""

import base64
import os
import shutil
import socket
import tempfile

from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase

from kubeedge_tw.edge.edged.configs import QueryFailed
from kubeedge_tw.edge.edged.pool import InlinePool
from kubeedge_tw.edge.edged.spec import parse_pod
from kubeedge_tw.edge.edged.volumes import DATA_LINK, VolumeError, VolumeManager
from tests.edge.edged.fakes import make_pod


class VolumeTests(SynchronousTestCase):
    """VolumeManager with real files under a temp dir (the pool runs inline)."""

    def setUp(self):
        self.root = os.path.abspath(self.mktemp())
        self.objects = {}
        self.failing = False
        self.manager = VolumeManager(self.root, InlinePool(), self.lookup, "edge-1")
        self.manager.node_ip = "192.0.2.10"

    async def lookup(self, namespace, rtype, name):
        """The test's objects (or a failing query)."""
        if self.failing:
            raise QueryFailed("timed out")
        return self.objects.get((rtype, name))

    def setup(self, volumes, containers=None):
        """Set up a pod with ``volumes``; the Deferred of the paths."""
        pod = make_pod("p", volumes=volumes, containers=containers)
        spec = parse_pod(pod)
        self.assertIsNone(spec.error)
        return defer.Deferred.fromCoroutine(self.manager.setup(pod, spec))

    def read(self, *parts):
        """A file's bytes."""
        with open(os.path.join(*parts), "rb") as f:
            return f.read()

    def test_configmap_items_and_modes(self):
        """Items land at their paths with their modes, behind the ..data symlink."""
        self.objects[("configmap", "cfg")] = {"data": {"a": "1", "b": "2"}}
        paths = self.successResultOf(self.setup([{"name": "c", "configMap": {
            "name": "cfg", "defaultMode": 0o640,
            "items": [{"key": "a", "path": "dir/a.txt", "mode": 0o400},
                      {"key": "b", "path": "b"}]}}]))
        kind, target = paths["c"]
        self.assertEqual(kind, "configMap")
        self.assertEqual(target, os.path.join(self.root, "pods", "uid-p", "volumes",
                                              "configmap", "c"))
        self.assertEqual(self.read(target, "dir", "a.txt"), b"1")
        self.assertEqual(os.stat(os.path.join(target, "dir", "a.txt")).st_mode & 0o777, 0o400)
        self.assertEqual(os.stat(os.path.join(target, "b")).st_mode & 0o777, 0o640)
        self.assertTrue(os.path.islink(os.path.join(target, DATA_LINK)))
        self.assertEqual(os.readlink(os.path.join(target, "dir")), os.path.join(DATA_LINK,
                                                                                 "dir"))

    def test_update_in_place(self):
        """A changed ConfigMap switches ..data to new files at once; old files and
        removed keys go; an unchanged one is not rewritten."""
        self.objects[("configmap", "cfg")] = {"data": {"a": "1", "gone": "x"}}
        volumes = [{"name": "c", "configMap": {"name": "cfg"}}]
        target = self.successResultOf(self.setup(volumes))["c"][1]
        first = os.readlink(os.path.join(target, DATA_LINK))
        self.successResultOf(self.setup(volumes))
        self.assertEqual(os.readlink(os.path.join(target, DATA_LINK)), first)
        self.objects[("configmap", "cfg")] = {"data": {"a": "2"}}
        self.successResultOf(self.setup(volumes))
        self.assertNotEqual(os.readlink(os.path.join(target, DATA_LINK)), first)
        self.assertEqual(self.read(target, "a"), b"2")
        self.assertFalse(os.path.lexists(os.path.join(target, "gone")))
        self.assertFalse(os.path.exists(os.path.join(target, first)))

    def test_secret_and_default_mode(self):
        """Secret data is decoded; files default to 0644."""
        self.objects[("secret", "s")] = {"data": {"pw": base64.b64encode(b"x").decode()}}
        target = self.successResultOf(self.setup([{"name": "s", "secret": {
            "secretName": "s"}}]))["s"][1]
        self.assertEqual(self.read(target, "pw"), b"x")
        self.assertEqual(os.stat(os.path.join(target, "pw")).st_mode & 0o777, 0o644)

    def test_missing_objects(self):
        """A missing object or key is a VolumeError naming the volume; optional ones give
        an empty volume; a failed query is a VolumeError too."""
        f = self.failureResultOf(self.setup([{"name": "c", "configMap": {"name": "x"}}]),
                                 VolumeError)
        self.assertIn('volume "c"', str(f.value))
        self.assertIn('configmap "x" not found', str(f.value))
        self.objects[("configmap", "x")] = {"data": {}}
        f = self.failureResultOf(self.setup([{"name": "c", "configMap": {
            "name": "x", "items": [{"key": "k", "path": "k"}]}}]), VolumeError)
        self.assertIn("non-existent config key: k", str(f.value))
        self.successResultOf(self.setup([{"name": "o", "secret": {"secretName": "none",
                                                                  "optional": True}}]))
        self.failing = True
        f = self.failureResultOf(self.setup([{"name": "q", "secret": {"secretName": "s"}}]),
                                 VolumeError)
        self.assertIn("could not be fetched", str(f.value))

    def test_downward_and_projected(self):
        """downwardAPI files hold pod fields; a kube-api-access projected volume is best
        effort (the token is left out, a missing CA ConfigMap is tolerated)."""
        paths = self.successResultOf(self.setup([
            {"name": "d", "downwardAPI": {"items": [
                {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
                {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
            {"name": "kube-api-access-abc", "projected": {"sources": [
                {"serviceAccountToken": {"path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt",
                               "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {
                    "fieldPath": "metadata.namespace"}}]}}]}}]))
        self.assertEqual(self.read(paths["d"][1], "name"), b"p")
        self.assertEqual(self.read(paths["d"][1], "labels"), b'app="p"')
        projected = paths["kube-api-access-abc"][1]
        self.assertEqual(self.read(projected, "namespace"), b"default")
        self.assertFalse(os.path.exists(os.path.join(projected, "token")))

    def test_empty_dir_and_host_path(self):
        """emptyDir is a world-writable dir; hostPath type checks create or refuse."""
        host = os.path.abspath(self.mktemp())
        os.makedirs(host)
        paths = self.successResultOf(self.setup([
            {"name": "e", "emptyDir": {}},
            {"name": "made", "hostPath": {"path": os.path.join(host, "new"),
                                          "type": "DirectoryOrCreate"}},
            {"name": "file", "hostPath": {"path": os.path.join(host, "f"),
                                          "type": "FileOrCreate"}}]))
        self.assertEqual(os.stat(paths["e"][1]).st_mode & 0o777, 0o777)
        self.assertTrue(os.path.isdir(os.path.join(host, "new")))
        self.assertTrue(os.path.isfile(os.path.join(host, "f")))
        f = self.failureResultOf(self.setup([{"name": "x", "hostPath": {
            "path": os.path.join(host, "f"), "type": "Directory"}}]), VolumeError)
        self.assertIn("is not a Directory", str(f.value))
        f = self.failureResultOf(self.setup([{"name": "y", "hostPath": {
            "path": os.path.join(host, "absent"), "type": "Socket"}}]), VolumeError)
        self.assertIn("does not exist", str(f.value))
        short = tempfile.mkdtemp(prefix="kte-")  # AF_UNIX paths are short
        self.addCleanup(shutil.rmtree, short, True)
        sock_path = os.path.join(short, "s.sock")
        with socket.socket(socket.AF_UNIX) as s:
            s.bind(sock_path)
            self.successResultOf(self.setup([{"name": "z", "hostPath": {
                "path": sock_path, "type": "Socket"}}]))

    def test_teardown(self):
        """teardown removes everything written for the pod."""
        self.successResultOf(self.setup([{"name": "e", "emptyDir": {}}]))
        self.assertTrue(os.path.isdir(self.manager.pod_dir("uid-p")))
        self.successResultOf(defer.Deferred.fromCoroutine(self.manager.teardown("uid-p")))
        self.assertFalse(os.path.exists(self.manager.pod_dir("uid-p")))
