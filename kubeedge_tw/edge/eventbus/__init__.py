"""EventBus, the edge's MQTT bridge (KubeEdge module ``eventbus``, group ``bus``).

:mod:`.eventbus` holds the module and its factory, :mod:`.broker` the embedded MQTT 3.1.1
broker (``mqttMode`` 0/1), :mod:`.external` the paho-mqtt client for an external broker
(``mqttMode`` 1/2), :mod:`.packets` the MQTT codec and :mod:`.topics` topic rules and
KubeEdge's topics.
"""

from kubeedge_tw.edge.eventbus.eventbus import (
    BUS_SOURCE, EventBus, IMQTTLink, create_eventbus, parse_mqtt_url, payload_bytes)
from kubeedge_tw.edge.eventbus.topics import (
    SUBSCRIBED_TOPICS, UPLOAD_RECORDS_TOPIC, goes_to_twin, resource_to_topic, topic_matches,
    topic_to_resource)

__all__ = [
    "EventBus", "IMQTTLink", "create_eventbus", "parse_mqtt_url", "payload_bytes",
    "BUS_SOURCE", "SUBSCRIBED_TOPICS", "UPLOAD_RECORDS_TOPIC", "goes_to_twin",
    "resource_to_topic", "topic_matches", "topic_to_resource",
]
