"""SIMULATED TEEs: evidence in the real binary formats, signed by a simulated PKI. It protects nothing.

- :class:`SimulatedAuthority` -- the simulated Intel, AMD and NVIDIA keys, in a key directory other processes
  can open;
- :func:`simulate_tdx_quote`, :func:`simulate_sgx_quote`, :func:`simulate_snp_report`,
  :func:`simulate_spdm_report` -- single reports; :func:`simulated_collateral` -- Intel collateral that
  dcap-qvl accepts under the simulated root;
- :func:`simulate_composite` -- CPU + GPU evidence bound as DESIGN.md section 4;
- :class:`SimulatedVerifier` and :func:`simulation_options` -- verification against the simulated roots only.
"""

from cchet.attest.simulate.authority import SimulatedAuthority, default_key_dir
from cchet.attest.simulate.composite import CPU_KINDS, simulate_composite
from cchet.attest.simulate.dcap import simulate_sgx_quote, simulate_tdx_quote, simulated_collateral
from cchet.attest.simulate.snp import simulate_snp_report
from cchet.attest.simulate.spdm import simulate_spdm_report
from cchet.attest.simulate.verifier import SimulatedVerifier, simulated_anchors, simulation_options

__all__ = [
    "CPU_KINDS",
    "SimulatedAuthority",
    "SimulatedVerifier",
    "default_key_dir",
    "simulate_composite",
    "simulate_sgx_quote",
    "simulate_snp_report",
    "simulate_spdm_report",
    "simulate_tdx_quote",
    "simulated_anchors",
    "simulated_collateral",
    "simulation_options",
]
