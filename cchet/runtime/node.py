"""``cchet start``: a node joins a hardened cluster only by attesting to the data owner's broker.

The node proves itself with composite evidence (its TEE and GPUs; SIMULATED when ``CCHET_SIMULATE`` is set)
bound to the broker's nonce, receives the cluster key through the attested key-release protocol, opens the
cluster's sealed credentials (Ray's TLS CA, certificate and key, and the auth token; see
:mod:`cchet.broker.cluster`) and replaces itself with ``ray start`` running with TLS and token auth. A node
whose evidence does not pass the cluster policy gets nothing, and without the credentials it cannot join.
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

__all__ = ["join_environment", "start"]


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
