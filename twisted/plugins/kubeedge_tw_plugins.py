"""twistd plugins ``kubeedge-cloud`` and ``kubeedge-edge`` (no __init__.py in this folder:
it is a portion of Twisted's ``twisted.plugins`` namespace)."""

from kubeedge_tw.taps import CLOUD_MAKER, EDGE_MAKER

kubeedge_cloud = CLOUD_MAKER
kubeedge_edge = EDGE_MAKER
