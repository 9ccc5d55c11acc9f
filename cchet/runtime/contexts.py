"""Associated data for everything sealed on a Ray call (DESIGN.md section 6).

Each sealed piece is bound to its role, the session, the function digest and the call id, plus its slot:

* call envelope: ``cchet/v1/call``, session id, function digest, call id
* argument ``i``: ``cchet/v1/arg``, ..., ``i``
* return ``j``: ``cchet/v1/ret``, ..., ``j``
* diagnostics (stdout, logs, the exception): ``cchet/v1/diag``, ...
* objects from :func:`cchet.put`: ``cchet/v1/ret`` under the ``put`` pseudo-function digest
* the sealed code of a function or actor class: ``cchet/v1/code``, session id (its identity is the SHA-256 of
  the sealed bytes, so it cannot name itself)

Every field is length-prefixed, so no two distinct tuples encode alike. Moving a sealed piece to another
role, session, function, call or slot makes its tags fail.
"""

from __future__ import annotations

import hashlib
import struct

__all__ = ["PUT_DIGEST", "Role", "code_context", "context", "part_context"]

PUT_DIGEST = hashlib.sha256(b"cchet/v1/put").digest()


class Role:
    CALL = b"cchet/v1/call"
    ARG = b"cchet/v1/arg"
    RET = b"cchet/v1/ret"
    DIAG = b"cchet/v1/diag"
    CODE = b"cchet/v1/code"


def context(role: bytes, session_id: bytes, function_digest: bytes, call_id: bytes, slot: int | None = None) -> bytes:
    parts = [role, session_id, function_digest, call_id]
    out = b"".join(struct.pack(">H", len(p)) + p for p in parts)
    return out + (b"" if slot is None else struct.pack(">I", slot))


def code_context(session_id: bytes) -> bytes:
    """The context a session's sealed code is bound to."""
    return context(Role.CODE, session_id, b"", b"")


def part_context(base: bytes, index: int) -> bytes:
    """The context of part ``index`` of a sealed value (its pickle, then each out-of-band buffer)."""
    return base + b"\x00part" + struct.pack(">I", index)
