"""Prompt sensitivity (the original ActiveIT's task ranking) on the tiny model, checked against
a brute-force forward per perturbation; seeding, the template left intact, and the cache."""

from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import replace

import numpy as np
import pytest
import torch

import labelbudget.models.tiny
from conftest import compose_config, cpu_trainer
from labelbudget.data.schema import Example, Pool
from labelbudget.errors import ConfigError
from labelbudget.models.tiny import build_tiny_llama
from labelbudget.scoring.prompt_sensitivity import (
    SensitivitySettings,
    compute_prompt_sensitivity,
    plan_instances,
    prompt_sensitivity,
    sensitivity_path,
    text_mask,
)
from labelbudget.stages.select import run_select

SETTINGS = SensitivitySettings(
    instances_per_task=3, n_perturbations=4, dropout=0.2, max_new_tokens=3, seed=0, batch_size=2
)
MODEL_ID = {"name": "tiny_llama", "seed": 0, "lm_head_scale": 30}


@pytest.fixture(scope="module")
def loaded():
    """The tiny model with a sharpened output layer: at random init its next-token distribution
    is nearly uniform, so p(y_hat) would barely depend on the prompt."""
    tiny = build_tiny_llama(seed=0)
    with torch.no_grad():
        tiny.model.lm_head.weight.mul_(30)
    return tiny


def make_pool() -> Pool:
    words = ["alpha", "beta", "gamma", "delta", "eps"]
    examples = [
        Example(
            id=f"ex{i}",
            task=f"t{i % 3}",
            prompt=" ".join(words[: i % 5 + 1]) + f" {i}",
            context="ctx" if i % 4 == 0 else None,
        )
        for i in range(15)
    ]
    return Pool(examples, "test-pool")


def brute_force(
    loaded, prompt: list[int], perturbed: list[list[int]], max_new_tokens: int
) -> float:
    """Mean |p(y_hat | perturbed) - p(y_hat | prompt)| the slow way: greedy by full forwards,
    and one unpadded forward per perturbation."""
    model = loaded.model
    answer: list[int] = []
    for _ in range(max_new_tokens):
        answer.append(int(model(torch.tensor([prompt + answer])).logits[0, -1].argmax()))
        if answer[-1] in loaded.eos_token_ids:
            break

    def probability(tokens: list[int]) -> float:
        log_probs = model(torch.tensor([tokens + answer])).logits[0].double().log_softmax(-1)
        return math.exp(sum(float(log_probs[len(tokens) - 1 + j, a]) for j, a in enumerate(answer)))

    original = probability(prompt)
    return float(np.mean([abs(probability(p) - original) for p in perturbed]))


@torch.no_grad()
def test_sensitivity_matches_a_brute_force_forward_per_perturbation(loaded):
    pool = make_pool()
    expected: dict[str, list[float]] = {}
    for instance in plan_instances(pool, loaded, SETTINGS):
        expected.setdefault(instance.task, []).append(
            brute_force(loaded, instance.prompt, instance.perturbed(), SETTINGS.max_new_tokens)
        )
    got = compute_prompt_sensitivity(loaded, pool, SETTINGS, cpu_trainer)
    assert list(got) == ["t0", "t1", "t2"]
    for task, values in expected.items():
        assert got[task] == pytest.approx(np.mean(values), rel=1e-4)
    assert min(got.values()) > 1e-3  # the check above is not comparing zeros


def test_batch_size_does_not_change_the_sensitivity(loaded):
    pool = make_pool()
    one = compute_prompt_sensitivity(loaded, pool, replace(SETTINGS, batch_size=1), cpu_trainer)
    many = compute_prompt_sensitivity(loaded, pool, replace(SETTINGS, batch_size=9), cpu_trainer)
    assert many == pytest.approx(one, rel=1e-4)


def test_no_dropout_means_no_sensitivity(loaded):
    got = compute_prompt_sensitivity(
        loaded, make_pool(), replace(SETTINGS, dropout=0.0), cpu_trainer
    )
    assert got == pytest.approx({"t0": 0.0, "t1": 0.0, "t2": 0.0}, abs=1e-7)


def test_text_mask_covers_exactly_the_example_text(loaded):
    tokenizer, template = loaded.tokenizer, loaded.template
    placeholders = [
        template.encode_prompt(tokenizer, Example(id="", task="", prompt=p)) for p in ("a", "b")
    ]
    for prompt, context in [("hello", None), ("a", None), ("apple b", "and b"), ("b", "a")]:
        example = Example(id="x", task="t", prompt=prompt, context=context)
        tokens = template.encode_prompt(tokenizer, example)
        text = tokenizer.decode(np.asarray(tokens)[text_mask(tokens, placeholders)])
        assert text == (
            f"{prompt}\n\n{context}" if context else prompt
        )  # one byte per token: exact


def test_perturbations_are_fixed_by_the_seed_and_drop_only_text(loaded):
    pool = Pool(
        [
            Example(id=f"ex{i}", task=f"t{i % 2}", prompt="the quick brown fox jumps " * 4)
            for i in range(20)
        ],
        "long",
    )
    settings = replace(SETTINGS, instances_per_task=10, n_perturbations=50)
    first, again = plan_instances(pool, loaded, settings), plan_instances(pool, loaded, settings)
    other = plan_instances(pool, loaded, replace(settings, seed=1))
    assert all(
        np.array_equal(a.keep, b.keep) and a.prompt == b.prompt for a, b in zip(first, again)
    )
    assert not all(np.array_equal(a.keep, b.keep) for a, b in zip(first, other))
    keep = np.concatenate([i.keep for i in first], axis=1)
    placeholders = [
        loaded.template.encode_prompt(loaded.tokenizer, Example(id="", task="", prompt=p))
        for p in ("a", "b")
    ]
    text = np.concatenate([text_mask(i.prompt, placeholders) for i in first])
    assert keep[:, ~text].all()  # the template is never perturbed
    assert 1 - keep[:, text].mean() == pytest.approx(
        0.2, abs=0.01
    )  # text tokens dropped at the dropout rate


def test_cache_hit_returns_identical_values_without_loading_the_model(loaded, tmp_path):
    pool = make_pool()
    computed = prompt_sensitivity(pool, loaded, MODEL_ID, SETTINGS, tmp_path, cpu_trainer)
    record = json.loads(sensitivity_path(pool, MODEL_ID, SETTINGS, tmp_path).read_text())
    assert record["sensitivity"] == computed and record["settings"]["dropout"] == 0.2

    def no_model():
        raise AssertionError("the model was loaded on a cache hit")

    assert prompt_sensitivity(pool, no_model, MODEL_ID, SETTINGS, tmp_path, cpu_trainer) == computed
    with pytest.raises(
        AssertionError, match="loaded on a cache hit"
    ):  # other settings: another entry
        prompt_sensitivity(
            pool, no_model, MODEL_ID, replace(SETTINGS, dropout=0.3), tmp_path, cpu_trainer
        )


def test_a_job_that_finds_the_pass_locked_waits_and_reads_the_holders_result(loaded, tmp_path):
    """As with the scores: two jobs of a sweep never compute the same sensitivity twice."""
    from filelock import FileLock

    pool = make_pool()
    path = sensitivity_path(pool, MODEL_ID, SETTINGS, tmp_path)
    path.parent.mkdir(parents=True)
    holder = FileLock(str(path.parent / ".lock"))
    holder.acquire()  # another job is computing
    result = {}

    def no_model():
        raise AssertionError("the waiting job computed the sensitivity itself")

    waiting = threading.Thread(
        target=lambda: result.setdefault(
            "values", prompt_sensitivity(pool, no_model, MODEL_ID, SETTINGS, tmp_path, cpu_trainer)
        )
    )
    waiting.start()
    time.sleep(0.5)
    assert waiting.is_alive()
    published = {task: 0.25 for task in set(pool.tasks)}
    path.write_text(json.dumps({"sensitivity": published}))
    holder.release()
    waiting.join(timeout=30)
    assert result["values"] == published


@pytest.mark.parametrize(
    "change",
    [{"dropout": 1.0}, {"dropout": -0.1}, {"n_perturbations": 0}, {"instances_per_task": 0}],
)
def test_bad_settings_are_refused(change):
    with pytest.raises(ConfigError, match="prompt sensitivity"):
        SensitivitySettings(**change)


def test_select_py_computes_the_sensitivity_once_then_reuses_it(tmp_path, monkeypatch):
    overrides = [
        "model=tiny_llama",
        "selector=activeit_prompt",
        "budget=20",
        "dataset.pool_per_task=6",
        "scoring.max_new_tokens=2",
        "selector.sensitivity.instances_per_task=2",
        "selector.sensitivity.n_perturbations=2",
        f"paths.cache_dir={tmp_path / 'cache'}",
        f"paths.output_dir={tmp_path / 'run'}",
    ]
    cfg = compose_config("select", *overrides)
    first = run_select(cfg)
    assert len(first.ids) == len(set(first.ids)) == 20
    assert (
        len(list((tmp_path / "cache" / "scores").glob("prompt-sensitivity-*/sensitivity.json")))
        == 1
    )

    def no_model(**_):
        raise AssertionError("the model was loaded although the sensitivity was cached")

    monkeypatch.setattr(labelbudget.models.tiny, "build_tiny_llama", no_model)
    assert run_select(cfg).ids == first.ids


@pytest.mark.parametrize("text", ["{not json", '{"other": 1}', '{"sensitivity": [1, 2]}'])
def test_a_damaged_sensitivity_cache_is_named_with_the_fix(tmp_path, text):
    from labelbudget.errors import DataError
    from labelbudget.scoring.prompt_sensitivity import load_sensitivity

    path = tmp_path / "sensitivity.json"
    path.write_text(text)
    pool = Pool([Example(id="a", task="t", prompt="q")], "pool")
    with pytest.raises(DataError, match=r"sensitivity\.json.*delete it to recompute"):
        load_sensitivity(path, pool)
