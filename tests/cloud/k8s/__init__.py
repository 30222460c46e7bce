"""Tests of the Kubernetes client (kubeedge_tw.cloud.k8s) and its fake API server."""
