"""Function identity: the digest a worker recomputes from the code it is about to run.

``function_digest(fn) = SHA-256("cchet/v1/function" || module || qualname || code)``, where ``code`` is a
canonical walk of the code object (bytecode, constants with nested code objects walked in turn, names,
argument layout, flags), independent of file names, line numbers and interpreter memory addresses, so the
driver and a worker on the same Python version agree. It identifies code, not data: closure values and
globals are not covered, and two Python versions give different digests for the same source.
"""

from __future__ import annotations

import hashlib
import struct
import types
from collections.abc import Callable
from typing import Any

__all__ = ["class_digest", "function_digest", "function_name"]

_LABEL = b"cchet/v1/function\x00"


def _feed(h: Any, data: bytes) -> None:
    h.update(struct.pack(">Q", len(data)))
    h.update(data)


def _const(h: Any, value: object) -> None:
    if isinstance(value, types.CodeType):
        _feed(h, b"code")
        _code(h, value)
    elif isinstance(value, tuple | frozenset):
        items = sorted(value, key=repr) if isinstance(value, frozenset) else value
        _feed(h, type(value).__name__.encode() + b":" + str(len(items)).encode())
        for item in items:
            _const(h, item)
    else:
        _feed(h, f"{type(value).__name__}:{value!r}".encode())


def _code(h: Any, code: types.CodeType) -> None:
    _feed(h, code.co_code)
    for names in (code.co_names, code.co_varnames, code.co_freevars, code.co_cellvars):
        _feed(h, "\x00".join(names).encode())
    _feed(
        h,
        struct.pack(">IIII", code.co_argcount, code.co_posonlyargcount, code.co_kwonlyargcount, code.co_flags),
    )
    _feed(h, str(len(code.co_consts)).encode())
    for const in code.co_consts:
        _const(h, const)


def function_name(fn: Callable[..., Any]) -> str:
    """``module.qualname``: the function identity that key scopes name."""
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', getattr(fn, '__name__', '?'))}"


def function_digest(fn: Callable[..., Any]) -> bytes:
    """32-byte digest of a Python function's identity and code. ``TypeError`` for non-functions."""
    code = getattr(fn, "__code__", None)
    if not isinstance(code, types.CodeType):
        raise TypeError(f"cchet.remote needs a Python function, got {type(fn).__name__}")
    h = hashlib.sha256(_LABEL)
    _feed(h, function_name(fn).encode())
    _code(h, code)
    return h.digest()


def class_digest(cls: type) -> bytes:
    """32-byte digest of a class's identity and the code of every function it defines (sorted by name)."""
    h = hashlib.sha256(_LABEL + b"class\x00")
    _feed(h, function_name(cls).encode())
    for name, member in sorted(vars(cls).items()):
        fn = member.__func__ if isinstance(member, staticmethod | classmethod) else member
        if isinstance(getattr(fn, "__code__", None), types.CodeType):
            _feed(h, name.encode())
            _feed(h, function_digest(fn))
    return h.digest()
