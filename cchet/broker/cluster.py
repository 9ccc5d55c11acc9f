"""Hardened cluster mode: Ray's TLS credentials and auth token, released only to attested nodes.

``cchet broker cluster init`` makes a cluster CA, one node certificate (its subject alternative names cover
localhost, this machine's addresses and any ``--san`` given) and a Ray auth token, and seals them as one
stream under a fresh *cluster key* (kind ``cluster``) that the key store holds under the cluster policy and
scopes to the pseudo-function ``cchet.node-join``: the one kind of key released to an attested node without a
call ticket, since a node joins before any session runs on it. The sealed credentials are public
(``GET /v1/cluster``); the cluster key comes only through the attested key-release protocol, so only a node
whose evidence passes the policy can open them. ``cchet start`` is the node side (:mod:`cchet.runtime.node`).

``cluster init --rotate`` issues new credentials under a new cluster key and retires the old cluster key in
the key store (:meth:`~cchet.broker.broker.KeyBroker.retire_key`: released to no one again, recorded in the
audit log); the cluster must then be restarted with ``cchet start`` on every node, and a node still running on
the old credentials fails the join proof a driver with the new ones checks (:mod:`cchet.runtime.node`).

Limits: every node shares one certificate and one token (as Ray's TLS setup expects); a node that ever
joined holds them until the cluster's credentials are rotated. Whoever runs the head must be inside the
perimeter: the data owner's machine or an attested node.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import secrets
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from cchet.broker.durable import replace_file
from cchet.broker.keystore import KeyScope
from cchet.crypto.oneshot import seal, unseal
from cchet.hazmat.keys import DataKey

__all__ = ["JOIN_FUNCTION", "ClusterCredentials", "init_cluster", "published_credentials"]

JOIN_FUNCTION = "cchet.node-join"
CONTEXT = b"cchet/v1/cluster-credentials"
SEALED_FILE = "cluster-credentials.sealed"
INDEX_FILE = "cluster.json"
LIFETIME = dt.timedelta(days=30)


@dataclass(frozen=True)
class ClusterCredentials:
    """PEM CA certificate, node certificate and key, and the Ray auth token. The private key and the token are
    secrets: never in ``repr``, and the object refuses to be pickled (write it with :meth:`write`)."""

    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes = field(repr=False)
    token: str = field(repr=False)

    def __reduce__(self) -> NoReturn:
        raise TypeError("cluster credentials refuse to be pickled: they hold Ray's TLS private key and auth token")

    def to_bytes(self) -> bytes:
        return json.dumps(
            {
                "ca": self.ca_pem.decode(),
                "cert": self.cert_pem.decode(),
                "key": self.key_pem.decode(),
                "token": self.token,
            }
        ).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> ClusterCredentials:
        doc = json.loads(data)
        return cls(doc["ca"].encode(), doc["cert"].encode(), doc["key"].encode(), doc["token"])

    def write(self, directory: Path) -> dict[str, str]:
        """Write the files (0600, in a 0700 folder) and return Ray's environment for TLS and token auth."""
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        paths = {}
        for name, data in (("ca.pem", self.ca_pem), ("cert.pem", self.cert_pem), ("key.pem", self.key_pem)):
            replace_file(directory / name, data)
            paths[name] = str(directory / name)
        return {
            "RAY_USE_TLS": "1",
            "RAY_TLS_CA_CERT": paths["ca.pem"],
            "RAY_TLS_SERVER_CERT": paths["cert.pem"],
            "RAY_TLS_SERVER_KEY": paths["key.pem"],
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": self.token,
        }


def _local_names() -> list[x509.GeneralName]:
    import psutil

    ips = {"127.0.0.1"} | {
        a.address for addrs in psutil.net_if_addrs().values() for a in addrs if a.family == socket.AF_INET
    }
    names: list[x509.GeneralName] = [x509.DNSName("localhost"), x509.DNSName(socket.gethostname())]
    return names + [x509.IPAddress(ipaddress.ip_address(ip)) for ip in sorted(ips)]


def _san(value: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(value))
    except ValueError:
        return x509.DNSName(value)


def issue(sans: list[str], now: dt.datetime | None = None) -> ClusterCredentials:
    """A new cluster CA, node certificate (for this machine and ``sans``) and token."""
    now = now or dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cchet cluster CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names = _local_names() + [_san(s) for s in sans]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cchet ray node")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + LIFETIME)
        .add_extension(x509.SubjectAlternativeName(list(dict.fromkeys(names))), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return ClusterCredentials(ca.public_bytes(pem), cert.public_bytes(pem), key_pem, secrets.token_hex(32))


def init_cluster(
    broker: Any, state_dir: Path, policy: Any, sans: list[str], *, rotate: bool = False
) -> tuple[DataKey, ClusterCredentials]:
    """Issue credentials, store the cluster key in ``broker``'s key store and the sealed credentials in
    ``state_dir``. Returns the cluster key and the credentials (for the data owner's own driver).

    Credentials are issued once: ``ValueError`` when ``state_dir`` already has them, unless ``rotate``, which
    replaces them and then retires the previous cluster key (``ValueError`` when there is nothing to rotate)."""
    published = published_credentials(state_dir)
    if published is not None and not rotate:
        raise ValueError(
            f"cluster credentials were already issued in {state_dir} (cluster key {published['key_id']}): "
            "'cchet broker cluster init --rotate' issues new ones and retires that key"
        )
    if published is None and rotate:
        raise ValueError(f"--rotate: {state_dir} holds no cluster credentials to rotate; run 'cluster init' first")
    creds = issue(sans)
    key = broker.add_key(policy=policy, scope=KeyScope(frozenset({JOIN_FUNCTION}), None), kind="cluster")
    replace_file(state_dir / SEALED_FILE, seal(key, creds.to_bytes(), context=CONTEXT))
    replace_file(state_dir / INDEX_FILE, json.dumps({"key_id": key.key_id.hex()}).encode())
    if published is not None:
        broker.retire_key(
            bytes.fromhex(published["key_id"]),
            f"cluster credentials rotated; the new cluster key is {key.key_id.hex()}",
        )
    return key, creds


def published_credentials(state_dir: Path) -> dict[str, str] | None:
    """What ``GET /v1/cluster`` serves: the cluster key id and the sealed credentials (None before init)."""
    index, sealed = state_dir / INDEX_FILE, state_dir / SEALED_FILE
    if not index.exists() or not sealed.exists():
        return None
    return {
        "key_id": json.loads(index.read_text())["key_id"],
        "credentials": base64.b64encode(sealed.read_bytes()).decode(),
    }


def open_credentials(key: DataKey, sealed: bytes) -> ClusterCredentials:
    """The credentials, opened with the cluster key; :class:`~cchet.IntegrityError` if anything was changed."""
    return ClusterCredentials.from_bytes(unseal(key, sealed, context=CONTEXT))
