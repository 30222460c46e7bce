"""EdgeHub, the edge's link to CloudHub (KubeEdge module ``websocket``, group ``hub``).

:mod:`.hub` holds the module and its factory, :mod:`.protocol` the autobahn websocket
client, :mod:`.offline` what is kept for the cloud while it is unreachable.
"""

from kubeedge_tw.edge.edgehub.hub import (
    GROUP_ROUTES, MAX_MESSAGE_SIZE, EdgeHub, TLSEndpointFactory, create_edgehub, edgehub_url,
    split_host_port)
from kubeedge_tw.edge.edgehub.offline import OfflineQueue, keep_while_offline

__all__ = [
    "EdgeHub", "TLSEndpointFactory", "create_edgehub", "edgehub_url", "split_host_port",
    "GROUP_ROUTES", "MAX_MESSAGE_SIZE", "OfflineQueue", "keep_while_offline",
]
