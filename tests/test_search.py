"""Width search (onebit.search): spaces, costs, the evolutionary algorithm, backends, resume.

The algorithm's properties (elitism, determinism, budget repair and rejection, random
search) are tested with a cheap fake fitness; the backends and resume with tiny real
trainings (reduced VGG-small on the 8x8 digits, 1 proxy epoch).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch

from onebit.errors import ConfigError, MissingFileError
from onebit.model_summary import packed_weight_bytes, summary
from onebit.models import create_model
from onebit.nn import QuantConv1d, QuantConv2d
from onebit.search import (
    CostModel, ProxyTraining, SearchConfig, candidate_seed, evolve, pareto_front, random_search, round_width,
    run_search, search_space, searchable_models, strip_times,
)
from onebit.search.backends import make_backend

MAC_BUDGET = 2_457_600  # binary MACs of binary_cnn1d at uniform x2 (computed in test_binary_macs_are_exact)


def fake_fitness(genome, seed):
    """Cheap, deterministic, peaked at [1, 2, 4]-ish, with a little per-candidate 'noise' from its seed."""
    target = (1.0, 2.0, 4.0)
    return 1.0 - sum(abs(g - t) for g, t in zip(genome, target)) / 10 + (seed % 1000) / 1e6


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


# --------------------------------------------------------------------------- spaces


def test_vgg_small_space_has_the_papers_six_genes_and_genomes():
    space = search_space("binarynet_cnn")
    assert [g.base for g in space.genes] == [128, 128, 256, 256, 512, 512]
    assert space.widths([0.5, 2, 1, 1, 1, 0.5]) == [64, 256, 256, 256, 512, 256]  # VGG-Auto-A
    assert space.widths([2, 2, 4, 2, 4, 0.5]) == [256, 256, 1024, 512, 2048, 256]  # VGG-Auto-B
    model = space.build([0.5, 2, 1, 1, 1, 0.5])
    assert [c.out_channels for c in model.modules() if isinstance(c, QuantConv2d)] == [64, 256, 256, 256, 512, 256]
    # The uniform x1 genome is today's network, parameter for parameter.
    assert summary(space.build(space.uniform(1)), (3, 32, 32)).total_params == \
        summary(create_model("binarynet_cnn"), (3, 32, 32)).total_params


def test_residual_space_has_twelve_genes_over_sixteen_convs():
    space = search_space("birealnet18", in_shape=(3, 32, 32), num_classes=10)
    assert len(space.genes) == 12 and len(space.layout) == 16
    assert space.model_kwargs(space.uniform(1))["widths"] == [64] * 4 + [128] * 4 + [256] * 4 + [512] * 4
    same = summary(space.build(space.uniform(1)), (3, 32, 32)).total_params
    assert same == summary(create_model("birealnet18", in_shape=(3, 32, 32), num_classes=10), (3, 32, 32)).total_params
    genome = [1.0] * 12
    genome[1] = 2.0  # stage 1, block 1: its first conv doubles, the residual width stays
    widths = space.model_kwargs(genome)["widths"]
    assert widths[:4] == [128, 64, 64, 64]
    assert space.build(genome)(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    react = search_space("reactnet_resnet18", in_shape=(3, 32, 32), num_classes=10)
    assert summary(react.build(react.uniform(1)), (3, 32, 32)).total_params == \
        summary(create_model("reactnet_resnet18", in_shape=(3, 32, 32), num_classes=10), (3, 32, 32)).total_params
    assert react.build(genome)(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_cnn1d_space_and_model_widths():
    space = search_space("binary_cnn1d")
    assert space.gene_names == ["conv1", "conv2", "conv3"] and space.size == 125
    model = space.build([0.5, 4, 2])
    assert [(c.in_channels, c.out_channels) for c in model.modules() if isinstance(c, QuantConv1d)] == \
        [(64, 32), (32, 256), (256, 128)]
    assert model(torch.randn(3, 1, 40)).shape == (3, 10)
    assert summary(space.build(space.uniform(1)), (1, 40)).total_params == \
        summary(create_model("binary_cnn1d"), (1, 40)).total_params


def test_rounding_to_64_channel_words():
    assert [round_width(c) for c in (32, 64, 65, 96, 128, 192, 200)] == [32, 64, 128, 128, 128, 192, 256]
    assert round_width(96, packed=False) == 96 and round_width(0.4) == 1
    with pytest.raises(ConfigError, match="positive"):
        round_width(-3)
    # A reduced VGG-small (base 32-32-64-64-128-128): x3 = 96 channels is paid as two words, so it gets 128.
    space = search_space("binarynet_cnn", model_args={"channels": [32, 64, 128], "hidden": 64})
    assert space.widths([3, 1, 1, 1, 1, 1]) == [128, 32, 64, 64, 128, 128]
    for genome in ([c] * 6 for c in space.choices):
        assert all(w <= 64 or w % 64 == 0 for w in space.widths(genome))
    # Why: the next binary layer's packed weights are the same size for 96 and 128 input channels.
    a = create_model("binary_cnn1d", widths=[96, 64, 64])
    b = create_model("binary_cnn1d", widths=[128, 64, 64])
    conv2 = lambda m: [c for c in m.modules() if isinstance(c, QuantConv1d)][1]  # noqa: E731
    assert packed_weight_bytes(conv2(a)) == packed_weight_bytes(conv2(b))


def test_space_errors():
    with pytest.raises(ConfigError, match="no per-layer width knobs.*searchable models: binary_cnn1d"):
        search_space("lfc")
    with pytest.raises(ConfigError, match="did you mean 'binary_cnn1d'"):
        search_space("binary_cnn1")
    with pytest.raises(ConfigError, match="widths is what the search chooses"):
        search_space("binary_cnn1d", model_args={"widths": [1, 2, 3]})
    space = search_space("binary_cnn1d")
    with pytest.raises(ConfigError, match="not among the choices"):
        space.check([1, 2, 5])
    with pytest.raises(ConfigError, match="3 ratios"):
        space.check([1, 2])
    with pytest.raises(ConfigError, match="widths must be 3 positive integers"):
        create_model("binary_cnn1d", widths=[64, 64])
    assert searchable_models() == ["binary_cnn1d", "binarynet_cnn", "birealnet18", "birealnet34", "reactnet_resnet18"]


# --------------------------------------------------------------------------- costs


def test_binary_macs_are_exact_and_bytes_are_the_summarys():
    space = search_space("binary_cnn1d")
    costs = CostModel(space)
    for genome in ([1, 1, 1], [0.5, 4, 2], [2, 2, 2]):
        w1, w2, w3 = space.widths(genome)
        # conv k=3 on lengths 40, 20, 10 (a max-pool after each); the float stem gives 64 channels
        expected = 3 * (40 * 64 * w1 + 20 * w1 * w2 + 10 * w2 * w3)
        got = costs.measure(genome, ["binary_macs", "bytes"])
        assert got["binary_macs"] == expected
        assert got["bytes"] == summary(space.build(genome), (1, 40)).packed_bytes
    assert costs.measure([2, 2, 2], ["binary_macs"])["binary_macs"] == MAC_BUDGET


def test_latency_is_measured_once_per_architecture_and_cached(tmp_path, monkeypatch):
    space = search_space("binary_cnn1d")
    costs = CostModel(space, latency_repeats=5, cache_path=tmp_path / "cache.json")
    calls = []
    real = costs._measure_latency
    monkeypatch.setattr(costs, "_measure_latency", lambda g: calls.append(g) or real(g))
    first = costs.measure([0.5, 0.5, 0.5], ["latency"])["latency"]
    assert first > 0 and costs.measure([0.5, 0.5, 0.5], ["latency"])["latency"] == first and len(calls) == 1
    again = CostModel(space, latency_repeats=5, cache_path=tmp_path / "cache.json")
    monkeypatch.setattr(again, "_measure_latency", lambda g: pytest.fail("measured again despite the cache"))
    assert again.measure([0.5, 0.5, 0.5], ["latency"])["latency"] == first
    # Another batch size is another measurement.
    other = CostModel(space, latency_repeats=5, latency_batch=4, cache_path=tmp_path / "cache.json")
    monkeypatch.setattr(other, "_measure_latency", lambda g: 1.0)
    assert other.measure([0.5, 0.5, 0.5], ["latency"])["latency"] == 1.0


def test_a_budget_like_a_uniform_net_is_never_below_the_cheapest_genome(monkeypatch, caplog):
    from onebit.search.evolution import check_reachable
    from onebit.search.pipeline import _resolve_budget

    space = search_space("binary_cnn1d")
    config = SearchConfig("binary_cnn1d", "mnist1d", costs=("latency",), budget_like=2.0)
    for cheapest, wider in ((1.0, 2.0), (3.0, 2.0)):  # a plausible timing, then one that noise inverted
        costs = CostModel(space)
        monkeypatch.setattr(costs, "_measure_latency", lambda g: cheapest if g == space.cheapest() else wider)
        with caplog.at_level(logging.WARNING, logger="onebit.search.pipeline"):
            budget, source = _resolve_budget(config, space, costs)
        assert source == "uniform:2" and budget == {"latency": max(cheapest, wider)}
        check_reachable(space, costs, budget)
    assert "under the cheapest genome's" in caplog.text


def test_cost_errors():
    costs = CostModel(search_space("binary_cnn1d"))
    with pytest.raises(ConfigError, match="unknown cost 'flops'; valid choices: binary_macs, bytes, latency"):
        costs.measure([1, 1, 1], ["flops"])
    with pytest.raises(ConfigError, match="latency_batch must be a positive integer"):
        CostModel(search_space("binary_cnn1d"), latency_batch=0)


def test_pareto_front():
    points = [(1, 0.5), (2, 0.7), (2, 0.6), (3, 0.65), (4, 0.9), (0.5, 0.4)]
    assert pareto_front(points) == [5, 0, 1, 4]


# --------------------------------------------------------------------------- evolution (fake fitness)


def _evolve(seed=0, **kw):
    args = dict(population=6, generations=5, budget={"binary_macs": MAC_BUDGET}, seed=seed)
    return evolve(search_space("binary_cnn1d"), fake_fitness, **{**args, **kw})


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_elitism_best_fitness_never_decreases(seed):
    result = _evolve(seed, elite=1, mutation_rate=0.9)
    best = [g["best_fitness"] for g in result.generations]
    assert len(best) == 5 and best == sorted(best)
    assert result.best.fitness == max(c.fitness for c in result.candidates) == best[-1]
    # The elite are carried over: each generation's best is in the next population.
    for previous, current in zip(result.generations, result.generations[1:]):
        assert previous["best"] in current["population"]


def test_same_seed_same_search_and_every_evaluation_a_new_genome():
    a, b = _evolve(3), _evolve(3)
    assert strip_times(a.to_dict()) == strip_times(b.to_dict())
    assert strip_times(a.to_dict()) != strip_times(_evolve(4).to_dict())
    genomes = [c.genome for c in a.candidates]
    assert len(set(genomes)) == len(genomes) == a.evaluations == 6 + 4 * (6 - 1)
    assert all(c.seed == candidate_seed(3, c.genome) for c in a.candidates)


def test_over_budget_genomes_are_repaired_and_the_log_says_so(caplog):
    with caplog.at_level(logging.INFO, logger="onebit.search"):
        result = _evolve(0, over_budget="repair")
    assert all(c.feasible and c.costs["binary_macs"] <= MAC_BUDGET for c in result.candidates)
    repaired = [c for c in result.candidates if c.repaired_from is not None]
    assert repaired and sum(g["repaired"] for g in result.generations) >= len(repaired)
    space = search_space("binary_cnn1d")
    for c in repaired:  # a repair only lowers genes
        assert all(x <= y for x, y in zip(c.genome, c.repaired_from))
        assert f"{space.format(c.repaired_from)} over the budget" in caplog.text
    assert "repaired to" in caplog.text and "rejected" not in caplog.text.replace("0 rejected", "")


def test_over_budget_genomes_are_rejected_when_asked(caplog):
    with caplog.at_level(logging.INFO, logger="onebit.search"):
        result = _evolve(0, over_budget="reject")
    assert all(c.feasible and c.repaired_from is None for c in result.candidates)
    assert sum(g["rejected"] for g in result.generations) > 0 and "): rejected" in caplog.text


def test_random_search_draws_distinct_genomes_within_the_budget():
    space = search_space("binary_cnn1d")
    a = random_search(space, fake_fitness, evaluations=20, budget={"binary_macs": MAC_BUDGET}, seed=5)
    b = random_search(space, fake_fitness, evaluations=20, budget={"binary_macs": MAC_BUDGET}, seed=5)
    assert strip_times(a.to_dict()) == strip_times(b.to_dict())
    genomes = [c.genome for c in a.candidates]
    assert len(set(genomes)) == 20 and all(c.costs["binary_macs"] <= MAC_BUDGET for c in a.candidates)
    assert a.best.fitness == max(c.fitness for c in a.candidates)


def test_budget_and_settings_errors():
    space = search_space("binary_cnn1d")
    with pytest.raises(ConfigError, match=r"binary_macs budget 1,000 MACs is below the cheapest genome's 0.338M MACs "
                                          r"\(\[0.5, 0.5, 0.5\]"):
        evolve(space, fake_fitness, budget={"binary_macs": 1000})
    with pytest.raises(ConfigError, match="unknown cost 'macs'"):
        evolve(space, fake_fitness, budget={"macs": 1000})
    with pytest.raises(ConfigError, match="elite must be an integer from 0 to population − 1 = 3"):
        evolve(space, fake_fitness, population=4, elite=4)
    with pytest.raises(ConfigError, match="unknown over-budget policy .drop.; valid choices: reject, repair"):
        evolve(space, fake_fitness, over_budget="drop")
    with pytest.raises(ConfigError, match="give the data set"):
        evolve(space)


# --------------------------------------------------------------------------- real trainings: backends, resume


def _digits_config(**kw):
    """A reduced VGG-small on the 8x8 digits: 1 proxy epoch, a handful of candidates."""
    args = dict(model="binarynet_cnn", data="digits", model_args={"channels": [8, 16, 32], "hidden": 32},
                population=3, generations=2, elite=1, proxy_epochs=1, final_epochs=1, retrain=False,
                references=(1.0,))
    return SearchConfig(**{**args, **kw})


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    """The serial search of ``_digits_config()``, which every backend must reproduce (one torch thread)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield run_search(_digits_config(), tmp_path_factory.mktemp("search") / "serial")
    finally:
        torch.set_num_threads(previous)


def test_process_pool_gives_the_serial_results(serial, tmp_path):
    pooled = run_search(_digits_config(), tmp_path / "pool", workers=2)
    assert strip_times(serial) == strip_times(pooled)
    assert pooled["run"]["workers"] == 2 and pooled["evolution"]["evaluations"] == 3 + 1 * 2
    assert len({c["proxy_accuracy"] for c in serial["evolution"]["candidates"]}) > 1  # real, varied trainings


def test_ray_backend_gives_the_serial_results(serial, tmp_path):
    pytest.importorskip("ray", reason="Ray is not installed: pip install 'onebit[search]'")
    on_ray = run_search(_digits_config(), tmp_path / "ray", workers=2, backend="ray")
    assert strip_times(serial) == strip_times(on_ray) and on_ray["run"]["backend"] == "ray"


def test_ray_backend_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    with pytest.raises(ConfigError, match=r"pip install 'onebit\[search\]'"):
        make_backend(fake_fitness, workers=2, backend="ray")


def test_a_search_folder_is_not_overwritten_and_resume_checks_the_settings(tmp_path):
    config = _digits_config(generations=1, random_baseline=False)
    run_search(config, tmp_path / "s")
    with pytest.raises(ConfigError, match="already exists"):
        run_search(config, tmp_path / "s")
    with pytest.raises(ConfigError, match="settings differ from the search's: proxy_epochs"):
        run_search(dataclasses.replace(config, proxy_epochs=2), tmp_path / "s", resume=True)
    from onebit.search import resume_search

    with pytest.raises(MissingFileError, match="nothing to resume"):
        resume_search(tmp_path / "none")
    again = resume_search(tmp_path / "s")  # a finished search resumes to itself, training nothing
    assert again["run"]["trained_in_this_run"] == 0


SEARCH_ARGS = ["--model", "binarynet_cnn", "-M", "channels=[8,16,32]", "-M", "hidden=32", "--data", "digits",
               "--population", "3", "--generations", "2", "--proxy-epochs", "1", "--epochs", "1"]


def _scored(folder) -> int:
    try:
        return len(json.loads((folder / "state.json").read_text())["results"])
    except (OSError, ValueError, KeyError):
        return 0


def test_a_killed_search_resumes_to_the_uninterrupted_search_json(tmp_path):
    """SIGKILL at random moments (mid-generation, mid-write), the second time while resuming from the first;
    --resume ends with the same search.json."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    reference = tmp_path / "reference"
    proc = subprocess.run([sys.executable, "-m", "onebit.cli", "search", *SEARCH_ARGS, "--no-report", "--out", str(reference)],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    want = strip_times(json.loads((reference / "search.json").read_text()))
    total = _scored(reference)
    rng = random.Random(0)
    run = tmp_path / "killed"
    command = [sys.executable, "-m", "onebit.cli", "search", *SEARCH_ARGS, "--no-report", "--out", str(run)]
    killed_after = []
    for target in (rng.randint(1, total // 2 - 1), rng.randint(total // 2, total - 2)):
        target = max([target, *(k + 1 for k in killed_after)])  # the resumed search scores one genome first
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + 120
        while _scored(run) < target and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.2))
        child.send_signal(signal.SIGKILL)
        child.wait()
        killed_after.append(_scored(run))
        assert 0 < killed_after[-1] < total, f"the kill did not land mid-search: {killed_after}"
        command = [sys.executable, "-m", "onebit.cli", "search", "--resume", str(run), "--no-report"]
    assert killed_after[0] < killed_after[1], killed_after
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert resumed.returncode == 0, resumed.stderr
    got = json.loads((run / "search.json").read_text())
    assert strip_times(got) == want, f"killed after {killed_after} scored genomes"
    assert got["run"]["resumed"] and (run / "winner" / "model.onebit").is_file()


def test_proxy_fitness_never_sees_the_test_split():
    from onebit.data import load_dataset
    from onebit.search import ProxyFitness

    data = load_dataset("digits")
    space = search_space("binarynet_cnn", model_args={"channels": [8, 16, 32], "hidden": 32},
                         in_shape=data.in_shape, num_classes=data.num_classes)
    fitness = ProxyFitness(space, data, ProxyTraining(epochs=1))
    assert len(fitness.train[0]) + len(fitness.val[0]) == len(data.x_train)
    assert not hasattr(fitness, "test") and "x_test" not in vars(fitness)
    value = fitness(space.uniform(1), 7)
    assert value == fitness(space.uniform(1), 7) and 0 <= value <= 1
