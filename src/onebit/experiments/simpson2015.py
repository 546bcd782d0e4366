"""Simpson 2015, "Probabilistic Binary-Mask Cocktail-Party Source Separation in a Convolutional Deep
Neural Network" (arXiv:1503.06962): a network predicts the probability that the target speaker
dominates each time–frequency bin of a two-speaker mixture; thresholding it at a confidence α
trades interference (SIR) against artefacts (SAR).

Reproduced with :mod:`onebit.audio` (the same functions a user calls): two-speaker mixtures of
**espeak-ng-synthesized** speech (:func:`onebit.audio.mixtures.generate_mixtures`: speaker 1 a male
voice variant, speaker 2 a female one, at −5, 0 and +5 dB; train and test voices, accents and
sentences disjoint), the mask network of :mod:`onebit.audio.separation` in float and in binary
(binary hidden convs, float first and last layers), both trained on the ideal binary mask with
binary cross-entropy, exported to ``.onebit`` and **run on onebit.runtime** for every figure
below (and checked against PyTorch: logits and thresholded masks). Per seed (the network's
initialization and batch order; the data are the same for every seed):

- TF-bin agreement with the IBM over the mixture's bins above −40 dB relative to its loudest bin
  (:func:`~onebit.audio.separation.bin_agreement`, the mask thresholded at 0.5);
- BSS-Eval SDR, SIR, SAR and their improvement over the mixture (:mod:`onebit.audio.bss`), mean
  over both speakers and all test mixtures, for α in {0.5, 0.7, 0.9, 0.99} and the soft mask;
- the oracles: the ideal binary mask (IBM) and the ideal ratio mask (IRM, |S1| / (|S1| + |S2|)).

``--quick``: 1 seed, 12 training mixtures, 1 epoch, 3 test mixtures, 8 channels: a smoke run.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from onebit.experiments.registry import register_experiment
from onebit.experiments.results import Claim, mean_std, table

log = logging.getLogger(__name__)

PAPER = ("A. J. R. Simpson 2015, Probabilistic Binary-Mask Cocktail-Party Source Separation in a Convolutional "
         "Deep Neural Network (arXiv:1503.06962)")
ALPHAS = (0.5, 0.7, 0.9, 0.99)
METRICS = ("sdr", "sir", "sar", "sdri", "siri", "sari")


@dataclass(frozen=True)
class Settings:
    """The sizes of one run."""

    train_mixtures: int
    test_mixtures: int
    epochs: int
    channels: int
    depth: int
    batch_size: int
    lr: float
    quiet_weight: float


FULL = Settings(train_mixtures=120, test_mixtures=30, epochs=8, channels=16, depth=4, batch_size=8, lr=1e-3,
                quiet_weight=0.1)
QUICK = Settings(train_mixtures=12, test_mixtures=3, epochs=1, channels=8, depth=3, batch_size=8, lr=1e-3,
                 quiet_weight=0.1)


def _figures(m: Any, estimates: list[np.ndarray], baseline: dict[str, np.ndarray]) -> dict[str, float]:
    """BSS-Eval of two estimates and their improvement over the mixture's own figures, mean over the speakers."""
    from onebit.audio.bss import bss_eval

    r = bss_eval(m.sources, np.stack(estimates))
    r.update({f"{k}i": r[k] - baseline[k] for k in ("sdr", "sir", "sar")})
    return {k: float(np.mean(r[k])) for k in METRICS}  # NaN where an estimate is silent (counted apart)


def _nanmean(values: list[float]) -> float:
    """The mean of the defined values (a mixture where a mask kept nothing has no SDR; NaN where none is)."""
    defined = [v for v in values if not np.isnan(v)]
    return float(np.mean(defined)) if defined else float("nan")


def _oracles(test: list[Any], config: Any) -> list[dict[str, Any]]:
    """Per test mixture: its STFT, IBM, the mixture's BSS figures, and those of the IBM and IRM oracles."""
    from onebit.audio.bss import bss_eval
    from onebit.audio.features import stft
    from onebit.audio.mixtures import ideal_binary_mask, ideal_ratio_mask
    from onebit.audio.separation import apply_masks

    out = []
    for m in test:
        spec = stft(m.mixture, n_fft=config.n_fft, hop=config.hop)
        s1, s2 = (stft(s, n_fft=config.n_fft, hop=config.hop) for s in (m.source1, m.source2))
        ibm, irm = ideal_binary_mask(s1, s2), ideal_ratio_mask(s1, s2)
        baseline = bss_eval(m.sources, np.stack([m.mixture, m.mixture]))
        row = {"spec": spec, "ibm": ibm, "baseline": baseline}
        for name, mask in (("IBM", ibm), ("IRM", irm)):
            row[name] = _figures(m, apply_masks(spec, [mask, 1.0 - mask], config, len(m.mixture)), baseline)
        out.append(row)
    return out


def _evaluate(model: Any, engine: Any, test: list[Any], oracles: list[dict[str, Any]], config: Any) -> dict[str, Any]:
    """One trained network on the test mixtures, run on the engine; the engine checked against PyTorch."""
    from onebit.audio.separation import (
        apply_masks,
        bin_agreement,
        mask_logits,
        threshold_masks,
    )

    agreement, figures = [], {a: [] for a in (*ALPHAS, "soft")}
    max_ratio, max_diff, differing, unexplained, total_bins = 0.0, 0.0, 0, 0, 0
    for m, o in zip(test, oracles):
        engine_logits = mask_logits(engine, o["spec"], config)
        torch_logits = mask_logits(model, o["spec"], config)
        # the exporter's tolerance: 1e-4 × max(1, max |logit|) of the mixture's logits
        tol = 1e-4 * max(1.0, float(np.abs(torch_logits).max()))
        diff = float(np.abs(engine_logits - torch_logits).max())
        max_diff, max_ratio = max(max_diff, diff), max(max_ratio, diff / tol)
        p = 1.0 / (1.0 + np.exp(-engine_logits.astype(np.float64)))
        p_torch = 1.0 / (1.0 + np.exp(-torch_logits.astype(np.float64)))
        agreement.append(bin_agreement(p, o["ibm"], o["spec"]))
        for alpha in figures:
            masks = threshold_masks(p.astype(np.float32), None if alpha == "soft" else alpha)
            if alpha != "soft":
                masks_torch = threshold_masks(p_torch.astype(np.float32), alpha)
                # a bin whose PyTorch logit lies within the tolerance of the threshold logit ±log(α/(1−α))
                # may fall on either side in two float computations; any other difference is a real one
                cut = float(np.log(alpha / (1.0 - alpha)))
                for a, b, sign in zip(masks, masks_torch, (1.0, -1.0)):
                    flips = a != b
                    differing += int(flips.sum())
                    unexplained += int(np.sum(flips & (np.abs(torch_logits - sign * cut) > tol)))
                total_bins += 2 * masks[0].size
            figures[alpha].append(_figures(m, apply_masks(o["spec"], masks, config, len(m.mixture)), o["baseline"]))
    return {"agreement": float(np.mean(agreement)),
            "figures": {a: {k: _nanmean([f[k] for f in rows]) for k in METRICS} for a, rows in figures.items()},
            "silent": {a: int(sum(np.isnan(f["sdr"]) for f in rows)) for a, rows in figures.items()},
            "max_logit_diff": max_diff, "max_diff_over_tolerance": max_ratio, "differing_mask_bins": differing,
            "unexplained_mask_bins": unexplained, "mask_bins": total_bins}


def _plot_tradeoff(per: dict[str, list[dict[str, Any]]], oracle: dict[str, dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    fig, axes = plt.subplots(1, 3, figsize=(13, 4), dpi=100)
    for ax, metric in zip(axes, ("sir", "sar", "sdr")):
        for kind, color in (("float", "C0"), ("binary", "C3")):
            runs = per[kind]
            if not runs:
                continue
            values = np.array([[r["figures"][a][metric] for a in ALPHAS] for r in runs])
            sd = values.std(0, ddof=1) if len(values) > 1 else np.zeros(len(ALPHAS))
            ax.errorbar(ALPHAS, values.mean(0), yerr=sd, marker="o", color=color, capsize=3, label=f"{kind} net")
        for name, style in (("IBM", "--"), ("IRM", ":")):
            ax.axhline(oracle[name][metric], color="k", linestyle=style, linewidth=1, label=f"{name} oracle")
        ax.set(xlabel="confidence threshold α", ylabel=f"{metric.upper()} (dB)", xscale="logit",
               title=f"{metric.upper()} against α")
        ax.set_xticks(ALPHAS, [str(a) for a in ALPHAS])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("Probabilistic binary masks thresholded at α (test mixtures, onebit.runtime)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _plot_masks(spec: np.ndarray, ibm: np.ndarray, probabilities: dict[str, np.ndarray], path: Path,
                config: Any) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("mixture log-magnitude (dB)", 20 * np.log10(np.abs(spec) + 1e-8), "magma"),
              ("ideal binary mask (speaker 1)", ibm, "gray")]
    panels += [(f"{k} net: p(speaker 1 dominates)", p, "gray") for k, p in probabilities.items()]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.5), dpi=100)
    extent = (0, spec.shape[0] * config.hop / config.sample_rate, 0, config.sample_rate / 2000)
    for ax, (title, image, cmap) in zip(axes, panels):
        limits = {} if cmap == "magma" else {"vmin": 0.0, "vmax": 1.0}
        ax.imshow(image.T, origin="lower", aspect="auto", cmap=cmap, extent=extent, **limits)
        ax.set(title=title, xlabel="time (s)", ylabel="frequency (kHz)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _ms(values: list[float], scale: float = 1.0) -> str:
    m, s = mean_std([scale * v for v in values])
    return f"{m:.2f} ± {s:.2f}"


@register_experiment("simpson2015_separation", paper=PAPER,
                     title="Probabilistic binary-mask two-speaker separation, float and binary", seeds=3,
                     quick_seeds=1)
def run(out_dir: Path, quick: bool, seeds: int) -> dict[str, Any]:
    """Float and binary mask networks against the IBM and IRM oracles; the α trade-off; engine = PyTorch."""
    from onebit.audio.mixtures import generate_mixtures
    from onebit.audio.separation import (
        SeparationConfig,
        export_separator,
        load_separator,
        mask_logits,
        mask_network,
        train_separator,
    )
    from onebit.train import set_seed, torch_threads

    settings = QUICK if quick else FULL
    config = SeparationConfig()
    train = generate_mixtures(settings.train_mixtures, "train", seed=0, sample_rate=config.sample_rate)
    test = generate_mixtures(settings.test_mixtures, "test", seed=0, sample_rate=config.sample_rate)
    oracles = _oracles(test, config)
    oracle = {name: {k: float(np.mean([o[name][k] for o in oracles])) for k in METRICS} for name in ("IBM", "IRM")}
    per: dict[str, list[dict[str, Any]]] = {"float": [], "binary": []}
    example: dict[str, np.ndarray] = {}
    with torch_threads(1):  # small nets: one thread repeats bit for bit and is fastest on a shared machine
        for seed in range(seeds):
            for kind in ("float", "binary"):
                set_seed(seed)
                model = mask_network(config, binary=kind == "binary", channels=settings.channels,
                                     depth=settings.depth)
                history = train_separator(model, train, epochs=settings.epochs, batch_size=settings.batch_size,
                                          lr=settings.lr, quiet_weight=settings.quiet_weight, seed=seed)
                path = out_dir / "runs" / f"seed{seed}" / f"{kind}.onebit"
                report = export_separator(model, path, test[:2])
                engine = load_separator(path, num_threads=1)
                result = _evaluate(model, engine, test, oracles, config)
                result.update(loss=history, file_bytes=report.file_bytes,
                              float32_bytes=report.float32_state_bytes,
                              layers=[f"{layer.name}: {layer.kind}" for layer in report.layers])
                per[kind].append(result)
                log.info("seed %d %s net: agreement %.4f, SDRi %.2f dB (α=0.5)", seed, kind, result["agreement"],
                         result["figures"][0.5]["sdri"])
                if seed == 0:
                    logits = mask_logits(engine, oracles[0]["spec"], config).astype(np.float64)
                    example[kind] = 1.0 / (1.0 + np.exp(-logits))

    _plot_tradeoff(per, oracle, out_dir / "alpha_tradeoff.png")
    _plot_masks(oracles[0]["spec"], oracles[0]["ibm"], example, out_dir / "masks.png", config)

    def values(kind: str, metric: str, alpha: Any = 0.5) -> list[float]:
        return [r["figures"][alpha][metric] for r in per[kind]]

    agreement = {k: [r["agreement"] for r in per[k]] for k in per}
    sdri = {k: mean_std(values(k, "sdri"))[0] for k in per}
    gap = oracle["IBM"]["sdri"] - sdri["float"]
    sdri_soft = mean_std(values("float", "sdri", "soft"))[0]

    def monotone(kind: str) -> tuple[bool, str]:
        sir = [mean_std(values(kind, "sir", a))[0] for a in ALPHAS]
        sar = [mean_std(values(kind, "sar", a))[0] for a in ALPHAS]
        ok = all(b > a for a, b in zip(sir, sir[1:])) and all(b < a for a, b in zip(sar, sar[1:]))
        return ok, (f"SIR {' → '.join(f'{v:.2f}' for v in sir)} dB; SAR {' → '.join(f'{v:.2f}' for v in sar)} dB "
                    f"(α = {', '.join(map(str, ALPHAS))})")

    decide = (lambda ok: None) if quick else (lambda ok: bool(ok))
    claims = [
        Claim("float net: TF-bin agreement with the IBM (bins above −40 dB re the mixture's loudest bin) ≥ 90 %",
              _ms(agreement["float"], 100), None, "%", decide(mean_std(agreement["float"])[0] >= 0.90),
              "the issue's target; the paper reports no agreement figure"),
        Claim("float net: mean SDR improvement within 3 dB of the IBM oracle's",
              f"{sdri['float']:.2f} dB (IBM {oracle['IBM']['sdri']:.2f} dB, gap {gap:.2f} dB)", None, "",
              decide(gap <= 3.0), f"α = 0.5 (soft mask: {sdri_soft:.2f} dB, gap {oracle['IBM']['sdri'] - sdri_soft:.2f} "
              "dB); the paper: the network's results 'approach ideal binary mask performance'"),
        Claim("binary net (binary hidden convs, float first/last layer): TF-bin agreement with the IBM",
              _ms(agreement["binary"], 100), None, "%", None,
              f"float net {_ms(agreement['float'], 100)} %"),
        Claim("binary net: SDRi / SIRi / SARi at α = 0.5",
              f"{_ms(values('binary', 'sdri'))} / {_ms(values('binary', 'siri'))} / {_ms(values('binary', 'sari'))}",
              None, "dB", None,
              f"float net {_ms(values('float', 'sdri'))} / {_ms(values('float', 'siri'))} / "
              f"{_ms(values('float', 'sari'))} dB"),
    ]
    for kind in ("float", "binary"):
        ok, detail = monotone(kind)
        claims.append(Claim(f"{kind} net: raising α from 0.5 to 0.99 raises SIR and lowers SAR (the paper's trade-off)",
                            "monotone" if ok else "not monotone", "qualitative (the paper's figure)", "",
                            decide(ok), detail))
    for kind in ("float", "binary"):
        runs = per[kind]
        diff = max(r["max_logit_diff"] for r in runs)
        ratio = max(r["max_diff_over_tolerance"] for r in runs)
        flips = sum(r["differing_mask_bins"] for r in runs)
        bad = sum(r["unexplained_mask_bins"] for r in runs)
        bins = sum(r["mask_bins"] for r in runs)
        claims.append(Claim(
            f"{kind} net on onebit.runtime: the same logits (to float tolerance) and thresholded masks as PyTorch",
            f"max |Δ logit| {diff:.3g} ({ratio:.3f} of the tolerance); {flips} of {bins:,} mask bins differ, "
            f"{bad} of them farther than the tolerance from the threshold", None, "", bool(ratio <= 1.0 and bad == 0),
            "every test mixture and α; tolerance 1e-4 × max(1, max |logit|) per mixture (the exporter's); a bin "
            "whose logit lies within it of the threshold may land on either side; the figures above are the engine's"))

    rows = [[name, "–", *(oracle[name][k] for k in METRICS)] for name in ("IBM", "IRM")]
    for kind in ("float", "binary"):
        for alpha in (*ALPHAS, "soft"):
            rows.append([f"{kind} net", alpha, *(mean_std(values(kind, k, alpha))[0] for k in METRICS)])
    seed_rows = [[kind, i, 100 * r["agreement"], r["figures"][0.5]["sdri"], r["figures"][0.5]["siri"],
                  r["figures"][0.5]["sar"], r["loss"][-1], r["max_logit_diff"], r["file_bytes"],
                  sum(r["silent"].values())]
                 for kind in per for i, r in enumerate(per[kind])]
    sd_rows = []
    for kind in ("float", "binary"):
        for alpha in ALPHAS:
            sd_rows.append([kind, alpha, *(_ms(values(kind, k, alpha)) for k in ("sdri", "siri", "sar"))])
    return {
        "claims": claims,
        "tables": {
            "separation": table(["method", "α", "SDR", "SIR", "SAR", "SDRi", "SIRi", "SARi"], rows,
                                f"dB, mean over both speakers of {len(test)} test mixtures (and {seeds} seed(s) for "
                                "the networks); α = soft: the probability itself as the mask"),
            "alpha sweep, mean ± sd over seeds": table(["net", "α", "SDRi", "SIRi", "SAR"], sd_rows,
                                                       "dB; sd over seeds of the test-set means"),
            "per seed": table(["net", "seed", "agreement %", "SDRi", "SIRi", "SAR", "final training loss",
                               "max |Δ logit| engine vs PyTorch", ".onebit bytes", "silent estimates"], seed_rows,
                              "α = 0.5; silent estimates: (mixture, α) pairs where a mask kept no bin for a speaker "
                              "(no BSS-Eval figure; left out of the means)"),
        },
        "plots": ["alpha_tradeoff.png", "masks.png"],
        "settings": {**asdict(settings), "stft": config.to_dict(), "alphas": list(ALPHAS),
                     "data": "espeak-ng speech (onebit.audio.mixtures): speaker 1 male variants, speaker 2 female "
                             "variants, SNR −5/0/+5 dB, train/test voices and sentences disjoint",
                     "layers": {k: per[k][0]["layers"] for k in per if per[k]},
                     "agreement_floor_db": -40.0},
        "notes": [
            "The speech is synthesized by espeak-ng (formant synthesis), not recorded: the numbers are not comparable "
            "with the paper's, which used recorded speech; only the trends are.",
            "SARi is the SAR of the estimate minus the SAR of the unprocessed mixture; the mixture contains no "
            "artefacts, so its SAR is limited by BSS-Eval's numerical precision only, and SARi is strongly negative "
            "by construction. Compare SAR itself.",
            "The paper reports its figures as plots; no number of the paper is quoted here (its text was not "
            "available to this run): the paper column gives the qualitative claim.",
        ],
    }
