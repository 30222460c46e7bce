"""Certificates and edge join: the CA and certificate CLI (``certs``), join tokens
(``gettoken``), the cloud's HTTPS bootstrap server and the edge's ``join``.

The certificate primitives live in :mod:`kubeedge_tw.common.pki`."""
