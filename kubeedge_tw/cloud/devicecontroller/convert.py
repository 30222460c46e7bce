"""Pure conversions between ``devices.kubeedge.io/v1alpha2`` objects and the twin wire
payloads (reference 4.2, 4.3, 2.9), as KubeEdge's ``devicecontroller`` builds them
(``createDevice``, ``addUpdatedTwins``, ``addDeletedTwins``, ``addToConfigMap``).

Nothing here talks to the API or the bus, so every rule is tested on plain dicts.
"""

import json

__all__ = ["device_node", "device_key", "model_key", "desired_twins", "edge_device",
           "cloud_twins", "attributes_from_model", "apply_reported", "device_profile",
           "PROFILE_KEY", "profile_name", "wire_value", "property_type", "model_properties",
           "unknown_twins"]

#: The ConfigMap key mappers read (KubeEdge ``DeviceProfileJSON``).
PROFILE_KEY = "deviceProfile.json"
_PROFILE_PREFIX = "device-profile-config-"
#: DeviceModel property type keys -> twin value types the edge validates.
_TYPES = {"int": "int", "string": "string", "double": "float", "float": "float",
          "boolean": "boolean", "bytes": "string"}


def _meta(obj):
    return (obj or {}).get("metadata") or {}


def device_key(obj):
    """``namespace/name`` of a Device or DeviceModel."""
    meta = _meta(obj)
    return "{}/{}".format(meta.get("namespace") or "default", meta.get("name", ""))


model_key = device_key


def profile_name(node):
    """The per-node ConfigMap name (KubeEdge ``device-profile-config-<node>``)."""
    return _PROFILE_PREFIX + node


def device_node(device):
    """The node a v1alpha2 Device is bound to:
    ``spec.nodeSelector.nodeSelectorTerms[0].matchExpressions[0].values[0]``, or ""."""
    try:
        value = (device.get("spec") or {})["nodeSelector"]["nodeSelectorTerms"][0][
            "matchExpressions"][0]["values"][0]
    except (KeyError, IndexError, TypeError):
        return ""
    return value if isinstance(value, str) else ""


def wire_value(value):
    """A twin value as the string the wire carries (YAML may give ints or booleans)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


def property_type(model, name):
    """The twin value type of property ``name`` in ``model`` (``string`` by default)."""
    for prop in ((model or {}).get("spec") or {}).get("properties") or ():
        if isinstance(prop, dict) and prop.get("name") == name:
            kinds = prop.get("type") or {}
            if isinstance(kinds, dict):
                for kind in kinds:
                    return _TYPES.get(kind, "string")
    return "string"


def model_properties(model):
    """The names of the properties ``model`` declares."""
    return {prop["name"] for prop in ((model or {}).get("spec") or {}).get("properties") or ()
            if isinstance(prop, dict) and isinstance(prop.get("name"), str)}


def unknown_twins(device, model):
    """The ``status.twins[].propertyName`` values of ``device`` that ``model`` does not
    declare, in the Device's order (what KubeEdge's admission webhook refuses)."""
    known = model_properties(model)
    out = []
    for twin in ((device.get("status") or {}).get("twins") or ()):
        name = twin.get("propertyName") if isinstance(twin, dict) else None
        if name and name not in known and name not in out:
            out.append(name)
    return out


def desired_twins(device, model=None):
    """``{property: (value, type)}`` of ``status.twins[].desired`` (what the cloud owns).

    The type is the desired ``metadata.type`` when set, else the model's property type.
    Given a ``model``, twins naming a property it does not declare are left out: they
    never reach the edge."""
    known = model_properties(model) if model is not None else None
    out = {}
    for twin in ((device.get("status") or {}).get("twins") or ()):
        if not isinstance(twin, dict) or not twin.get("propertyName"):
            continue
        if known is not None and twin["propertyName"] not in known:
            continue
        desired = twin.get("desired") or {}
        if not isinstance(desired, dict):
            continue
        meta = desired.get("metadata") or {}
        kind = meta.get("type") if isinstance(meta, dict) else None
        out[twin["propertyName"]] = (wire_value(desired.get("value")),
                                     kind or property_type(model, twin["propertyName"]))
    return out


def _version(device):
    try:
        return int(_meta(device).get("resourceVersion") or 0)
    except (TypeError, ValueError):
        return 0


def cloud_twins(device, model, names, now_ms, deleted=()):
    """The ``twin`` map of ``cloud_updated`` / membership for ``names`` (KubeEdge
    ``addUpdatedTwins``): expected value with a timestamp, ``optional`` false, the type,
    ``expected_version`` ``{cloud: resourceVersion, edge: 0}``; each name in ``deleted``
    becomes a ``deleted`` tombstone (``addDeletedTwins``)."""
    desired = desired_twins(device, model)
    version = {"cloud": _version(device), "edge": 0}
    twins = {}
    for name in names:
        value, kind = desired[name]
        twins[name] = {"expected": {"value": value, "metadata": {"timestamp": now_ms}},
                       "optional": False, "metadata": {"type": kind},
                       "expected_version": dict(version)}
    for name in deleted:
        twins[name] = {"optional": False, "metadata": {"type": "deleted"},
                       "expected_version": dict(version)}
    return twins


def attributes_from_model(model):
    """Device attributes from the model's properties: name -> ``MsgAttr`` with the default
    value (as a string), ``optional`` false and the property type."""
    attrs = {}
    for prop in ((model or {}).get("spec") or {}).get("properties") or ():
        if not isinstance(prop, dict) or not prop.get("name"):
            continue
        kinds = prop.get("type") or {}
        default = ""
        kind = "string"
        if isinstance(kinds, dict) and kinds:
            first = next(iter(kinds))
            kind = _TYPES.get(first, "string")
            detail = kinds[first] if isinstance(kinds[first], dict) else {}
            default = wire_value(detail.get("defaultValue"))
        attrs[prop["name"]] = {"value": default, "optional": False,
                               "metadata": {"type": kind}}
    return attrs


def edge_device(device, model, now_ms):
    """The ``Device`` of a membership update or detail (KubeEdge ``createDevice``):
    id and name = the object's name, description from the ``description`` label,
    attributes from the model, twins from ``status.twins[].desired``."""
    meta = _meta(device)
    out = {"id": meta.get("name"), "name": meta.get("name")}
    description = (meta.get("labels") or {}).get("description")
    if description:
        out["description"] = description
    attrs = attributes_from_model(model)
    if attrs:
        out["attributes"] = attrs
    desired = desired_twins(device, model)
    if desired:
        out["twin"] = cloud_twins(device, model, sorted(desired), now_ms)
    return out


def apply_reported(device, twins):
    """``status.twins`` of ``device`` with the edge's reported values (an ``edge_updated``
    ``twin`` map) written into ``reported`` {value, metadata{timestamp, type}} (KubeEdge
    ``updateDeviceStatus``: strings, only for properties the Device lists, desired kept).
    Returns ``(new_twins, changed_names)``."""
    current = (device.get("status") or {}).get("twins") or []
    out, changed = [], []
    for twin in current:
        twin = dict(twin) if isinstance(twin, dict) else twin
        name = twin.get("propertyName") if isinstance(twin, dict) else None
        msg = twins.get(name) if name else None
        actual = (msg or {}).get("actual") if isinstance(msg, dict) else None
        if isinstance(actual, dict) and actual.get("value") is not None:
            metadata = {}
            timestamp = (actual.get("metadata") or {}).get("timestamp")
            if timestamp is not None:
                metadata["timestamp"] = str(timestamp)
            kind = (msg.get("metadata") or {}).get("type")
            if kind:
                metadata["type"] = kind
            reported = {"value": wire_value(actual["value"]), "metadata": metadata}
            if twin.get("reported") != reported:
                twin["reported"] = reported
                changed.append(name)
        out.append(twin)
    return out, changed


def _profile_model(model):
    properties = []
    for prop in ((model.get("spec") or {}).get("properties") or ()):
        if not isinstance(prop, dict):
            continue
        kinds = prop.get("type") or {}
        first = next(iter(kinds)) if isinstance(kinds, dict) and kinds else "string"
        detail = dict(kinds.get(first) or {}) if isinstance(kinds, dict) and kinds else {}
        entry = {"name": prop.get("name"), "dataType": first,
                 "description": prop.get("description", "")}
        entry.update({k: detail[k] for k in ("accessMode", "defaultValue", "minimum",
                                             "maximum", "unit") if k in detail})
        properties.append(entry)
    return {"name": _meta(model).get("name"), "properties": properties}


def device_profile(devices, models):
    """The ``deviceProfile.json`` text for one node: KubeEdge's ``DeviceProfile`` shape,
    simplified — ``deviceInstances`` (id, name, protocol, model, twins with desired values
    only, propertyVisitors), ``deviceModels`` (name, properties with dataType and the
    type's accessMode/defaultValue/minimum/maximum/unit) and ``protocols`` (name,
    protocol, protocolConfig). Reported values are left out so that status writes do not
    rewrite (and re-push) the ConfigMap, and so are twins naming a property the model
    does not declare. Sorted by name: the text is deterministic."""
    instances, used_models, protocols = [], {}, []
    for device in sorted(devices, key=lambda d: _meta(d).get("name", "")):
        meta, spec = _meta(device), device.get("spec") or {}
        name = meta.get("name")
        model_name = (spec.get("deviceModelRef") or {}).get("name", "")
        protocol = spec.get("protocol") or {}
        protocol_kind = next((k for k in sorted(protocol) if k != "common"), "")
        protocol_name = "{}-{}".format(protocol_kind, name) if protocol_kind else ""
        model = models.get(model_name)
        known = model_properties(model) if model is not None else None
        twins = [{"propertyName": t.get("propertyName"), "desired": t.get("desired") or {}}
                 for t in ((device.get("status") or {}).get("twins") or ())
                 if isinstance(t, dict) and (known is None or t.get("propertyName") in known)]
        instances.append({"id": name, "name": name, "protocol": protocol_name,
                          "model": model_name, "twins": twins,
                          "propertyVisitors": spec.get("propertyVisitors") or []})
        if protocol_kind:
            protocols.append({"name": protocol_name, "protocol": protocol_kind,
                              "protocolConfig": protocol.get(protocol_kind),
                              "protocolCommonConfig": protocol.get("common")})
        if model is not None:
            used_models[model_name] = _profile_model(model)
    profile = {"deviceInstances": instances,
               "deviceModels": [used_models[k] for k in sorted(used_models)],
               "protocols": protocols}
    return json.dumps(profile, sort_keys=True, indent=2)
