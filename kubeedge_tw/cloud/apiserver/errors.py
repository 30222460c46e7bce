"""Kubernetes API errors as values: every refusal the embedded API server makes is an
:class:`APIError` that renders as a ``meta/v1 Status`` object.

The reasons, codes and message wording are kube-apiserver's
(``k8s.io/apimachinery/pkg/api/errors``), because kubectl builds what the user reads from
them: ``Error from server (NotFound): pods "x" not found`` comes from ``reason`` and
``message``; ``The Pod "x" is invalid: spec.containers[0].image: Required value`` comes
from ``details.kind``, ``details.name`` and ``details.causes[].field/message``.
"""

__all__ = [
    "APIError", "Cause", "bad_request", "not_found", "already_exists", "conflict",
    "invalid", "unauthorized", "forbidden", "method_not_supported", "gone",
    "unsupported_media_type", "not_acceptable", "too_large", "internal_error",
    "namespace_not_found", "field_required", "field_invalid", "field_not_supported",
    "field_duplicate", "field_forbidden", "go_value",
]


class Cause:
    """One ``details.causes[]`` entry: a field path, a reason and a message.

    The reason strings are Kubernetes' ``CauseType`` values (``FieldValueRequired``,
    ``FieldValueInvalid``, ...); ``message`` is what follows the field in kubectl's line.
    """

    __slots__ = ("field", "reason", "message")

    def __init__(self, field, reason, message):
        """Describe one invalid field."""
        self.field = field
        self.reason = reason
        self.message = message

    def to_dict(self):
        """The cause as it appears in a Status object."""
        return {"reason": self.reason, "message": self.message, "field": self.field}

    def __str__(self):
        """``field: message``, the way kube-apiserver joins them."""
        return "{}: {}".format(self.field, self.message)

    def __repr__(self):
        return "Cause({!r}, {!r}, {!r})".format(self.field, self.reason, self.message)

    def __eq__(self, other):
        return isinstance(other, Cause) and (self.field, self.reason, self.message) == (
            other.field, other.reason, other.message)

    def __hash__(self):
        return hash((self.field, self.reason, self.message))


def go_value(value):
    """Render a value the way Go's ``%#v``/``%v`` does in Kubernetes field errors:
    strings quoted, integers bare, other values as JSON-ish text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"{}"'.format(value.replace("\\", "\\\\").replace('"', '\\"'))
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, dict):
        return "map[string]string{" + ", ".join(
            "{}:{}".format(go_value(k), go_value(v)) for k, v in sorted(value.items())) + "}"
    return str(value)


def field_required(field, detail=""):
    """``field: Required value`` (``FieldValueRequired``)."""
    return Cause(field, "FieldValueRequired",
                 "Required value" + (": " + detail if detail else ""))


def field_invalid(field, value, detail):
    """``field: Invalid value: <value>: <detail>`` (``FieldValueInvalid``)."""
    return Cause(field, "FieldValueInvalid",
                 "Invalid value: {}: {}".format(go_value(value), detail))


def field_not_supported(field, value, supported):
    """``field: Unsupported value: <value>: supported values: ...``."""
    return Cause(field, "FieldValueNotSupported",
                 "Unsupported value: {}: supported values: {}".format(
                     go_value(value), ", ".join(go_value(s) for s in supported)))


def field_duplicate(field, value):
    """``field: Duplicate value: <value>``."""
    return Cause(field, "FieldValueDuplicate", "Duplicate value: {}".format(go_value(value)))


def field_forbidden(field, detail):
    """``field: Forbidden: <detail>``."""
    return Cause(field, "FieldValueForbidden", "Forbidden: {}".format(detail))


class APIError(Exception):
    """A failed API request: HTTP ``code``, Status ``reason``, ``message`` and optional
    ``details`` (name, group, kind, causes, retryAfterSeconds)."""

    def __init__(self, code, reason, message, details=None):
        """Build the error; ``details`` is a dict already in Status shape."""
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def to_status(self):
        """The ``Status`` object sent to the client."""
        status = {
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": self.message, "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            status["details"] = self.details
        return status

    def __repr__(self):
        return "APIError({}, {!r}, {!r})".format(self.code, self.reason, self.message)


def _qualified(resource, group):
    """``pods`` or ``deployments.apps``: how kube-apiserver names a resource in messages."""
    return "{}.{}".format(resource, group) if group else resource


def _details(name, resource, group):
    details = {"name": name, "kind": resource}
    if group:
        details["group"] = group
    return details


def bad_request(message):
    """400 BadRequest: the request cannot be understood (malformed body, bad query)."""
    return APIError(400, "BadRequest", message)


def unauthorized(message="Unauthorized"):
    """401 Unauthorized: no valid credentials."""
    return APIError(401, "Unauthorized", message)


def forbidden(message, name="", resource="", group=""):
    """403 Forbidden."""
    return APIError(403, "Forbidden", message,
                    _details(name, resource, group) if (name or resource) else None)


def not_found(resource, name, group=""):
    """404 NotFound: ``pods "x" not found``."""
    return APIError(404, "NotFound", '{} "{}" not found'.format(_qualified(resource, group), name),
                    _details(name, resource, group))


def namespace_not_found(namespace):
    """404 for an object in a namespace that does not exist: ``namespaces "x" not found``."""
    return not_found("namespaces", namespace)


def already_exists(resource, name, group=""):
    """409 AlreadyExists: ``pods "x" already exists``."""
    return APIError(409, "AlreadyExists",
                    '{} "{}" already exists'.format(_qualified(resource, group), name),
                    _details(name, resource, group))


def conflict(resource, name, reason_text, group=""):
    """409 Conflict: ``Operation cannot be fulfilled on pods "x": <reason_text>``."""
    return APIError(409, "Conflict", 'Operation cannot be fulfilled on {} "{}": {}'.format(
        _qualified(resource, group), name, reason_text), _details(name, resource, group))


def invalid(kind, name, causes, group=""):
    """422 Invalid: ``Pod "x" is invalid: [field: message, ...]`` with ``details.causes``."""
    causes = list(causes)
    if len(causes) == 1:
        joined = str(causes[0])
    else:
        joined = "[" + ", ".join(str(c) for c in causes) + "]"
    details = {"name": name, "kind": kind, "causes": [c.to_dict() for c in causes]}
    if group:
        details["group"] = group
    return APIError(422, "Invalid", '{} "{}" is invalid: {}'.format(
        "{}.{}".format(kind, group) if group else kind, name, joined), details)


def method_not_supported(resource, verb, group=""):
    """405 MethodNotAllowed: ``<verb> is not supported on resources of kind "pods"``."""
    return APIError(405, "MethodNotAllowed", '{} is not supported on resources of kind "{}"'
                    .format(verb, _qualified(resource, group)))


def gone(message):
    """410 Expired (Gone): a watch or list from a compacted resourceVersion."""
    return APIError(410, "Expired", message)


def unsupported_media_type(content_type, accepted):
    """415 UnsupportedMediaType."""
    return APIError(415, "UnsupportedMediaType",
                    "the body of the request was in an unknown format - accepted media types "
                    "include: {}".format(", ".join(accepted)) if content_type is not None else
                    "unsupported media type")


def not_acceptable(accepted):
    """406 NotAcceptable."""
    return APIError(406, "NotAcceptable", "only the following media types are accepted: {}"
                    .format(", ".join(accepted)))


def too_large(limit):
    """413 RequestEntityTooLarge."""
    return APIError(413, "RequestEntityTooLarge",
                    "Request entity too large: limit is {}".format(limit))


def internal_error(message):
    """500 InternalError; the message is logged and sent."""
    return APIError(500, "InternalError",
                    "Internal error occurred: {}".format(message))


def unavailable(message):
    """503 ServiceUnavailable: the server is starting or stopping; clients retry."""
    return APIError(503, "ServiceUnavailable", message)
