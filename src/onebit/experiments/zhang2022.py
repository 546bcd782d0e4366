"""Zhang, Yin and Wang 2022, "Why Quantization Improves Generalization: NTK of Binary Weight Neural
Networks" (arXiv:2206.05916).

Reproduced with :mod:`onebit.analysis.quasi`, :mod:`onebit.analysis.ntk`,
:mod:`onebit.analysis.kernels` and :mod:`onebit.analysis.spectra` (the functions a user
runs on their own models):

1. **quasi layer against Monte Carlo**: one layer of 128 stochastic binary-weight ReLU
   units (θ uniform in [−1, 1]) on unit-normalized real images of dimension d = 4, 16
   (digits average-pooled), 64 (digits), 196 and 784 (real MNIST, pooled and not): the
   quasi ReLU ``μΦ(μ/σ) + σφ(μ/σ)`` against the mean over sampled nets, in standard errors
   per unit (claim: within 4 for d ≥ 64);
2. **whole networks**: 64 → 256 (→ 256) → 10 nets on 8 digits images; the quasi output
   (mean-only, the paper's, and variance-carrying) against the Monte-Carlo mean, relative
   Frobenius error (claim: within 5 %);
3. **NTK spectra** on 500 unit-normalized digits images: the empirical NTK of the quasi
   network and of the real-weight ReLU net (NTK parameterization, same widths; one hidden
   layer of 4,096 and two of 512), the analytic infinite-width ReLU NTK, and Gaussian and
   Laplace kernels (median bandwidth); exponential (log λ on k) and power-law (log λ on
   log k) fits with R², and the tails for k > 50. Beside it, synthetic: 200 points on the
   unit circle (the decay laws are statements about kernels on spheres, visible in rank
   order only in low dimension);
4. **generalization gap**: a binary-weight MLP (onebit ``QuantLinear`` with ``ste_sign``
   weights, float ReLU activations) and the same real MLP trained to ≥ 99 % training
   accuracy on 300 digits images (30 per class; a different draw per seed), tested on the
   360 digits test images; kernel ridge regression with Gaussian and Laplace kernels on the
   same splits. Gap = training accuracy − test accuracy.

``--quick``: tiny sample counts, widths and epochs (a smoke run of every step; verdicts undecided).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from onebit.experiments.registry import register_experiment
from onebit.experiments.results import Claim, mean_std, table

log = logging.getLogger(__name__)

PAPER = ("Zhang, Yin and Wang 2022, Why Quantization Improves Generalization: NTK of Binary Weight Neural "
         "Networks (arXiv:2206.05916)")

FULL = {"unit_width": 128, "unit_inputs": 4, "unit_samples": 10_000, "unit_dims": [4, 16, 64, 196, 784],
        "net_width": 256, "net_inputs": 8, "net_samples": 40_000,
        "spectrum_points": 500, "spectrum_nets": [[4096], [512, 512]], "circle_points": 200, "circle_width": 4096,
        "tail_from": 50, "gap_train": 300, "mlp_hidden": 512, "mlp_epochs": 100, "mlp_batch": 32, "mlp_lr": 1e-3,
        "krr_ridge": 1e-3}
QUICK = {"unit_width": 16, "unit_inputs": 2, "unit_samples": 200, "unit_dims": [16, 64],
         "net_width": 32, "net_inputs": 4, "net_samples": 200,
         "spectrum_points": 60, "spectrum_nets": [[64]], "circle_points": 40, "circle_width": 64,
         "tail_from": 10, "gap_train": 100, "mlp_hidden": 32, "mlp_epochs": 2, "mlp_batch": 32, "mlp_lr": 1e-3,
         "krr_ridge": 1e-3}

UNIT_SE = 4.0      # standard errors per unit (issue 12 acceptance)
NET_REL = 0.05     # relative error of whole-network outputs
MIN_TRAIN = 0.99   # training accuracy the MLPs must reach


def _unit_rows(x: np.ndarray) -> np.ndarray:
    """(N, ...) → (N, d) float64 rows of unit Euclidean norm."""
    rows = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def _pooled(images: np.ndarray, factor: int) -> np.ndarray:
    """Average-pool (N, 1, H, W) images by ``factor``."""
    n, _, h, w = images.shape
    return images.reshape(n, h // factor, factor, w // factor, factor).mean(axis=(2, 4))


def _unit_inputs(dim: int, count: int) -> tuple[np.ndarray, str] | None:
    """``count`` real unit-normalized images of dimension ``dim``, and where they come from."""
    from onebit.data import load_dataset

    if dim in (4, 16, 64):
        x = load_dataset("digits").x_test[:count].astype(np.float64)
        factor = {4: 4, 16: 2, 64: 1}[dim]
        return _unit_rows(_pooled(x, factor)), f"digits test images, pooled {factor}×{factor}" if factor > 1 \
            else "digits test images"
    from onebit.experiments.shared import shared_data

    folder = shared_data("mnist-t10k")
    if folder is None:
        return None
    x = load_dataset(folder, split=(8000, 2000)).x_test[:count].astype(np.float64)
    factor = {196: 2, 784: 1}[dim]
    return _unit_rows(_pooled(x, factor)), f"MNIST test images, pooled {factor}×{factor}" if factor > 1 \
        else "MNIST test images"


def _quasi_vs_mc_units(s: dict[str, Any], seed: int, notes: list[str]) -> list[dict[str, Any]]:
    import torch

    from onebit.analysis.quasi import QuasiBinaryNet, monte_carlo_moments

    rows = []
    for dim in s["unit_dims"]:
        found = _unit_inputs(dim, s["unit_inputs"])
        if found is None:
            notes.append(f"d = {dim}: ../shared/data/mnist-t10k not found (set ONEBIT_SHARED_DATA); left out")
            continue
        x, source = found
        net = QuasiBinaryNet(dim, s["unit_width"], 1, seed=seed, dtype=torch.float64)
        quasi = net.forward_moments(x, layer=0)[0].detach()
        mc = monte_carlo_moments(net, x, s["unit_samples"], seed=seed + 1000, layer=0)
        z = ((quasi - mc.mean) / mc.std_error.clamp_min(1e-300)).numpy()
        rel = float(np.linalg.norm(quasi.numpy() - mc.mean.numpy()) / np.linalg.norm(mc.mean.numpy()))
        rows.append({"dim": dim, "source": source, "max_z": float(np.abs(z).max()), "sd_z": float(z.std()),
                     "mean_z": float(z.mean()),
                     "within": float(np.mean(np.abs(z) <= UNIT_SE)), "rel": rel, "z": z.reshape(-1),
                     "quasi": quasi.numpy().reshape(-1), "mc": mc.mean.numpy().reshape(-1)})
        log.info("seed %d, d = %d: max |quasi − MC| = %.2f standard errors", seed, dim, rows[-1]["max_z"])
    return rows


def _quasi_vs_mc_nets(s: dict[str, Any], seed: int) -> list[dict[str, Any]]:
    import torch

    from onebit.analysis.quasi import QuasiBinaryNet, monte_carlo_moments
    from onebit.data import load_dataset

    x = _unit_rows(load_dataset("digits").x_test[:s["net_inputs"]])
    rows = []
    for depth in (1, 2):
        nets = {v: QuasiBinaryNet(64, [s["net_width"]] * depth, 10, variant=v, seed=seed, dtype=torch.float64)
                for v in ("mean", "carry")}
        # both variants hold the same θ (same seed): one set of sampled nets serves both
        mc = monte_carlo_moments(nets["mean"], x, s["net_samples"], seed=seed + 2000, block=32)
        ref = mc.mean.numpy()
        noise = float(np.linalg.norm(mc.std_error.numpy()) / np.linalg.norm(ref))
        for variant, net in nets.items():
            out = net(torch.as_tensor(x)).detach().numpy()
            rel = float(np.linalg.norm(out - ref) / np.linalg.norm(ref))
            rows.append({"depth": depth, "variant": variant, "rel": rel, "noise": noise})
            log.info("seed %d, %d hidden layer(s), %s quasi: relative error %.4f (MC noise %.4f)", seed, depth,
                     variant, rows[-1]["rel"], noise)
    return rows


def _spectra(s: dict[str, Any], seeds: int) -> dict[str, Any]:
    from onebit.analysis.kernels import gaussian_kernel, laplace_kernel, median_distance, relu_ntk
    from onebit.analysis.ntk import NTKReLUNet, empirical_ntk
    from onebit.analysis.quasi import QuasiBinaryNet
    from onebit.analysis.spectra import fit_spectrum, kernel_spectrum
    from onebit.data import load_dataset

    data = load_dataset("digits")
    pick = np.random.default_rng(0).choice(len(data.x_train), s["spectrum_points"], replace=False)
    x = _unit_rows(data.x_train[np.sort(pick)])
    out: dict[str, Any] = {"nets": {}, "reference": {}}
    for hidden in s["spectrum_nets"]:
        key = "×".join(str(h) for h in hidden)
        per = {"quasi": [], "real": []}
        for seed in range(seeds):
            for name, net in (("quasi", QuasiBinaryNet(64, hidden, 1, seed=seed)),
                              ("real", NTKReLUNet(64, hidden, 1, seed=seed))):
                eig = kernel_spectrum(empirical_ntk(net, x))
                per[name].append(eig)
                log.info("spectrum %s %s seed %d: %s", key, name, seed, fit_spectrum(eig).to_dict())
        out["nets"][key] = {"hidden": hidden, **per}
    depths = sorted({len(h) for h in s["spectrum_nets"]})
    ell = median_distance(x)
    for depth in depths:
        out["reference"][f"analytic ReLU NTK, {depth} hidden"] = kernel_spectrum(relu_ntk(x, depth=depth))
    out["reference"]["Gaussian kernel"] = kernel_spectrum(gaussian_kernel(x, bandwidth=ell))
    out["reference"]["Laplace kernel"] = kernel_spectrum(laplace_kernel(x, bandwidth=ell))
    out["bandwidth"] = ell
    # synthetic: points on the unit circle
    circle = np.random.default_rng(0).standard_normal((s["circle_points"], 2))
    circle /= np.linalg.norm(circle, axis=1, keepdims=True)
    out["circle"] = {}
    for seed in range(seeds):
        for name, net in (("quasi", QuasiBinaryNet(2, s["circle_width"], 1, seed=seed)),
                          ("real", NTKReLUNet(2, s["circle_width"], 1, seed=seed))):
            out["circle"].setdefault(name, []).append(kernel_spectrum(empirical_ntk(net, circle)))
    out["circle"]["Gaussian kernel"] = [kernel_spectrum(gaussian_kernel(circle, bandwidth=median_distance(circle)))]
    out["circle"]["Laplace kernel"] = [kernel_spectrum(laplace_kernel(circle, bandwidth=median_distance(circle)))]
    return out


def _mlp(hidden: int, binary: bool, seed: int) -> Any:
    import torch
    from torch import nn

    from onebit.nn import QuantLinear

    torch.manual_seed(seed)
    wq = "ste_sign" if binary else None
    return nn.Sequential(
        nn.Flatten(),
        QuantLinear(64, hidden, bias=False, weight_quantizer=wq), nn.BatchNorm1d(hidden), nn.ReLU(),
        QuantLinear(hidden, hidden, bias=False, weight_quantizer=wq), nn.BatchNorm1d(hidden), nn.ReLU(),
        QuantLinear(hidden, 10, bias=False, weight_quantizer=wq), nn.BatchNorm1d(10))


def _gaps(s: dict[str, Any], seeds: int) -> list[dict[str, Any]]:
    from onebit.analysis.kernels import KernelRidgeClassifier
    from onebit.data import load_dataset
    from onebit.train import evaluate, fit

    data = load_dataset("digits")
    x_test, y_test = _unit_rows(data.x_test).astype(np.float32), data.y_test
    per_class = s["gap_train"] // 10
    rows = []
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        pick = np.concatenate([rng.choice(np.flatnonzero(data.y_train == c), per_class, replace=False)
                               for c in range(10)])
        x_tr, y_tr = _unit_rows(data.x_train[pick]).astype(np.float32), data.y_train[pick]
        row: dict[str, Any] = {"seed": seed}
        for name, binary in (("binary-weight MLP", True), ("real MLP", False)):
            model = _mlp(s["mlp_hidden"], binary, seed)
            fit(model, (x_tr, y_tr), val=(x_tr, y_tr), epochs=s["mlp_epochs"], batch_size=s["mlp_batch"],
                lr=s["mlp_lr"], seed=seed)
            train, test = evaluate(model, x_tr, y_tr), evaluate(model, x_test, y_test)
            row[name] = {"train": train["accuracy"], "test": test["accuracy"],
                         "gap": train["accuracy"] - test["accuracy"], "loss_gap": test["loss"] - train["loss"]}
            log.info("seed %d, %s: train %.4f, test %.4f", seed, name, train["accuracy"], test["accuracy"])
        for name, kernel in (("Gaussian kernel ridge", "gaussian"), ("Laplace kernel ridge", "laplace")):
            krr = KernelRidgeClassifier(kernel, ridge=s["krr_ridge"]).fit(x_tr, y_tr)
            train, test = krr.score(x_tr, y_tr), krr.score(x_test, y_test)
            row[name] = {"train": train, "test": test, "gap": train - test, "bandwidth": krr.bandwidth}
        rows.append(row)
    return rows


@register_experiment("zhang2022_ntk", paper=PAPER,
                     title="NTK of binary-weight networks: the quasi network, its spectrum and the generalization gap",
                     seeds=5, quick_seeds=1)
def run(out_dir: Path, quick: bool, seeds: int) -> dict[str, Any]:
    """Quasi network against sampled binary nets, NTK spectra (quasi vs real), generalization gaps."""
    s = QUICK if quick else FULL
    notes: list[str] = []
    spectrum_seeds = min(seeds, 3)
    units = {seed: _quasi_vs_mc_units(s, seed, notes) for seed in range(spectrum_seeds)}
    nets = {seed: _quasi_vs_mc_nets(s, seed) for seed in range(spectrum_seeds)}
    spectra = _spectra(s, spectrum_seeds)
    gaps = _gaps(s, seeds)
    return _report(out_dir, s, quick, seeds, spectrum_seeds, units, nets, spectra, gaps, notes)


def _fmt(values: list[float], scale: float = 1.0, digits: int = 3) -> str:
    m, sd = mean_std(values)
    return f"{scale * m:.{digits}f} ± {scale * sd:.{digits}f}"


def _report(out: Path, s: dict[str, Any], quick: bool, seeds: int, spectrum_seeds: int, units: dict, nets: dict,
            spectra: dict, gaps: list[dict[str, Any]], notes: list[str]) -> dict[str, Any]:
    from onebit.analysis.spectra import fit_spectrum

    decide = (lambda v: None) if quick else (lambda v: bool(v))
    claims: list[Claim] = []
    tables: dict[str, Any] = {}

    # 1. quasi layer against Monte Carlo, per unit
    unit_rows = []
    big: list[float] = []
    big_sd: list[float] = []
    n_cmp = s["unit_width"] * s["unit_inputs"]
    p_null = 1.0 - (1.0 - math.erfc(UNIT_SE / math.sqrt(2.0))) ** n_cmp
    for seed, rows in units.items():
        for r in rows:
            unit_rows.append([seed, r["dim"], r["source"], round(r["max_z"], 2), f"{100 * r['within']:.2f}",
                              f"{r['mean_z']:.2f}", f"{r['sd_z']:.2f}", f"{100 * r['rel']:.3f}"])
            if r["dim"] >= 64:
                big.append(r["max_z"])
                big_sd.append(r["sd_z"])
    tables["Quasi layer against Monte Carlo, per unit"] = table(
        ["seed", "d", "inputs", "max |quasi − MC| / SE", "% of units within 4 SE", "mean z", "sd z",
         "relative error %"], unit_rows,
        f"{s['unit_width']} units × {s['unit_inputs']} inputs per d, {s['unit_samples']:,} sampled nets; θ uniform "
        "in [−1, 1]; z = (quasi − MC) / SE, SE = MC standard deviation / √samples. Without any approximation "
        f"error z ~ N(0, 1): sd z ≈ 1, and the largest of {n_cmp} |z| exceeds 4 with probability "
        f"{p_null:.1%}")
    claims.append(Claim(
        f"quasi ReLU layer within {UNIT_SE:g} standard errors of the Monte-Carlo mean for every unit, d ≥ 64",
        round(max(big), 2) if big else None, None, "SE (largest |quasi − MC| / SE over units, d ≥ 64)",
        decide(bool(big) and max(big) <= UNIT_SE),
        f"{len(big)} (seed, d) cases with d ≥ 64, {n_cmp} units × inputs each (by chance alone: P(max |z| > 4) = "
        f"{p_null:.1%} per case); sd of z for d ≥ 64: {_fmt(big_sd, 1, 2)}; smaller d, seed 0: " + ", ".join(
            f"d = {r['dim']}: max {r['max_z']:.1f}, sd {r['sd_z']:.1f}" for r in units[0] if r["dim"] < 64)))

    # 2. whole networks
    net_rows, by_case = [], {}
    for seed, rows in nets.items():
        for r in rows:
            by_case.setdefault((r["depth"], r["variant"]), []).append(r["rel"])
            net_rows.append([seed, r["depth"], r["variant"], f"{100 * r['rel']:.2f}", f"{100 * r['noise']:.2f}"])
    tables["Quasi network against Monte Carlo, whole nets"] = table(
        ["seed", "hidden layers", "quasi variant", "relative error %", "MC noise %"], net_rows,
        f"64 → {s['net_width']} (→ {s['net_width']}) → 10, {s['net_inputs']} digits images, {s['net_samples']:,} "
        "sampled nets; relative Frobenius error of the 10 outputs × inputs; MC noise = ‖SE‖/‖MC mean‖")
    one = by_case[1, "mean"]
    claims.append(Claim(
        f"one hidden layer of {s['net_width']} (two binary-weight layers): quasi outputs within 5 % of the MC mean",
        _fmt(one, 100, 2), None, "% relative error", decide(max(one) <= NET_REL),
        f"mean ± std over {len(one)} seeds; the mean-only and variance-carrying variants coincide at one "
        "hidden layer"))
    for variant, label in (("mean", "mean-only (the paper's)"), ("carry", "variance-carrying")):
        two = by_case[2, variant]
        claims.append(Claim(
            f"two hidden layers of {s['net_width']}: {label} quasi outputs within 5 % of the MC mean",
            _fmt(two, 100, 2), None, "% relative error", decide(max(two) <= NET_REL),
            f"mean ± std over {len(two)} seeds"))

    # 3. spectra
    spec_rows = []
    fits: dict[tuple[str, str], list[Any]] = {}
    for key, part in spectra["nets"].items():
        for name in ("quasi", "real"):
            for seed, eig in enumerate(part[name]):
                f = fit_spectrum(eig)
                fits.setdefault((key, name), []).append(f)
                spec_rows.append([f"{name} NTK, hidden {key}", seed, f.k_max, f"{f.exponential_r2:.4f}",
                                  f"{f.power_r2:.4f}", f.better, f"{f.exponential_rate:.4f}",
                                  f"{f.power_exponent:.3f}", f"{eig[min(50, len(eig)) - 1]:.2e}",
                                  f"{eig[-1]:.2e}"])
    for name, eig in spectra["reference"].items():
        f = fit_spectrum(eig)
        spec_rows.append([name, "–", f.k_max, f"{f.exponential_r2:.4f}", f"{f.power_r2:.4f}", f.better,
                          f"{f.exponential_rate:.4f}", f"{f.power_exponent:.3f}",
                          f"{eig[min(50, len(eig)) - 1]:.2e}", f"{eig[-1]:.2e}"])
    tables["NTK spectra on unit-normalized digits"] = table(
        ["kernel", "seed", "ranks fitted", "R² exponential", "R² power law", "better", "rate b", "exponent p",
         "λ₅₀ / trace", "λ_N / trace"], spec_rows,
        f"{s['spectrum_points']} digits training images; eigenvalues / trace; fits over ranks 1 … k_max (the last "
        f"above 1e-12 λ₁); Gaussian/Laplace bandwidth = median distance {spectra['bandwidth']:.3f}")
    tail = s["tail_from"]
    for key, part in spectra["nets"].items():
        q, r = fits[key, "quasi"], fits[key, "real"]
        q_exp = [f.exponential_r2 - f.power_r2 for f in q]
        r_pow = [f.power_r2 - f.exponential_r2 for f in r]
        claims.append(Claim(
            f"hidden {key}: the quasi NTK spectrum is fit better by the exponential law than by the power law",
            _fmt(q_exp, 1, 4), None, "R²(exp) − R²(power)", decide(all(v > 0 for v in q_exp)),
            f"R² exponential {_fmt([f.exponential_r2 for f in q], 1, 4)}, power {_fmt([f.power_r2 for f in q], 1, 4)} "
            f"over {len(q)} seeds"))
        claims.append(Claim(
            f"hidden {key}: the real-weight NTK spectrum is fit better by the power law",
            _fmt(r_pow, 1, 4), None, "R²(power) − R²(exp)", decide(all(v > 0 for v in r_pow)),
            f"R² power {_fmt([f.power_r2 for f in r], 1, 4)}, "
            f"exponential {_fmt([f.exponential_r2 for f in r], 1, 4)}"))
        below = [float(np.mean(qe[tail:] < re[tail:])) for qe, re in zip(part["quasi"], part["real"], strict=True)]
        ratio = [float(np.median(qe[tail:] / re[tail:])) for qe, re in zip(part["quasi"], part["real"], strict=True)]
        claims.append(Claim(
            f"hidden {key}: the quasi spectrum's tail lies below the real one's for k > {tail}",
            _fmt(below, 100, 1), None, f"% of ranks k > {tail} with λ_quasi < λ_real",
            decide(all(b == 1.0 for b in below)),
            f"median λ_quasi/λ_real over k > {tail}: {_fmt(ratio, 1, 3)} (eigenvalues / trace)"))
    circle_rows = []
    circle_fits: dict[str, list[Any]] = {}
    for name, eigs in spectra["circle"].items():
        for seed, eig in enumerate(eigs):
            f = fit_spectrum(eig, 1, min(100, int(np.sum(eig > 1e-12 * eig[0]))))
            circle_fits.setdefault(name, []).append(f)
            circle_rows.append([name, seed, f.k_max, f"{f.exponential_r2:.4f}", f"{f.power_r2:.4f}", f.better])
    tables["Synthetic: NTK spectra on the unit circle"] = table(
        ["kernel", "seed", "ranks fitted", "R² exponential", "R² power law", "better"], circle_rows,
        f"{s['circle_points']} random points on the unit circle (synthetic: the decay laws are statements about "
        f"kernels on spheres); width {s['circle_width']}; ranks 1 … min(100, last above 1e-12 λ₁)")
    claims.append(Claim(
        "synthetic, unit circle: quasi NTK fit better by the exponential law, real NTK by the power law",
        f"quasi: {', '.join(f.better for f in circle_fits['quasi'])}; real: "
        f"{', '.join(f.better for f in circle_fits['real'])}", None, "",
        decide(all(f.better == "exponential" for f in circle_fits["quasi"])
               and all(f.better == "power" for f in circle_fits["real"])),
        f"{s['circle_points']} points, width {s['circle_width']}, {len(circle_fits['quasi'])} seeds"))

    # 4. generalization gaps
    methods = ["binary-weight MLP", "real MLP", "Gaussian kernel ridge", "Laplace kernel ridge"]
    gap_rows = []
    for m in methods:
        tr, te, gp = ([g[m][k] for g in gaps] for k in ("train", "test", "gap"))
        gap_rows.append([m, _fmt(tr, 100, 2), _fmt(te, 100, 2), _fmt(gp, 100, 2),
                         " ".join(f"{100 * v:.1f}" for v in gp)])
    tables["Generalization gaps on digits"] = table(
        ["method", "train accuracy %", "test accuracy %", "gap % (train − test)", "gap per seed %"], gap_rows,
        f"{s['gap_train']} training images (stratified, a new draw per seed), 360 test images, {seeds} seeds; MLP "
        f"64 → {s['mlp_hidden']} → {s['mlp_hidden']} → 10 with BatchNorm, {s['mlp_epochs']} epochs Adam lr "
        f"{s['mlp_lr']}; kernel ridge λ = {s['krr_ridge']}, median bandwidth")
    train_ok = all(g[m]["train"] >= MIN_TRAIN for g in gaps for m in methods[:2])
    claims.append(Claim(
        "both MLPs reach ≥ 99 % training accuracy", min(g[m]["train"] for g in gaps for m in methods[:2]) * 100,
        None, "% (lowest over seeds and MLPs)", decide(train_ok), ""))
    for a, b, what in (("binary-weight MLP", "real MLP", "binary-weight MLP"),
                       ("Gaussian kernel ridge", "Laplace kernel ridge", "Gaussian kernel ridge")):
        ga, gb = [g[a]["gap"] for g in gaps], [g[b]["gap"] for g in gaps]
        diff = [x - y for x, y in zip(ga, gb, strict=True)]
        claims.append(Claim(
            f"the {what} has a smaller generalization gap than the {b}",
            _fmt(diff, 100, 2), None, f"points, gap({a}) − gap({b})",
            decide(mean_std(ga)[0] < mean_std(gb)[0]),
            f"{a}: {_fmt(ga, 100, 2)} %, {b}: {_fmt(gb, 100, 2)} %; paired difference mean ± std over {seeds} seeds; "
            f"smaller in {sum(d < 0 for d in diff)} of {seeds} seeds"))

    plots = [_plot_units(out, units), _plot_spectra(out, spectra, tail)]
    plots.append(_plot_gaps(out, gaps, methods))
    notes.append(f"settings: {dict(s)}")
    notes.append(f"spectra and Monte-Carlo checks use seeds 0..{spectrum_seeds - 1}; the gaps seeds 0..{seeds - 1}")
    if quick:
        notes.append("--quick: tiny widths, sample counts and epochs; verdicts are not decided")
    settings = {**s, "spectrum_seeds": spectrum_seeds}
    return {"claims": claims, "tables": tables, "plots": plots, "settings": settings, "notes": notes}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _plot_units(out: Path, units: dict) -> str:
    plt = _pyplot()
    rows = units[0]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    for r in rows:
        axes[0].scatter(r["mc"], r["quasi"], s=6, alpha=0.6, label=f"d = {r['dim']}")
        axes[1].hist(np.clip(r["z"], -12, 12), bins=48, range=(-12, 12), histtype="step", label=f"d = {r['dim']}")
    lim = max(max(r["mc"].max(), r["quasi"].max()) for r in rows) if rows else 1.0
    axes[0].plot([0, lim], [0, lim], "k--", lw=0.8)
    axes[0].set(xlabel="Monte-Carlo mean of ReLU(z)", ylabel="quasi ReLU μΦ(μ/σ) + σφ(μ/σ)",
                title="quasi layer vs sampled binary nets (seed 0)")
    for v in (-UNIT_SE, UNIT_SE):
        axes[1].axvline(v, color="k", ls=":", lw=0.8)
    axes[1].set(xlabel="(quasi − MC) / standard error (clipped to ±12)", ylabel="units × inputs",
                title="per-unit deviations")
    for ax in axes:
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "quasi_vs_monte_carlo.png")
    plt.close(fig)
    return "quasi_vs_monte_carlo.png"


def _plot_spectra(out: Path, spectra: dict, tail: int) -> str:
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5), dpi=100)
    styles = {"quasi": "C3", "real": "C0"}
    for i, (key, part) in enumerate(spectra["nets"].items()):
        for name in ("quasi", "real"):
            eig = part[name][0]
            k = np.arange(1, len(eig) + 1)
            for ax in axes[:2]:
                ax.plot(k, np.where(eig > 0, eig, np.nan), color=styles[name], ls="-" if i == 0 else "--",
                        label=f"{name} NTK, hidden {key}")
    for j, (name, eig) in enumerate(spectra["reference"].items()):
        k = np.arange(1, len(eig) + 1)
        for ax in axes[:2]:
            ax.plot(k, np.where(eig > 0, eig, np.nan), color=f"C{j + 4}", lw=0.9, alpha=0.8, label=name)
    axes[0].set(xscale="log", yscale="log", xlabel="rank k", ylabel="λ_k / trace",
                title="digits, log–log (power law = straight line)")
    axes[1].set(yscale="log", xlabel="rank k", ylabel="λ_k / trace", title="digits, semi-log (exponential = straight)")
    for ax in axes[:2]:
        ax.axvline(tail, color="k", ls=":", lw=0.8)
    for j, (name, eigs) in enumerate(spectra["circle"].items()):
        eig = eigs[0]
        axes[2].plot(np.arange(1, len(eig) + 1), np.where(eig > 1e-16, eig, np.nan), color=f"C{j}", label=name)
    axes[2].set(yscale="log", xlabel="rank k", ylabel="λ_k / trace", title="synthetic: unit circle, semi-log")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "ntk_spectra.png")
    plt.close(fig)
    return "ntk_spectra.png"


def _plot_gaps(out: Path, gaps: list[dict[str, Any]], methods: list[str]) -> str:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for i, m in enumerate(methods):
        values = [100 * g[m]["gap"] for g in gaps]
        mean, sd = mean_std(values)
        ax.bar(i, mean, yerr=sd, capsize=4, color=["C3", "C0", "C1", "C2"][i])
        ax.scatter([i] * len(values), values, color="k", s=10, zorder=3)
    ax.set_xticks(range(len(methods)), [m.replace(" ", "\n", 1) for m in methods], fontsize=8)
    ax.set(ylabel="train − test accuracy (points)", title="generalization gap on digits (mean ± std over seeds)")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "generalization_gaps.png")
    plt.close(fig)
    return "generalization_gaps.png"
