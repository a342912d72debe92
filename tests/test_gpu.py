"""What only a CUDA GPU can show (marker `gpu`; skipped, with the reason, on machines without
one): the selectors' device choice, a bf16-mixed fine-tune matching the fp32 one, and the real
peak memory next to the plan printed before the fit. Run them on a GPU with `pytest -m gpu`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from test_train import fit_once

from labelbudget.selection import make_selector
from labelbudget.selection.kernels import resolve_device

pytestmark = pytest.mark.gpu


def test_auto_device_is_the_gpu_and_a_selector_picks_the_same_there():
    assert resolve_device("auto") == torch.device("cuda")
    from test_diversity_selectors import random_pool

    candidates, _ = random_pool(200, 16)
    on_gpu = make_selector("kcenter", device="cuda").select(
        candidates, 20, np.random.default_rng(0)
    )
    on_cpu = make_selector("kcenter", device="cpu").select(candidates, 20, np.random.default_rng(0))
    assert on_gpu.ids == on_cpu.ids


def test_bf16_mixed_fine_tune_follows_the_fp32_one_and_reports_its_peak_beside_the_plan(
    tmp_path: Path,
):
    cpu_stats, _ = fit_once(tmp_path / "cpu", "trainer=cpu")
    gpu_stats, weights = fit_once(tmp_path / "gpu", "trainer=gpu")
    assert all(w.device.type == "cuda" for w in weights.values())
    # bf16 keeps about 3 significant digits: the same run, not the same bits
    assert gpu_stats["train/last_epoch_loss"] == pytest.approx(
        cpu_stats["train/last_epoch_loss"], rel=2e-2
    )
    assert 0 < gpu_stats["train/peak_memory_gib"]
    assert "train/planned_memory_gib" in gpu_stats and "train/peak_memory_gib" not in cpu_stats
