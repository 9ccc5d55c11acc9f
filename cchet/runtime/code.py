"""Sealed code: a function or actor class travels to workers sealed, and its identity is the digest of that.

Ray exports a remote function by value through the GCS, with every module-level object it references, so
user code and whatever it captures (tables, weights, tokens, closures, default arguments, class attributes)
would reach Ray's control plane in the clear. cchet hands Ray one generic entry point instead
(:mod:`cchet.runtime.serve`), and the user's function or class, cloudpickled with everything it captures, is
sealed under the session's job key (context ``cchet/v1/code`` and the session id) and stored once per session
in the GCS's key-value store, where Ray keeps its own exported functions (:func:`store_code`): sealed bytes,
which no call has to carry. Its **function identity** is the SHA-256 of those sealed bytes: it is what call
envelopes, call tickets and the broker's key scopes name.

A worker loads the code after attestation (:func:`load_code`): it fetches the bytes stored under the identity
the call names, checks their digest against it, opens them under the job key, and keeps the code by digest,
so later calls cost nothing. Functions defined in an importable module pickle by reference (module and
name): the worker then runs its own installed copy of that module, which the attested image must contain.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from typing import Any

from cchet.errors import IntegrityError
from cchet.hazmat.keys import DataKey
from cchet.runtime.contexts import code_context
from cchet.runtime.values import open_value, seal_value

__all__ = ["cached", "code_key", "load_code", "seal_code", "store_code"]

CACHE_ENTRIES = 256
WARN_BYTES = 10 << 20  # as Ray warns about large functions
MAX_BYTES = 100 << 20

log = logging.getLogger("cchet.runtime")


def code_key(digest: bytes) -> bytes:
    """Where the sealed code with identity ``digest`` is kept."""
    return b"code/" + digest.hex().encode()


def seal_code(job_key: DataKey, session_id: bytes, obj: Any) -> tuple[bytes, bytes]:
    """``(identity, sealed bytes)`` of ``obj`` for this session."""
    sealed = seal_value(job_key, obj, code_context(session_id))
    return hashlib.sha256(sealed).digest(), sealed


def store_code(job_key: DataKey, session_id: bytes, obj: Any) -> bytes:
    """Seal ``obj`` and keep it for the session's workers; returns its identity. ``ValueError`` when what it
    captures is too large to travel as code (pass large data as arguments or with ``cchet.put``)."""
    from cchet.runtime.raystore import put_blob

    digest, sealed = seal_code(job_key, session_id, obj)
    name = getattr(obj, "__qualname__", type(obj).__name__)
    if len(sealed) > MAX_BYTES:
        raise ValueError(
            f"{name} is {len(sealed) >> 20} MiB once pickled with what it captures: pass large data as an argument "
            "or a cchet.put ref instead of capturing it in the function or class"
        )
    if len(sealed) > WARN_BYTES:
        log.warning(
            "cchet: %s is %d MiB with what it captures; consider passing that data as an argument",
            name,
            len(sealed) >> 20,
        )
    put_blob(code_key(digest), sealed)
    return digest


_lock = threading.Lock()
_loaded: OrderedDict[bytes, Any] = OrderedDict()


def cached(digest: bytes) -> Any | None:
    """The code with identity ``digest`` if this process has opened it before."""
    with _lock:
        if digest in _loaded:
            _loaded.move_to_end(digest)
            return _loaded[digest]
    return None


def load_code(digest: bytes, job_key: DataKey, session_id: bytes) -> Any:
    """Fetch the code whose identity is ``digest``, check and open it, and keep it for later calls. Raises
    :class:`~cchet.IntegrityError` when the bytes kept there are not that code or do not open."""
    from cchet.runtime.raystore import get_blob

    sealed = get_blob(code_key(digest))
    if sealed is None:
        raise IntegrityError(
            f"the sealed code of function {digest.hex()[:16]} is not in the cluster's store: its session ended, "
            "or it was removed"
        )
    if hashlib.sha256(sealed).digest() != digest:
        raise IntegrityError()
    obj = open_value(job_key, sealed, code_context(session_id))
    with _lock:
        _loaded[digest] = obj
        while len(_loaded) > CACHE_ENTRIES:
            _loaded.popitem(last=False)
    return obj
