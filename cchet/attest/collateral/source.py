"""Collateral for one verification: the local cache first, then the injected fetcher (which fills the cache).

:class:`CollateralSource` implements :class:`~cchet.attest.verify.options.CollateralProvider`. It decides
nothing about trust: it returns bytes, which the verifier checks against the pinned roots. Cached collateral
that has expired at the verification time is refetched when a fetcher is configured, else returned as it is
(and verification reports it expired). A failed fetch is never swallowed: it raises
:class:`~cchet.attest.collateral.fetcher.FetchError` naming the URL and the cause, and the verifier reports
it with what was missing.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cchet.attest.collateral.cache import CollateralCache, default_cache_dir
from cchet.attest.collateral.expiry import expiry_of
from cchet.attest.collateral.fetcher import Fetcher, FetchError
from cchet.attest.collateral.pcs import issuer_chain, signed_object
from cchet.attest.collateral.services import ServiceUrls

if TYPE_CHECKING:
    from cchet.attest.formats.dcap import Quote
    from cchet.attest.formats.snp import SnpReport

__all__ = ["HYGON_HRK_SIZE", "HYGON_HSK_CEK_SIZE", "CollateralSource", "intel_cache_key", "valid_hygon_serial"]

HYGON_HSK_CEK_SIZE = 832 + 2084
HYGON_HRK_SIZE = 832
_HYGON_SERIAL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def valid_hygon_serial(serial: str) -> bool:
    """Whether ``serial`` can name a Hygon chip at the KDS and in the cache (letters, digits, ``._-``; 1-64)."""
    return bool(_HYGON_SERIAL.match(serial))


def intel_cache_key(quote: Quote) -> tuple[str, bytes, str] | None:
    """(tee ``sgx``/``tdx``, FMSPC, PCK CA ``platform``/``processor``) of a quote, from its PCK certificate."""
    from cchet.attest.formats.certchain import load_certificate
    from cchet.attest.formats.pck import parse_pck_extensions

    pems = quote.signature.qe.certification.pem_certificates()
    if not pems:
        return None
    leaf = load_certificate(pems[0], field="pck")
    ca = "processor" if "Processor" in leaf.issuer.rfc4514_string() else "platform"
    return ("tdx" if quote.kind == "tdx" else "sgx"), parse_pck_extensions(leaf).fmspc, ca


@dataclass(frozen=True)
class CollateralSource:
    """Cache (may be None) then fetcher (may be None, then nothing is fetched)."""

    cache: CollateralCache | None = None
    fetcher: Fetcher | None = None
    urls: ServiceUrls = field(default_factory=ServiceUrls)

    @classmethod
    def default(cls) -> CollateralSource:
        """The per-user cache directory, no fetcher."""
        return cls(CollateralCache(default_cache_dir()))

    def _lookup(self, kind: str, key: str, now: dt.datetime, fetch: Callable[[], bytes]) -> bytes | None:
        cached = self.cache.get(kind, key) if self.cache else None
        if cached is not None:
            expires = expiry_of(kind, cached)
            if self.fetcher is None or (expires is not None and now <= expires):
                return cached
        if self.fetcher is None:
            return None
        data = fetch()  # a FetchError goes to the verifier, which reports what is missing and why
        if self.cache is not None:
            self.cache.put(kind, key, data)
        return data

    def fetch_intel(self, tee: str, fmspc: bytes, ca: str) -> bytes:
        """Fetches TCB info, QE identity and both CRLs; raises :class:`FetchError`. Returns the JSON bytes."""
        assert self.fetcher is not None
        u = self.urls
        tcb_url, qe_url, crl_url = u.intel_tcb_info(tee, fmspc), u.intel_qe_identity(tee), u.intel_pck_crl(ca)
        tcb = self.fetcher.get(tcb_url)
        qe = self.fetcher.get(qe_url)
        crl = self.fetcher.get(crl_url)
        root_crl = self.fetcher.get(u.intel_root_crl)
        tcb_text, tcb_sig = signed_object(tcb, "tcbInfo", tcb_url)
        qe_text, qe_sig = signed_object(qe, "enclaveIdentity", qe_url)
        doc = {
            "pck_crl_issuer_chain": issuer_chain(crl, "SGX-PCK-CRL-Issuer-Chain", crl_url),
            "root_ca_crl": root_crl.body.hex(),
            "pck_crl": crl.body.hex(),
            "tcb_info_issuer_chain": issuer_chain(tcb, "TCB-Info-Issuer-Chain", tcb_url),
            "tcb_info": tcb_text,
            "tcb_info_signature": tcb_sig,
            "qe_identity_issuer_chain": issuer_chain(qe, "SGX-Enclave-Identity-Issuer-Chain", qe_url),
            "qe_identity": qe_text,
            "qe_identity_signature": qe_sig,
        }
        return json.dumps(doc, indent=1).encode()

    def intel(self, quote: Quote, now: dt.datetime) -> Mapping[str, str] | None:
        """TCB info, QE identity, PCK CRL (of the quote's PCK CA) and root CRL for the quote's FMSPC and TEE,
        as dcap-qvl collateral fields; None when the cache has none and there is no fetcher. Raises
        :class:`FetchError` when fetching them failed."""
        key = intel_cache_key(quote)
        if key is None:
            return None
        tee, fmspc, ca = key
        data = self._lookup("intel", f"{tee}-{fmspc.hex().upper()}-{ca}", now, lambda: self.fetch_intel(tee, fmspc, ca))
        if data is None:
            return None
        try:
            doc = json.loads(data)
        except ValueError:
            return None
        return doc if isinstance(doc, dict) else None

    def amd_chain(self, product: str, key: str, now: dt.datetime) -> bytes | None:
        """KDS ``cert_chain`` of ``product``: ASK (``key="vcek"``) or ASVK (``"vlek"``), then ARK (PEM)."""
        url = self.urls.amd_chain(product, key)
        return self._lookup("amd-chain", f"{product}-{key}", now, lambda: self._get(url))

    def amd_crl(self, product: str, key: str, now: dt.datetime) -> bytes | None:
        """KDS CRL of ``product``'s ARK (DER)."""
        url = self.urls.amd_crl(product, key)
        return self._lookup("amd-crl", f"{product}-{key}", now, lambda: self._get(url))

    def amd_vcek(self, report: SnpReport, product: str, now: dt.datetime) -> bytes | None:
        """KDS VCEK (DER) for the report's chip id (8 bytes on Turin) and reported TCB."""
        t = report.tcb("reported")
        tcb = {"blSPL": t.bootloader, "teeSPL": t.tee, "snpSPL": t.snp, "ucodeSPL": t.microcode}
        hw_id = report.chip_id[:8] if product == "Turin" else report.chip_id
        if product == "Turin":
            tcb = {"fmcSPL": t.fmc or 0, **tcb}
        url = self.urls.amd_vcek(product, hw_id, tcb)
        key = f"vcek-{product}-{hw_id.hex()[:32]}-{report.reported_tcb:016x}"
        return self._lookup("amd-vcek", key, now, lambda: self._get(url))

    def nvidia_rim(self, rim_id: str, now: dt.datetime) -> bytes | None:
        """The signed RIM (SWID XML) named ``rim_id`` (``NV_GPU_DRIVER_GH100_550.90.07``...)."""
        url = self.urls.nvidia_rim_url(rim_id)
        return self._lookup("nvidia-rim", rim_id, now, lambda: self._rim(url))

    def hygon_hsk_cek(self, serial: str, now: dt.datetime) -> bytes | None:
        """Hygon KDS's HSK then CEK of chip ``serial`` (2916 bytes, cached as ``hygon/hsk_cek-<serial>.cert``);
        ``ValueError`` for a serial that cannot name a chip."""
        if not valid_hygon_serial(serial):
            raise ValueError(f"{serial!r} is not a Hygon chip serial number (letters, digits, '._-'; 1-64)")
        url = self.urls.hygon_hsk_cek(serial)
        return self._lookup("hygon", f"hsk_cek-{serial}", now, lambda: self._sized(url, HYGON_HSK_CEK_SIZE))

    def hygon_hrk(self, now: dt.datetime) -> bytes | None:
        """Hygon KDS's Root Key certificate (832 bytes, ``hygon/hrk.cert``); trusted only if it hashes to a pinned
        root."""
        url = self.urls.hygon_hrk()
        return self._lookup("hygon", "hrk", now, lambda: self._sized(url, HYGON_HRK_SIZE))

    def _sized(self, url: str, size: int) -> bytes:
        body = self._get(url)
        if len(body) != size:
            raise FetchError(f"{url}: expected {size} bytes of Hygon certificates, got {len(body)}")
        return body

    def _get(self, url: str) -> bytes:
        assert self.fetcher is not None
        return self.fetcher.get(url).body

    def _rim(self, url: str) -> bytes:
        import base64
        import binascii

        body = self._get(url)
        try:
            return base64.b64decode(json.loads(body)["rim"], validate=True)
        except (ValueError, KeyError, TypeError, binascii.Error) as e:
            raise FetchError(f"{url}: malformed RIM response: {e}") from None
