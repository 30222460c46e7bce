"""Tests of the embedded Kubernetes API server (kubeedge_tw.cloud.apiserver)."""
