"""The per-prompt numbers the scoring pass produces, and their on-disk form.

One file pair per score set: `scores.safetensors` (numeric columns, pool order) and
`scores.json` (ids and the greedy generations). Loading checks every value is finite, so a
corrupt cache fails with the file, row and field instead of steering a selection.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load, save

from labelbudget.errors import DataError
from labelbudget.io import atomic_write_bytes, atomic_write_text

FORMAT = 2  # bumped whenever the columns change, so older caches are rescored, not misread
NUMERIC_FIELDS = (
    "seq_logprob",
    "mean_logprob",
    "mean_prob",
    "mean_entropy",
    "mean_margin",
    "min_margin",
    "n_tokens",
    "hit_max_tokens",
)


class CorruptScores(DataError):
    """A saved score file that cannot be read back as written."""


@dataclass(frozen=True)
class Scores:
    """Scores of N prompts, row i belonging to ids[i].

    seq_logprob: log of the paper's confidence, the product of the greedy tokens' probabilities.
    mean_logprob: per-token mean log-probability; exp of it is the length-fair geometric mean.
    mean_prob: per-token mean probability of the greedy token (CoS-Low's confidence).
    mean_entropy / mean_margin / min_margin: over generated tokens (margin = p_top1 - p_top2).
    n_tokens: generated tokens, the end-of-sequence token included when it was produced.
    hit_max_tokens: generation stopped at max_new_tokens rather than at end-of-sequence.
    embeddings: (N, d) penultimate-layer prompt embedding from the same prefill pass.
    """

    ids: list[str]
    generations: list[str]
    seq_logprob: np.ndarray
    mean_logprob: np.ndarray
    mean_prob: np.ndarray
    mean_entropy: np.ndarray
    mean_margin: np.ndarray
    min_margin: np.ndarray
    n_tokens: np.ndarray
    hit_max_tokens: np.ndarray
    embeddings: np.ndarray

    def __len__(self) -> int:
        """The number of prompts."""
        return len(self.ids)

    def log_confidence(self, kind: str = "sequence") -> np.ndarray:
        """Log confidence per prompt: 'sequence' (the paper's product) or 'token_geomean'."""
        if kind == "sequence":
            return self.seq_logprob
        if kind == "token_geomean":
            return self.mean_logprob
        raise ValueError(f"confidence must be 'sequence' or 'token_geomean', got {kind!r}")

    def task_log_confidence(
        self, rows: Mapping[str, np.ndarray], kind: str = "sequence"
    ) -> np.ndarray:
        """Log conf_t per task of `rows` (task -> its rows), in their order.

        conf_t is the mean of the task's prompts' confidence (`kind`, as in `log_confidence`),
        averaged in log space.
        """
        log_confidence = self.log_confidence(kind)
        return np.array(
            [np.logaddexp.reduce(log_confidence[r]) - np.log(len(r)) for r in rows.values()]
        )

    @staticmethod
    def with_columns(ids: list[str], embeddings: np.ndarray | None = None, **columns) -> "Scores":
        """The given columns, every other measure zero (one token, none hitting the cap).

        For selectors, tests and benchmarks that exercise a single measure.
        """
        n = len(ids)
        unknown = set(columns) - set(NUMERIC_FIELDS)
        if unknown:
            raise ValueError(f"unknown score columns {sorted(unknown)}")
        values = {
            name: np.asarray(columns.get(name, np.zeros(n)), dtype=float)
            for name in NUMERIC_FIELDS[:-2]
        }
        return Scores(
            ids=list(ids),
            generations=[""] * n,
            **values,
            n_tokens=np.asarray(columns.get("n_tokens", np.ones(n)), dtype=np.int64),
            hit_max_tokens=np.asarray(columns.get("hit_max_tokens", np.zeros(n)), dtype=bool),
            embeddings=np.zeros((n, 2), dtype=np.float32)
            if embeddings is None
            else np.asarray(embeddings, dtype=np.float32),
        )

    def take(self, rows: np.ndarray | list[int]) -> "Scores":
        """The scores of the given rows, in that order."""
        rows = np.asarray(rows, dtype=np.int64)
        return Scores(
            ids=[self.ids[i] for i in rows],
            generations=[self.generations[i] for i in rows],
            **{
                f.name: getattr(self, f.name)[rows]
                for f in fields(self)
                if f.name not in ("ids", "generations")
            },
        )

    @staticmethod
    def concat(parts: list["Scores"]) -> "Scores":
        """The parts' prompts one after the other, in the order given."""
        return Scores(
            ids=[i for p in parts for i in p.ids],
            generations=[g for p in parts for g in p.generations],
            **{
                f.name: np.concatenate([getattr(p, f.name) for p in parts])
                for f in fields(Scores)
                if f.name not in ("ids", "generations")
            },
        )

    def save(self, stem: Path) -> None:
        """Write `<stem>.safetensors` and `<stem>.json` atomically.

        The JSON comes last: it marks completeness and holds the tensors' SHA-256, so that a file
        damaged later is found on load.
        """
        tensors = {name: np.ascontiguousarray(getattr(self, name)) for name in NUMERIC_FIELDS}
        tensors["embeddings"] = np.ascontiguousarray(self.embeddings)
        data = save(tensors)
        atomic_write_bytes(stem.with_suffix(".safetensors"), data)
        atomic_write_text(
            stem.with_suffix(".json"),
            json.dumps(
                {
                    "ids": self.ids,
                    "generations": self.generations,
                    "sha256": hashlib.sha256(data).hexdigest(),
                },
                ensure_ascii=False,
            ),
        )

    @staticmethod
    def load(stem: Path) -> "Scores":
        """Read a saved score set.

        Raises:
            CorruptScores: a damaged file (truncated, edited, checksum off), named, with the fix;
                or a non-finite value, with file, row and field.
        """
        path = stem.with_suffix(".safetensors")
        try:
            meta = json.loads(stem.with_suffix(".json").read_text())
            data = path.read_bytes()
            if (
                meta.get("sha256", hashlib.sha256(data).hexdigest())
                != hashlib.sha256(data).hexdigest()
            ):
                raise ValueError("its SHA-256 differs from the one written with it")
            tensors = load(data)
            ids = meta["ids"]
        except (OSError, ValueError, KeyError, SafetensorError) as error:
            raise CorruptScores(
                str(path), f"is damaged ({error}); delete it, or its cache folder, to rescore"
            ) from error
        for name, values in tensors.items():
            if len(values) != len(ids):
                raise DataError(str(path), f"has {len(values)} rows but {len(ids)} ids", field=name)
            if values.dtype.kind == "f":
                bad = ~np.isfinite(values.reshape(len(values), -1)).all(axis=1)
                if bad.any():
                    row = int(np.flatnonzero(bad)[0])
                    raise DataError(
                        str(path),
                        f"non-finite value for id {ids[row]!r}; delete the cache folder to rescore",
                        row + 1,
                        name,
                    )
        return Scores(ids=ids, generations=meta["generations"], **tensors)
