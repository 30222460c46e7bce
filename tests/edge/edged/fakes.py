"""Test doubles for edged: an in-memory container runtime, a stand-in MetaManager and a
harness that joins them to a real Edged on a ``Clock``.

:class:`FakeRuntime` implements :class:`~kubeedge_tw.edge.edged.runtime.IContainerRuntime`
in memory. It is a verified fake: ``tests.edge.edged.test_fake_runtime`` runs the runtime
contract (``tests.edge.edged.contract``) against it, and
``tests.integration.test_edged_docker`` runs the same contract against the real
``DockerRuntime`` and Docker engine. It runs no processes; a container's command is read
the way busybox would run it, just enough for the tests: ``sh -c "... exit N"`` exits with
N, ``sleep N`` runs N seconds of the clock, a command it does not know cannot start, the
container's PID 1 ignores SIGTERM unless the script traps it (``trap 'exit N' TERM``), and
SIGKILL gives 137. Exec understands ``true``, ``false``, ``sh -c "exit N"``, ``echo``,
``env``, ``cat FILE`` and ``test -f FILE`` (files from bind mounts or :attr:`files`).
:meth:`FakeRuntime.hold` keeps calls of chosen methods in flight (as a busy engine
would) until :meth:`FakeRuntime.release` completes them in call order.

:class:`FakeMetaManager` answers edged's queries from an in-memory store as KubeEdge's
MetaManager does (a list of JSON strings), records what edged reports, and pushes pods
and objects to edged like MetaManager forwards the cloud's messages.
"""

import hashlib
import json
import os
import re

from twisted.internet import defer
from twisted.internet.task import Clock
from zope.interface import implementer

from kubeedge_tw.common import names
from kubeedge_tw.common.bus import Bus
from kubeedge_tw.common.message import new_error, new_message, new_response
from kubeedge_tw.common.module import Module
from kubeedge_tw.common.resource import parse_edge_resource
from kubeedge_tw.edge.edged.edged import Edged
from kubeedge_tw.edge.edged.node import NodeFacts
from kubeedge_tw.edge.edged.pool import InlinePool
from kubeedge_tw.edge.edged.probes import Prober
from kubeedge_tw.edge.edged.runtime import (
    CREATED, EXITED, RUNNING, ContainerCreateError, ContainerInfo, ContainerNotFound,
    ContainerStartError, ExecResult, FsUsage, IContainerRuntime, ImageInfo, ImageNotFound,
    ImagePullError, NameConflict, RuntimeFailure, RuntimeUnavailable, rfc3339)

__all__ = ["FakeRuntime", "FakeMetaManager", "EdgedHarness", "TEST_IMAGE", "fixed_facts",
           "make_pod"]

TEST_IMAGE = "kubeedge-tw-test/busybox:latest"
#: Programs busybox provides in the test image.
APPLETS = {"sh", "httpd", "echo", "cat", "ls", "sleep", "true", "false", "env", "mkdir",
           "rm", "wget", "nc", "hostname", "id", "ps", "kill", "date", "printf", "test"}
MIN_MEMORY = 6 * 1024 * 1024

_SLEEP = re.compile(r"\bsleep\s+(\d+(?:\.\d+)?)")
_EXIT = re.compile(r"\bexit\s+(\d+)")
_TRAP = re.compile(r"trap\s+['\"]exit\s+(\d+)['\"]\s+TERM")


def normalise(reference):
    """``busybox`` -> ``busybox:latest`` (what Docker lists as the tag)."""
    if "@" in reference:
        return reference
    last = reference.rsplit("/", 1)[-1]
    return reference if ":" in last else reference + ":latest"


class _Container:
    """One fake container."""

    def __init__(self, cid, config, image_id, created):
        self.id = cid
        self.config = config
        self.image_id = image_id
        self.created = created
        self.state = CREATED
        self.exit_code = 0
        self.started = 0.0
        self.started_at = ""
        self.finished_at = ""
        self.error = ""
        self.oom_killed = False
        self.timer = None
        self.term_exit = None

    def info(self):
        """This container as a ContainerInfo."""
        return ContainerInfo(
            id=self.id, name=self.config.name, labels=dict(self.config.labels),
            image=self.config.image, image_id=self.image_id, state=self.state,
            exit_code=self.exit_code, started_at=self.started_at,
            finished_at=self.finished_at, started=self.started, created=self.created,
            oom_killed=self.oom_killed, error=self.error)

    @property
    def argv(self):
        """The command line: entrypoint then command."""
        return list(self.config.entrypoint or []) + list(self.config.command or [])


def _program(argv):
    """``(lifetime or None for ever, exit code, exit code on SIGTERM or None)``, or a
    string saying why it cannot start."""
    if not argv:
        argv = ["sh"]
    exe = os.path.basename(argv[0])
    if exe not in APPLETS:
        return 'exec: "{}": stat {}: no such file or directory'.format(argv[0], argv[0])
    if exe == "sh":
        script = argv[2] if len(argv) > 2 and argv[1] == "-c" else ""
    else:
        script = " ".join(argv)
    trap = _TRAP.search(script)
    term_exit = int(trap.group(1)) if trap else None
    if trap:
        script = script.replace(trap.group(0), "")
    if re.search(r"\bhttpd\b.*-f", script):
        return None, 0, term_exit
    lifetime = sum(float(m) for m in _SLEEP.findall(script))
    exits = _EXIT.findall(script)
    code = int(exits[-1]) if exits else 0
    if not exits and re.search(r"(^|[;&|\s])false\s*$", script):
        code = 1
    return lifetime, code, term_exit


@implementer(IContainerRuntime)
class FakeRuntime:
    """An in-memory :class:`IContainerRuntime` on a clock (see the module docstring)."""

    name = "docker"

    def __init__(self, clock, version="20.10.24"):
        self.clock = clock
        self.version_string = version
        self.containers = {}
        self.images = {}
        #: What a pull can fetch: normalised reference -> size.
        self.registry = {}
        #: Extra files visible to exec's cat/test: container path -> bytes.
        self.files = {}
        #: ``exec_handler(container_info, argv)`` -> ExecResult, to script probes.
        self.exec_handler = None
        self.fs = FsUsage(capacity=100 * 2 ** 30, available=60 * 2 ** 30)
        self.available = True
        self.started = False
        #: Every call as ``(method, argument)``.
        self.calls = []
        #: Methods whose calls wait for :meth:`release`; those calls, oldest first.
        self.holding = set()
        self.held = []
        self._seq = 0

    # -- test controls -------------------------------------------------------------------------

    def add_image(self, reference, size=2 * 2 ** 20, created=0.0):
        """Make an image local; its id."""
        ref = normalise(reference)
        iid = "sha256:" + hashlib.sha256(ref.encode()).hexdigest()
        old = self.images.get(iid)
        tags = tuple(sorted(set((old.tags if old else ()) + (ref,))))
        self.images[iid] = ImageInfo(id=iid, tags=tags, size=size, created=created)
        return iid

    def exit(self, cid, code=0, oom=False):
        """Make a running container's process exit with ``code``."""
        container = self.containers[cid]
        if container.state == RUNNING:
            self._exited(container, code, oom)

    def running(self, **labels):
        """Ids of running containers carrying ``labels``."""
        return [c.id for c in self.containers.values() if c.state == RUNNING
                and all(c.config.labels.get(k) == v for k, v in labels.items())]

    def count(self, method):
        """How many times ``method`` was called."""
        return sum(1 for m, _ in self.calls if m == method)

    def hold(self, *methods):
        """Keep calls of ``methods`` in flight until :meth:`release` (nothing happens
        until then, as with an engine busy with other work)."""
        self.holding.update(methods)

    def in_flight(self, method=None):
        """The held calls (of ``method``) not released yet, as ``(method, argument)``."""
        return [(m, a) for m, a, _, d in self.held if method in (None, m) and not d.called]

    def release(self, count=None):
        """Complete the ``count`` oldest held calls (all when None) in call order; calls
        whose caller gave up (cancelled) are dropped without effect. Stops holding when
        ``count`` is None. Returns how many calls took effect."""
        if count is None:
            self.holding.clear()
        done = 0
        while self.held and (count is None or done < count):
            _, _, f, d = self.held.pop(0)
            if d.called:
                continue
            try:
                result = f()
            except Exception as e:
                d.errback(e)
            else:
                d.callback(result)
            done += 1
        return done

    def shutdown(self):
        """Cancel the containers' exit timers (the end of a test)."""
        for container in self.containers.values():
            if container.timer is not None and container.timer.active():
                container.timer.cancel()

    # -- helpers -------------------------------------------------------------------------------

    def _check(self, method, argument=None):
        self.calls.append((method, argument))
        if not self.available:
            raise RuntimeUnavailable("Cannot connect to the Docker daemon at "
                                     "unix:///var/run/docker.sock (fake outage)")

    def _get(self, cid):
        container = self.containers.get(cid)
        if container is None:
            for candidate in self.containers.values():
                if candidate.config.name == cid:
                    return candidate
            raise ContainerNotFound("no container {}".format(cid))
        return container

    def _find_image(self, reference):
        if reference in self.images:
            return self.images[reference]
        ref = normalise(reference)
        for image in self.images.values():
            if ref in image.tags:
                return image
        return None

    def _exited(self, container, code, oom=False):
        if container.timer is not None and container.timer.active():
            container.timer.cancel()
        container.timer = None
        container.state = EXITED
        container.exit_code = code
        container.oom_killed = oom
        container.finished_at = rfc3339(self.clock.seconds())

    def _call(self, method, argument, f):
        try:
            self._check(method, argument)
            if method in self.holding:
                d = defer.Deferred()
                self.held.append((method, argument, f, d))
                return d
            return defer.succeed(f())
        except Exception as e:
            return defer.fail(e)

    # -- the interface -------------------------------------------------------------------------

    def start(self):
        """Nothing to start."""
        self.started = True

    def stop(self):
        """Nothing to stop."""
        self.started = False
        return defer.succeed(None)

    def version(self):
        """The fake engine's version."""
        return self._call("version", None, lambda: self.version_string)

    def list_containers(self, labels=None):
        """Containers carrying all ``labels``, oldest first."""
        labels = dict(labels or {})

        def f():
            return [c.info() for c in sorted(self.containers.values(), key=lambda c: c.created)
                    if all(c.config.labels.get(k) == v for k, v in labels.items())]
        return self._call("list_containers", labels, f)

    def inspect_container(self, container_id):
        """One container (by id or name)."""
        return self._call("inspect_container", container_id,
                          lambda: self._get(container_id).info())

    def create_container(self, config):
        """Create a container, checking image, name and memory limit as Docker does."""
        def f():
            image = self._find_image(config.image)
            if image is None:
                raise ImageNotFound("No such image: {}".format(config.image))
            if any(c.config.name == config.name for c in self.containers.values()):
                raise NameConflict('Conflict. The container name "/{}" is already in use'
                                   .format(config.name))
            if config.mem_limit is not None and config.mem_limit < MIN_MEMORY:
                raise ContainerCreateError("Minimum memory limit allowed is 6MB")
            self._seq += 1
            cid = hashlib.sha256("{}-{}".format(config.name, self._seq).encode()).hexdigest()
            self.containers[cid] = _Container(cid, config, image.id,
                                              self.clock.seconds() + self._seq * 1e-6)
            return cid
        return self._call("create_container", config, f)

    def start_container(self, container_id):
        """Start the container's (interpreted) program."""
        def f():
            container = self._get(container_id)
            if container.state == RUNNING:
                return None
            program = _program(container.argv)
            if isinstance(program, str):
                container.error = ("failed to create shim task: OCI runtime create failed: "
                                   "unable to start container process: " + program)
                container.exit_code = 127
                raise ContainerStartError(container.error)
            lifetime, code, term_exit = program
            container.state = RUNNING
            container.error = ""
            container.started = self.clock.seconds()
            container.started_at = rfc3339(container.started)
            container.finished_at = ""
            container.term_exit = term_exit
            if lifetime == 0:
                self._exited(container, code)
            elif lifetime is not None:
                container.timer = self.clock.callLater(lifetime, self._exited, container, code)
            return None
        return self._call("start_container", container_id, f)

    def kill_container(self, container_id, signal):
        """SIGKILL ends it (137); SIGTERM only when the script traps it."""
        def f():
            container = self._get(container_id)
            if container.state != RUNNING:
                return None
            if signal in ("SIGKILL", "KILL", 9):
                self._exited(container, 137)
            elif signal in ("SIGTERM", "TERM", 15) and container.term_exit is not None:
                self._exited(container, container.term_exit)
            return None
        return self._call("kill_container", (container_id, signal), f)

    def remove_container(self, container_id):
        """Forget the container; a missing one is no error."""
        def f():
            try:
                container = self._get(container_id)
            except ContainerNotFound:
                return None
            if container.timer is not None and container.timer.active():
                container.timer.cancel()
            del self.containers[container.id]
            return None
        return self._call("remove_container", container_id, f)

    def exec_in_container(self, container_id, argv, timeout):
        """Run an exec through ``exec_handler`` or the small interpreter."""
        def f():
            container = self._get(container_id)
            if container.state != RUNNING:
                raise RuntimeFailure("Container {} is not running".format(container_id))
            if self.exec_handler is not None:
                return self.exec_handler(container.info(), list(argv))
            return self._interpret(container, list(argv))
        return self._call("exec_in_container", (container_id, tuple(argv)), f)

    def _read(self, container, path):
        if path in self.files:
            return self.files[path]
        for host, target, _ in container.config.binds:
            if path == target or path.startswith(target.rstrip("/") + "/"):
                host_path = host + path[len(target.rstrip("/")):]
                try:
                    with open(host_path, "rb") as f:
                        return f.read()
                except OSError:
                    return None
        return None

    def _interpret(self, container, argv):
        if argv and argv[0] == "sh" and len(argv) > 2 and argv[1] == "-c":
            match = re.fullmatch(r"\s*exit\s+(\d+)\s*", argv[2])
            if match:
                return ExecResult(int(match.group(1)))
            argv = argv[2].split()
        exe = os.path.basename(argv[0]) if argv else ""
        if exe == "true":
            return ExecResult(0)
        if exe == "false":
            return ExecResult(1)
        if exe == "echo":
            return ExecResult(0, (" ".join(argv[1:]) + "\n").encode())
        if exe == "env":
            return ExecResult(0, "".join(e + "\n" for e in container.config.env).encode())
        if exe == "cat" and len(argv) == 2:
            data = self._read(container, argv[1])
            if data is None:
                return ExecResult(1, "cat: can't open '{}': No such file or directory\n"
                                  .format(argv[1]).encode())
            return ExecResult(0, data)
        if exe == "test" and len(argv) == 3 and argv[1] in ("-f", "-e"):
            return ExecResult(0 if self._read(container, argv[2]) is not None else 1)
        if exe not in APPLETS:
            raise RuntimeFailure('OCI runtime exec failed: exec: "{}": executable file not '
                                 'found in $PATH'.format(argv[0] if argv else ""))
        return ExecResult(0)

    def inspect_image(self, reference):
        """The local image, or None."""
        return self._call("inspect_image", reference, lambda: self._find_image(reference))

    def pull_image(self, reference):
        """Pull from ``registry``, or fail like an unreachable registry."""
        def f():
            ref = normalise(reference)
            if ref not in self.registry:
                raise ImagePullError(
                    "failed to pull image {!r}: Get \"https://registry-1.docker.io/v2/\": "
                    "dial tcp: lookup registry-1.docker.io: no such host".format(reference))
            self.add_image(ref, size=self.registry[ref], created=self.clock.seconds())
            return self._find_image(ref)
        return self._call("pull_image", reference, f)

    def list_images(self):
        """Every local image."""
        return self._call("list_images", None, lambda: list(self.images.values()))

    def remove_image(self, image_id):
        """Remove an image no container uses."""
        def f():
            image = self._find_image(image_id)
            if image is None:
                raise ImageNotFound("no image {}".format(image_id))
            if any(c.image_id == image.id for c in self.containers.values()):
                raise RuntimeFailure("conflict: unable to delete {} - image is being used by "
                                     "a container".format(image.id[7:19]))
            del self.images[image.id]
            return None
        return self._call("remove_image", image_id, f)

    def image_fs_usage(self):
        """The configured ``fs`` usage."""
        return self._call("image_fs_usage", None, lambda: self.fs)


class FakeMetaManager(Module):
    """Stands in for MetaManager (module ``metaManager``) on edged's bus."""

    name = names.METAMANAGER
    group = names.META_GROUP

    def __init__(self, clock):
        super().__init__(clock)
        #: resource -> object: what the "database" holds (pods, configmaps, secrets).
        self.store = {}
        #: Every message edged sent, in order.
        self.received = []
        #: How to answer the node registration: "OK", any content, None (no answer) or
        #: ``("error", reason)``.
        self.register_reply = "OK"
        #: Whether queries are answered (False: edged's queries time out).
        self.answer_queries = True
        self._waiters = []

    # -- what edged sends ----------------------------------------------------------------------

    def handle(self, message):
        """Answer queries and registrations; record everything."""
        self.received.append(message)
        if message.operation == names.OP_QUERY and message.sync:
            if self.answer_queries:
                self.send_resp(new_response(message, self.values_for(message.resource),
                                            source=names.METAMANAGER))
        elif message.operation == names.OP_INSERT and message.sync:
            reply = self.register_reply
            if isinstance(reply, tuple):
                self.send_resp(new_error(message, reply[1], source=names.METAMANAGER))
            elif reply is not None:
                self.send_resp(new_response(message, reply, source=names.METAMANAGER))
        for predicate, d in list(self._waiters):
            if predicate(message):
                self._waiters.remove((predicate, d))
                d.callback(message)

    def values_for(self, resource):
        """KubeEdge's answer to a query: a list of JSON strings."""
        parts = parse_edge_resource(resource)
        if not parts.name:
            return [json.dumps(obj) for key, obj in sorted(self.store.items())
                    if parse_edge_resource(key).type == parts.type]
        obj = self.store.get(resource)
        return [] if obj is None else [json.dumps(obj)]

    # -- what the tests look at ----------------------------------------------------------------

    def sent(self, operation=None, rtype=None):
        """Messages from edged, filtered by operation and resource type."""
        result = []
        for message in self.received:
            if operation is not None and message.operation != operation:
                continue
            if rtype is not None:
                try:
                    if parse_edge_resource(message.resource).type != rtype:
                        continue
                except ValueError:
                    continue
            result.append(message)
        return result

    def statuses(self, name, namespace="default"):
        """Every pod status edged reported for a pod, oldest first."""
        resource = "{}/{}/{}".format(namespace, names.RES_PODSTATUS, name)
        return [m.content["Status"] for m in self.received
                if m.operation == names.OP_UPDATE and m.resource == resource]

    def status(self, name, namespace="default"):
        """The latest pod status reported for a pod, or None."""
        statuses = self.statuses(name, namespace)
        return statuses[-1] if statuses else None

    def container_status(self, pod, container, namespace="default"):
        """The latest status of one container of a pod, or None."""
        status = self.status(pod, namespace) or {}
        for entry in status.get("containerStatuses") or ():
            if entry["name"] == container:
                return entry
        return None

    def wait_for(self, predicate):
        """A Deferred firing with the first message (seen or to come) that matches."""
        for message in self.received:
            if predicate(message):
                return defer.succeed(message)
        d = defer.Deferred()
        self._waiters.append((predicate, d))
        return d

    # -- what the "cloud" does -----------------------------------------------------------------

    def push(self, operation, resource, obj):
        """Forward a cloud message to edged as MetaManager does (after storing it)."""
        if operation == names.OP_DELETE:
            self.store.pop(resource, None)
        else:
            self.store[resource] = obj
        self.bus.send(names.EDGED, new_message("edgecontroller", names.WIRE_GROUP_RESOURCE,
                                               operation, resource, obj, clock=self.clock))

    def add_pod(self, pod, operation=names.OP_UPDATE):
        """Store and forward a pod (cloudcore v1.15 sends new pods as ``update``)."""
        meta = pod["metadata"]
        self.push(operation, "{}/pod/{}".format(meta.get("namespace", "default"),
                                                meta["name"]), pod)

    def delete_pod(self, name, namespace="default", uid=None):
        """The cloud deleted a pod: remove and forward ``delete``."""
        content = {"metadata": {"name": name, "namespace": namespace}}
        if uid:
            content["metadata"]["uid"] = uid
        self.push(names.OP_DELETE, "{}/pod/{}".format(namespace, name), content)

    def put_object(self, kind, obj, push=True):
        """Store a ConfigMap (``configmap``) or Secret (``secret``); forward it as an
        ``update`` when ``push``."""
        meta = obj["metadata"]
        resource = "{}/{}/{}".format(meta.get("namespace", "default"), kind, meta["name"])
        if push:
            self.push(names.OP_UPDATE, resource, obj)
        else:
            self.store[resource] = obj


def fixed_facts(interface_name="eth0", node_ip="", memory_fallback=0):
    """Node facts for unit tests (the pool function's signature)."""
    return NodeFacts(cpus=2, memory_total=4 * 2 ** 30, memory_available=3 * 2 ** 30,
                     kernel="6.1.0-test", os_image="Debian GNU/Linux 12 (bookworm)",
                     arch="amd64", machine_id="m-1", system_uuid="s-1", boot_id="b-1",
                     ip=node_ip or "192.0.2.10")


def make_pod(name, containers=None, namespace="default", uid=None, restart_policy=None,
             volumes=None, grace=None, **spec):
    """A v1.Pod dict; containers default to one ``sleep 3600`` busybox container."""
    if containers is None:
        containers = [{"name": "main", "image": TEST_IMAGE, "imagePullPolicy": "IfNotPresent",
                       "command": ["sleep", "3600"]}]
    body = dict(spec)
    body["containers"] = containers
    if restart_policy:
        body["restartPolicy"] = restart_policy
    if volumes is not None:
        body["volumes"] = volumes
    if grace is not None:
        body["terminationGracePeriodSeconds"] = grace
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace,
                         "uid": uid or "uid-" + name, "labels": {"app": name}},
            "spec": body}


class EdgedHarness:
    """A real :class:`Edged` with a :class:`FakeRuntime` and a :class:`FakeMetaManager`
    on one bus, all on a ``Clock``; the state dir is a test temp dir."""

    def __init__(self, testcase, clock=None, runtime=None, volume_root=None, **edged_kw):
        self.testcase = testcase
        self.clock = clock or Clock()
        self.bus = Bus(self.clock)
        self.runtime = runtime or FakeRuntime(self.clock)
        if runtime is None:
            self.runtime.add_image(TEST_IMAGE)
        self.meta = FakeMetaManager(self.clock)
        self.bus.register(self.meta)
        if volume_root is None:
            volume_root = os.path.abspath(testcase.mktemp())
            os.makedirs(volume_root)
        self.volume_root = volume_root
        kw = dict(runtime=self.runtime, pool=InlinePool(), node_name="edge-1",
                  volume_root=self.volume_root, prober=Prober(self.clock, self.runtime),
                  facts=fixed_facts, query_timeout=15)
        kw.update(edged_kw)
        self.edged = Edged(self.clock, **kw)
        self.bus.register(self.edged)

    def start(self):
        """Start MetaManager's stand-in and edged; run what is due."""
        self.meta.startService()
        self.edged.startService()
        self.pump()

    def pump(self):
        """Run every call due now (message drains, zero-delay retries) until quiet."""
        for _ in range(1000):
            due = [c for c in self.clock.getDelayedCalls()
                   if c.getTime() <= self.clock.seconds()]
            if not due:
                return
            self.clock.advance(0)
        raise AssertionError("the clock never went quiet")

    def advance(self, seconds, step=0.5):
        """Let ``seconds`` pass in steps of ``step``, running what falls due."""
        left = seconds
        while left > 1e-9:
            now = min(step, left)
            self.clock.advance(now)
            self.pump()
            left -= now

    def stop(self):
        """Stop edged and the stand-in, then the bus; return edged's stop Deferred."""
        d = self.edged.stopService()
        self.pump()
        if self.meta.running:
            self.meta.stopService()
        self.bus.stop()
        self.runtime.shutdown()
        return d
