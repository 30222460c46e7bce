"""How integration tests get real parts: executables, the Docker engine, a mosquitto broker.

Integration tests run against the real thing (STYLE.md 2.12), never a mock. When a part is
missing on a developer's machine the test is skipped with a message naming the Debian
package to install; under ``CI=true`` the same message fails the test instead, because an
integration test that quietly skips in CI proves nothing (our issue tracker's policy).
``scripts/test.sh`` installs every part and, as root, starts dockerd.

Everything that waits does so on the reactor: processes are spawned with
``reactor.spawnProcess`` or ``getProcessOutputAndValue`` and polled with ``deferLater``;
nothing here sleeps.
"""

import os
import shutil
import signal
import socket

import docker
import requests
from twisted.internet import defer, error, protocol, reactor, task
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import FailTest, SkipTest

__all__ = [
    "require_executable", "require_docker", "free_port", "start_mosquitto", "run_command",
    "missing_part", "LOOPBACK", "ensure_busybox_image", "remove_labelled_containers",
    "BUSYBOX_IMAGE", "TEST_LABEL", "LoopbackCloud",
]

#: The only address integration tests talk to.
LOOPBACK = "127.0.0.1"

#: Where Debian keeps daemons that are not on an ordinary user's PATH.
_EXTRA_PATH = ("/usr/sbin", "/sbin")

#: How often and how long :func:`start_mosquitto` polls the broker's port.
_POLL_INTERVAL = 0.05
_START_TIMEOUT = 10.0
#: How long a broker gets to exit after SIGTERM before it is killed.
_STOP_TIMEOUT = 5.0


def missing_part(message):
    """The exception for a missing real part: ``FailTest`` under ``CI=true``, else
    ``SkipTest``; both carry ``message``, which names what to install."""
    if os.environ.get("CI", "").strip().lower() == "true":
        return FailTest(message + " (CI=true: a missing real part fails the test)")
    return SkipTest(message)


def require_executable(name, package):
    """The absolute path of executable ``name``, searched on PATH plus /usr/sbin and /sbin.

    When it is not there, raise :func:`missing_part` telling the reader to install the
    Debian ``package``.
    """
    search = os.pathsep.join(
        [p for p in os.environ.get("PATH", os.defpath).split(os.pathsep) if p]
        + list(_EXTRA_PATH))
    path = shutil.which(name, path=search)
    if path is None:
        raise missing_part("{} not found on PATH, /usr/sbin or /sbin: install the Debian "
                           "package {} (apt-get install {})".format(name, package, package))
    return os.path.abspath(path)


def require_docker(timeout=5):
    """A ``docker.DockerClient`` for the local engine, after its ``ping()`` succeeded.

    Blocks for up to ``timeout`` seconds: call it on a thread (``deferToThread``) from
    reactor code. A missing or silent engine gives :func:`missing_part`.
    """
    hint = ("install the Debian package docker.io and start dockerd as root; "
            "scripts/test.sh does both when run as root")
    try:
        client = docker.from_env(timeout=timeout)
    except (docker.errors.DockerException, requests.exceptions.RequestException,
            OSError) as e:
        raise missing_part("no Docker engine client ({}): {}".format(e, hint)) from None
    try:
        client.ping()
    except (docker.errors.DockerException, requests.exceptions.RequestException,
            OSError) as e:
        client.close()
        raise missing_part("the Docker engine does not answer ping ({}): {}".format(
            e, hint)) from None
    return client


def free_port():
    """A TCP port on 127.0.0.1 that nothing listened on a moment ago.

    The kernel picks it (bind to port 0); there is a small window in which another process
    could take it, acceptable for tests.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def _port_is_free(port):
    """Whether nothing listens on 127.0.0.1:``port`` (a bind with SO_REUSEADDR succeeds)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((LOOPBACK, port))
        except OSError:
            return False
        return True


class _BrokerProtocol(protocol.ProcessProtocol):
    """Keeps a broker's output for error messages; ``ended`` fires when it exits."""

    def __init__(self):
        self.output = b""
        self.ended = defer.Deferred()
        self.exited = False

    def outReceived(self, data):
        self.output += data

    errReceived = outReceived

    def processEnded(self, reason):
        self.exited = True
        self.ended.callback(reason.value)

    def text(self):
        """The broker's output so far, for a failure message."""
        return self.output.decode("utf-8", errors="replace").strip() or "(no output)"


def _stop_process(transport, proto):
    """SIGTERM a process we started and return a Deferred firing when it has ended;
    SIGKILL it when it outlives :data:`_STOP_TIMEOUT`."""
    if proto.exited:
        return defer.succeed(None)
    try:
        transport.signalProcess("TERM")
    except error.ProcessExitedAlready:
        pass

    def kill():
        if not proto.exited:
            try:
                transport.signalProcess("KILL")
            except error.ProcessExitedAlready:
                pass

    timer = reactor.callLater(_STOP_TIMEOUT, kill)

    def ended(_):
        if timer.active():
            timer.cancel()

    d = defer.Deferred()
    proto.ended.addBoth(ended).addBoth(lambda _: d.callback(None))
    return d


async def _wait_listening(port, proto):
    """Poll 127.0.0.1:``port`` until a TCP connection succeeds; fail when the broker exits
    first or nothing listens within :data:`_START_TIMEOUT` seconds."""
    endpoint = TCP4ClientEndpoint(reactor, LOOPBACK, port, timeout=1)
    attempts = int(_START_TIMEOUT / _POLL_INTERVAL)
    for _ in range(attempts):
        if proto.exited:
            raise AssertionError("mosquitto exited before listening on {}:{}; its output:\n{}"
                                 .format(LOOPBACK, port, proto.text()))
        try:
            probe = await connectProtocol(endpoint, protocol.Protocol())
        except error.ConnectError:
            await task.deferLater(reactor, _POLL_INTERVAL, lambda: None)
            continue
        probe.transport.loseConnection()
        return
    raise AssertionError("mosquitto did not listen on {}:{} within {}s; its output:\n{}"
                         .format(LOOPBACK, port, _START_TIMEOUT, proto.text()))


def start_mosquitto(testcase, port=None):
    """Start a real mosquitto broker on 127.0.0.1:``port`` (a free port when None).

    The config (``listener <port> 127.0.0.1``, anonymous access, no persistence) is written
    under ``testcase.mktemp()``. Returns a Deferred firing with ``(port, process_transport)``
    once the broker accepts TCP connections. A cleanup registered on ``testcase`` SIGTERMs
    the broker and waits for it to end, so no broker outlives its test.
    """
    executable = require_executable("mosquitto", "mosquitto")
    if port is None:
        port = free_port()
    elif not _port_is_free(port):
        # Else the poll below would take the other listener for our broker.
        raise AssertionError("cannot start mosquitto on {}:{}: something already listens "
                             "there".format(LOOPBACK, port))
    directory = os.path.abspath(testcase.mktemp())
    os.makedirs(directory)
    config = os.path.join(directory, "mosquitto.conf")
    with open(config, "w") as f:
        f.write("listener {} {}\nallow_anonymous true\npersistence false\n"
                "log_dest stderr\n".format(port, LOOPBACK))
    proto = _BrokerProtocol()
    transport = reactor.spawnProcess(proto, executable, [executable, "-c", config],
                                     env=dict(os.environ), path=directory)
    testcase.addCleanup(_stop_process, transport, proto)
    d = defer.Deferred.fromCoroutine(_wait_listening(port, proto))
    d.addCallback(lambda _: (port, transport))
    return d


class _RecordingReactor:
    """The reactor, except that it remembers the process transport ``spawnProcess`` made,
    so that :func:`run_command` can kill a command that ran out of time
    (``getProcessOutputAndValue`` does not hand the transport out)."""

    def __init__(self, real):
        self._real = real
        self.transport = None

    def spawnProcess(self, *args, **kwargs):
        """Spawn through the real reactor and keep the transport."""
        self.transport = self._real.spawnProcess(*args, **kwargs)
        return self.transport


class CommandTimeout(AssertionError):
    """A command given to :func:`run_command` did not finish in time and was killed."""


def run_command(args, timeout=60, env=None):
    """Run a short command; a Deferred firing with ``(out, err, code)`` (bytes, bytes, int).

    ``args[0]`` is found on PATH (plus /usr/sbin, /sbin) when it is not a path. A command
    still running after ``timeout`` seconds is SIGKILLed and the Deferred fails with
    :class:`CommandTimeout` carrying its output so far. A command killed by a signal for
    another reason fails with an ``AssertionError`` naming the signal.
    """
    executable = args[0]
    if os.sep not in executable:
        found = shutil.which(executable, path=os.pathsep.join(
            [os.environ.get("PATH", os.defpath)] + list(_EXTRA_PATH)))
        executable = found or executable
    spawner = _RecordingReactor(reactor)
    d = getProcessOutputAndValue(executable, list(args[1:]),
                                 env=dict(os.environ) if env is None else env,
                                 reactor=spawner)
    state = {"timed_out": False}

    def expire():
        state["timed_out"] = True
        try:
            spawner.transport.signalProcess("KILL")
        except error.ProcessExitedAlready:
            pass

    timer = reactor.callLater(timeout, expire)

    def finished(result):
        if timer.active():
            timer.cancel()
        return result

    def signalled(failure):
        # getProcessOutputAndValue errbacks with the tuple (out, err, signal number).
        value = failure.value
        if not isinstance(value, tuple):
            return failure
        out, err, signum = value
        if state["timed_out"]:
            raise CommandTimeout("{} did not finish within {}s and was killed; stdout: {!r}; "
                                 "stderr: {!r}".format(" ".join(args), timeout, out, err))
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = str(signum)
        raise AssertionError("{} was killed by signal {}; stdout: {!r}; stderr: {!r}".format(
            " ".join(args), name, out, err))

    d.addBoth(finished)
    d.addErrback(signalled)
    return d


# -- the busybox test image (added for edged's tests; built as test_real_parts builds it) -----

#: The image integration tests run containers from: a busybox-static rootfs imported
#: offline (no registry is reachable from the test machines).
BUSYBOX_IMAGE_REPO = "kubeedge-tw-test/busybox"
BUSYBOX_IMAGE = BUSYBOX_IMAGE_REPO + ":latest"
#: Busybox applets linked into the image (busybox dispatches on argv[0]).
BUSYBOX_APPLETS = ("sh", "httpd", "echo", "cat", "ls", "sleep", "true", "false", "env",
                   "mkdir", "rm", "wget", "nc", "hostname", "id", "ps", "kill", "date",
                   "printf", "test")
#: The label every container an integration test creates carries; cleanups remove by it.
TEST_LABEL = "io.kubeedge-tw.test"


def _thd_import_busybox_image(client, busybox, workdir):
    """Import a busybox rootfs tarball as :data:`BUSYBOX_IMAGE`; the image id."""
    import tarfile
    root = os.path.join(workdir, "rootfs")
    bindir = os.path.join(root, "bin")
    os.makedirs(bindir)
    for empty in ("tmp", "etc", "proc", "sys", "dev"):
        os.makedirs(os.path.join(root, empty))
    os.chmod(os.path.join(root, "tmp"), 0o1777)
    shutil.copy2(busybox, os.path.join(bindir, "busybox"))
    os.chmod(os.path.join(bindir, "busybox"), 0o755)
    for applet in BUSYBOX_APPLETS:
        os.symlink("busybox", os.path.join(bindir, applet))
    tarpath = os.path.join(workdir, "rootfs.tar")
    with tarfile.open(tarpath, "w") as tar:
        tar.add(root, arcname=".")
    client.api.import_image_from_file(tarpath, repository=BUSYBOX_IMAGE_REPO, tag="latest",
                                      changes=['CMD ["/bin/sh"]'])
    return client.images.get(BUSYBOX_IMAGE).id


def _thd_busybox_image_id(client):
    """The id of :data:`BUSYBOX_IMAGE`, or None when it is not there."""
    try:
        return client.images.get(BUSYBOX_IMAGE).id
    except docker.errors.ImageNotFound:
        return None


def _thd_remove_image(client, image_id):
    """Remove an image a test imported; gone already, or still used by a container
    someone else left, is not an error."""
    try:
        client.images.remove(image_id)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as e:
        if e.status_code != 409:
            raise


def _thd_remove_labelled(client, labels):
    """Remove (killing if needed) every container carrying all ``labels``; how many."""
    filters = {"label": ["{}={}".format(k, v) for k, v in sorted(labels.items())]}
    found = client.api.containers(all=True, filters=filters)
    for summary in found:
        try:
            client.api.remove_container(summary["Id"], force=True, v=True)
        except docker.errors.NotFound:
            pass
    return len(found)


def remove_labelled_containers(client, labels):
    """A Deferred removing every container that carries all ``labels`` (on a thread)."""
    from twisted.internet import threads
    return threads.deferToThread(_thd_remove_labelled, client, labels)


def ensure_busybox_image(testcase):
    """A Deferred firing with a docker client once :data:`BUSYBOX_IMAGE` exists.

    The image is imported from ``/bin/busybox`` (Debian ``busybox-static``) when it is
    missing, and then removed again by a cleanup registered on ``testcase`` (registered
    first, so it runs after the test's container cleanups). An image that was already
    there is left alone: other integration tests share it. The client is closed by a
    cleanup too. Missing parts give :func:`missing_part`.
    """
    from twisted.internet import threads
    busybox = require_executable("busybox", "busybox-static")

    async def ensure():
        client = await threads.deferToThread(require_docker)
        testcase.addCleanup(threads.deferToThread, client.close)
        image_id = await threads.deferToThread(_thd_busybox_image_id, client)
        if image_id is None:
            workdir = os.path.abspath(testcase.mktemp())
            os.makedirs(workdir)
            image_id = await threads.deferToThread(_thd_import_busybox_image, client,
                                                   busybox, workdir)
            # Runs before the client is closed and after the test's own cleanups.
            testcase.addCleanup(threads.deferToThread, _thd_remove_image, client, image_id)
        return client
    return defer.Deferred.fromCoroutine(ensure())


# -- a cloud config on loopback ports, and an edge joined to it ----------------------------------


class LoopbackCloud:
    """A ``cloudcore.yaml`` written under ``directory`` with CloudHub's websocket and
    bootstrap servers and the embedded API server on free 127.0.0.1 ports; ``modules``
    (KubeEdge names) is merged over that and ``top`` (e.g. ``kubeAPIConfig``) added at the
    top level. The state dir is ``<directory>/cloud``.

    Attributes: ``path``, ``state_dir``, ``ws``, ``https``, ``api`` (ports).
    """

    def __init__(self, directory, modules=None, top=None):
        import yaml
        self.directory = directory
        self.state_dir = os.path.join(directory, "cloud")
        self.ws, self.https, self.api = free_port(), free_port(), free_port()
        merged = {"cloudHub": {"websocket": {"address": LOOPBACK, "port": self.ws},
                               "https": {"address": LOOPBACK, "port": self.https}},
                  "apiServer": {"address": LOOPBACK, "port": self.api}}
        for name, section in (modules or {}).items():
            merged[name] = dict(merged.get(name, {}), **section)
        data = {"apiVersion": "cloudcore.config.kubeedge.io/v1alpha1", "kind": "CloudCore",
                "stateDir": self.state_dir, "modules": merged}
        data.update(top or {})
        os.makedirs(directory, exist_ok=True)
        self.path = os.path.join(directory, "cloudcore.yaml")
        with open(self.path, "w") as f:
            yaml.safe_dump(data, f)

    def token(self, *args):
        """A join token from ``gettoken`` (extra CLI ``args``, e.g. ``--node``)."""
        import io
        from kubeedge_tw.certs import cli as certs_cli
        out, err = io.StringIO(), io.StringIO()
        code = certs_cli.gettoken_main(["--config", self.path] + list(args), out=out,
                                       err=err)
        if code != 0:
            raise AssertionError("gettoken failed: " + err.getvalue())
        return out.getvalue().strip()

    def join_options(self, token, node="edge-1", state="edge"):
        """``join``'s options for an edge ``node`` in ``<directory>/<state>``."""
        from kubeedge_tw.certs.join import JoinOptions
        options = JoinOptions()
        options.parseOptions(["--cloud", "{}:{}".format(LOOPBACK, self.ws), "--https-port",
                              str(self.https), "--token", token, "--node", node,
                              "--state-dir", os.path.join(self.directory, state)])
        return options

    def join(self, node="edge-1", state="edge"):
        """Join an edge with a fresh token (the cloud must be running); a Deferred firing
        with the path of its ``edgecore.yaml``."""
        import io
        from kubeedge_tw.certs.join import join
        return defer.Deferred.fromCoroutine(join(
            reactor, self.join_options(self.token(), node, state), io.StringIO()))
