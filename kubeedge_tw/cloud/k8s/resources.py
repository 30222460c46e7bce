"""The resource types KubeEdge's cloud side uses, and their REST paths.

Kubernetes addresses an object as ``/api/v1/namespaces/<ns>/<plural>/<name>/<subresource>``
for the core group and ``/apis/<group>/<version>/...`` for the others; cluster-scoped
types have no ``namespaces/<ns>`` part and a list across all namespaces drops it too.
:class:`ResourceType` knows one type and builds those paths; :data:`DEFAULT_RESOURCES`
lists the types cloudcore touches (KubeEdge v1.15's informers and clients:
``cloud/pkg/common/informers``, ``cloud/pkg/client``). Any other type can be passed as
a :class:`ResourceType` directly; there is no global registration.
"""

import dataclasses
from urllib.parse import quote

__all__ = ["ResourceType", "ResourceTable", "UnknownResource", "DEFAULT_RESOURCES"]


class UnknownResource(ValueError):
    """The name given is not a resource type in the table."""


@dataclasses.dataclass(frozen=True)
class ResourceType:
    """One REST resource: ``group``/``version``, ``plural`` (the URL segment), ``kind``.

    ``subresources`` names those the client may address (``status``, ``binding``,
    ``scale``).
    """

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    subresources: frozenset = frozenset()

    @property
    def api_version(self):
        """``v1`` for the core group, else ``<group>/<version>`` (the objects' apiVersion)."""
        return "{}/{}".format(self.group, self.version) if self.group else self.version

    @property
    def list_kind(self):
        """The kind of a list response (``PodList``)."""
        return self.kind + "List"

    def _prefix(self):
        if self.group:
            return "/apis/{}/{}".format(self.group, self.version)
        return "/api/{}".format(self.version)

    def path(self, namespace=None, name=None, subresource=None):
        """The URL path for a collection (no ``name``) or one object.

        ``namespace=None`` on a namespaced type means all namespaces, which is only
        valid for a collection; ``ValueError`` for a missing or unexpected namespace,
        a subresource without a name or one the type does not have.
        """
        if self.namespaced:
            if namespace is None and name is not None:
                raise ValueError("{} is namespaced: a namespace is needed to address {!r}"
                                 .format(self.plural, name))
        elif namespace is not None:
            raise ValueError("{} is cluster-scoped: got namespace {!r}".format(
                self.plural, namespace))
        parts = [self._prefix()]
        if namespace is not None:
            _check_segment("namespace", namespace)
            parts.append("namespaces/" + quote(namespace, safe=""))
        parts.append(self.plural)
        if name is not None:
            _check_segment("name", name)
            parts.append(quote(name, safe=""))
        if subresource is not None:
            if name is None:
                raise ValueError("subresource {!r} needs an object name".format(subresource))
            if subresource not in self.subresources:
                raise ValueError("{} has no subresource {!r} (known: {})".format(
                    self.plural, subresource, ", ".join(sorted(self.subresources)) or "none"))
            parts.append(subresource)
        return "/".join(parts)


def _check_segment(what, value):
    # "." and ".." would be normalised away by URL handling and address another path.
    if not isinstance(value, str) or not value or value in (".", "..") or "/" in value:
        raise ValueError("invalid {} {!r}".format(what, value))


def _core(plural, kind, namespaced=True, subresources=()):
    return ResourceType("", "v1", plural, kind, namespaced, frozenset(subresources))


#: What cloudcore needs, keyed by plural (each also reachable by kind and plural.group).
DEFAULT_RESOURCES = (
    _core("pods", "Pod", subresources=("status", "binding")),
    _core("nodes", "Node", namespaced=False, subresources=("status",)),
    _core("configmaps", "ConfigMap"),
    _core("secrets", "Secret"),
    _core("services", "Service", subresources=("status",)),
    _core("endpoints", "Endpoints"),
    _core("events", "Event"),
    _core("namespaces", "Namespace", namespaced=False, subresources=("status",)),
    _core("serviceaccounts", "ServiceAccount"),
    ResourceType("apps", "v1", "deployments", "Deployment", True,
                 frozenset({"status", "scale"})),
    ResourceType("apps", "v1", "replicasets", "ReplicaSet", True,
                 frozenset({"status", "scale"})),
    ResourceType("coordination.k8s.io", "v1", "leases", "Lease", True),
    ResourceType("devices.kubeedge.io", "v1alpha2", "devices", "Device", True,
                 frozenset({"status"})),
    ResourceType("devices.kubeedge.io", "v1alpha2", "devicemodels", "DeviceModel", True),
    ResourceType("reliablesyncs.kubeedge.io", "v1alpha1", "objectsyncs", "ObjectSync", True,
                 frozenset({"status"})),
    ResourceType("reliablesyncs.kubeedge.io", "v1alpha1", "clusterobjectsyncs",
                 "ClusterObjectSync", False, frozenset({"status"})),
)


class ResourceTable:
    """Look resource types up by plural (``pods``), ``plural.group``
    (``deployments.apps``) or kind (``Deployment``)."""

    def __init__(self, types=DEFAULT_RESOURCES):
        """Index ``types``; a name that two types share is ambiguous and left out."""
        self._types = tuple(types)
        index, ambiguous = {}, set()
        for rtype in self._types:
            names = {rtype.plural, rtype.kind}
            if rtype.group:
                names.add("{}.{}".format(rtype.plural, rtype.group))
            for name in names:
                if name in index and index[name] != rtype:
                    ambiguous.add(name)
                index[name] = rtype
        for name in ambiguous:
            del index[name]
        self._index = index

    def __iter__(self):
        """The types, in table order."""
        return iter(self._types)

    def resolve(self, resource):
        """A :class:`ResourceType` for ``resource`` (a type, or a name as above)."""
        if isinstance(resource, ResourceType):
            return resource
        try:
            return self._index[resource]
        except (KeyError, TypeError):
            raise UnknownResource("unknown resource {!r}; known: {}".format(
                resource, ", ".join(sorted(t.plural for t in self._types)))) from None
