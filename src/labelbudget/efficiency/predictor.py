"""From a signal to a predicted AUC: AUC = c * signal + I by ordinary least squares over tasks
with measured curves, judged by leave-one-task-out error beside the predict-the-mean baseline."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from labelbudget.errors import ConfigError, DataError
from labelbudget.io import atomic_write_text

# <model name>.json: fits measured by this project (BENCHMARKS.md), shipped with this package
PACKAGED_FITS = Path(__file__).parent / "fits"


@dataclass(frozen=True)
class LinearFit:
    """AUC = slope * signal + intercept, fitted over `n_tasks` tasks of one model family; saved as
    JSON (the ones this project measured ship in `fits/`)."""

    slope: float
    intercept: float
    signal: str  # which signal it maps, e.g. "coslow"
    model: str  # fits are per model family
    n_tasks: int
    n_max: int  # the budget axis the AUCs were measured on: predictions use the same

    def predict(self, value: float) -> float:
        """The predicted AUC, clipped into (0, 1) where the x^p curve exists."""
        return float(np.clip(self.slope * value + self.intercept, 1e-3, 1 - 1e-3))

    def save(self, path: Path) -> None:
        """Write the fit as JSON, atomically: the file `load` (and `fit=...`) reads."""
        atomic_write_text(path, json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")

    @staticmethod
    def load(path: Path) -> "LinearFit":
        """A fit written by `save`; any other file is a DataError naming it."""
        try:
            return LinearFit(**json.loads(Path(path).read_text()))
        except (OSError, ValueError, TypeError) as error:
            raise DataError(str(path), f"is not a saved CoS-Low fit ({error})") from error


def fit_line(signal: np.ndarray, auc: np.ndarray) -> tuple[float, float]:
    """(slope, intercept) minimising squared error."""
    if len(signal) < 2 or np.ptp(signal) == 0:
        raise ConfigError(
            f"a line needs at least two tasks with different signal values, got {list(signal)}"
        )
    slope, intercept = np.polyfit(np.asarray(signal, float), np.asarray(auc, float), 1)
    return float(slope), float(intercept)


def leave_one_out_errors(signal: np.ndarray, auc: np.ndarray) -> dict[str, float]:
    """Mean absolute error of each task's AUC predicted from a line fitted to the others, and of
    the others' mean AUC (the baseline any signal must beat)."""
    signal, auc = np.asarray(signal, float), np.asarray(auc, float)
    line, mean = [], []
    for held in range(len(auc)):
        rest = np.arange(len(auc)) != held
        slope, intercept = fit_line(signal[rest], auc[rest])
        line.append(abs(slope * signal[held] + intercept - auc[held]))
        mean.append(abs(auc[rest].mean() - auc[held]))
    return {"loto_mae": float(np.mean(line)), "mean_baseline_mae": float(np.mean(mean))}


def rank(values: np.ndarray) -> np.ndarray:
    """Ranks from 1, ties sharing their average rank (as Spearman's coefficient needs)."""
    values = np.asarray(values, float)
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    for value in np.unique(values):
        tied = values == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def correlations(signal: np.ndarray, auc: np.ndarray) -> dict[str, float]:
    """Pearson and Spearman correlation of a signal with the AUC."""
    return {
        "pearson": float(np.corrcoef(signal, auc)[0, 1]),
        "spearman": float(np.corrcoef(rank(signal), rank(auc))[0, 1]),
    }


def choose_fit(path: str | None, model_name: str) -> LinearFit | None:
    """The fit given, else the one this project measured for the model, else none."""
    if path:
        return LinearFit.load(Path(path))
    packaged = PACKAGED_FITS / f"{model_name}.json"
    if packaged.is_file():
        print(f"using the fit measured for {model_name}: {packaged} (pass fit=... for your own)")
        return LinearFit.load(packaged)
    return None
