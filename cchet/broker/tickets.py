"""Call tickets: the data owner's authorisation for a worker to receive keys for one function's calls.

Any process inside an attested TEE can produce valid evidence, so evidence alone cannot tell a confidential
call from another job's code on the same node. A ticket can: the data owner's driver makes it with a sub-key of
the session's job key (``HKDF-SHA256(job key, info="cchet/v1/ticket")``), which only the driver and the broker
holding that key have, and it names everything the release must respect:

``"CCT1" | session id (16) | signer key id (16) | function identity (32) | u8 n | n sorted key ids (16 each) |
u8 len | tee | u8 len | gpu | u8 flags | u64 expiry (unix seconds) | HMAC-SHA256 (32)``

The broker releases a key of any kind but ``cluster`` only to a request whose ticket verifies under a job key it
holds, is unexpired, names the request's function identity and every key id requested, and whose requirements
(``tee``, ``gpu``) the appraised evidence meets. The worker checks the same fields against the sealed call
envelope before it runs anything. Flag bit 0 records that the owner allowed an unhardened multi-node cluster
(``allow_unhardened=True``); the broker writes it into its audit record of the release.

A ticket travels in the clear in Ray's task specification: it is an authorisation, not a secret, scoped to one
function, one key set and an hour. Code that can read the specifications of this session's tasks is inside the
perimeter already (an attested node is single-tenant).
"""

from __future__ import annotations

import hashlib
import hmac
import struct
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from cchet.attest.tees import ALL
from cchet.errors import TicketError
from cchet.hazmat.keys import DataKey, data_key_bytes

__all__ = [
    "MAX_KEY_IDS",
    "MAX_TICKET",
    "TICKET_TTL_S",
    "CallTicket",
    "TicketError",
    "issue_ticket",
    "unmet_requirements",
    "verify_ticket",
]

MAGIC = b"CCT1"
TICKET_TTL_S = 3600
TEES = (*ALL, "any")
GPUS = ("", "cc")
UNHARDENED = 1
_MAC_LABEL = b"cchet/v1/ticket\x00"
MAX_KEY_IDS = 255
"""Key ids a ticket names (its count is one byte); so also the most a key request may ask for."""
MAX_TICKET = len(MAGIC) + 16 + 16 + 32 + 1 + 16 * MAX_KEY_IDS + 1 + 3 + 1 + 2 + 1 + 8 + 32
"""Bytes of the largest ticket (4,197: 255 key ids, the longest requirements)."""


@dataclass(frozen=True)
class CallTicket:
    """A parsed ticket (its MAC is checked by :func:`verify_ticket`, not by parsing)."""

    session_id: bytes
    signer: bytes
    function: bytes
    key_ids: tuple[bytes, ...]
    tee: str
    gpu: str
    unhardened: bool
    expires: int
    mac: bytes

    def body(self) -> bytes:
        """Everything the MAC covers, encoded canonically."""
        return b"".join(
            (
                MAGIC,
                self.session_id,
                self.signer,
                self.function,
                bytes([len(self.key_ids)]),
                *self.key_ids,
                bytes([len(self.tee)]),
                self.tee.encode(),
                bytes([len(self.gpu)]),
                self.gpu.encode(),
                bytes([UNHARDENED if self.unhardened else 0]),
                struct.pack(">Q", self.expires),
            )
        )

    def to_bytes(self) -> bytes:
        return self.body() + self.mac

    @classmethod
    def from_bytes(cls, data: bytes) -> CallTicket:
        """Parse strictly: exact lengths, sorted distinct key ids, known requirement values."""
        try:
            if data[:4] != MAGIC:
                raise TicketError("not a call ticket (magic)")
            session_id, signer, function = data[4:20], data[20:36], data[36:68]
            n, at = data[68], 69
            key_ids = tuple(data[at + 16 * i : at + 16 * (i + 1)] for i in range(n))
            at += 16 * n
            tee, at = data[at + 1 : at + 1 + data[at]].decode("ascii"), at + 1 + data[at]
            gpu, at = data[at + 1 : at + 1 + data[at]].decode("ascii"), at + 1 + data[at]
            flags, (expires,) = data[at], struct.unpack_from(">Q", data, at + 1)
            mac = data[at + 9 :]
        except (IndexError, struct.error, UnicodeDecodeError):
            raise TicketError("truncated or malformed call ticket") from None
        if len(mac) != 32 or any(len(k) != 16 for k in key_ids) or not key_ids:
            raise TicketError("malformed call ticket (lengths)")
        if list(key_ids) != sorted(set(key_ids)):
            raise TicketError("a ticket's key ids are sorted and distinct")
        if tee not in TEES or gpu not in GPUS or flags & ~UNHARDENED:
            raise TicketError(f"unknown requirement in the ticket (tee={tee!r}, gpu={gpu!r}, flags={flags})")
        return cls(session_id, signer, function, key_ids, tee, gpu, bool(flags & UNHARDENED), expires, mac)


def _mac_key(job_key: DataKey) -> bytes:
    return HKDF(hashes.SHA256(), 32, salt=None, info=b"cchet/v1/ticket").derive(data_key_bytes(job_key))


def _mac(job_key: DataKey, body: bytes) -> bytes:
    return hmac.new(_mac_key(job_key), _MAC_LABEL + body, hashlib.sha256).digest()


def issue_ticket(
    job_key: DataKey,
    *,
    session_id: bytes,
    function: bytes,
    key_ids: Iterable[bytes],
    tee: str,
    gpu: str | None,
    unhardened: bool = False,
    ttl_s: int = TICKET_TTL_S,
    clock: Callable[[], float] = time.time,
) -> CallTicket:
    """A ticket for calls of ``function`` in ``session_id`` that need ``key_ids``, signed with ``job_key``."""
    ids = tuple(sorted(set(key_ids)))
    if not 0 < len(ids) <= MAX_KEY_IDS or len(session_id) != 16 or len(function) != 32:
        raise ValueError("a ticket names 1..255 key ids, a 16-byte session id and a 32-byte function identity")
    unsigned = CallTicket(
        session_id, job_key.key_id, function, ids, tee, gpu or "", unhardened, int(clock()) + ttl_s, b""
    )
    if tee not in TEES or unsigned.gpu not in GPUS:
        raise ValueError(f"unknown requirement tee={tee!r}, gpu={gpu!r}")
    return replace(unsigned, mac=_mac(job_key, unsigned.body()))


def verify_ticket(ticket: CallTicket, job_key: DataKey, *, now: float) -> None:
    """Check the ticket's MAC under ``job_key`` (the key its ``signer`` names) and its expiry; ``TicketError``
    saying which failed."""
    if job_key.key_id != ticket.signer:
        raise TicketError("the ticket is signed by another key")
    if not hmac.compare_digest(_mac(job_key, ticket.body()), ticket.mac):
        raise TicketError("the call ticket does not verify under the session's job key")
    if ticket.expires < now:
        raise TicketError("the call ticket has expired")


def unmet_requirements(
    tee: str,
    gpu: str | None,
    *,
    tee_kind: str,
    gpus: int,
    gpus_affirmed: bool,
    gpu_identity: str = "",
    gpu_identities: tuple[str, ...] = (),
) -> list[str]:
    """The call requirements (``tee``, ``gpu``) that appraised evidence -- of CPU TEE ``tee_kind`` with ``gpus``
    GPU reports, all passing when ``gpus_affirmed``, those of the GPUs ``gpu_identities`` (SHA-256 of each
    GPU's attestation certificate) passing -- does not meet. A ``gpu='cc'`` call must also run on one of those
    GPUs: ``gpu_identity``, the GPU the worker says the call runs on."""
    out = []
    if tee not in ("any", tee_kind):
        out.append(f"the call needs tee={tee!r}; the appraised evidence proves {tee_kind or 'no CPU TEE'!r}")
    if gpu == "cc" and not (gpus and gpus_affirmed):
        out.append(f"the call needs gpu='cc'; the appraised evidence holds {gpus} GPU report(s), not all passing")
    elif gpu == "cc" and gpu_identity not in gpu_identities:
        named = f"GPU {gpu_identity[:16]}..." if gpu_identity else "no GPU"
        attested = ", ".join(i[:16] + "..." for i in gpu_identities) or "none"
        out.append(
            f"the call needs gpu='cc' and runs on {named}, which is not one of the attested GPUs whose report "
            f"passed ({attested}): keys for a GPU call go only to the GPU that was attested"
        )
    return out
