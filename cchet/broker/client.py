"""The worker's side of key release: :class:`BrokerClient`.

The client pins the broker: it is built with the broker id it expects (from measured launch configuration on
a real TEE, from the simulator in simulation) and rejects any answer not signed by the key that hashes to
it. It attests at most once per process for a given set of keys, function, data ids and call ticket:
concurrent callers for the same set wait for one attestation; keys are cached in memory as handles (never pickled) and
re-attested ``refresh_margin_s`` before they expire.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag

from cchet._version import __version__
from cchet.attest.binding import Binding, compute_report_data
from cchet.attest.evidence import CompositeEvidence
from cchet.broker.broker import bundle_info
from cchet.broker.hpke import DEFAULT_SUITE, HpkeKeyPair, HpkeSuite
from cchet.broker.messages import KeyRequest, ProtocolError, b64d, b64e, open_signed
from cchet.broker.transport import Transport
from cchet.errors import BrokerError, KeyReleaseDenied
from cchet.hazmat.keys import DataKey, data_key_from_bytes

__all__ = ["Appraised", "Attester", "BrokerClient", "ReleasedKeys"]


class Attester(Protocol):
    """Collects composite evidence whose CPU report data binds the given nonce and binding."""

    tee_kind: str
    gpu_count: int

    def collect(self, nonce: bytes, binding: Binding) -> CompositeEvidence: ...


@dataclass(frozen=True)
class Appraised:
    """What the broker's signed answer says it appraised of this worker's evidence."""

    tee_kind: str = ""
    gpus: int = 0
    gpus_affirmed: bool = False
    gpu_identities: tuple[str, ...] = ()


@dataclass(frozen=True, repr=False)
class ReleasedKeys:
    """Keys released by one attestation. ``keys`` opens data; :meth:`sealing_key` says which key to seal with
    (a successor when the broker rotated a key whose budget ran low); ``appraised`` is what the broker
    appraised of this worker's evidence."""

    keys: Mapping[bytes, DataKey]
    seal_with: Mapping[bytes, bytes]
    token: str
    expires: float
    simulated: bool
    appraised: Appraised = Appraised()

    def __repr__(self) -> str:
        ids = ", ".join(k.hex()[:12] for k in self.keys)
        return f"ReleasedKeys(key ids: {ids}; expires {self.expires:.0f}{'; SIMULATED' if self.simulated else ''})"

    def __getitem__(self, key_id: bytes) -> DataKey:
        return self.keys[key_id]

    def sealing_key(self, key_id: bytes) -> DataKey:
        return self.keys[self.seal_with.get(key_id, key_id)]

    def __reduce__(self) -> Any:
        raise TypeError("released keys refuse to be pickled")


class BrokerClient:
    """Requests keys from a pinned broker, proving this worker with ``attester``'s evidence."""

    def __init__(
        self,
        transport: Transport,
        *,
        broker_id: bytes,
        attester: Attester,
        node_id: str,
        suite: HpkeSuite = DEFAULT_SUITE,
        refresh_margin_s: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if len(broker_id) != 32:
            raise ValueError("broker_id is the 32-byte SHA-256 of the broker's public key")
        self._transport = transport
        self.broker_id = bytes(broker_id)
        self._attester = attester
        self.node_id = node_id
        self._suite = suite
        self._margin = refresh_margin_s
        self._clock = clock
        self._lock = threading.Lock()
        self._inflight: dict[tuple[Any, ...], threading.Lock] = {}
        self._cache: dict[tuple[Any, ...], ReleasedKeys] = {}
        self.attestations = 0

    def keys(
        self,
        key_ids: Iterable[bytes],
        *,
        function: str,
        data_ids: Iterable[str] = (),
        ticket: bytes = b"",
        gpu_identity: str = "",
    ) -> ReleasedKeys:
        """The released keys for ``key_ids``, attesting only when no fresh release is cached. ``ticket`` is the
        data owner's call ticket for ``function`` (every key but a cluster key needs one); ``gpu_identity`` the
        GPU a ``gpu='cc'`` call runs on (:func:`cchet.attest.claims.identity_of_chain` of its certificates).

        Raises :class:`~cchet.KeyReleaseDenied` with the broker's reasons, or :class:`~cchet.BrokerError`
        when the broker is unreachable or its answer is not authentic.
        """
        ids = tuple(sorted(set(key_ids)))
        data = tuple(sorted(set(data_ids)))
        slot = (ids, function, data, ticket, gpu_identity)
        with self._lock:
            gate = self._inflight.setdefault(slot, threading.Lock())
        with gate:
            cached = self._cache.get(slot)
            if cached is not None and cached.expires - self._margin > self._clock():
                return cached
            released = self._attest(ids, function, data, ticket, gpu_identity)
            self._cache[slot] = released
            return released

    def _attest(
        self, key_ids: tuple[bytes, ...], function: str, data_ids: tuple[str, ...], ticket: bytes, gpu_identity: str
    ) -> ReleasedKeys:
        request = KeyRequest(
            node_id=self.node_id,
            tee_kind=self._attester.tee_kind,
            function=function,
            key_ids=key_ids,
            data_ids=data_ids,
            cchet_version=__version__,
            gpus=self._attester.gpu_count,
            ticket=ticket,
            gpu_identity=gpu_identity,
        )
        digest = request.digest(self.broker_id)
        try:
            challenge = open_signed(
                self._transport.send("challenge", {"request": request.to_json()}), "challenge", self.broker_id
            )
            if b64d(challenge.get("request_digest"), "request_digest", size=32) != digest:
                raise ProtocolError("the challenge answers another request")
            nonce = b64d(challenge.get("nonce"), "nonce", size=32)
        except ProtocolError as e:
            raise BrokerError(f"untrustworthy challenge from the broker: {e}") from None
        pair = HpkeKeyPair(self._suite)
        binding = Binding(self.broker_id, *self._suite.ids, pair.public_bytes, digest)
        evidence = self._attester.collect(nonce, binding)
        self.attestations += 1
        message = {
            "request": request.to_json(),
            "nonce": b64e(nonce),
            "suite": list(self._suite.ids),
            "public_key": b64e(pair.public_bytes),
            "evidence": b64e(evidence.to_bytes()),
        }
        try:
            body = open_signed(self._transport.send("release", message), "response", self.broker_id)
            if b64d(body.get("request_digest"), "request_digest", size=32) != digest:
                raise ProtocolError("the response answers another request")
        except ProtocolError as e:
            raise BrokerError(f"untrustworthy response from the broker: {e}") from None
        if body.get("verdict") == "denied":
            reasons = body.get("reasons")
            raise KeyReleaseDenied(reasons if isinstance(reasons, list) and reasons else ["no reason given"])
        report_data = compute_report_data(binding, nonce, evidence.gpu_transcripts())
        return self._open_bundle(body, pair, report_data)

    def _open_bundle(self, body: dict[str, Any], pair: HpkeKeyPair, report_data: bytes) -> ReleasedKeys:
        try:
            if body.get("verdict") != "released" or body.get("transcript") != report_data.hex():
                raise ProtocolError("the response is not bound to this attestation's transcript")
            sealed = b64d(body.get("bundle"), "bundle")
            try:
                bundle = json.loads(pair.open(sealed, bundle_info(report_data)))
            except InvalidTag:
                raise ProtocolError("the key bundle does not open with this worker's key and transcript") from None
            if bundle.get("transcript") != report_data.hex():
                raise ProtocolError("the key bundle is bound to another transcript")
            keys: dict[bytes, DataKey] = {}
            seal_with: dict[bytes, bytes] = {}
            for entry in bundle["keys"]:
                key_id = bytes.fromhex(entry["key_id"])
                keys[key_id] = data_key_from_bytes(base64.b64decode(entry["key"]), key_id)
                seal_with[key_id] = bytes.fromhex(entry["seal_with"])
            token = body.get("token")
            if not isinstance(token, str):
                raise ProtocolError("the response carries no token")
            facts = body.get("appraised") or {}
            identities = facts.get("gpu_identities", [])
            if not isinstance(identities, list) or not all(isinstance(i, str) for i in identities):
                raise ProtocolError("appraised.gpu_identities must be a list of strings")
            appraised = Appraised(
                str(facts["tee"]), int(facts["gpus"]), facts["gpus_affirmed"] is True, tuple(identities)
            )
        except (KeyError, TypeError, ValueError) as e:
            raise BrokerError(f"untrustworthy response from the broker: {e}") from None
        return ReleasedKeys(keys, seal_with, token, float(bundle["expires"]), bool(body.get("simulated")), appraised)
