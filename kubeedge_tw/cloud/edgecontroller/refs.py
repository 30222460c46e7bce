"""Which ConfigMaps and Secrets a pod uses (volumes, projected sources, env, envFrom,
imagePullSecrets): they go only to the nodes running such pods (reference 2.9)."""

__all__ = ["pod_references", "spec_changed", "EDGE_ROLE_LABEL"]

EDGE_ROLE_LABEL = "node-role.kubernetes.io/edge"


def _containers(spec):
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for container in spec.get(key) or ():
            if isinstance(container, dict):
                yield container


def pod_references(pod):
    """``{("configmap"|"secret", name)}`` that ``pod`` needs, in its own namespace."""
    spec = pod.get("spec") or {}
    refs = set()
    for volume in spec.get("volumes") or ():
        if not isinstance(volume, dict):
            continue
        if (volume.get("configMap") or {}).get("name"):
            refs.add(("configmap", volume["configMap"]["name"]))
        if (volume.get("secret") or {}).get("secretName"):
            refs.add(("secret", volume["secret"]["secretName"]))
        for source in (volume.get("projected") or {}).get("sources") or ():
            if (source.get("configMap") or {}).get("name"):
                refs.add(("configmap", source["configMap"]["name"]))
            if (source.get("secret") or {}).get("name"):
                refs.add(("secret", source["secret"]["name"]))
    for container in _containers(spec):
        for env in container.get("env") or ():
            source = (env or {}).get("valueFrom") or {}
            if (source.get("configMapKeyRef") or {}).get("name"):
                refs.add(("configmap", source["configMapKeyRef"]["name"]))
            if (source.get("secretKeyRef") or {}).get("name"):
                refs.add(("secret", source["secretKeyRef"]["name"]))
        for env_from in container.get("envFrom") or ():
            if ((env_from or {}).get("configMapRef") or {}).get("name"):
                refs.add(("configmap", env_from["configMapRef"]["name"]))
            if ((env_from or {}).get("secretRef") or {}).get("name"):
                refs.add(("secret", env_from["secretRef"]["name"]))
    for secret in spec.get("imagePullSecrets") or ():
        if (secret or {}).get("name"):
            refs.add(("secret", secret["name"]))
    return refs


def _without_status(obj):
    copy = {k: v for k, v in obj.items() if k != "status"}
    meta = dict(copy.get("metadata") or {})
    for key in ("resourceVersion", "managedFields", "generation"):
        meta.pop(key, None)
    copy["metadata"] = meta
    return copy


def spec_changed(old, new):
    """Whether a pod changed in anything but its status (the edge does not need to be
    told about the status it reported itself)."""
    return _without_status(old) != _without_status(new)
