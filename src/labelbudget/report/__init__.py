"""Compare runs: python -m labelbudget.report <run or sweep folder> [...] [--out DIR] [--cells KEY]

Finds every metrics.json below the folders and lays the runs out as the paper's tables, with a
verdict on each selector:

- Runs that differ in any setting but the selector, its options, the budget and the seed go to
  separate tables, titled by the settings that differ: numbers of two datasets, models or
  learning rates are never averaged together.
- Rows are the selector plus its non-default options (`weighted_task (confidence=token_geomean)`),
  columns the budget, cells the mean ± standard error over seeds.
- Each row is compared with random, and with task_diversity (even spreading, the bar an allocator
  has to beat), at the same budget, paired by seed and task: the mean difference of the macro
  headline and a 95% interval from a crossed bootstrap that resamples tasks and seeds
  independently (so both the spread of tasks and the noise of seeds count), with the minimum
  detectable effect at 80% power. A cell says "better" or "worse" only where the interval
  excludes 0, else "not shown".
- `--cells KEY ...`: settings that repeat a row with the seed rather than separate tables (a
  study's pool compositions, `dataset.composition_seed`); each (value, seed) pair is one cell.
- The paper's premise, that low-confidence tasks gain more per label, is checked per row: the
  Spearman correlation over tasks of a task's mean confidence with its gain over zero-shot per
  label, with a permutation p-value. The premise predicts a negative correlation.
- The mechanism, per row against random at its budget and paired by seed: the tasks it gave more
  labels and those it gave fewer, and the score each group moved per label: the row wins only
  where what the first gains per label outweighs what the second loses.
- Plots: each headline against budget (one line per row, standard-error bars); the paired
  differences with their intervals (one panel per budget); each task's gain over zero-shot
  against the labels it got, coloured by its mean confidence; and the labels each row gave each
  task (one heatmap per budget).

Writes report.md, report.csv (every metric's cells) and plots/.
"""

from __future__ import annotations

from pathlib import Path

from labelbudget.configs import determining_settings
from labelbudget.errors import DataError
from labelbudget.evaluation.base import HEADLINES, PER_TASK
from labelbudget.io import atomic_write_bytes, atomic_write_text
from labelbudget.report.comparisons import (
    BASELINE,
    BASELINES,
    aggregate,
    as_run,
    check_one_data_per_table,
    check_one_run_per_cell,
    paired_with_baseline,
    premise_check,
    reallocation_check,
    row_name,
    split_by_setting,
    task_gains,
)
from labelbudget.report.plots import plot_allocation, plot_metric, plot_paired, plot_task_gains
from labelbudget.report.statistics import crossed_bootstrap, spearman
from labelbudget.report.tables import (
    cells_csv,
    headline_markdown,
    metric_markdown,
    paired_markdown,
    premise_markdown,
    reallocation_markdown,
)
from labelbudget.runs import RunRecord, finished_runs

__all__ = ["crossed_bootstrap", "premise_check", "row_name", "spearman", "write_report"]


def reported_headlines(records: list[RunRecord]) -> list[str]:
    """The headline metrics the runs name (`RunRecord.headlines`; labelbudget's own, `HEADLINES`,
    for a record older than that), labelbudget's first in their order, then the others sorted."""
    named = set()
    for record in records:
        named.update(HEADLINES if record.headlines is None else record.headlines)
    return [h for h in HEADLINES if h in named] + sorted(named - set(HEADLINES))


def write_report(
    folders: list[Path], out: Path, cells: tuple[str, ...] = (), skip_unreadable: bool = False
) -> str:
    """report.md, report.csv and plots/ in `out`; the settings in `cells` repeat rows (each value
    with each seed is one cell of the paired bootstraps) instead of separating tables. An
    unreadable metrics.json stops the report, naming it, unless `skip_unreadable`: then the
    report leaves it out and lists it first."""
    skipped: list[DataError] = []
    found = finished_runs(folders, skipped)
    if skipped and not skip_unreadable:
        first, more = skipped[0], f" (and {len(skipped) - 1} more)" if len(skipped) > 1 else ""
        raise DataError(
            first.source,
            f"{first.message}{more}; --skip-unreadable reports the other runs",
            first.row,
            first.field,
        )
    for key in cells:  # a misspelt key would make every cell "=null" without a word
        if not any(key in determining_settings(record.config or {}) for _, record in found):
            raise DataError(
                ", ".join(map(str, folders)), f"--cells: no run has the setting {key!r}"
            )
    runs = [as_run(folder, record, cells) for folder, record in found]
    headlines = reported_headlines([record for _, record in found])
    tables = []
    parts = [f'Cells: ({", ".join(cells)}, seed); read "seeds" below as these.\n'] if cells else []
    if skipped:
        parts.append(
            "Left out, unreadable (--skip-unreadable):\n" + "".join(f"- {e}\n" for e in skipped)
        )
    for index, (title, members) in enumerate(split_by_setting(runs)):
        check_one_data_per_table(members)
        check_one_run_per_cell(members)
        table = aggregate(members)
        tables.append((title, table))
        suffix = f"_{index + 1}" if title else ""
        parts.append(f"## {title}\n" if title else "")
        parts.append(headline_markdown(table, headlines))
        for headline in (m for m in headlines if m in table):
            name = headline.replace("/", "_")
            plots = {f"{name}{suffix}.png": plot_metric(headline, table[headline], title)}
            for baseline in BASELINES:
                paired = paired_with_baseline(members, headline, baseline)
                parts.append(paired_markdown(headline, paired, baseline))
                versus = "" if baseline == BASELINE else f"_vs_{baseline}"
                if paired:
                    plots[f"paired{versus}_{name}{suffix}.png"] = plot_paired(
                        headline, paired, title, baseline
                    )
            if headline in PER_TASK:
                gains = task_gains(members, headline)
                premise = premise_check(gains)
                parts.append(premise_markdown(headline, premise))
                parts.append(reallocation_markdown(headline, reallocation_check(members, headline)))
                for budget in sorted({b for _, b in gains}):
                    plots[f"task_gain_{name}_b{budget}{suffix}.png"] = plot_task_gains(
                        gains, premise, budget, headline
                    )
                    if len({row for row, b in gains if b == budget}) > 1:
                        plots[f"allocation_{name}_b{budget}{suffix}.png"] = plot_allocation(
                            gains, budget
                        )
            for filename, png in plots.items():
                atomic_write_bytes(out / "plots" / filename, png)
        parts += [metric_markdown(metric, cells) for metric, cells in table.items()]
    text = "\n".join(part for part in parts if part)
    atomic_write_text(out / "report.md", text)
    atomic_write_text(out / "report.csv", cells_csv(tables))
    return text
