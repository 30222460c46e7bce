"""The container runtime interface edged drives, its value types, errors and labels.

Edged never talks to Docker directly: it calls an :class:`IContainerRuntime` whose every
method returns a Deferred. :class:`~kubeedge_tw.edge.edged.docker_runtime.DockerRuntime`
implements it over the docker SDK on the ``docker`` thread pool; the unit tests use an
in-memory fake (``tests.edge.edged.fakes.FakeRuntime``) that is checked against the same
contract as the real one (``tests.edge.edged.contract``).

Containers carry the labels kubelet's dockershim used (``io.kubernetes.pod.uid`` ...), plus
the node name and a ``managed-by`` marker, so a restarted edged finds and adopts them.
"""

import calendar
import time
from dataclasses import dataclass, field

from zope.interface import Attribute, Interface

__all__ = [
    "IContainerRuntime", "ContainerInfo", "ContainerConfig", "ImageInfo", "ExecResult",
    "FsUsage", "RuntimeFailure", "RuntimeUnavailable", "ContainerNotFound", "NameConflict",
    "ContainerCreateError", "ContainerStartError", "ImagePullError", "ImageNotFound",
    "LABEL_POD_NAME", "LABEL_POD_NAMESPACE", "LABEL_POD_UID", "LABEL_CONTAINER_NAME",
    "LABEL_RESTART_COUNT", "LABEL_CONTAINER_HASH", "LABEL_GRACE_PERIOD", "LABEL_MANAGED_BY",
    "LABEL_NODE", "MANAGED_BY", "RUNNING", "EXITED", "CREATED", "DEAD", "rfc3339",
    "parse_rfc3339", "container_name",
]

# -- labels (kubelet dockershim's names, plus ours) -------------------------------------------
LABEL_POD_NAME = "io.kubernetes.pod.name"
LABEL_POD_NAMESPACE = "io.kubernetes.pod.namespace"
LABEL_POD_UID = "io.kubernetes.pod.uid"
LABEL_CONTAINER_NAME = "io.kubernetes.container.name"
LABEL_RESTART_COUNT = "io.kubernetes.container.restartCount"
LABEL_CONTAINER_HASH = "io.kubernetes.container.hash"
LABEL_GRACE_PERIOD = "io.kubernetes.pod.terminationGracePeriod"
LABEL_MANAGED_BY = "io.kubeedge-tw.managed-by"
LABEL_NODE = "io.kubeedge-tw.node"
#: Value of :data:`LABEL_MANAGED_BY` on every container edged creates.
MANAGED_BY = "edged"

# -- container states (Docker's ``State.Status`` words) ---------------------------------------
RUNNING = "running"
EXITED = "exited"
CREATED = "created"
DEAD = "dead"


def rfc3339(seconds):
    """``seconds`` since the epoch as Kubernetes writes times: ``2024-01-02T03:04:05Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def parse_rfc3339(text):
    """Docker's RFC 3339 time (nanoseconds allowed) as ``(k8s string, epoch seconds)``;
    Go's zero time ``0001-01-01T00:00:00Z`` and "" give ``("", 0.0)``."""
    if not text or text.startswith("0001-01-01"):
        return "", 0.0
    head = text[:19]
    try:
        seconds = calendar.timegm(time.strptime(head, "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return "", 0.0
    return head + "Z", float(seconds)


def container_name(pod_namespace, pod_name, pod_uid, name, restart_count):
    """The Docker name of one container run, as kubelet's dockershim spelled it:
    ``k8s_<container>_<pod>_<namespace>_<uid>_<restartCount>``."""
    return "k8s_{}_{}_{}_{}_{}".format(name, pod_name, pod_namespace, pod_uid, restart_count)


# -- values ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ContainerInfo:
    """One container as the runtime reports it."""

    id: str
    name: str
    labels: dict
    #: The image reference the container was created from.
    image: str
    #: The image's id (``sha256:...``).
    image_id: str
    #: ``running``, ``exited``, ``created``, ``dead``, ... (Docker's ``State.Status``).
    state: str
    exit_code: int = 0
    #: Times as Kubernetes strings ("" when never), and the start as epoch seconds.
    started_at: str = ""
    finished_at: str = ""
    started: float = 0.0
    #: Creation time, epoch seconds (orders runs of the same container).
    created: float = 0.0
    oom_killed: bool = False
    #: Why the runtime could not start it ("" if it could).
    error: str = ""

    @property
    def running(self):
        """Whether the container's process runs."""
        return self.state == RUNNING

    @property
    def dead(self):
        """Whether the container ran and stopped, or could not start at all."""
        return self.state in (EXITED, DEAD) or (self.state == CREATED and bool(self.error))

    def label(self, key, default=""):
        """A label's value, or ``default``."""
        return self.labels.get(key, default)

    @property
    def restart_count(self):
        """The run number edged gave this container (0 for the first run)."""
        try:
            return int(self.labels.get(LABEL_RESTART_COUNT, "0"))
        except ValueError:
            return 0


@dataclass(frozen=True)
class ContainerConfig:
    """What edged asks the runtime to create: one pod container, host networking."""

    name: str
    image: str
    labels: dict
    #: Kubernetes ``command`` (replaces the image's ENTRYPOINT) and ``args`` (its CMD);
    #: None keeps the image's.
    entrypoint: list = None
    command: list = None
    env: list = field(default_factory=list)
    working_dir: str = ""
    #: ``(host path, container path, read_only)`` bind mounts.
    binds: list = field(default_factory=list)
    mem_limit: int = None
    nano_cpus: int = None
    cpu_shares: int = None
    tty: bool = False
    stdin: bool = False
    privileged: bool = False


@dataclass(frozen=True)
class ImageInfo:
    """One local image."""

    id: str
    tags: tuple = ()
    size: int = 0
    created: float = 0.0


@dataclass(frozen=True)
class ExecResult:
    """What a command run in a container gave."""

    exit_code: int
    output: bytes = b""


@dataclass(frozen=True)
class FsUsage:
    """Capacity and free bytes of the filesystem holding images."""

    capacity: int
    available: int

    @property
    def used_percent(self):
        """Used share of the capacity, 0-100."""
        if self.capacity <= 0:
            return 0.0
        return 100.0 * (self.capacity - self.available) / self.capacity


# -- errors ------------------------------------------------------------------------------------

class RuntimeFailure(Exception):
    """A runtime call failed; ``str()`` is a message meant for a pod status or a log."""


class RuntimeUnavailable(RuntimeFailure):
    """The runtime (the Docker engine) does not answer."""


class ContainerNotFound(RuntimeFailure):
    """No such container."""


class NameConflict(RuntimeFailure):
    """A container with that name exists already."""


class ContainerCreateError(RuntimeFailure):
    """The runtime refused to create the container (bad config, missing image...)."""


class ContainerStartError(RuntimeFailure):
    """The container was created but its process could not start."""


class ImagePullError(RuntimeFailure):
    """An image could not be pulled."""


class ImageNotFound(RuntimeFailure):
    """No such image."""


class IContainerRuntime(Interface):
    """What edged needs from a container runtime; every method returns a Deferred."""

    name = Attribute("Runtime name, the prefix of container ids in pod status (docker).")

    def start():
        """Get ready to serve calls (start the thread pool)."""

    def stop():
        """Stop serving calls; containers keep running. A Deferred."""

    def version():
        """The engine's version string (``20.10.24``)."""

    def list_containers(labels=None):
        """``[ContainerInfo]`` of every container, in any state, carrying all ``labels``
        (a dict; None: every container of the host)."""

    def inspect_container(container_id):
        """The :class:`ContainerInfo` of one container, or fail with ContainerNotFound."""

    def create_container(config):
        """Create a container from a :class:`ContainerConfig`; its id. Fails with
        NameConflict, ImageNotFound or ContainerCreateError."""

    def start_container(container_id):
        """Start a created container; ContainerStartError when its process cannot run."""

    def kill_container(container_id, signal):
        """Send ``signal`` (``SIGTERM``, ``SIGKILL``) to a container's main process; a
        container that does not run is left as it is."""

    def remove_container(container_id):
        """Remove a container (killing it if it runs); a missing one is no error."""

    def exec_in_container(container_id, argv, timeout):
        """Run ``argv`` in a running container; an :class:`ExecResult`. Fails with
        RuntimeFailure when it cannot run or does not finish within ``timeout`` s."""

    def inspect_image(reference):
        """The :class:`ImageInfo` of a local image, or None when it is not here."""

    def pull_image(reference):
        """Pull an image; its :class:`ImageInfo`, or fail with ImagePullError."""

    def list_images():
        """``[ImageInfo]`` of every local image."""

    def remove_image(image_id):
        """Remove an image; ImageNotFound when it is not there."""

    def image_fs_usage():
        """The :class:`FsUsage` of the filesystem holding images and containers."""
