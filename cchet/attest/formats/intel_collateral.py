"""Intel DCAP collateral: TCB info (v3, SGX and TDX) and QE identity (Intel's "enclave identity" v2) as
frozen objects.

Intel signs the exact JSON text of each. Verification (:mod:`cchet.attest.verify.dcap`) checks that
signature, and that the TCB signing certificate made it, over the text first, and only then parses the
text here. Parsing checks shape only: every field Intel defines for these documents is present with its
JSON type (``advisoryIDs``, ``tdxModule`` and ``tdxModuleIdentities`` may be absent), hex fields have their
exact size, SVNs, ids and counters fit their integer widths, dates are ``YYYY-MM-DDThh:mm:ssZ``, TCB
statuses are Intel's names, and each TCB level holds exactly 16 SGX components (and, in TDX TCB info, 16 TDX
components). A failure raises :class:`~cchet.errors.EvidenceFormatError` naming the field
(``tcb_info.tcbLevels[2].tcb.pcesvn``); nothing else is raised. Not checked here: signatures, dates against
a clock, whether the collateral fits a quote, which status an identity level may carry (all verification).

Kept: every field Intel defines except the descriptive ``category`` and ``type`` labels of TCB components
(a component is its SVN). Ignored, as Intel's QVL ignores them: those labels and fields Intel does not
define. ``to_dict``/``to_json`` are the inverse: ``parse_tcb_info(info.to_json()) == info``; for a text with
upper-case hex (as Intel PCS serves it) ``json.loads(info.to_json())`` is the text's JSON without the
ignored fields.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from cchet.attest.tcb import STATUS_ORDER
from cchet.errors import EvidenceFormatError

__all__ = [
    "TCB_INFO_IDS",
    "IdentityLevel",
    "PlatformTcb",
    "QeIdentity",
    "TcbInfo",
    "TcbLevel",
    "TdxModule",
    "TdxModuleIdentity",
    "parse_qe_identity",
    "parse_tcb_info",
]

TCB_INFO_IDS = ("SGX", "TDX")
"""The TCB info ids of v3 TCB info: SGX platforms and TDX platforms."""

_COMPONENTS = 16
_U8, _U16, _U32 = 0xFF, 0xFFFF, 0xFFFF_FFFF
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", re.ASCII)
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True)
class PlatformTcb:
    """The ``tcb`` of a TCB info level: the 16 SGX component SVNs (component 01 first), the PCE SVN and, for
    TDX, the 16 TDX component SVNs (None when the level has none)."""

    sgx_svns: tuple[int, ...]
    pce_svn: int
    tdx_svns: tuple[int, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"sgxtcbcomponents": [{"svn": v} for v in self.sgx_svns], "pcesvn": self.pce_svn}
        if self.tdx_svns is not None:
            out["tdxtcbcomponents"] = [{"svn": v} for v in self.tdx_svns]
        return out


def _level_dict(tcb: dict[str, Any], date: dt.datetime, status: str, advisories: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {"tcb": tcb, "tcbDate": date.strftime(_TIME_FORMAT), "tcbStatus": status}
    if advisories:
        out["advisoryIDs"] = list(advisories)
    return out


@dataclass(frozen=True)
class TcbLevel:
    """One platform TCB level of TCB info: the SVNs it requires, its date, status and advisory ids."""

    tcb: PlatformTcb
    tcb_date: dt.datetime
    tcb_status: str
    advisory_ids: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return _level_dict(self.tcb.to_dict(), self.tcb_date, self.tcb_status, self.advisory_ids)


@dataclass(frozen=True)
class IdentityLevel:
    """One TCB level of the QE or of a TDX module: the ISV SVN from which it applies, its date, status and
    advisory ids."""

    isv_svn: int
    tcb_date: dt.datetime
    tcb_status: str
    advisory_ids: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return _level_dict({"isvsvn": self.isv_svn}, self.tcb_date, self.tcb_status, self.advisory_ids)


@dataclass(frozen=True)
class TdxModule:
    """``tdxModule``: the signer (48 bytes) and attributes (8 bytes, compared under the mask) of TDX 1.0
    modules."""

    mr_signer: bytes
    attributes: bytes
    attributes_mask: bytes

    def to_dict(self) -> dict[str, Any]:
        return {
            "mrsigner": self.mr_signer.hex().upper(),
            "attributes": self.attributes.hex().upper(),
            "attributesMask": self.attributes_mask.hex().upper(),
        }


@dataclass(frozen=True)
class TdxModuleIdentity:
    """One entry of ``tdxModuleIdentities`` (id ``TDX_01``...): the signer and attributes of the modules of
    that version, as in :class:`TdxModule`, and their TCB levels."""

    id: str
    mr_signer: bytes
    attributes: bytes
    attributes_mask: bytes
    tcb_levels: tuple[IdentityLevel, ...]

    def to_dict(self) -> dict[str, Any]:
        module = TdxModule(self.mr_signer, self.attributes, self.attributes_mask).to_dict()
        return {"id": self.id, **module, "tcbLevels": [level.to_dict() for level in self.tcb_levels]}


def _header_dict(info: TcbInfo | QeIdentity) -> dict[str, Any]:
    return {
        "id": info.id,
        "version": info.version,
        "issueDate": info.issue_date.strftime(_TIME_FORMAT),
        "nextUpdate": info.next_update.strftime(_TIME_FORMAT),
    }


@dataclass(frozen=True)
class TcbInfo:
    """TCB info v3 for one FMSPC (``id`` "SGX" or "TDX"): validity, platform ids and TCB levels; for TDX the
    TDX module identities. Dates, here and in the levels, are UTC (``to_dict`` writes them with a ``Z``)."""

    id: str
    version: int
    issue_date: dt.datetime
    next_update: dt.datetime
    fmspc: bytes
    pce_id: bytes
    tcb_type: int
    tcb_evaluation_data_number: int
    tcb_levels: tuple[TcbLevel, ...]
    tdx_module: TdxModule | None = None
    tdx_module_identities: tuple[TdxModuleIdentity, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The JSON object, fields in Intel's order."""
        out = _header_dict(self)
        out.update(
            fmspc=self.fmspc.hex().upper(),
            pceId=self.pce_id.hex().upper(),
            tcbType=self.tcb_type,
            tcbEvaluationDataNumber=self.tcb_evaluation_data_number,
        )
        if self.tdx_module is not None:
            out["tdxModule"] = self.tdx_module.to_dict()
        if self.tdx_module_identities:
            out["tdxModuleIdentities"] = [m.to_dict() for m in self.tdx_module_identities]
        out["tcbLevels"] = [level.to_dict() for level in self.tcb_levels]
        return out

    def to_json(self) -> str:
        """Compact JSON text (what a signer signs); :func:`parse_tcb_info` gives this object back."""
        return json.dumps(self.to_dict(), separators=(",", ":"))


@dataclass(frozen=True)
class QeIdentity:
    """The QE identity (``id`` "QE" for SGX, "TD_QE" for TDX): the quoting enclave's signer, product id,
    MISCSELECT and attributes with their masks, and its TCB levels by ISV SVN."""

    id: str
    version: int
    issue_date: dt.datetime
    next_update: dt.datetime
    tcb_evaluation_data_number: int
    miscselect: int
    miscselect_mask: int
    attributes: bytes
    attributes_mask: bytes
    mr_signer: bytes
    isv_prod_id: int
    tcb_levels: tuple[IdentityLevel, ...]

    def to_dict(self) -> dict[str, Any]:
        """The JSON object, fields in Intel's order."""
        out = _header_dict(self)
        out.update(
            tcbEvaluationDataNumber=self.tcb_evaluation_data_number,
            miscselect=f"{self.miscselect:08X}",
            miscselectMask=f"{self.miscselect_mask:08X}",
            attributes=self.attributes.hex().upper(),
            attributesMask=self.attributes_mask.hex().upper(),
            mrsigner=self.mr_signer.hex().upper(),
            isvprodid=self.isv_prod_id,
            tcbLevels=[level.to_dict() for level in self.tcb_levels],
        )
        return out

    def to_json(self) -> str:
        """Compact JSON text (what a signer signs); :func:`parse_qe_identity` gives this object back."""
        return json.dumps(self.to_dict(), separators=(",", ":"))


# Reading JSON values: each helper takes the enclosing object, the key and the object's path, and raises
# EvidenceFormatError naming ``path.key``.

_T = TypeVar("_T")


def _object(value: object, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise EvidenceFormatError("not a JSON object", field=path)
    return value


def _get(obj: dict[str, Any], key: str, path: str) -> object:
    if key not in obj:
        raise EvidenceFormatError("missing", field=f"{path}.{key}")
    return obj[key]


def _int(obj: dict[str, Any], key: str, path: str, maximum: int) -> int:
    value = _get(obj, key, path)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= maximum:
        raise EvidenceFormatError(f"not an integer in 0..{maximum}", field=f"{path}.{key}")
    return value


def _str(obj: dict[str, Any], key: str, path: str) -> str:
    value = _get(obj, key, path)
    if not isinstance(value, str):
        raise EvidenceFormatError("not a string", field=f"{path}.{key}")
    return value


def _hex(obj: dict[str, Any], key: str, path: str, size: int) -> bytes:
    text = _str(obj, key, path)
    try:
        value = bytes.fromhex(text) if len(text) == 2 * size and text.isascii() and text.isalnum() else None
    except ValueError:
        value = None
    if value is None:
        raise EvidenceFormatError(f"not {size} bytes of hex", field=f"{path}.{key}")
    return value


def _time(obj: dict[str, Any], key: str, path: str) -> dt.datetime:
    text = _str(obj, key, path)
    try:
        if _TIME.fullmatch(text) is None:
            raise ValueError("not YYYY-MM-DDThh:mm:ssZ")
        return dt.datetime.fromisoformat(text)  # the pattern leaves it nothing to read but a UTC time
    except ValueError as e:
        raise EvidenceFormatError(f"not a UTC time: {e}", field=f"{path}.{key}") from None


def _status(obj: dict[str, Any], key: str, path: str) -> str:
    value = _str(obj, key, path)
    if value not in STATUS_ORDER:
        raise EvidenceFormatError(f"{value!r} is not an Intel TCB status", field=f"{path}.{key}")
    return value


def _list(obj: dict[str, Any], key: str, path: str, read: Callable[[object, str], _T]) -> tuple[_T, ...]:
    value = _get(obj, key, path)
    if not isinstance(value, list):
        raise EvidenceFormatError("not a JSON array", field=f"{path}.{key}")
    return tuple(read(item, f"{path}.{key}[{i}]") for i, item in enumerate(value))


def _advisories(obj: dict[str, Any], path: str) -> tuple[str, ...]:
    if "advisoryIDs" not in obj:
        return ()
    value = obj["advisoryIDs"]
    if type(value) is not list:
        raise EvidenceFormatError("not a JSON array", field=f"{path}.advisoryIDs")
    for i, item in enumerate(value):
        if type(item) is not str:
            raise EvidenceFormatError("not a string", field=f"{path}.advisoryIDs[{i}]")
    return tuple(value)


def _svns(obj: dict[str, Any], key: str, path: str) -> tuple[int, ...]:
    """The SVNs of exactly 16 components (the hot loop of parsing: paths are formatted only for an error)."""
    value = _get(obj, key, path)
    if type(value) is not list or len(value) != _COMPONENTS:
        size = len(value) if type(value) is list else "no"
        raise EvidenceFormatError(f"{size} components, expected {_COMPONENTS}", field=f"{path}.{key}")
    out = []
    for i, item in enumerate(value):
        svn = item.get("svn") if type(item) is dict else None
        if type(svn) is not int or not 0 <= svn <= _U8:
            raise EvidenceFormatError(f"not an object with an svn in 0..{_U8}", field=f"{path}.{key}[{i}]")
        out.append(svn)
    return tuple(out)


def _tcb_level_reader(tdx: bool) -> Callable[[object, str], TcbLevel]:
    def read(value: object, path: str) -> TcbLevel:
        obj = _object(value, path)
        where = f"{path}.tcb"
        tcb = _object(_get(obj, "tcb", path), where)
        platform = PlatformTcb(
            _svns(tcb, "sgxtcbcomponents", where),
            _int(tcb, "pcesvn", where, _U16),
            _svns(tcb, "tdxtcbcomponents", where) if tdx or "tdxtcbcomponents" in tcb else None,
        )
        return TcbLevel(platform, _time(obj, "tcbDate", path), _status(obj, "tcbStatus", path), _advisories(obj, path))

    return read


def _identity_level(value: object, path: str) -> IdentityLevel:
    obj = _object(value, path)
    tcb = _object(_get(obj, "tcb", path), f"{path}.tcb")
    return IdentityLevel(
        _int(tcb, "isvsvn", f"{path}.tcb", _U16),
        _time(obj, "tcbDate", path),
        _status(obj, "tcbStatus", path),
        _advisories(obj, path),
    )


def _module_fields(obj: dict[str, Any], path: str) -> tuple[bytes, bytes, bytes]:
    return _hex(obj, "mrsigner", path, 48), _hex(obj, "attributes", path, 8), _hex(obj, "attributesMask", path, 8)


def _tdx_module_identity(value: object, path: str) -> TdxModuleIdentity:
    obj = _object(value, path)
    return TdxModuleIdentity(
        _str(obj, "id", path), *_module_fields(obj, path), _list(obj, "tcbLevels", path, _identity_level)
    )


def _document(text: str | bytes, path: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise EvidenceFormatError(f"not JSON: {e}", field=path) from None
    return _object(value, path)


def parse_tcb_info(text: str | bytes) -> TcbInfo:
    """Parses the JSON text of TCB info v3 (the signed ``tcbInfo`` object, not the PCS response around it).

    Checks the shape described in the module docstring; a TDX TCB info needs TDX components in every level.
    Raises :class:`~cchet.errors.EvidenceFormatError` naming the field (``tcb_info.<JSON path>``); verifies
    nothing: parse only text whose signature has been checked.
    """
    path = "tcb_info"
    obj = _document(text, path)
    tcb_id = _str(obj, "id", path)
    if tcb_id not in TCB_INFO_IDS:
        raise EvidenceFormatError(f"{tcb_id!r} is not one of {', '.join(TCB_INFO_IDS)}", field=f"{path}.id")
    tdx_module = None
    if "tdxModule" in obj:
        tdx_module = TdxModule(*_module_fields(_object(obj["tdxModule"], f"{path}.tdxModule"), f"{path}.tdxModule"))
    identities = _list(obj, "tdxModuleIdentities", path, _tdx_module_identity) if "tdxModuleIdentities" in obj else ()
    return TcbInfo(
        id=tcb_id,
        version=_int(obj, "version", path, _U8),
        issue_date=_time(obj, "issueDate", path),
        next_update=_time(obj, "nextUpdate", path),
        fmspc=_hex(obj, "fmspc", path, 6),
        pce_id=_hex(obj, "pceId", path, 2),
        tcb_type=_int(obj, "tcbType", path, _U32),
        tcb_evaluation_data_number=_int(obj, "tcbEvaluationDataNumber", path, _U32),
        tcb_levels=_list(obj, "tcbLevels", path, _tcb_level_reader(tcb_id == "TDX")),
        tdx_module=tdx_module,
        tdx_module_identities=identities,
    )


def parse_qe_identity(text: str | bytes) -> QeIdentity:
    """Parses the JSON text of a QE identity (the signed ``enclaveIdentity`` object, version 2).

    Checks the shape described in the module docstring. Raises :class:`~cchet.errors.EvidenceFormatError`
    naming the field (``qe_identity.<JSON path>``); verifies nothing: parse only text whose signature has
    been checked.
    """
    path = "qe_identity"
    obj = _document(text, path)
    return QeIdentity(
        id=_str(obj, "id", path),
        version=_int(obj, "version", path, _U8),
        issue_date=_time(obj, "issueDate", path),
        next_update=_time(obj, "nextUpdate", path),
        tcb_evaluation_data_number=_int(obj, "tcbEvaluationDataNumber", path, _U32),
        miscselect=int.from_bytes(_hex(obj, "miscselect", path, 4), "big"),
        miscselect_mask=int.from_bytes(_hex(obj, "miscselectMask", path, 4), "big"),
        attributes=_hex(obj, "attributes", path, 16),
        attributes_mask=_hex(obj, "attributesMask", path, 16),
        mr_signer=_hex(obj, "mrsigner", path, 32),
        isv_prod_id=_int(obj, "isvprodid", path, _U16),
        tcb_levels=_list(obj, "tcbLevels", path, _identity_level),
    )
