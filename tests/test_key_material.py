"""Key material never shows: no ``repr``, ``str``, traceback (with its locals) or pickle of any class that holds a
key gives its bytes away.

The walk: every class in ``cchet`` whose fields or constructor name a key type (``DataKey``, ``MasterKey``,
private keys, HPKE key pairs, released keys, cluster credentials) must be built here with a known secret and
checked; a new such class that is not is a failure, so this test grows with the code."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import os
import pickle
import re
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import cchet
from cchet.hazmat import data_key_from_bytes
from tests.leak_scan import patterns

SECRET = os.urandom(32)
FORMS = [*patterns(SECRET), str(int.from_bytes(SECRET, "big")).encode(), SECRET[::-1]]
"""SECRET raw, hex, base64, and as an integer (decimal, and little-endian as pickle writes ints)."""
KEY_ID = os.urandom(16)
KEY_TYPES = re.compile(r"\b(DataKey|MasterKey|\w*PrivateKey|HpkeKeyPair|ReleasedKeys|ClusterCredentials)\b")


def _key() -> cchet.DataKey:
    return data_key_from_bytes(SECRET, KEY_ID)


def _released() -> Any:
    from cchet.broker.client import ReleasedKeys

    return ReleasedKeys({KEY_ID: _key()}, {}, "token", 1e12, True)


def _stored() -> Any:
    from cchet.broker.keystore import StoredKey

    return StoredKey(_key(), "policy")


def _store(tmp: Path) -> Any:
    from cchet.broker.keystore import KeyStore

    store = KeyStore(None, None)
    store.add(_key(), policy_id="policy")
    return store


def _broker(tmp: Path) -> Any:
    from cchet.attest.policy import Policy
    from cchet.broker.broker import KeyBroker
    from cchet.broker.master import MasterKey

    broker = KeyBroker(appraiser=lambda *a, **k: None, default_policy=Policy(), master_key=MasterKey(SECRET))  # type: ignore[arg-type,return-value]
    broker.add_key(_key())
    return broker


def _master(tmp: Path) -> Any:
    from cchet.broker.master import MasterKey

    return MasterKey(SECRET)


def _credentials(tmp: Path) -> Any:
    from cchet.broker.cluster import ClusterCredentials

    return ClusterCredentials(b"ca", b"cert", SECRET.hex().encode(), SECRET.hex())


def _hpke(tmp: Path) -> Any:
    from cchet.broker.hpke import HpkeKeyPair

    return HpkeKeyPair()


def _session(tmp: Path) -> Any:
    from cchet.attest.policy import Policy
    from cchet.runtime.registry import NodeRegistry
    from cchet.runtime.session import Session

    key = _key()
    registry = NodeRegistry(bytes(32), None, Policy())  # type: ignore[arg-type]
    return Session(
        os.urandom(16), bytes(32), "http://127.0.0.1:1", Policy(), key, None, None, registry, False, keys={KEY_ID: key}
    )


def _authority(tmp: Path) -> Any:
    from cchet.attest.simulate.authority import SimulatedAuthority

    return SimulatedAuthority.open(tmp / "sim")


def _rim_signer(tmp: Path) -> Any:
    from cchet.attest.simulate.rim import SimulatedRimSigner

    return SimulatedRimSigner.create()


def _cipher(tmp: Path) -> Any:
    from cchet.crypto.engine import ChunkCipher
    from cchet.crypto.oneshot import new_header

    return ChunkCipher(_key(), new_header(_key(), 10, 4096), b"")


def _writer(tmp: Path) -> Any:
    from cchet.crypto.stream import SealWriter

    return SealWriter(_key(), (tmp / "w").open("wb"))


def _reader(tmp: Path) -> Any:
    from cchet.crypto.oneshot import seal
    from cchet.crypto.stream import UnsealReader

    (tmp / "r").write_bytes(seal(_key(), b"data"))
    return UnsealReader(_key(), (tmp / "r").open("rb"))


def _call(tmp: Path) -> Any:
    from cchet.runtime.envelope import CallEnvelope
    from cchet.runtime.frames import read_call_header, write_call_header
    from cchet.runtime.serve import _Call

    header = read_call_header(write_call_header(bytes(16), bytes(16), bytes(32), b"", envelope=b"x"))
    return _Call(header, CallEnvelope(bytes(32), KEY_ID, (KEY_ID,), "any", None, (), ()), _key())


def _cca_platform(tmp: Path) -> Any:
    from cchet.attest.tees.cca.simulate import simulated_platform

    return simulated_platform(_authority(tmp))


def _vtpm(tmp: Path) -> Any:
    from cchet.attest.tees.azure.simulate import SimulatedVtpm

    return SimulatedVtpm.open(_authority(tmp))


def _hygon(tmp: Path) -> Any:
    """Simulated Hygon keys are SM2 scalars (ints, not a key type the scan finds): one is SECRET here."""
    from cchet.attest.tees.csv.simulate import SimulatedHygon

    hygon = SimulatedHygon.open(_authority(tmp))
    return dataclasses.replace(hygon, keys={**hygon.keys, "pek": int.from_bytes(SECRET, "big")})


BUILDERS: dict[str, Callable[[Path], Any]] = {
    "cchet.hazmat.keys.DataKey": lambda tmp: _key(),
    "cchet.broker.client.ReleasedKeys": lambda tmp: _released(),
    "cchet.broker.keystore.StoredKey": lambda tmp: _stored(),
    "cchet.broker.keystore.KeyStore": _store,
    "cchet.broker.broker.KeyBroker": _broker,
    "cchet.broker.master.MasterKey": _master,
    "cchet.broker.cluster.ClusterCredentials": _credentials,
    "cchet.broker.hpke.HpkeKeyPair": _hpke,
    "cchet.runtime.session.Session": _session,
    "cchet.attest.simulate.authority.SimulatedAuthority": _authority,
    "cchet.attest.simulate.rim.SimulatedRimSigner": _rim_signer,
    "cchet.crypto.engine.ChunkCipher": _cipher,
    "cchet.crypto.stream.SealWriter": _writer,
    "cchet.crypto.stream.UnsealReader": _reader,
    "cchet.runtime.serve._Call": _call,
    "cchet.attest.tees.cca.simulate.SimulatedCcaPlatform": _cca_platform,
    "cchet.attest.tees.azure.simulate.SimulatedVtpm": _vtpm,
    "cchet.attest.tees.csv.simulate.SimulatedHygon": _hygon,
}


def _key_holders() -> set[str]:
    """Every class in cchet whose fields or constructor parameters name a key type."""
    root = Path(cchet.__file__).parent
    found = set()
    for path in sorted(root.rglob("*.py")):
        name = ".".join(("cchet", *path.relative_to(root).with_suffix("").parts)).removesuffix(".__init__")
        module = importlib.import_module(name)
        for attr, cls in vars(module).items():
            if not isinstance(cls, type) or cls.__module__ != module.__name__:
                continue
            texts = [str(v) for v in getattr(cls, "__annotations__", {}).values()]
            init = cls.__dict__.get("__init__")
            if init is not None:
                texts += [str(p.annotation) for p in inspect.signature(init).parameters.values()]
            if any(KEY_TYPES.search(t) for t in texts):
                found.add(f"{module.__name__}.{attr}")
    return found


def test_every_class_that_holds_keys_is_checked() -> None:
    missing = _key_holders() - set(BUILDERS)
    assert not missing, f"classes holding keys with no check here (add a builder to BUILDERS): {sorted(missing)}"


def _shown(obj: Any) -> str:
    try:
        raise RuntimeError("boom")
    except RuntimeError as e:
        held = obj  # noqa: F841 - a local the traceback shows
        formatted = "".join(traceback.TracebackException.from_exception(e, capture_locals=True).format())
    return repr(obj) + str(obj) + formatted


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_no_repr_str_traceback_or_pickle_shows_the_key(name: str, tmp_path: Path) -> None:
    obj = BUILDERS[name](tmp_path)
    shown = _shown(obj).encode()
    for form in FORMS:
        assert form not in shown, f"{name} shows its key material in a repr, str or traceback"
    try:
        pickled = pickle.dumps(obj)
    except (TypeError, AttributeError, pickle.PicklingError):
        return  # refuses to be pickled
    assert not any(form in pickled for form in FORMS), f"{name} pickles its key material"
    pytest.fail(f"{name} can be pickled; a class that holds keys must refuse")
