"""Errors of the Kubernetes client: every failure is a :class:`K8sError`.

A failed API call raises a :class:`K8sError` built from the Kubernetes ``Status`` object
the server sent (``code``, ``reason``, ``message``, ``details``), as client-go's
``k8s.io/apimachinery/pkg/api/errors`` does; callers test the class (``except NotFound``)
the way Go code calls ``errors.IsNotFound``. Transport failures (refused connection, TLS
handshake, dropped stream, timeout) are :class:`K8sConnectionError`, never a raw treq or
``twisted.web`` exception. Configuration problems are :class:`K8sConfigError`.
"""

import json

__all__ = [
    "K8sError", "BadRequest", "Unauthorized", "Forbidden", "NotFound", "MethodNotAllowed",
    "Conflict", "AlreadyExists", "Gone", "UnsupportedMediaType", "Invalid", "TooManyRequests",
    "InternalError", "ServiceUnavailable", "K8sConnectionError", "K8sTimeout",
    "WatchDecodeError", "K8sConfigError", "error_from_status", "error_from_response",
    "status_object",
]


class K8sConfigError(Exception):
    """A kubeconfig, in-cluster set-up or ``kubeAPIConfig`` that cannot be used.

    The message names the file and the entry (``kubeconfig /x: users[admin]:
    client-certificate /y: No such file or directory``).
    """


class K8sError(Exception):
    """A failed Kubernetes API call, carrying the server's ``Status``.

    ``code`` is the HTTP status (``None`` when no response arrived), ``reason`` the
    ``Status.reason`` (``NotFound``, ``Conflict`` ...), ``message`` the human text and
    ``status`` the whole ``Status`` object as a dict (``details.causes`` for 422).
    """

    #: Default ``reason`` of the class, used when the server sent none.
    default_reason = "Unknown"

    def __init__(self, message, code=None, reason=None, status=None):
        """Build from parts; :func:`error_from_status` picks the subclass from a Status."""
        self.code = code
        self.reason = reason or self.default_reason
        self.message = message
        self.status = status if status is not None else status_object(
            code, self.reason, message)
        super().__init__(message)

    @property
    def details(self):
        """``Status.details`` (``name``, ``group``, ``kind``, ``causes``), or ``{}``."""
        return self.status.get("details") or {}

    def __str__(self):
        """``"404 NotFound: pods \\"x\\" not found"``."""
        if self.code is None:
            return "{}: {}".format(self.reason, self.message)
        return "{} {}: {}".format(self.code, self.reason, self.message)


class BadRequest(K8sError):
    """400: the request itself is malformed (bad selector, namespace mismatch ...)."""
    default_reason = "BadRequest"


class Unauthorized(K8sError):
    """401: no or bad credentials."""
    default_reason = "Unauthorized"


class Forbidden(K8sError):
    """403: authenticated, but not allowed."""
    default_reason = "Forbidden"


class NotFound(K8sError):
    """404: the object (or the resource type) does not exist."""
    default_reason = "NotFound"


class MethodNotAllowed(K8sError):
    """405: the verb is not supported on this resource."""
    default_reason = "MethodNotAllowed"


class Conflict(K8sError):
    """409 ``Conflict``: stale resourceVersion on update, or a failed precondition."""
    default_reason = "Conflict"


class AlreadyExists(Conflict):
    """409 ``AlreadyExists``: create of a name that is taken.

    A subclass of :class:`Conflict` because both are 409; test ``AlreadyExists`` first.
    """
    default_reason = "AlreadyExists"


class Gone(K8sError):
    """410 (reason ``Gone`` or ``Expired``): the resourceVersion asked for was compacted.

    An informer answers it with a fresh list.
    """
    default_reason = "Expired"


class UnsupportedMediaType(K8sError):
    """415: e.g. a patch type the resource does not accept."""
    default_reason = "UnsupportedMediaType"


class Invalid(K8sError):
    """422: the object failed validation; ``causes`` says which fields."""
    default_reason = "Invalid"

    @property
    def causes(self):
        """``Status.details.causes``: dicts with ``field``, ``reason``, ``message``."""
        return self.details.get("causes") or []


class TooManyRequests(K8sError):
    """429: server-side throttling (priority and fairness)."""
    default_reason = "TooManyRequests"


class InternalError(K8sError):
    """500: the server failed."""
    default_reason = "InternalError"


class ServiceUnavailable(K8sError):
    """503: the server is not ready."""
    default_reason = "ServiceUnavailable"


class K8sConnectionError(K8sError):
    """No (complete) response: refused or dropped connection, TLS failure, DNS error."""
    default_reason = "ConnectionError"


class K8sTimeout(K8sConnectionError):
    """The request did not complete within the client's request timeout."""
    default_reason = "Timeout"


class WatchDecodeError(K8sError):
    """A watch stream carried something that is not a watch event."""
    default_reason = "BadWatchEvent"


# Reason first: 409 is AlreadyExists or Conflict, 410 is Gone or Expired.
_BY_REASON = {
    "BadRequest": BadRequest,
    "Unauthorized": Unauthorized,
    "Forbidden": Forbidden,
    "NotFound": NotFound,
    "MethodNotAllowed": MethodNotAllowed,
    "AlreadyExists": AlreadyExists,
    "Conflict": Conflict,
    "Gone": Gone,
    "Expired": Gone,
    "UnsupportedMediaType": UnsupportedMediaType,
    "Invalid": Invalid,
    "TooManyRequests": TooManyRequests,
    "InternalError": InternalError,
    "ServiceUnavailable": ServiceUnavailable,
}

_BY_CODE = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    405: MethodNotAllowed,
    409: Conflict,
    410: Gone,
    415: UnsupportedMediaType,
    422: Invalid,
    429: TooManyRequests,
    500: InternalError,
    503: ServiceUnavailable,
}

# client-go's NewGenericServerResponse reasons for bodies that are not a Status.
_GENERIC_REASONS = {
    400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
    405: "MethodNotAllowed", 406: "NotAcceptable", 409: "Conflict", 410: "Gone",
    415: "UnsupportedMediaType", 422: "Invalid", 429: "TooManyRequests",
    500: "InternalError", 503: "ServiceUnavailable", 504: "Timeout",
}


def status_object(code, reason, message, details=None):
    """A ``v1 Status`` dict with ``status: Failure``."""
    status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
              "message": message, "reason": reason, "code": code}
    if details:
        status["details"] = details
    return status


def _class_for(code, reason):
    """The class for a Status: by reason (precise), else by HTTP code, else the base."""
    return _BY_REASON.get(reason) or _BY_CODE.get(code) or K8sError


def error_from_status(status, code=None):
    """The :class:`K8sError` subclass instance for a ``Status`` dict.

    ``code`` is the HTTP status; a watch ``ERROR`` event has none, so ``Status.code`` is
    used.
    """
    if not isinstance(status, dict):
        status = {}
    if code is None:
        code = status.get("code") if isinstance(status.get("code"), int) else None
    reason = status.get("reason") or _GENERIC_REASONS.get(code) or "Unknown"
    message = status.get("message") or "the server reported {} with no message".format(
        code if code is not None else "an error")
    cls = _class_for(code, reason)
    return cls(message, code=code, reason=reason, status=status)


def error_from_response(code, body):
    """The :class:`K8sError` for a non-2xx response with ``body`` (bytes).

    The body is normally a ``Status``; anything else (a proxy's HTML page, an empty
    body) becomes a generic error for the code, with the start of the body as message,
    like client-go's ``NewGenericServerResponse``.
    """
    try:
        decoded = json.loads(body.decode("utf-8")) if body else None
    except (UnicodeDecodeError, ValueError):
        decoded = None
    if isinstance(decoded, dict) and decoded.get("kind") == "Status":
        return error_from_status(decoded, code)
    reason = _GENERIC_REASONS.get(code, "Unknown")
    text = body[:200].decode("utf-8", "replace").strip() if body else ""
    message = "the server responded with HTTP {}{}".format(
        code, ": " + text if text else "")
    cls = _BY_CODE.get(code, K8sError)
    return cls(message, code=code, reason=reason)
