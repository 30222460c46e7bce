"""The KubeEdge CustomResourceDefinitions the embedded API server installs at start.

* ``devices.kubeedge.io/v1alpha2``: ``Device`` (``devices``) and ``DeviceModel``
  (``devicemodels``), namespaced, as KubeEdge's DeviceController uses them;
* ``reliablesyncs.kubeedge.io/v1alpha1``: ``ObjectSync`` (namespaced) and
  ``ClusterObjectSync`` (cluster-scoped, as KubeEdge's generated client treats it), with a
  status subresource, as KubeEdge's SyncController uses them.

Names, groups, versions, scopes and subresources are KubeEdge's (``build/crds/`` in the
KubeEdge repository). The schemas are structural but keep unknown fields under ``spec``
and ``status``: the embedded server does not prune or validate custom objects against
their schema, so KubeEdge's long generated schemas would add nothing here. The same
manifests ship as ``conf/crds/*.yaml`` for ``kubectl apply -f`` against any cluster; a test
keeps the two in step.

The definitions are data in this module (not read from ``conf/``) so that an installed
package, which has no ``conf/`` directory, installs them too.
"""

import copy

__all__ = ["KUBEEDGE_CRDS", "kubeedge_crds", "CRD_FILES"]


def _schema(description, spec=None, status=None):
    def part(properties, what):
        if properties is None:
            return {"type": "object", "x-kubernetes-preserve-unknown-fields": True,
                    "description": what}
        return {"type": "object", "description": what, "properties": properties}

    return {"openAPIV3Schema": {
        "type": "object", "description": description,
        "properties": {
            "apiVersion": {"type": "string"}, "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": part(spec, "The desired state."),
            "status": part(status, "The observed state."),
        }}}


def _crd(group, kind, plural, version, scope, description, spec=None, status=None,
         status_subresource=False):
    version_spec = {"name": version, "served": True, "storage": True,
                    "schema": _schema(description, spec, status)}
    if status_subresource:
        version_spec["subresources"] = {"status": {}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "{}.{}".format(plural, group)},
        "spec": {"group": group, "scope": scope,
                 "names": {"kind": kind, "listKind": kind + "List", "plural": plural,
                           "singular": kind.lower()},
                 "versions": [version_spec]},
    }


_OBJECT_SYNC_SPEC = {
    "objectAPIVersion": {"type": "string", "description": "APIVersion of the object that "
                                                          "was persisted to the edge node."},
    "objectKind": {"type": "string", "description": "Kind of the object that was persisted "
                                                    "to the edge node."},
    "objectName": {"type": "string", "description": "Name of the object that was persisted "
                                                    "to the edge node."},
}
_OBJECT_SYNC_STATUS = {
    "objectResourceVersion": {"type": "string", "description": "resourceVersion of the "
                                                               "object the edge node has."},
}

#: The CRDs, in install order.
KUBEEDGE_CRDS = (
    _crd("devices.kubeedge.io", "DeviceModel", "devicemodels", "v1alpha2", "Namespaced",
         "DeviceModel is the Schema for the device model API: the properties a kind of "
         "device has."),
    _crd("devices.kubeedge.io", "Device", "devices", "v1alpha2", "Namespaced",
         "Device is the Schema for the devices API: one device instance, its model, node "
         "selector, protocol and twins."),
    _crd("reliablesyncs.kubeedge.io", "ObjectSync", "objectsyncs", "v1alpha1", "Namespaced",
         "ObjectSync stores the state of the namespaced object that was successfully "
         "persisted to the edge node. Its name is the node name and the object UID.",
         _OBJECT_SYNC_SPEC, _OBJECT_SYNC_STATUS, status_subresource=True),
    _crd("reliablesyncs.kubeedge.io", "ClusterObjectSync", "clusterobjectsyncs", "v1alpha1",
         "Cluster", "ClusterObjectSync stores the state of the cluster-scoped object that "
                    "was successfully persisted to the edge node.",
         _OBJECT_SYNC_SPEC, _OBJECT_SYNC_STATUS, status_subresource=True),
)

#: ``conf/crds/`` file name of each CRD (same order as :data:`KUBEEDGE_CRDS`).
CRD_FILES = (
    "devices_v1alpha2_devicemodel.yaml", "devices_v1alpha2_device.yaml",
    "reliablesyncs_v1alpha1_objectsync.yaml", "reliablesyncs_v1alpha1_clusterobjectsync.yaml",
)


def kubeedge_crds():
    """Fresh copies of :data:`KUBEEDGE_CRDS`."""
    return [copy.deepcopy(crd) for crd in KUBEEDGE_CRDS]
