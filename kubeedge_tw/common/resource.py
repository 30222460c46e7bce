"""Resource strings: the cloud-internal and edge-local forms and the conversions between
them (reference 2.5).

* Edge-local form, what crosses the wire: ``<namespace>/<type>[/<name>]``, e.g.
  ``default/pod/nginx``; device and membership resources have no namespace
  (``membership/detail``, ``device/<id>/twin/edge_updated``).
* Cloud-internal form: ``node/<node>/<namespace>/<type>[/<name>]``. CloudHub prepends
  ``node/<node>/`` to what it receives and strips it before sending.
"""

import re
from dataclasses import dataclass

__all__ = [
    "ResourceError", "Resource", "edge_resource", "cloud_resource", "parse_edge_resource",
    "parse_cloud_resource", "prepend_node", "strip_node", "node_of", "resource_type",
    "valid_node_name",
]

NODE_PREFIX = "node"

_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def valid_node_name(name):
    """Whether ``name`` is a Kubernetes node name: a lowercase DNS-1123 subdomain of at
    most 253 characters. The one rule every boundary (flags, config, CloudHub, the
    bootstrap server) applies to node names."""
    return (isinstance(name, str) and 0 < len(name) <= 253
            and bool(_DNS1123_SUBDOMAIN.match(name)))


class ResourceError(ValueError):
    """A resource string (or a part given to build one) that is malformed."""


@dataclass(frozen=True)
class Resource:
    """A parsed resource; ``node`` is "" for the edge-local form, ``name`` may be ""."""

    namespace: str
    type: str
    name: str = ""
    node: str = ""

    def edge(self):
        """The edge-local string."""
        return edge_resource(self.namespace, self.type, self.name)

    def cloud(self, node=None):
        """The cloud-internal string, for ``node`` or the parsed node."""
        return cloud_resource(node or self.node, self.namespace, self.type, self.name)


def _check_part(what, value, allow_empty=False, allow_slash=False):
    if not isinstance(value, str):
        raise ResourceError("{} must be a string, got {!r}".format(what, value))
    if not value and not allow_empty:
        raise ResourceError("{} must not be empty".format(what))
    if "/" in value and not allow_slash:
        raise ResourceError("{} must not contain '/': {!r}".format(what, value))


def edge_resource(namespace, rtype, name=""):
    """``<namespace>/<type>[/<name>]``."""
    _check_part("namespace", namespace)
    _check_part("resource type", rtype)
    _check_part("name", name, allow_empty=True, allow_slash=True)
    return "/".join(p for p in (namespace, rtype, name) if p)


def cloud_resource(node, namespace, rtype, name=""):
    """``node/<node>/<namespace>/<type>[/<name>]``."""
    _check_part("node", node)
    return "{}/{}/{}".format(NODE_PREFIX, node, edge_resource(namespace, rtype, name))


def parse_edge_resource(resource):
    """Split an edge-local resource; the name keeps any further ``/`` segments."""
    parts = resource.split("/", 2) if isinstance(resource, str) else []
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise ResourceError("resource {!r} is not <namespace>/<type>[/<name>]".format(resource))
    return Resource(namespace=parts[0], type=parts[1], name=parts[2] if len(parts) > 2 else "")


def parse_cloud_resource(resource):
    """Split a cloud-internal resource (index 0 ``node``, 1 node, 2 ns, 3 type, 4 name)."""
    parts = resource.split("/", 4) if isinstance(resource, str) else []
    if len(parts) < 4 or parts[0] != NODE_PREFIX or not all(parts[1:4]):
        raise ResourceError(
            "resource {!r} is not node/<node>/<namespace>/<type>[/<name>]".format(resource))
    return Resource(node=parts[1], namespace=parts[2], type=parts[3],
                    name=parts[4] if len(parts) > 4 else "")


def prepend_node(node, resource):
    """What CloudHub does to every inbound resource: ``node/<node>/<resource>``."""
    _check_part("node", node)
    return "{}/{}/{}".format(NODE_PREFIX, node, resource)


def strip_node(resource):
    """What CloudHub does before sending: drop ``node/<id>/`` when the resource starts with
    ``node`` and has at least three segments (KubeEdge's exact rule); else unchanged."""
    parts = resource.split("/")
    if len(parts) >= 3 and parts[0] == NODE_PREFIX:
        return "/".join(parts[2:])
    return resource


def node_of(resource):
    """The node id of a cloud-internal resource (the segment after the first ``node``),
    or "" when there is none."""
    parts = resource.split("/")
    if len(parts) >= 2 and parts[0] == NODE_PREFIX:
        return parts[1]
    return ""


def resource_type(resource):
    """The resource type of either form (cloud form: index 3; edge form: index 1);
    "" when the string has too few segments. As in KubeEdge, a leading ``node`` segment
    means the cloud form."""
    parts = resource.split("/")
    if parts[0] == NODE_PREFIX:
        return parts[3] if len(parts) >= 4 else ""
    if len(parts) >= 2:
        return parts[1]
    return ""
