"""kubeedge-tw: KubeEdge's cloud and edge sides rebuilt in Python on Twisted.

The cloud side (``twistd kubeedge-cloud``) and the edge side (``twistd kubeedge-edge``) are
each one Twisted ``MultiService`` of KubeEdge's modules, talking KubeEdge's v1.2+ JSON
protocol over a TLS websocket.
"""

__version__ = "0.1.0"

#: The KubeEdge release whose wire format, topics, payloads and config keys we follow.
KUBEEDGE_COMPAT_VERSION = "v1.15.4"
