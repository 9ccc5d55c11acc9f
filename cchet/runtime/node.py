"""``cchet start``: a node joins a hardened cluster only by attesting to the data owner's broker.

The node proves itself with composite evidence (its TEE and GPUs; SIMULATED when ``CCHET_SIMULATE`` is set)
bound to the broker's nonce, receives the cluster key through the attested key-release protocol, opens the
cluster's sealed credentials (Ray's TLS CA, certificate and key, and the auth token; see
:mod:`cchet.broker.cluster`) and replaces itself with ``ray start`` running with TLS and token auth. A node
whose evidence does not pass the cluster policy gets nothing, and without the credentials it cannot join.

A node that joined this way proves it to the data owner's driver at every attestation: the node agent signs the
registry's nonce and the node's id with the node key it received (:func:`join_proof`), inside the evidence's
binding, and the driver checks the signature against its own copy of the cluster certificate
(:func:`holds_cluster_credentials`). A node's "hardened" status is that check, never an environment variable.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import sys
import tempfile
import urllib.request
from pathlib import Path

from cchet.errors import BrokerError

__all__ = ["cluster_certificate", "holds_cluster_credentials", "join_environment", "join_proof", "start"]

_JOIN_CONTEXT = b"cchet/v1/node-joined\x00"
MAX_PROOF_BYTES = 256


def _tls_on() -> bool:
    return os.environ.get("RAY_USE_TLS", "").lower() in ("1", "true")


def _join_message(nonce: bytes, node_id: str) -> bytes:
    return _JOIN_CONTEXT + nonce + node_id.encode()


def join_proof(nonce: bytes, node_id: str) -> bytes:
    """On a node: an ECDSA signature over ``nonce`` and ``node_id`` with the cluster node key that
    ``cchet start`` received from the broker (Ray's ``RAY_TLS_SERVER_KEY``); empty when this node runs without
    Ray TLS or its key is not the cluster's kind. Whether the signature is worth anything is for the driver to
    check: the key file's path is only where to look."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    path = os.environ.get("RAY_TLS_SERVER_KEY")
    if not _tls_on() or not path:
        return b""
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return b""
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        return b""
    return key.sign(_join_message(nonce, node_id), ec.ECDSA(hashes.SHA256()))


def cluster_certificate() -> bytes | None:
    """On the driver: the cluster certificate of the owner's credentials it connected with (Ray TLS on and
    ``RAY_TLS_SERVER_CERT`` readable), or None."""
    path = os.environ.get("RAY_TLS_SERVER_CERT")
    if not _tls_on() or not path:
        return None
    try:
        return Path(path).read_bytes()
    except OSError:
        return None


def holds_cluster_credentials(proof: bytes, nonce: bytes, node_id: str, certificate: bytes | None) -> bool:
    """True when ``proof`` is the cluster node key's signature over ``nonce`` and ``node_id``, checked against
    ``certificate`` (the driver's copy, :func:`cluster_certificate`); False for anything else, None included."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    if not proof or certificate is None:
        return False
    try:
        public = x509.load_pem_x509_certificate(certificate).public_key()
    except ValueError:
        return False
    if not isinstance(public, ec.EllipticCurvePublicKey):
        return False
    try:
        public.verify(proof, _join_message(nonce, node_id), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def _credentials_dir() -> Path:
    shm = Path("/dev/shm")  # noqa: S108 - mkdtemp makes a private 0700 folder with a random name
    return Path(tempfile.mkdtemp(prefix="cchet-ray-tls-", dir=shm if shm.is_dir() else None))


def join_environment(broker_url: str, broker_id: bytes, credentials_dir: Path | None = None) -> dict[str, str]:
    """Attest this node and return Ray's TLS and token environment. Raises
    :class:`~cchet.KeyReleaseDenied` when the broker refuses, :class:`~cchet.BrokerError` when it cannot be
    reached or has no cluster credentials."""
    from cchet.broker.client import BrokerClient
    from cchet.broker.cluster import JOIN_FUNCTION, open_credentials
    from cchet.broker.transport import HttpTransport
    from cchet.runtime.environment import node_attester

    url = broker_url.rstrip("/")
    try:
        with urllib.request.urlopen(f"{url}/v1/cluster", timeout=30) as response:  # noqa: S310 - http(s) only
            published = json.loads(response.read())
    except OSError as e:
        raise BrokerError(
            f"cannot get the cluster credentials from {url} ({e}): has the owner run 'cchet broker "
            "cluster init', and is 'cchet broker serve' running?"
        ) from None
    key_id = bytes.fromhex(published["key_id"])
    client = BrokerClient(
        HttpTransport(url), broker_id=broker_id, attester=node_attester(), node_id=socket.gethostname()
    )
    key = client.keys([key_id], function=JOIN_FUNCTION)[key_id]
    credentials = open_credentials(key, base64.b64decode(published["credentials"]))
    return credentials.write(credentials_dir or _credentials_dir())


def start(broker_url: str, broker_id: bytes, ray_args: list[str], credentials_dir: Path | None = None) -> None:
    """Attest, then become ``ray start RAY_ARGS`` with TLS and token auth (this process is replaced)."""
    if not broker_url.startswith(("http://", "https://")):
        raise ValueError(f"--broker must be an http(s) URL, got {broker_url!r}")
    env = join_environment(broker_url, broker_id, credentials_dir)
    print(
        f"cchet: node attested to {broker_url}; starting Ray with TLS (CA {env['RAY_TLS_CA_CERT']}) and token auth",
        file=sys.stderr,
        flush=True,
    )
    ray = str(Path(sys.executable).with_name("ray"))
    os.execve(ray, [ray, "start", *ray_args], {**os.environ, **env})  # noqa: S606 - the Ray CLI of this env
