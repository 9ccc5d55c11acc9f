"""``cchet.__all__`` equals the public names documented in docs/api.md, and every one resolves."""

from __future__ import annotations

import re

import cchet
from cchet import errors
from tests.conftest import REPO


def _documented() -> set[str]:
    text = (REPO / "docs" / "api.md").read_text()
    block = text.split("<!-- public-names:start -->")[1].split("<!-- public-names:end -->")[0]
    return set(re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)`", block))


def test_all_equals_the_documented_names() -> None:
    assert set(cchet.__all__) == _documented()
    assert len(cchet.__all__) == len(set(cchet.__all__))


def test_every_public_name_resolves() -> None:
    for name in cchet.__all__:
        assert getattr(cchet, name) is not None, name


def test_every_exception_is_exported_and_none_shadows_a_builtin() -> None:
    import builtins

    for name in errors.__all__:
        assert getattr(cchet, name) is getattr(errors, name)
        assert not hasattr(builtins, name), name
        assert issubclass(getattr(errors, name), errors.CchetError)
    assert issubclass(errors.SealedFormatError, errors.IntegrityError)
    for sub in ("EvidenceFormatError", "VerificationError", "PolicyViolation"):
        assert issubclass(getattr(errors, sub), errors.AttestationError)


def test_the_tree_in_the_docstring_names_every_class() -> None:
    assert errors.__doc__ is not None
    for name in errors.__all__:
        assert re.search(rf"\b{name}\b", errors.__doc__), name
