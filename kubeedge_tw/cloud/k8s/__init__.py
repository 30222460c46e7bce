"""The Kubernetes API client of the cloud side: treq requests, watches and informers.

* :mod:`~kubeedge_tw.cloud.k8s.kubeconfig` -- kubeconfig / in-cluster / ``kubeAPIConfig``
  -> :class:`ClientConfig` -> :func:`make_kube_client` (TLS policy, connection pool).
* :mod:`~kubeedge_tw.cloud.k8s.client` -- :class:`KubeClient`: get, list, create, update,
  patch, delete, watch; rate limited; errors are :class:`K8sError` with the ``Status``.
* :mod:`~kubeedge_tw.cloud.k8s.watch` -- chunked watch-stream decoding.
* :mod:`~kubeedge_tw.cloud.k8s.informer` -- :class:`Informer`: list+watch cache with
  handlers, resume, relist on 410, backoff.
* :mod:`~kubeedge_tw.cloud.k8s.resources` -- the resource types KubeEdge uses and their
  paths.

The same client talks to a real kube-apiserver and to the embedded one
(``kubeedge_tw.cloud.apiserver``).
"""

from kubeedge_tw.cloud.k8s.client import KubeClient
from kubeedge_tw.cloud.k8s.errors import (
    AlreadyExists, BadRequest, Conflict, Forbidden, Gone, Invalid, K8sConfigError,
    K8sConnectionError, K8sError, K8sTimeout, NotFound, Unauthorized)
from kubeedge_tw.cloud.k8s.informer import Informer, object_key
from kubeedge_tw.cloud.k8s.kubeconfig import (
    ClientConfig, client_config_from, client_from_config, in_cluster_config,
    load_kubeconfig, make_kube_client)
from kubeedge_tw.cloud.k8s.resources import DEFAULT_RESOURCES, ResourceTable, ResourceType

__all__ = [
    "KubeClient", "Informer", "object_key", "ClientConfig", "client_config_from",
    "client_from_config", "in_cluster_config", "load_kubeconfig", "make_kube_client",
    "ResourceType", "ResourceTable", "DEFAULT_RESOURCES", "K8sError", "K8sConfigError",
    "K8sConnectionError", "K8sTimeout", "BadRequest", "Unauthorized", "Forbidden",
    "NotFound", "Conflict", "AlreadyExists", "Gone", "Invalid",
]
