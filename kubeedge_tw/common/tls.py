"""TLS context factories for the cloud-edge link (pyOpenSSL through Twisted).

* CloudHub: TLS >= 1.2, client certificate **required** and verified against the CA
  (KubeEdge v1.2+ behaviour, reference 2.3); an edge with no certificate, an expired one
  or one from another CA never completes the handshake.
* EdgeHub: TLS >= 1.2, presents its client certificate and verifies the server against
  the CA including its hostname or IP address (service-identity), as a v1.15 edge does.
"""

from twisted.internet import ssl

from kubeedge_tw.common import pki

__all__ = ["TLSFilesError", "server_options", "client_options", "read_pem_files"]


class TLSFilesError(Exception):
    """A certificate or key file is missing or unreadable; the message names it."""


def read_pem_files(**paths):
    """Read each named PEM file; raise :class:`TLSFilesError` listing every problem."""
    data, problems = {}, []
    for what, path in paths.items():
        try:
            with open(path, "rb") as f:
                data[what] = f.read()
        except OSError as e:
            problems.append("{} {}: {}".format(what, path, e.strerror or e))
    if problems:
        raise TLSFilesError("; ".join(problems))
    return data


def _private_certificate(cert_pem, key_pem, what):
    try:
        return ssl.PrivateCertificate.loadPEM(cert_pem + b"\n" + key_pem)
    except Exception as e:  # pyOpenSSL raises several error types for bad PEM
        raise TLSFilesError("{}: not a usable certificate/key pair: {}".format(what, e)) from None


def _ca(ca_pem, what):
    try:
        return ssl.Certificate.loadPEM(ca_pem)
    except Exception as e:
        raise TLSFilesError("{}: not a PEM certificate: {}".format(what, e)) from None


def server_options(ca_file, cert_file, key_file, require_client_cert=True):
    """``IOpenSSLServerConnectionCreator`` for CloudHub: mutual TLS against ``ca_file``.

    With ``require_client_cert=False`` (the bootstrap server) a client certificate is
    optional, but still verified against the CA when one is presented."""
    pems = read_pem_files(tlsCAFile=ca_file, tlsCertFile=cert_file, tlsPrivateKeyFile=key_file)
    server = _private_certificate(pems["tlsCertFile"], pems["tlsPrivateKeyFile"], cert_file)
    ca = _ca(pems["tlsCAFile"], ca_file)
    return ssl.CertificateOptions(
        privateKey=server.privateKey.original, certificate=server.original,
        verify=True, caCerts=[ca.original], requireCertificate=require_client_cert,
        raiseMinimumTo=ssl.TLSVersion.TLSv1_2)


def client_options(server_host, ca_file, cert_file, key_file):
    """``IOpenSSLClientConnectionCreator`` for EdgeHub: our certificate, and the server
    verified against ``ca_file`` for ``server_host`` (a DNS name or an IP address)."""
    pems = read_pem_files(tlsCaFile=ca_file, tlsCertFile=cert_file, tlsPrivateKeyFile=key_file)
    client = _private_certificate(pems["tlsCertFile"], pems["tlsPrivateKeyFile"], cert_file)
    ca = _ca(pems["tlsCaFile"], ca_file)
    return ssl.optionsForClientTLS(
        server_host, trustRoot=ca, clientCertificate=client,
        extraCertificateOptions={"raiseMinimumTo": ssl.TLSVersion.TLSv1_2})


def write_test_pki(directory, node_names=("edge-1",), server_ips=("127.0.0.1", "::1"),
                   server_dns=("localhost",)):
    """Make a CA, a server certificate and client certificates for ``node_names`` under
    ``directory`` in the layout the configs default to (``ca/rootCA.crt``,
    ``certs/server.crt``, ``certs/<node>.crt`` ...). For tests and local trials; the
    ``certs`` command is the operator's way. Returns a dict of paths."""
    import os
    ca_key, ca_cert = pki.create_ca()
    paths = {
        "ca": pki.write_pem(os.path.join(directory, "ca", "rootCA.crt"), pki.cert_pem(ca_cert)),
        "ca_key": pki.write_pem(os.path.join(directory, "ca", "rootCA.key"),
                                pki.key_pem(ca_key), private=True),
    }
    key, cert = pki.issue_server_cert(ca_key, ca_cert, ips=server_ips, dns_names=server_dns)
    paths["server_cert"] = pki.write_pem(os.path.join(directory, "certs", "server.crt"),
                                         pki.cert_pem(cert))
    paths["server_key"] = pki.write_pem(os.path.join(directory, "certs", "server.key"),
                                        pki.key_pem(key), private=True)
    for node in node_names:
        key, cert = pki.issue_client_cert(ca_key, ca_cert, node)
        paths[node + "_cert"] = pki.write_pem(os.path.join(directory, "certs", node + ".crt"),
                                              pki.cert_pem(cert))
        paths[node + "_key"] = pki.write_pem(os.path.join(directory, "certs", node + ".key"),
                                             pki.key_pem(key), private=True)
    paths["ca_key_obj"], paths["ca_cert_obj"] = ca_key, ca_cert
    return paths
