"""Turning caller objects into flat byte views, with errors that say what was wrong."""

from __future__ import annotations

__all__ = ["as_context", "readable_view", "writable_view"]


def readable_view(obj: object, name: str) -> memoryview:
    """A flat, read-only byte view of any C-contiguous buffer (bytes, bytearray, memoryview, numpy)."""
    if isinstance(obj, str):
        raise TypeError(f"{name} must be bytes-like, got str: encode it first (e.g. {name}.encode())")
    try:
        view = memoryview(obj)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(
            f"{name} must be a bytes-like object (bytes, bytearray, memoryview, numpy array), got {type(obj).__name__}"
        ) from None
    if not view.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous: pass a contiguous copy (numpy.ascontiguousarray)")
    return view.cast("B") if view.format != "B" or view.ndim != 1 else view


def writable_view(obj: object, name: str) -> memoryview:
    """A flat, writable byte view; ``TypeError`` for read-only objects such as ``bytes``."""
    view = readable_view(obj, name)
    if view.readonly:
        raise TypeError(
            f"{name} must be writable (bytearray, numpy array, writable memoryview), got read-only {type(obj).__name__}"
        )
    return view


def as_context(context: object) -> bytes:
    """The caller's associated data as bytes."""
    return bytes(readable_view(context, "context"))
