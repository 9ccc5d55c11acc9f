"""DataKey is a handle: no pickling, no bytes in repr, constant-time equality, no construction from bytes
on the safe path."""

from __future__ import annotations

import copy
import pickle

import pytest

import cchet
import cchet.hazmat
from cchet.hazmat import data_key_bytes, data_key_from_bytes


def test_generate_gives_distinct_keys_with_16_byte_ids() -> None:
    a, b = cchet.DataKey.generate(), cchet.DataKey.generate()
    assert len(a.key_id) == 16 and a.key_id != b.key_id
    assert a != b and a == cchet.hazmat.data_key_from_bytes(data_key_bytes(a), a.key_id)
    assert len(data_key_bytes(a)) == 32


def test_refuses_pickling() -> None:
    key = cchet.DataKey.generate()
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        with pytest.raises(TypeError, match="refuses to be pickled"):
            pickle.dumps(key, protocol=protocol)
    assert copy.deepcopy(key) is key


def test_repr_hides_the_key() -> None:
    key = cchet.DataKey.generate()
    raw = data_key_bytes(key)
    text = repr(key) + str(key)
    assert key.key_id.hex() in text
    assert raw.hex() not in text and repr(raw) not in text


def test_not_constructible_from_bytes_on_the_safe_path() -> None:
    with pytest.raises(TypeError, match="generate"):
        cchet.DataKey(bytes(32), bytes(16))


def test_hazmat_round_trip_and_checks() -> None:
    key = data_key_from_bytes(bytes(range(32)), bytes(16))
    assert data_key_bytes(key) == bytes(range(32))
    assert key == data_key_from_bytes(bytes(range(32)), bytes(16))
    assert key != data_key_from_bytes(bytes(32), bytes(16))
    assert hash(key) == hash(data_key_from_bytes(bytes(32), bytes(16)))
    with pytest.raises(ValueError, match="exactly 32"):
        data_key_from_bytes(bytes(31), bytes(16))
    with pytest.raises(ValueError, match="exactly 16"):
        data_key_from_bytes(bytes(32), bytes(15))
    with pytest.raises(TypeError):
        data_key_from_bytes("k" * 32, bytes(16))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        data_key_bytes(bytes(32))  # type: ignore[arg-type]
