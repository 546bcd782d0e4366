"""Source-separation quality: BSS-Eval SDR, SIR and SAR, and their improvement over the mixture.

BSS-Eval (Vincent, Gribonval & Févotte, "Performance measurement in blind audio source
separation", IEEE TASLP 14(4), 2006) splits an estimate ``ŝ_j`` into the target (the true
source through a 512-tap distortion filter), interference (the other sources through such
filters) and artefacts (the rest):

    SDR = 10·log10(‖s_target‖² / ‖e_interf + e_artif‖²)
    SIR = 10·log10(‖s_target‖² / ‖e_interf‖²)
    SAR = 10·log10(‖s_target + e_interf‖² / ‖e_artif‖²)

computed by ``fast_bss_eval`` (Scheibler 2021, with its conjugate-gradient solver: the same
figures as ``mir_eval``'s ``bss_eval_sources`` to 1e-4 dB, ~40× faster), or by ``mir_eval``
where fast_bss_eval is absent. The
estimates are taken in the order given (no permutation search): estimate ``j`` is scored
against source ``j``. The *improvement* (SDRi, SIRi, SARi) subtracts the figures of the
mixture itself used as every estimate.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from onebit.errors import InputError

__all__ = ["FILTER_LENGTH", "bss_eval", "bss_improvement"]

FILTER_LENGTH = 512  # BSS-Eval's distortion filter taps (mir_eval's and fast_bss_eval's default)
CG_ITERATIONS = 10  # fast_bss_eval's conjugate-gradient solve: within 1e-4 dB of mir_eval (tests/test_separation.py)


def _check(references: Any, estimates: Any) -> tuple[np.ndarray, np.ndarray]:
    ref, est = np.asarray(references, dtype=np.float64), np.asarray(estimates, dtype=np.float64)
    if ref.ndim != 2 or ref.shape != est.shape:
        raise InputError(f"references and estimates must both be (sources, samples), got {ref.shape} and {est.shape}")
    if ref.shape[1] <= FILTER_LENGTH:
        raise InputError(f"BSS-Eval needs signals longer than its {FILTER_LENGTH}-tap filter, got {ref.shape[1]} samples")
    if not (np.isfinite(ref).all() and np.isfinite(est).all()):
        raise InputError("references or estimates hold NaN or infinite values")
    if not np.all(np.any(ref != 0, axis=1)):
        raise InputError("a reference source is silent (all zeros): BSS-Eval is undefined for it")
    return ref, est


def bss_eval(references: Any, estimates: Any) -> dict[str, np.ndarray]:
    """SDR, SIR, SAR in dB of each estimate against its reference: ``{"sdr", "sir", "sar"}``, each ``(sources,)``.

    ``references``, ``estimates``: ``(sources, samples)``. An all-zero estimate (a mask that
    kept nothing) gets NaN: BSS-Eval is undefined for it. Uses fast_bss_eval, else mir_eval;
    an ImportError saying how to install one where neither is there.
    """
    ref, est = _check(references, estimates)
    silent = ~np.any(est != 0, axis=1)
    if silent.all():
        nan = np.full(len(ref), np.nan)
        return {"sdr": nan, "sir": nan.copy(), "sar": nan.copy()}
    try:
        import fast_bss_eval
    except ImportError:
        fast_bss_eval = None
    if fast_bss_eval is not None:
        # The conjugate-gradient solve (fast_bss_eval 0.1.4's direct solve fails under numpy 2).
        with np.errstate(invalid="ignore", divide="ignore"):  # an all-zero estimate: NaN, set below
            sdr, sir, sar = fast_bss_eval.bss_eval_sources(ref, est, filter_length=FILTER_LENGTH,
                                                           use_cg_iter=CG_ITERATIONS, compute_permutation=False,
                                                           clamp_db=100)
    else:
        try:
            import mir_eval.separation
        except ImportError:
            raise ImportError("BSS-Eval metrics need fast_bss_eval or mir_eval: pip install fast_bss_eval") from None
        sdr, sir, sar, _ = mir_eval.separation.bss_eval_sources(ref, est, compute_permutation=False)
    out = {"sdr": np.asarray(sdr, np.float64), "sir": np.asarray(sir, np.float64), "sar": np.asarray(sar, np.float64)}
    for values in out.values():
        values[silent] = np.nan  # an all-zero estimate has no defined SDR, SIR or SAR
    return out


def bss_improvement(references: Any, estimates: Any, mixture: Any) -> dict[str, np.ndarray]:
    """``bss_eval`` of the estimates, plus ``sdri``, ``siri``, ``sari``: the gain over the mixture as every estimate."""
    ref, est = _check(references, estimates)
    mix = np.asarray(mixture, dtype=np.float64).ravel()
    if mix.shape != ref.shape[1:]:
        raise InputError(f"the mixture has {mix.shape[0]} samples, the references {ref.shape[1]}")
    ours = bss_eval(ref, est)
    base = bss_eval(ref, np.tile(mix, (len(ref), 1)))
    return {**ours, **{f"{k}i": ours[k] - base[k] for k in ("sdr", "sir", "sar")}}
