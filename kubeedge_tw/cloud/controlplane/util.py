"""Helpers the control-plane controllers share: object metadata, owner references, label
selectors, timestamps on the injected clock, quantities and pod state.

Each helper names the Kubernetes function whose behaviour it reproduces (``FilterActivePods``,
``IsPodAvailable``, ``GetScaledValueFromIntOrPercent`` ...). None of them mutates its
arguments: informer caches hand out the cached objects themselves.
"""

import calendar
import functools
import math
import re
import time
from fractions import Fraction

__all__ = [
    "meta", "object_key", "split_key", "format_time", "parse_time", "controller_ref",
    "owner_reference", "is_terminating", "pod_is_active", "pod_is_ready", "pod_is_available",
    "get_condition", "parse_quantity", "milli_value", "whole_value",
    "selector_matches", "scaled_value", "label_selector_requirements",
]


def meta(obj):
    """``metadata`` of ``obj`` (``{}`` when absent)."""
    return (obj or {}).get("metadata") or {}


def object_key(obj):
    """``namespace/name`` (``name`` for a cluster-scoped object), the informers' key."""
    m = meta(obj)
    return "{}/{}".format(m["namespace"], m["name"]) if m.get("namespace") else m.get("name")


def split_key(key):
    """``(namespace, name)`` of a key (namespace ``None`` for a cluster-scoped object)."""
    namespace, _, name = key.rpartition("/")
    return (namespace or None), name


# -- time -------------------------------------------------------------------------------


def format_time(seconds):
    """An RFC 3339 timestamp (``2026-01-02T03:04:05Z``, Kubernetes' ``metav1.Time``) for
    ``seconds`` since the epoch."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


_TIME = re.compile(r"^(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(\.\d+)?"
                   r"([Zz]|[+-]\d\d:\d\d)$")


@functools.lru_cache(maxsize=4096)
def parse_time(text):
    """Seconds since the epoch of an RFC 3339 timestamp, or ``None`` when ``text`` is not
    one (a missing or malformed field is treated as unknown, never as an error)."""
    if not isinstance(text, str):
        return None
    m = _TIME.match(text)
    if not m:
        return None
    year, month, day, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
    try:
        seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    except (ValueError, OverflowError):
        return None
    if m.group(7):
        seconds += float(m.group(7))
    zone = m.group(8)
    if zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        seconds -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return seconds


# -- owners --------------------------------------------------------------------------------


def controller_ref(obj):
    """The owner reference with ``controller: true`` (``metav1.GetControllerOf``), or
    ``None``."""
    for ref in meta(obj).get("ownerReferences") or ():
        if isinstance(ref, dict) and ref.get("controller"):
            return ref
    return None


def owner_reference(owner, api_version, kind):
    """A controller owner reference to ``owner`` as the built-in controllers set it
    (``metav1.NewControllerRef``: ``controller`` and ``blockOwnerDeletion`` true)."""
    m = meta(owner)
    return {"apiVersion": api_version, "kind": kind, "name": m.get("name"),
            "uid": m.get("uid"), "controller": True, "blockOwnerDeletion": True}


def is_terminating(obj):
    """Whether ``obj`` has a ``deletionTimestamp``."""
    return bool(meta(obj).get("deletionTimestamp"))


# -- pods ----------------------------------------------------------------------------------


def pod_is_active(pod):
    """``controller.IsPodActive``: not Succeeded, not Failed, not being deleted."""
    phase = (pod.get("status") or {}).get("phase")
    return phase not in ("Succeeded", "Failed") and not is_terminating(pod)


def get_condition(status, ctype):
    """The condition of type ``ctype`` in ``status["conditions"]``, or ``None``."""
    for condition in (status or {}).get("conditions") or ():
        if isinstance(condition, dict) and condition.get("type") == ctype:
            return condition
    return None


def pod_is_ready(pod):
    """``podutil.IsPodReady``: the pod's ``Ready`` condition is ``True``."""
    condition = get_condition(pod.get("status"), "Ready")
    return condition is not None and condition.get("status") == "True"


def pod_is_available(pod, min_ready_seconds, now):
    """``podutil.IsPodAvailable``: Ready, and Ready for ``min_ready_seconds`` at ``now``
    (by the Ready condition's ``lastTransitionTime``)."""
    condition = get_condition(pod.get("status"), "Ready")
    if condition is None or condition.get("status") != "True":
        return False
    if not min_ready_seconds:
        return True
    since = parse_time(condition.get("lastTransitionTime"))
    return since is not None and since + min_ready_seconds <= now


# -- quantities ----------------------------------------------------------------------------

_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])|"
                       r"[eE]([+-]?\d+))?$")
_SUFFIX = {"n": Fraction(1, 10 ** 9), "u": Fraction(1, 10 ** 6), "m": Fraction(1, 1000),
           "": Fraction(1), "k": Fraction(10 ** 3), "M": Fraction(10 ** 6),
           "G": Fraction(10 ** 9), "T": Fraction(10 ** 12), "P": Fraction(10 ** 15),
           "E": Fraction(10 ** 18), "Ki": Fraction(2 ** 10), "Mi": Fraction(2 ** 20),
           "Gi": Fraction(2 ** 30), "Ti": Fraction(2 ** 40), "Pi": Fraction(2 ** 50),
           "Ei": Fraction(2 ** 60)}


@functools.lru_cache(maxsize=4096)
def _parse_quantity_text(text):
    m = _QUANTITY.match(text.strip())
    if not m:
        raise ValueError("{!r} is not a quantity (e.g. 500m, 128Mi, 2)".format(text))
    number = Fraction(m.group(1))
    if m.group(3) is not None:
        number *= Fraction(10) ** int(m.group(3))
    else:
        number *= _SUFFIX[m.group(2) or ""]
    return number


def parse_quantity(value):
    """A Kubernetes ``resource.Quantity`` (``"500m"``, ``"128Mi"``, ``2``, ``"1e3"``) as
    an exact ``Fraction``; ``ValueError`` for anything else."""
    if isinstance(value, bool) or value is None:
        raise ValueError("{!r} is not a quantity".format(value))
    if isinstance(value, (int, float)):
        return Fraction(value)
    if not isinstance(value, str):
        raise ValueError("{!r} is not a quantity".format(value))
    return _parse_quantity_text(value)


def milli_value(value):
    """``Quantity.MilliValue()``: the quantity times 1000, rounded up (CPU in
    millicores)."""
    return math.ceil(parse_quantity(value) * 1000)


def whole_value(value):
    """``Quantity.Value()``: the quantity rounded up to an integer (bytes, pods)."""
    return math.ceil(parse_quantity(value))


# -- label selectors -----------------------------------------------------------------------


def label_selector_requirements(selector):
    """``(key, operator, values)`` triples of a ``metav1.LabelSelector`` (``matchLabels``
    become ``In`` requirements); ``None`` for a ``None`` selector, which matches nothing."""
    if selector is None:
        return None
    requirements = [(k, "In", (v,)) for k, v in sorted((selector.get("matchLabels") or {})
                                                     .items())]
    for expression in selector.get("matchExpressions") or ():
        requirements.append((expression.get("key"), expression.get("operator"),
                             tuple(expression.get("values") or ())))
    return requirements


def selector_matches(selector, labels):
    """``metav1.LabelSelectorAsSelector(selector).Matches(labels)``: an empty selector
    matches everything, ``None`` nothing."""
    requirements = label_selector_requirements(selector)
    if requirements is None:
        return False
    labels = labels or {}
    for key, operator, values in requirements:
        if operator == "In":
            if labels.get(key) not in values:
                return False
        elif operator == "NotIn":
            if key in labels and labels[key] in values:
                return False
        elif operator == "Exists":
            if key not in labels:
                return False
        elif operator == "DoesNotExist":
            if key in labels:
                return False
        else:
            return False  # an unknown operator matches nothing (validation rejects it)
    return True


# -- intstr ---------------------------------------------------------------------------------


def scaled_value(value, total, round_up):
    """``intstr.GetScaledValueFromIntOrPercent``: an int as is, ``"25%"`` of ``total``
    rounded up or down; ``ValueError`` for anything else."""
    if isinstance(value, bool):
        raise ValueError("invalid value for IntOrString: {!r}".format(value))
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("%"):
            try:
                percent = int(text[:-1])
            except ValueError:
                raise ValueError("invalid value for IntOrString: invalid value {!r}".format(
                    value)) from None
            exact = Fraction(percent * total, 100)
            return math.ceil(exact) if round_up else math.floor(exact)
        if text.isdigit():
            return int(text)
    raise ValueError("invalid value for IntOrString: {!r}".format(value))
