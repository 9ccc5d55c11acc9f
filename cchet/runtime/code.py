"""Sealed code: a function or actor class travels to workers sealed, and its identity is the digest of that.

Ray exports a remote function by value through the GCS, with every module-level object it references, so
user code and whatever it captures (tables, weights, tokens, closures, default arguments, class attributes)
would reach Ray's control plane in the clear. cchet hands Ray one generic entry point instead
(:mod:`cchet.runtime.serve`), and the user's function or class, cloudpickled with everything it captures, is
sealed under the session's job key (context ``cchet/v1/code`` and the session id) and put into the object
store once per session (:func:`seal_code`). Its **function identity** is the SHA-256 of those sealed bytes:
it is what call envelopes, call tickets and the broker's key scopes name.

A worker loads the code after attestation (:func:`load_code`): it checks the object's digest against the
identity the call's authenticated envelope names, opens it, and keeps it by digest, so later calls cost
nothing. Functions defined in an importable module pickle by reference (module and name): the worker then
runs its own installed copy of that module, which the attested image must contain.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from cchet.errors import IntegrityError
from cchet.hazmat.keys import DataKey
from cchet.runtime.contexts import code_context
from cchet.runtime.values import open_value, seal_value

__all__ = ["SealedCode", "cached", "load_code", "seal_code"]

CACHE_ENTRIES = 256


@dataclass(frozen=True)
class SealedCode:
    """A session's sealed copy of a function or class: its identity and the object reference holding it."""

    digest: bytes
    ref: Any


def seal_code(job_key: DataKey, session_id: bytes, obj: Any) -> tuple[bytes, bytes]:
    """``(identity, sealed bytes)`` of ``obj`` for this session."""
    sealed = seal_value(job_key, obj, code_context(session_id))
    return hashlib.sha256(sealed).digest(), sealed


_lock = threading.Lock()
_loaded: OrderedDict[bytes, Any] = OrderedDict()


def cached(digest: bytes) -> Any | None:
    """The code with identity ``digest`` if this process has opened it before."""
    with _lock:
        if digest in _loaded:
            _loaded.move_to_end(digest)
            return _loaded[digest]
    return None


def load_code(digest: bytes, sealed: memoryview, job_key: DataKey, session_id: bytes) -> Any:
    """Check that ``sealed`` is the code whose identity is ``digest``, open it, and keep it for later calls.
    Raises :class:`~cchet.IntegrityError` when the bytes are not that code or do not open."""
    if hashlib.sha256(sealed).digest() != digest:
        raise IntegrityError()
    obj = open_value(job_key, sealed, code_context(session_id))
    with _lock:
        _loaded[digest] = obj
        while len(_loaded) > CACHE_ENTRIES:
            _loaded.popitem(last=False)
    return obj
