"""The edge side (KubeEdge's edgecore): edgehub (``websocket``), metaManager, edged,
eventbus, twin and servicebus."""
