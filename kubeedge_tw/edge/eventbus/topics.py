"""MQTT topic names and filters (MQTT 3.1.1 section 4.7), and the topics KubeEdge uses.

* :func:`topic_name_error` / :func:`topic_filter_error` return why a topic name (what a
  PUBLISH carries) or a topic filter (what a SUBSCRIBE carries) is invalid, or None.
* :func:`topic_matches` is the matching rule: ``+`` matches exactly one level (possibly
  empty), ``#`` (last level only) matches the parent level and any number of levels below,
  and a filter starting with a wildcard never matches a topic starting with ``$``
  (section 4.7.2) -- which is why KubeEdge's filters spell out ``$hw/...``.
* :data:`SUBSCRIBED_TOPICS` are the filters EventBus subscribes (reference 4.1), including
  the v1.17 forms with a namespace segment; :func:`goes_to_twin` is KubeEdge's routing rule.
"""

import base64

__all__ = [
    "topic_name_error", "topic_filter_error", "topic_matches", "SUBSCRIBED_TOPICS",
    "UPLOAD_RECORDS_TOPIC", "goes_to_twin", "topic_to_resource", "resource_to_topic",
    "MAX_TOPIC_BYTES",
]

#: A topic is a UTF-8 string field: at most 65535 bytes.
MAX_TOPIC_BYTES = 65535

#: Sent to the cloud with its topic kept literal as the resource (reference 4.1).
UPLOAD_RECORDS_TOPIC = "SYS/dis/upload_records"

#: The filters EventBus subscribes on every broker it uses (reference 4.1; the namespaced
#: device forms came with KubeEdge v1.17).
SUBSCRIBED_TOPICS = (
    "$hw/events/upload/#",
    UPLOAD_RECORDS_TOPIC,
    "$hw/events/device/+/state/update",
    "$hw/events/device/+/twin/+",
    "$hw/events/node/+/membership/get",
    "$hw/events/device/+/+/state/update",
    "$hw/events/device/+/+/twin/+",
)

_TWIN_PREFIXES = ("$hw/events/device", "$hw/events/node")


def _common_error(text, what):
    if not isinstance(text, str):
        return "{} must be a string, got {}".format(what, type(text).__name__)
    if not text:
        return "{} is empty".format(what)
    if "\x00" in text:
        return "{} contains U+0000".format(what)
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        return "{} is not valid UTF-8 (lone surrogate)".format(what)
    if size > MAX_TOPIC_BYTES:
        return "{} is longer than {} bytes".format(what, MAX_TOPIC_BYTES)
    return None


def topic_name_error(topic):
    """Why ``topic`` cannot be published to, or None: empty, too long, U+0000, or a
    wildcard character (a topic name never holds ``+`` or ``#``)."""
    error = _common_error(topic, "topic name")
    if error is None and ("+" in topic or "#" in topic):
        error = "topic name {!r} contains a wildcard character".format(topic)
    return error


def topic_filter_error(topic_filter):
    """Why ``topic_filter`` cannot be subscribed, or None: besides the name rules, ``#``
    must be a whole last level and ``+`` a whole level."""
    error = _common_error(topic_filter, "topic filter")
    if error is not None:
        return error
    levels = topic_filter.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            return "topic filter {!r}: '#' must be the whole last level".format(topic_filter)
        if "+" in level and level != "+":
            return "topic filter {!r}: '+' must be a whole level".format(topic_filter)
    return None


def topic_matches(topic_filter, topic):
    """Whether the (valid) ``topic_filter`` matches the (valid) topic name ``topic``."""
    if topic_filter == topic:
        return True
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    filter_levels = topic_filter.split("/")
    topic_levels = topic.split("/")
    for index, level in enumerate(filter_levels):
        if level == "#":
            return True
        if index >= len(topic_levels):
            return False
        if level != "+" and level != topic_levels[index]:
            return False
    return len(filter_levels) == len(topic_levels)


def goes_to_twin(topic):
    """KubeEdge's routing rule: device and node event topics go to DeviceTwin, everything
    else to the cloud."""
    return topic.startswith(_TWIN_PREFIXES)


def topic_to_resource(topic):
    """The beehive resource for an MQTT topic: URL-safe base64 (with padding, as Go's
    ``base64.URLEncoding``), except ``SYS/dis/upload_records`` which stays literal."""
    if topic == UPLOAD_RECORDS_TOPIC:
        return topic
    return base64.urlsafe_b64encode(topic.encode("utf-8")).decode("ascii")


def resource_to_topic(resource):
    """Inverse of :func:`topic_to_resource`; ``ValueError`` when ``resource`` is neither
    the literal upload topic nor URL-safe base64 of UTF-8 text."""
    if resource == UPLOAD_RECORDS_TOPIC:
        return resource
    if not isinstance(resource, str) or not resource:
        raise ValueError("resource is empty")
    try:
        padded = resource + "=" * (-len(resource) % 4)
        raw = base64.b64decode(padded.encode("ascii"), altchars=b"-_", validate=True)
        return raw.decode("utf-8")
    except (ValueError, UnicodeError) as e:
        raise ValueError("resource {!r} is not URL-safe base64 of a topic: {}".format(
            resource[:80], e)) from None
