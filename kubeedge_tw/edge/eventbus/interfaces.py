"""The interface EventBus uses for its MQTT connections."""

from zope.interface import Attribute, Interface

__all__ = ["IMQTTLink"]


class IMQTTLink(Interface):
    """A connection to MQTT that EventBus uses: the internal broker, or a client of an
    external one. Both are also Twisted services, started and stopped with the module."""

    on_message = Attribute("Callable ``(topic: str, payload: bytes)`` for received messages.")

    def subscribe(topic_filter, qos=1):
        """Receive messages matching ``topic_filter`` from now on (``ValueError`` when
        invalid)."""

    def publish(topic, payload, qos=0, retain=False):
        """Publish ``payload`` (bytes) on ``topic`` (``ValueError`` when invalid)."""

    def startService():
        """Start."""

    def stopService():
        """Stop; may return a Deferred."""
