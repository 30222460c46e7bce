"""Tests of the embedded control plane (kubeedge_tw.cloud.controlplane)."""
