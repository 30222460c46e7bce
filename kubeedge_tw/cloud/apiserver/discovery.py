"""Discovery and OpenAPI documents, built from the :class:`~.resources.Registry`.

kubectl 1.2x starts every command with discovery: ``/api``, ``/apis`` (it asks for the
aggregated ``apidiscovery.k8s.io/v2`` form first and falls back to these legacy documents
when the answer is plain ``application/json``), then ``/api/v1`` and ``/apis/<g>/<v>``
for the resources, short names (``po``, ``deploy``) and verbs.

``kubectl apply`` also reads OpenAPI. What it needs, from kubectl 1.32's code:

* ``--validate`` (on by default) asks ``/openapi/v3`` whether the server validates fields
  itself: it looks, in the group-version document, for the PATCH operation of the kind
  (``x-kubernetes-group-version-kind``) and its ``fieldValidation`` query parameter. The
  documents here declare it, so kubectl leaves validation to the server (our 422s) and
  never needs the OpenAPI v2 protobuf for client-side validation;
* the client-side apply patch: a PATCH whose request body does not list
  ``application/strategic-merge-patch+json`` makes kubectl skip the OpenAPI v3 patch
  computation; ``/openapi/v2`` in protobuf is then tried (we answer 406, so the client
  falls back) and kubectl builds the strategic merge patch from its compiled-in types
  for built-in kinds, a JSON merge patch for custom resources. No warning is printed.

``/openapi/v2`` is also served as a minimal JSON document for tools that ask for JSON.
"""

import hashlib
import json

from kubeedge_tw import __version__

__all__ = [
    "api_versions", "api_group_list", "api_group", "api_resource_list", "version_info",
    "openapi_v3_root", "openapi_v3_document", "openapi_v2_document", "KUBERNETES_VERSION",
    "gv_path",
]

#: The Kubernetes API version the embedded server reports (kubectl's skew check).
KUBERNETES_VERSION = (1, 31, 0)

_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


def version_info():
    """``/version``."""
    major, minor, patch = KUBERNETES_VERSION
    return {
        "major": str(major), "minor": str(minor),
        "gitVersion": "v{}.{}.{}+kubeedge-tw.{}".format(major, minor, patch, __version__),
        "gitCommit": "", "gitTreeState": "clean", "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "python", "compiler": "cpython", "platform": "linux/amd64",
    }


def api_versions(server_address):
    """``/api``."""
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                            "serverAddress": server_address}]}


def _group_entry(group, versions):
    entries = [{"groupVersion": "{}/{}".format(group, v), "version": v} for v in versions]
    return {"name": group, "versions": entries, "preferredVersion": entries[0]}


def api_group_list(registry):
    """``/apis``: every group but the core one."""
    return {"kind": "APIGroupList", "apiVersion": "v1",
            "groups": [_group_entry(g, vs) for g, vs in registry.groups() if g]}


def api_group(registry, group):
    """``/apis/<group>``, or None for an unknown group."""
    for name, versions in registry.groups():
        if name == group and group:
            entry = _group_entry(name, versions)
            entry.update(kind="APIGroup", apiVersion="v1")
            return entry
    return None


def api_resource_list(registry, group, version):
    """``/api/v1`` or ``/apis/<group>/<version>``, or None when nothing is served there."""
    types = registry.resources(group, version)
    if not types:
        return None
    resources = []
    for rtype in sorted(types, key=lambda t: t.plural):
        entry = {"name": rtype.plural, "singularName": rtype.singular,
                 "namespaced": rtype.namespaced, "kind": rtype.kind, "verbs": list(_VERBS)}
        if rtype.short_names:
            entry["shortNames"] = list(rtype.short_names)
        if rtype.categories:
            entry["categories"] = list(rtype.categories)
        resources.append(entry)
        for sub in sorted(rtype.subresources):
            sub_entry = {"name": "{}/{}".format(rtype.plural, sub), "singularName": "",
                         "namespaced": rtype.namespaced, "kind": rtype.kind,
                         "verbs": ["get", "patch", "update"]}
            if sub == "scale":
                sub_entry.update(group="autoscaling", version="v1", kind="Scale")
            elif sub == "binding":
                sub_entry.update(kind="Binding", verbs=["create"])
            resources.append(sub_entry)
    if group == "":
        resources.append({"name": "bindings", "singularName": "binding", "namespaced": True,
                          "kind": "Binding", "verbs": ["create"]})
    return {"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": "{}/{}".format(group, version) if group else version,
            "resources": resources}


def gv_path(group, version):
    """The OpenAPI v3 path key of a group/version: ``api/v1`` or ``apis/<g>/<v>``."""
    return "api/{}".format(version) if not group else "apis/{}/{}".format(group, version)


def _schema_name(rtype):
    group = rtype.group or "core"
    return "io.k8s.api.{}.{}.{}".format(group, rtype.version, rtype.kind)


def _gvk(rtype):
    return {"group": rtype.group, "version": rtype.version, "kind": rtype.kind}


def _operation(rtype, action, with_body=False, patch=False):
    parameters = [
        {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": True}},
        {"name": "fieldManager", "in": "query", "schema": {"type": "string",
                                                           "uniqueItems": True}},
    ]
    if with_body:
        parameters.append({"name": "fieldValidation", "in": "query",
                           "description": "Strict, Warn or Ignore; accepted, the server "
                                          "validates every object it stores.",
                           "schema": {"type": "string", "uniqueItems": True}})
    operation = {
        "operationId": "{}{}".format(action, rtype.kind),
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": _gvk(rtype),
        "parameters": parameters,
        "responses": {"200": {"description": "OK", "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/" + _schema_name(rtype)}}}}},
    }
    if with_body:
        body_schema = {"$ref": "#/components/schemas/" + _schema_name(rtype)}
        if patch:
            # No application/strategic-merge-patch+json here: see the module docstring.
            content = {"application/json-patch+json": {"schema": {"type": "object"}},
                       "application/merge-patch+json": {"schema": {"type": "object"}}}
        else:
            content = {"application/json": {"schema": body_schema}}
        operation["requestBody"] = {"content": content, "required": True}
    return operation


def openapi_v3_document(registry, group, version):
    """The OpenAPI v3 document of one group/version (paths with the GVK extensions and
    the ``fieldValidation`` parameter kubectl looks for), or None."""
    types = registry.resources(group, version)
    if not types:
        return None
    prefix = "/api/{}".format(version) if not group else "/apis/{}/{}".format(group, version)
    paths, schemas = {}, {}
    for rtype in sorted(types, key=lambda t: t.plural):
        base = prefix + ("/namespaces/{namespace}" if rtype.namespaced else "")
        paths["{}/{}".format(base, rtype.plural)] = {
            "get": _operation(rtype, "list"),
            "post": _operation(rtype, "post", with_body=True),
        }
        paths["{}/{}/{{name}}".format(base, rtype.plural)] = {
            "get": _operation(rtype, "get"),
            "put": _operation(rtype, "put", with_body=True),
            "patch": _operation(rtype, "patch", with_body=True, patch=True),
            "delete": _operation(rtype, "delete"),
        }
        schemas[_schema_name(rtype)] = {
            "type": "object", "description": "{} ({}).".format(rtype.kind, rtype.api_version),
            "x-kubernetes-group-version-kind": [_gvk(rtype)],
            "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                           "metadata": {"type": "object"}, "spec": {"type": "object"},
                           "status": {"type": "object"}},
        }
    return {"openapi": "3.0.0",
            "info": {"title": "Kubernetes", "version": version_info()["gitVersion"]},
            "paths": paths, "components": {"schemas": schemas}}


def _hash(document):
    return hashlib.sha512(json.dumps(document, sort_keys=True).encode()).hexdigest()[:64].upper()


def openapi_v3_root(registry):
    """``/openapi/v3``: where each group/version document is, with a content hash so
    clients re-fetch when CRDs change."""
    paths = {}
    for group, versions in registry.groups():
        for version in versions:
            document = openapi_v3_document(registry, group, version)
            if document is not None:
                paths[gv_path(group, version)] = {
                    "serverRelativeURL": "/openapi/v3/{}?hash={}".format(
                        gv_path(group, version), _hash(document))}
    return {"paths": paths}


def openapi_v2_document(registry):
    """``/openapi/v2`` as JSON: the info block and one definition per kind."""
    definitions = {}
    for rtype in registry.types():
        definitions[_schema_name(rtype)] = {
            "type": "object", "x-kubernetes-group-version-kind": [_gvk(rtype)]}
    return {"swagger": "2.0", "info": {"title": "Kubernetes",
                                       "version": version_info()["gitVersion"]},
            "paths": {}, "definitions": definitions}
