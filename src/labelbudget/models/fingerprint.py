"""What identifies a model: its config as it determines scores (`model_identity`), a local
checkpoint by its content hash, so that whatever is keyed on a model (the score cache, an
adapter's record of its base) follows its weights and tokenizer, not its path: replacing the
files in a folder changes the key. Hashing gigabytes takes a while, so each file's hash is kept
in a memo keyed by its path, size and modification time, and recomputed only when they change."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labelbudget.errors import LabelbudgetError
from labelbudget.io import atomic_write_text

if TYPE_CHECKING:
    from omegaconf import DictConfig

log = logging.getLogger(__name__)

MEMO = "file-hashes.json"
CHUNK = 1 << 20
# files of a checkpoint folder that no weight or tokenizer is read from
NOT_READ = ("README", "LICENSE", "USE_POLICY")


def read_by_loader(file: Path, folder: Path) -> bool:
    """Every file of the folder but hidden ones (caches, .git) and the prose beside the weights."""
    parts = file.relative_to(folder).parts
    return not any(part.startswith(".") for part in parts) and not (
        file.name.startswith(NOT_READ) or file.suffix == ".md"
    )


def checkpoint_digest(path: Path, memo_dir: Path) -> str:
    """SHA-256 over the relative name and content hash of every file the loader may read (a
    single file: its content hash). The memo lives in `memo_dir`; where it cannot be written
    (a read-only cache) the hashes are computed and used all the same."""
    path = Path(path).resolve()
    files = (
        [path]
        if path.is_file()
        else sorted(f for f in path.rglob("*") if f.is_file() and read_by_loader(f, path))
    )
    memo_file = Path(memo_dir).expanduser() / MEMO
    try:
        memo = json.loads(memo_file.read_text())
    except (OSError, ValueError):
        memo = {}
    digest, changed = hashlib.sha256(), False
    for file in files:
        stat = file.stat()
        stamp = [stat.st_size, stat.st_mtime_ns]
        entry = memo.get(str(file))
        if entry is None or entry[:2] != stamp:
            log.info("hashing %s (%d MB), once", file, stat.st_size >> 20)
            entry, changed = [*stamp, file_sha256(file)], True
            memo[str(file)] = entry
        name = file.name if file == path else str(file.relative_to(path))
        digest.update(f"{name}\0{entry[2]}\n".encode())
    if changed:
        try:
            atomic_write_text(memo_file, json.dumps(memo, indent=1, sort_keys=True))
        except (OSError, LabelbudgetError) as error:
            log.warning("could not keep the file hashes in %s (%s)", memo_file, error)
    return digest.hexdigest()


def file_sha256(file: Path) -> str:
    """The file's SHA-256 in hex, read a megabyte at a time."""
    digest = hashlib.sha256()
    with open(file, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def model_identity(model_cfg: DictConfig, cache_dir: str | Path) -> dict[str, Any]:
    """The model config as it determines scores: local cache locations, the list of linear
    layers (a check on LoRA settings) and the tokenizer-only loader (`LazyModel` checks that it
    loads the loader's own tokenizer) do not count. A local checkpoint (`name_or_path` a folder
    or file) counts by its content, weights and tokenizer files (`checkpoint_digest`, memo in
    `cache_dir`), so that files replaced in place are new scores, not the old model's."""

    def strip(node):
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if k != "cache_dir"}
        return node

    from omegaconf import OmegaConf

    model = OmegaConf.to_container(model_cfg, resolve=True)
    identity = strip({k: v for k, v in model.items() if k not in ("linear_layers", "tokenizer")})
    for part, key in (("loader", "checkpoint_sha256"), ("tokenizer", "tokenizer_sha256")):
        local = (model.get(part) or {}).get("name_or_path")
        if part == "tokenizer" and local == model["loader"].get("name_or_path"):
            continue  # the checkpoint's own tokenizer, hashed with it
        if isinstance(local, str) and Path(local).expanduser().exists():
            identity[key] = checkpoint_digest(Path(local).expanduser(), Path(cache_dir))
    return identity
