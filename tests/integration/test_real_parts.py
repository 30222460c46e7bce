"""Integration: the real parts the suite relies on are there and work on this machine.

The Docker engine answers, an image can be built offline from busybox-static with no
registry (later tests reuse ``kubeedge-tw-test/busybox:latest``), a real mosquitto carries
MQTT on loopback for the mosquitto clients and for paho-mqtt, and kubectl runs. Blocking
calls (docker SDK, paho) run on threads; the reactor never waits.
"""

import os
import re
import shutil
import tarfile
import threading
import uuid

from paho.mqtt import client as mqtt
from twisted.internet import defer, threads
from twisted.trial.unittest import TestCase

from tests.integration.parts import (
    LOOPBACK, require_docker, require_executable, run_command, start_mosquitto)

#: The image later integration tests run; made from /bin/busybox by :func:`_thd_build_image`.
TEST_IMAGE_REPO = "kubeedge-tw-test/busybox"
TEST_IMAGE = TEST_IMAGE_REPO + ":latest"

#: Busybox applets linked into the test image (busybox dispatches on argv[0]).
APPLETS = ("sh", "httpd", "echo", "cat", "ls", "sleep", "true", "false", "env", "mkdir",
           "rm", "wget", "nc", "hostname", "id", "ps", "kill", "date", "printf", "test")


def _make_rootfs_tar(busybox, workdir):
    """A tarball of a minimal root filesystem: /bin/busybox and its applet symlinks."""
    root = os.path.join(workdir, "rootfs")
    bindir = os.path.join(root, "bin")
    os.makedirs(bindir)
    for empty in ("tmp", "etc", "proc", "sys", "dev"):
        os.makedirs(os.path.join(root, empty))
    shutil.copy2(busybox, os.path.join(bindir, "busybox"))
    os.chmod(os.path.join(bindir, "busybox"), 0o755)
    for applet in APPLETS:
        os.symlink("busybox", os.path.join(bindir, applet))
    tarpath = os.path.join(workdir, "rootfs.tar")
    with tarfile.open(tarpath, "w") as tar:
        tar.add(root, arcname=".")
    return tarpath


def _thd_build_image(client, busybox, workdir):
    """Import a busybox rootfs as :data:`TEST_IMAGE` (no registry involved); the image."""
    tarpath = _make_rootfs_tar(busybox, workdir)
    client.api.import_image_from_file(tarpath, repository=TEST_IMAGE_REPO, tag="latest",
                                      changes=['CMD ["/bin/sh"]'])
    return client.images.get(TEST_IMAGE)


def _thd_run_marker(client, marker):
    """Run a host-network container that echoes ``marker``; its (exit code, logs).

    The container is removed whatever happens."""
    container = client.containers.create(
        TEST_IMAGE, ["/bin/sh", "-c", "echo " + marker], network_mode="host",
        name="kubeedge-tw-test-" + uuid.uuid4().hex[:12])
    try:
        container.start()
        result = container.wait(timeout=30)
        logs = container.logs(stdout=True, stderr=True).decode("utf-8", errors="replace")
        return result["StatusCode"], logs
    finally:
        container.remove(force=True)


def _thd_paho_round_trip(port, topic, payload, timeout=10):
    """Subscribe with paho-mqtt, publish, and return the payload received (or None).

    Runs on a thread: paho's own network loop runs in its thread (loop_start) and this
    function waits on an Event with a timeout."""
    connected, received = threading.Event(), threading.Event()
    got = []

    def on_connect(client, userdata, flags, reason_code, properties):
        if not reason_code.is_failure:
            client.subscribe(topic, qos=1)

    def on_subscribe(client, userdata, mid, reason_codes, properties):
        connected.set()

    def on_message(client, userdata, message):
        got.append(message.payload)
        received.set()

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                         client_id="kubeedge-tw-test-" + uuid.uuid4().hex[:8])
    client.on_connect, client.on_subscribe, client.on_message = (
        on_connect, on_subscribe, on_message)
    client.connect(LOOPBACK, port, keepalive=30)
    client.loop_start()
    try:
        if not connected.wait(timeout):
            return None
        client.publish(topic, payload, qos=1).wait_for_publish(timeout)
        received.wait(timeout)
        return got[0] if got else None
    finally:
        client.disconnect()
        client.loop_stop()


class DockerEngineTests(TestCase):
    """The local Docker engine answers and runs locally built images on host networking."""

    timeout = 60

    def setUp(self):
        d = threads.deferToThread(require_docker)

        def keep(client):
            self.client = client
            self.addCleanup(threads.deferToThread, client.close)

        return d.addCallback(keep)

    @defer.inlineCallbacks
    def test_ping_and_version(self):
        """The engine answers ping and reports its version and API version."""
        pong = yield threads.deferToThread(self.client.ping)
        self.assertTrue(pong)
        version = yield threads.deferToThread(self.client.version)
        self.assertTrue(version.get("Version"), version)
        self.assertRegex(version.get("ApiVersion", ""), r"^\d+\.\d+$")

    @defer.inlineCallbacks
    def test_offline_image_runs_host_network_container(self):
        """A busybox image imported from a local tarball runs a host-network container that
        prints a marker and exits 0."""
        busybox = require_executable("busybox", "busybox-static")
        workdir = os.path.abspath(self.mktemp())
        os.makedirs(workdir)
        image = yield threads.deferToThread(_thd_build_image, self.client, busybox, workdir)
        self.assertIn(TEST_IMAGE, image.tags)
        marker = "kubeedge-tw-marker-" + uuid.uuid4().hex
        code, logs = yield threads.deferToThread(_thd_run_marker, self.client, marker)
        self.assertEqual(code, 0, logs)
        self.assertIn(marker, logs)


class MosquittoTests(TestCase):
    """A real mosquitto started by ``start_mosquitto`` carries MQTT on loopback."""

    timeout = 30

    @defer.inlineCallbacks
    def test_retained_message_reaches_later_subscriber(self):
        """A retained message published with mosquitto_pub reaches a later mosquitto_sub."""
        pub = require_executable("mosquitto_pub", "mosquitto-clients")
        sub = require_executable("mosquitto_sub", "mosquitto-clients")
        port, _ = yield start_mosquitto(self)
        topic = "$hw/events/device/test-{}/twin/update".format(uuid.uuid4().hex[:8])
        payload = '{"twin":{"temperature":{"actual":{"value":"21"}}}}'
        out, err, code = yield run_command(
            [pub, "-h", LOOPBACK, "-p", str(port), "-q", "1", "-r", "-t", topic, "-m",
             payload], timeout=10)
        self.assertEqual(code, 0, err)
        out, err, code = yield run_command(
            [sub, "-h", LOOPBACK, "-p", str(port), "-t", topic, "-C", "1", "-W", "5"],
            timeout=10)
        self.assertEqual(code, 0, err)
        self.assertEqual(out.decode().strip(), payload)

    @defer.inlineCallbacks
    def test_paho_publish_subscribe(self):
        """paho-mqtt subscribes, publishes and receives its own message through the broker."""
        port, _ = yield start_mosquitto(self)
        topic = "kubeedge-tw/test/{}".format(uuid.uuid4().hex[:8])
        got = yield threads.deferToThread(_thd_paho_round_trip, port, topic, b"hello edge")
        self.assertEqual(got, b"hello edge")


class KubectlTests(TestCase):
    """kubectl is installed and runs."""

    timeout = 30

    @defer.inlineCallbacks
    def test_kubectl_client_version(self):
        """kubectl version --client exits 0 and prints a client version."""
        kubectl = require_executable("kubectl", "kubernetes-client")
        out, err, code = yield run_command([kubectl, "version", "--client"], timeout=20)
        self.assertEqual(code, 0, err)
        self.assertRegex(out.decode(errors="replace"), re.compile(r"Client Version: v\d+\.\d+"))
