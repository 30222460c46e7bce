"""The Docker engine as edged's container runtime, over the docker SDK (``docker.APIClient``).

Every SDK call happens in a ``_thd_*`` method run on the ``docker`` thread pool
(:class:`~kubeedge_tw.edge.edged.pool.BlockingPool`) through ``deferToThreadPool``; the
public methods return Deferreds (STYLE.md 2.10, Buildbot ``worker/docker.py``). SDK and
transport errors are turned into the runtime errors of
:mod:`~kubeedge_tw.edge.edged.runtime`, with Docker's own explanation as the message, so
that a pod status can show it. A lost engine gives ``RuntimeUnavailable`` and the client
is made again on the next call, so edged recovers when dockerd comes back.

The SDK (with requests, urllib3 and their parts: about 7 MiB resident) is imported by the
first ``_thd_*`` call, on the pool: starting edged does not wait for it.

Listing is cheap at idle: containers are listed with a label filter (one API call) and
inspected only when their state word changed since the last listing.
"""

import os
import threading

from zope.interface import implementer

from kubeedge_tw.edge.edged.runtime import (
    ContainerCreateError, ContainerInfo, ContainerNotFound, ContainerStartError, ExecResult,
    FsUsage, IContainerRuntime, ImageInfo, ImageNotFound, ImagePullError, NameConflict,
    RuntimeFailure, RuntimeUnavailable, parse_rfc3339)

__all__ = ["DockerRuntime", "DEFAULT_DOCKER_ADDRESS"]

DEFAULT_DOCKER_ADDRESS = "unix:///var/run/docker.sock"


def _sdk():
    """``(docker, requests)``, imported on first use. Only code running on the ``docker``
    pool calls this, so the import never holds up the reactor."""
    import docker
    import requests
    return docker, requests


def _explanation(error):
    """Docker's explanation of an ``APIError`` (its message body), else ``str(error)``."""
    explanation = getattr(error, "explanation", None)
    if isinstance(explanation, bytes):
        explanation = explanation.decode("utf-8", errors="replace")
    return str(explanation or error).strip()


def _info_from_inspect(data):
    """A :class:`ContainerInfo` from ``docker inspect`` JSON."""
    state = data.get("State") or {}
    config = data.get("Config") or {}
    started_at, started = parse_rfc3339(state.get("StartedAt", ""))
    finished_at, _ = parse_rfc3339(state.get("FinishedAt", ""))
    _, created = parse_rfc3339(data.get("Created", ""))
    return ContainerInfo(
        id=data["Id"], name=(data.get("Name") or "").lstrip("/"),
        labels=dict(config.get("Labels") or {}), image=config.get("Image") or "",
        image_id=data.get("Image") or "", state=state.get("Status") or "unknown",
        exit_code=int(state.get("ExitCode") or 0), started_at=started_at,
        finished_at=finished_at, started=started, created=created,
        oom_killed=bool(state.get("OOMKilled")), error=(state.get("Error") or "").strip())


def _image_info(data):
    """An :class:`ImageInfo` from ``docker images`` or ``docker image inspect`` JSON."""
    tags = tuple(t for t in (data.get("RepoTags") or ()) if t and t != "<none>:<none>")
    created = data.get("Created")
    if isinstance(created, str):
        created = parse_rfc3339(created)[1]
    return ImageInfo(id=data["Id"], tags=tags, size=int(data.get("Size") or 0),
                     created=float(created or 0))


def _label_filter(labels):
    return {"label": ["{}={}".format(k, v) for k, v in sorted(labels.items())]}


@implementer(IContainerRuntime)
class DockerRuntime:
    """:class:`IContainerRuntime` on the Docker engine at ``base_url``."""

    name = "docker"

    def __init__(self, pool, base_url=DEFAULT_DOCKER_ADDRESS, timeout=120):
        self.pool = pool
        self.base_url = base_url
        #: Seconds a single SDK request may take (``runtimeRequestTimeout``).
        self.timeout = timeout
        self._lock = threading.Lock()
        self._client_obj = None
        self._api_version = None
        self._root_dir = None
        # container id -> (state word of the last listing, ContainerInfo)
        self._inspected = {}

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self):
        """Start the thread pool."""
        self.pool.start()

    def stop(self):
        """Stop the thread pool (containers keep running); a fired Deferred."""
        from twisted.internet import defer
        self.pool.stop()
        with self._lock:
            client, self._client_obj = self._client_obj, None
        if client is not None:
            client.close()
        return defer.succeed(None)

    # -- client --------------------------------------------------------------------------------

    def _client(self):
        """The SDK client, made (and the engine's API version learnt) on first use."""
        with self._lock:
            if self._client_obj is None:
                try:
                    docker, requests = _sdk()
                except ImportError as e:
                    raise RuntimeUnavailable("the docker SDK cannot be loaded: {}".format(e)) \
                        from None
                try:
                    client = docker.APIClient(base_url=self.base_url, version="auto",
                                              timeout=self.timeout)
                except (docker.errors.DockerException, requests.RequestException,
                        OSError) as e:
                    raise RuntimeUnavailable("cannot connect to the Docker engine at {}: {}"
                                             .format(self.base_url, e)) from None
                self._client_obj = client
                self._api_version = client.api_version
            return self._client_obj

    def _lost(self, error):
        """Forget the client after a transport error; the RuntimeUnavailable to raise."""
        with self._lock:
            client, self._client_obj = self._client_obj, None
        if client is not None:
            client.close()
        return RuntimeUnavailable("the Docker engine at {} does not answer: {}".format(
            self.base_url, error))

    def _call(self, f, *args):
        """Run ``f(client, *args)`` on the pool, mapping transport errors."""
        def thd():
            client = self._client()
            docker, requests = _sdk()
            try:
                return f(client, *args)
            except RuntimeFailure:
                raise
            except docker.errors.APIError as e:
                raise RuntimeFailure(_explanation(e)) from None
            except (requests.ConnectionError, requests.Timeout, ConnectionError) as e:
                raise self._lost(e) from None
            except docker.errors.DockerException as e:
                raise RuntimeFailure(str(e)) from None
        return self.pool.run(thd)

    # -- the interface -------------------------------------------------------------------------

    def version(self):
        """The engine's version (``docker version``'s Server.Version)."""
        return self._call(self._thd_version)

    def list_containers(self, labels=None):
        """Every container carrying ``labels``, in any state."""
        return self._call(self._thd_list_containers, dict(labels or {}))

    def inspect_container(self, container_id):
        """One container's :class:`ContainerInfo`."""
        return self._call(self._thd_inspect_container, container_id)

    def create_container(self, config):
        """Create a host-network container; its id."""
        return self._call(self._thd_create_container, config)

    def start_container(self, container_id):
        """Start a created container."""
        return self._call(self._thd_start_container, container_id)

    def kill_container(self, container_id, signal):
        """Signal a running container; no error when it does not run."""
        return self._call(self._thd_kill_container, container_id, signal)

    def remove_container(self, container_id):
        """Remove a container with its anonymous volumes; no error when it is gone."""
        return self._call(self._thd_remove_container, container_id)

    def exec_in_container(self, container_id, argv, timeout):
        """Run ``argv`` in the container; fails after ``timeout`` seconds."""
        return self._call(self._thd_exec, container_id, list(argv), timeout)

    def inspect_image(self, reference):
        """A local image's :class:`ImageInfo`, or None."""
        return self._call(self._thd_inspect_image, reference)

    def pull_image(self, reference):
        """Pull ``reference``; its :class:`ImageInfo`."""
        return self._call(self._thd_pull_image, reference)

    def list_images(self):
        """Every local image."""
        return self._call(self._thd_list_images)

    def remove_image(self, image_id):
        """Remove an image (not forced: Docker refuses images containers use)."""
        return self._call(self._thd_remove_image, image_id)

    def image_fs_usage(self):
        """Capacity and free space of Docker's root directory's filesystem."""
        return self._call(self._thd_image_fs_usage)

    # -- on the pool ---------------------------------------------------------------------------

    def _thd_version(self, client):
        return str(client.version().get("Version") or "unknown")

    def _thd_list_containers(self, client, labels):
        docker, _ = _sdk()
        summaries = client.containers(all=True, filters=_label_filter(labels) if labels
                                      else None)
        seen, result = set(), []
        for summary in summaries:
            cid = summary["Id"]
            seen.add(cid)
            word = summary.get("State") or ""
            with self._lock:
                cached = self._inspected.get(cid)
            if cached is not None and cached[0] == word:
                result.append(cached[1])
                continue
            try:
                info = _info_from_inspect(client.inspect_container(cid))
            except docker.errors.NotFound:
                continue  # removed between the list and the inspect
            with self._lock:
                self._inspected[cid] = (word, info)
            result.append(info)
        with self._lock:
            for cid in list(self._inspected):
                info = self._inspected[cid][1]
                if cid not in seen and all(info.labels.get(k) == v for k, v in labels.items()):
                    del self._inspected[cid]
        return result

    def _thd_inspect_container(self, client, container_id):
        docker, _ = _sdk()
        try:
            return _info_from_inspect(client.inspect_container(container_id))
        except docker.errors.NotFound:
            raise ContainerNotFound("no container {}".format(container_id)) from None

    def _thd_create_container(self, client, config):
        docker, _ = _sdk()
        binds = ["{}:{}:{}".format(host, path, "ro" if read_only else "rw")
                 for host, path, read_only in config.binds]
        host_config = client.create_host_config(
            network_mode="host", binds=binds or None, mem_limit=config.mem_limit,
            memswap_limit=config.mem_limit, nano_cpus=config.nano_cpus,
            cpu_shares=config.cpu_shares, privileged=config.privileged)
        try:
            created = client.create_container(
                config.image, command=config.command, entrypoint=config.entrypoint,
                environment=list(config.env) or None, working_dir=config.working_dir or None,
                labels=dict(config.labels), name=config.name, tty=config.tty,
                stdin_open=config.stdin, host_config=host_config)
        except docker.errors.ImageNotFound as e:
            raise ImageNotFound(_explanation(e)) from None
        except docker.errors.APIError as e:
            if e.status_code == 409:
                raise NameConflict(_explanation(e)) from None
            if e.status_code == 404:
                raise ImageNotFound(_explanation(e)) from None
            raise ContainerCreateError(_explanation(e)) from None
        return created["Id"]

    def _thd_start_container(self, client, container_id):
        docker, _ = _sdk()
        try:
            client.start(container_id)
        except docker.errors.NotFound:
            raise ContainerNotFound("no container {}".format(container_id)) from None
        except docker.errors.APIError as e:
            raise ContainerStartError(_explanation(e)) from None

    def _thd_kill_container(self, client, container_id, signal):
        docker, _ = _sdk()
        try:
            client.kill(container_id, signal=signal)
        except docker.errors.NotFound:
            raise ContainerNotFound("no container {}".format(container_id)) from None
        except docker.errors.APIError as e:
            if e.status_code == 409:  # "is not running"
                return
            raise RuntimeFailure(_explanation(e)) from None

    def _thd_remove_container(self, client, container_id):
        docker, _ = _sdk()
        try:
            client.remove_container(container_id, v=True, force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as e:
            if e.status_code == 409 and "already in progress" in _explanation(e):
                return
            raise RuntimeFailure(_explanation(e)) from None
        with self._lock:
            self._inspected.pop(container_id, None)

    def _thd_exec(self, client, container_id, argv, timeout):
        docker, requests = _sdk()
        # A client of its own whose socket timeout is the probe's, so that a hung command
        # frees this pool thread when its time is up.
        short = docker.APIClient(base_url=self.base_url, version=self._api_version,
                                 timeout=max(1, timeout))
        try:
            created = short.exec_create(container_id, argv, stdout=True, stderr=True)
            output = short.exec_start(created["Id"])
            code = short.exec_inspect(created["Id"]).get("ExitCode")
        except docker.errors.NotFound:
            raise ContainerNotFound("no container {}".format(container_id)) from None
        except docker.errors.APIError as e:
            raise RuntimeFailure(_explanation(e)) from None
        except requests.Timeout:
            raise RuntimeFailure("command {} timed out after {}s".format(argv, timeout)) \
                from None
        finally:
            short.close()
        return ExecResult(exit_code=-1 if code is None else int(code), output=output or b"")

    def _thd_inspect_image(self, client, reference):
        docker, _ = _sdk()
        try:
            return _image_info(client.inspect_image(reference))
        except docker.errors.NotFound:
            return None
        except docker.errors.APIError as e:
            if e.status_code in (400, 404):
                return None
            raise RuntimeFailure(_explanation(e)) from None

    def _thd_pull_image(self, client, reference):
        docker, requests = _sdk()
        try:
            for line in client.pull(reference, stream=True, decode=True):
                if isinstance(line, dict) and line.get("error"):
                    raise ImagePullError("failed to pull image {!r}: {}".format(
                        reference, line["error"]))
        except docker.errors.APIError as e:
            raise ImagePullError("failed to pull image {!r}: {}".format(
                reference, _explanation(e))) from None
        except requests.Timeout as e:
            raise ImagePullError("failed to pull image {!r}: {}".format(reference, e)) \
                from None
        info = self._thd_inspect_image(client, reference)
        if info is None:
            raise ImagePullError("image {!r} is not present after its pull".format(reference))
        return info

    def _thd_list_images(self, client):
        return [_image_info(data) for data in client.images()]

    def _thd_remove_image(self, client, image_id):
        docker, _ = _sdk()
        try:
            client.remove_image(image_id)
        except docker.errors.NotFound:
            raise ImageNotFound("no image {}".format(image_id)) from None
        except docker.errors.APIError as e:
            raise RuntimeFailure(_explanation(e)) from None

    def _thd_image_fs_usage(self, client):
        if self._root_dir is None:
            self._root_dir = client.info().get("DockerRootDir") or "/var/lib/docker"
        try:
            st = os.statvfs(self._root_dir)
        except OSError:
            st = os.statvfs("/")
        return FsUsage(capacity=st.f_blocks * st.f_frsize, available=st.f_bavail * st.f_frsize)
