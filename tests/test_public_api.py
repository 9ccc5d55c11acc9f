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


def test_broker_and_collateral_errors_live_in_the_tree() -> None:
    """ProtocolError, TicketError and TokenError are BrokerErrors (and still ValueErrors, as callers catch them);
    FetchError is a CollateralError; the old import locations name the same classes."""
    import pickle

    from cchet.attest import collateral
    from cchet.attest.collateral import fetcher
    from cchet.broker import messages, tickets, tokens

    for name in ("ProtocolError", "TicketError", "TokenError"):
        cls = getattr(errors, name)
        assert issubclass(cls, errors.BrokerError) and issubclass(cls, ValueError), name
    assert issubclass(errors.BrokerBusy, errors.BrokerError)
    assert issubclass(errors.FetchError, errors.CollateralError)
    assert messages.ProtocolError is errors.ProtocolError
    assert tickets.TicketError is errors.TicketError
    assert tokens.TokenError is errors.TokenError
    assert collateral.FetchError is fetcher.FetchError is errors.FetchError
    fetch = errors.FetchError("https://pcs.example/tcb: timed out")
    assert str(fetch) == "https://pcs.example/tcb: timed out" and fetch.failures == (str(fetch),)
    busy = pickle.loads(pickle.dumps(errors.BrokerBusy("retry after 3 s", 3)))
    assert isinstance(busy, errors.BrokerBusy) and busy.retry_after_s == 3 and str(busy) == "retry after 3 s"
    assert pickle.loads(pickle.dumps(fetch)).failures == fetch.failures
