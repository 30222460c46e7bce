"""Pod volumes on the edge's disk: configMap, secret, downwardAPI, projected, emptyDir and
hostPath (reference 5, Volumes).

Each pod's volumes live under ``<root>/pods/<uid>/volumes/<kind>/<name>`` and are bind
mounted into its containers. ConfigMap, Secret, downward API and projected volumes are
written the way kubelet's ``AtomicWriter`` does: the files go into a fresh hidden
directory, a ``..data`` symlink is switched to it with one ``rename``, and each visible
name is a symlink through ``..data``. A container that mounted the volume directory
therefore sees a changed ConfigMap all at once, in place, without a restart. Files get
their ``defaultMode``/``items[].mode``.

The file work runs in ``_thd_*`` functions on edged's pool.
"""

import hashlib
import os
import shutil
import stat
import tempfile

from twisted.logger import Logger

from kubeedge_tw.common import names
from kubeedge_tw.edge.edged.configs import (
    ConfigError, QueryFailed, field_value, object_data, resource_field_value)

__all__ = ["VolumeManager", "VolumeError", "DEFAULT_MODE", "DATA_LINK"]

DEFAULT_MODE = 0o644
DATA_LINK = "..data"
_TMP_LINK = "..data_tmp"
#: Volume kinds whose content edged writes (mounted read-only, like kubelet).
WRITTEN_KINDS = ("configMap", "secret", "downwardAPI", "projected")
_DIR_NAMES = {"configMap": "configmap", "secret": "secret", "downwardAPI": "downward-api",
              "projected": "projected", "emptyDir": "empty-dir"}


class VolumeError(Exception):
    """A volume cannot be set up now; the message goes in the pod status and the pod is
    tried again later."""


def _thd_write_atomic(target, payload):
    """Write ``payload`` (``{relative path: (bytes, mode)}``) into ``target`` atomically
    (kubelet's AtomicWriter layout)."""
    os.makedirs(target, exist_ok=True)
    os.chmod(target, 0o755)
    fresh = tempfile.mkdtemp(prefix="..", dir=target)
    for rel, (data, mode) in sorted(payload.items()):
        path = os.path.join(fresh, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, mode)
    for dirpath, dirnames, _ in os.walk(fresh):
        for d in dirnames:
            os.chmod(os.path.join(dirpath, d), 0o755)
    os.chmod(fresh, 0o755)
    tmp_link = os.path.join(target, _TMP_LINK)
    if os.path.lexists(tmp_link):
        os.unlink(tmp_link)
    os.symlink(os.path.basename(fresh), tmp_link)
    os.rename(tmp_link, os.path.join(target, DATA_LINK))
    tops = {rel.split("/", 1)[0] for rel in payload}
    for top in tops:
        link = os.path.join(target, top)
        if not os.path.lexists(link):
            os.symlink(os.path.join(DATA_LINK, top), link)
    for entry in os.listdir(target):
        path = os.path.join(target, entry)
        if entry.startswith(".."):
            if entry not in (DATA_LINK, os.path.basename(fresh)) and os.path.isdir(path) \
                    and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
        elif entry not in tops and os.path.islink(path):
            os.unlink(path)


def _thd_make_dir(path, mode):
    """Create ``path`` (and parents) and give it ``mode`` whatever the umask."""
    os.makedirs(path, exist_ok=True)
    os.chmod(path, mode)


def _thd_make_missing_dir(path):
    """Create directory ``path`` (mode 0755) unless something exists there."""
    if not os.path.lexists(path):
        os.makedirs(path, mode=0o755, exist_ok=True)


def _thd_check_host_path(path, kind):
    """kubelet's hostPath type checks; creates what ``*OrCreate`` asks for. Returns a
    problem message or ""."""
    if kind == "DirectoryOrCreate":
        if not os.path.exists(path):
            os.makedirs(path, mode=0o755, exist_ok=True)
        kind = "Directory"
    elif kind == "FileOrCreate":
        if not os.path.exists(path):
            if not os.path.isdir(os.path.dirname(path)):
                return "hostPath {}: parent directory does not exist".format(path)
            with open(path, "ab"):
                pass
            os.chmod(path, 0o644)
        kind = "File"
    if not kind:
        return ""
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        return "hostPath type check failed: {} does not exist ({})".format(path, e.strerror)
    checks = {"Directory": stat.S_ISDIR, "File": stat.S_ISREG, "Socket": stat.S_ISSOCK,
              "CharDevice": stat.S_ISCHR, "BlockDevice": stat.S_ISBLK}
    if not checks[kind](mode):
        return "hostPath type check failed: {} is not a {}".format(path, kind)
    return ""


def _thd_remove_tree(path):
    shutil.rmtree(path, ignore_errors=True)


def _digest(payload):
    h = hashlib.sha256()
    for rel in sorted(payload):
        data, mode = payload[rel]
        h.update(rel.encode("utf-8") + b"\0" + str(mode).encode() + b"\0")
        h.update(hashlib.sha256(data).digest())
    return h.hexdigest()


class VolumeManager:
    """Sets up and removes pod volumes.

    ``lookup(namespace, type, name)`` returns a ConfigMap/Secret or None (it may raise
    :class:`~kubeedge_tw.edge.edged.configs.QueryFailed`)."""

    log = Logger()

    def __init__(self, root, pool, lookup, node_name, allocatable=None):
        self.root = root
        self.pool = pool
        self.lookup = lookup
        self.node_name = node_name
        self.allocatable = allocatable or {}
        self.node_ip = "127.0.0.1"
        # uid -> {volume name: digest of what was written}
        self._written = {}

    def pod_dir(self, uid):
        """Where a pod's volumes live."""
        return os.path.join(self.root, "pods", uid)

    def volume_dir(self, uid, kind, name):
        """Where one volume lives (hostPath volumes live where they say)."""
        return os.path.join(self.pod_dir(uid), "volumes", _DIR_NAMES[kind], name)

    async def setup(self, pod, spec):
        """Make every volume of the pod current; ``{name: (kind, host path)}``.
        Raises :class:`VolumeError` naming the volume that cannot be set up."""
        written = self._written.setdefault(spec.uid, {})
        result = {}
        for name, (kind, source) in sorted(spec.volumes.items()):
            try:
                result[name] = (kind, await self._setup_one(pod, spec, name, kind, source,
                                                             written))
            except (ConfigError, QueryFailed) as e:
                raise VolumeError('MountVolume.SetUp failed for volume "{}": {}'.format(
                    name, e)) from None
            except OSError as e:
                raise VolumeError('MountVolume.SetUp failed for volume "{}": {}'.format(
                    name, e)) from None
        return result

    async def _setup_one(self, pod, spec, name, kind, source, written):
        if kind == "hostPath":
            problem = await self.pool.run(_thd_check_host_path, source["path"],
                                          source.get("type") or "")
            if problem:
                raise ConfigError(problem)
            return source["path"]
        target = self.volume_dir(spec.uid, kind, name)
        if kind == "emptyDir":
            if written.get(name) != "dir":
                await self.pool.run(_thd_make_dir, target, 0o777)
                written[name] = "dir"
            return target
        payload = await self._payload(pod, spec, name, kind, source)
        digest = _digest(payload)
        if written.get(name) != digest:
            await self.pool.run(_thd_write_atomic, target, payload)
            written[name] = digest
            self.log.debug("edged wrote volume {volume} of pod {pod}", volume=name,
                           pod=spec.name)
        return target

    async def _payload(self, pod, spec, name, kind, source):
        default_mode = source.get("defaultMode")
        default_mode = DEFAULT_MODE if default_mode is None else default_mode
        if kind == "configMap":
            return await self._object_payload(spec.namespace, names.RES_CONFIGMAP, "configmap",
                                              source.get("name"), source, default_mode,
                                              bool(source.get("optional")))
        if kind == "secret":
            return await self._object_payload(spec.namespace, names.RES_SECRET, "secret",
                                              source.get("secretName"), source, default_mode,
                                              bool(source.get("optional")))
        if kind == "downwardAPI":
            return self._downward_payload(pod, source.get("items") or (), default_mode)
        payload = {}
        # The API server adds a projected "kube-api-access-*" volume to every pod; the
        # token in it cannot be had offline, so its parts are best effort.
        best_effort = name.startswith("kube-api-access-")
        for entry in source.get("sources") or ():
            if entry.get("configMap") is not None:
                sub = entry["configMap"]
                payload.update(await self._object_payload(
                    spec.namespace, names.RES_CONFIGMAP, "configmap", sub.get("name"), sub,
                    default_mode, bool(sub.get("optional")) or best_effort))
            elif entry.get("secret") is not None:
                sub = entry["secret"]
                payload.update(await self._object_payload(
                    spec.namespace, names.RES_SECRET, "secret", sub.get("name"), sub,
                    default_mode, bool(sub.get("optional")) or best_effort))
            elif entry.get("downwardAPI") is not None:
                payload.update(self._downward_payload(
                    pod, entry["downwardAPI"].get("items") or (), default_mode))
            # serviceAccountToken: not available on this edge; the file is left out.
        return payload

    async def _object_payload(self, namespace, rtype, what, obj_name, source, default_mode,
                              optional):
        try:
            obj = await self.lookup(namespace, rtype, obj_name)
        except QueryFailed as e:
            if optional:
                return {}
            raise QueryFailed('{} "{}" could not be fetched: {}'.format(what, obj_name, e)) \
                from None
        if obj is None:
            if optional:
                return {}
            raise ConfigError('{} "{}" not found'.format(what, obj_name))
        data = object_data(rtype, obj)
        items = source.get("items")
        payload = {}
        if items:
            for item in items:
                key = item["key"]
                if key not in data:
                    if optional:
                        continue
                    raise ConfigError("{} references non-existent {} key: {}".format(
                        what, "config" if rtype == names.RES_CONFIGMAP else "secret", key))
                mode = item.get("mode")
                payload[item["path"]] = (data[key], default_mode if mode is None else mode)
        else:
            for key, value in data.items():
                if key and "/" not in key and not key.startswith(".."):
                    payload[key] = (value, default_mode)
        return payload

    def _downward_payload(self, pod, items, default_mode):
        payload = {}
        containers = {c.get("name"): c for c in (pod.get("spec") or {}).get("containers") or ()
                      if isinstance(c, dict)}
        for item in items:
            mode = item.get("mode")
            mode = default_mode if mode is None else mode
            if isinstance(item.get("fieldRef"), dict):
                value = field_value(pod, item["fieldRef"].get("fieldPath", ""), self.node_ip,
                                    self.node_name)
            else:
                ref = item["resourceFieldRef"]
                container = containers.get(ref.get("containerName"))
                if container is None:
                    raise ConfigError("resourceFieldRef names no container {!r}".format(
                        ref.get("containerName")))
                value = resource_field_value(container, ref, self.allocatable)
            payload[item["path"]] = (value.encode("utf-8"), mode)
        return payload

    async def prepare_sub_path(self, kind, host_path):
        """Create a subPath directory inside an emptyDir/hostPath volume, as kubelet."""
        if kind in ("emptyDir", "hostPath"):
            await self.pool.run(_thd_make_missing_dir, host_path)

    async def teardown(self, uid):
        """Remove everything edged wrote for the pod (hostPath contents stay)."""
        self._written.pop(uid, None)
        await self.pool.run(_thd_remove_tree, self.pod_dir(uid))
