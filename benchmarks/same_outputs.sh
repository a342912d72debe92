#!/bin/bash
# Do two commits give the same outputs? Runs the demo (python select.py) and the quickstart
# (python train.py experiment=quickstart logger=none) at each commit, from worktrees, with this
# checkout's venv and the same cache and seed, then compares every output file byte for byte
# (metrics.json also as JSON, to show what differs).
#   benchmarks/same_outputs.sh <before-rev> <after-rev> [out-dir]      (~25 min on 2 CPU cores)
set -euo pipefail
before=$1 after=$2 out=${3:-/tmp/same_outputs}
repo=$(git rev-parse --show-toplevel)
py=$repo/.venv/bin/python
mkdir -p "$out"
for tag in before after; do
  tree=$out/$tag-tree
  [ -d "$tree" ] || git -C "$repo" worktree add --detach "$tree" "${!tag}" > /dev/null
  git -C "$tree" checkout -q --detach "${!tag}"
  cd "$tree"
  PYTHONPATH=$tree/src $py select.py hydra.run.dir="$out/$tag-demo" > "$out/$tag-demo.log" 2>&1
  PYTHONPATH=$tree/src $py train.py experiment=quickstart logger=none \
    hydra.run.dir="$out/$tag-quickstart" > "$out/$tag-quickstart.log" 2>&1
done
for run in demo quickstart; do
  for file in selection.jsonl allocation.csv allocation.png predictions.jsonl metrics.json \
      adapter/adapter_model.safetensors adapter/adapter_config.json adapter/base_model.json; do
    [ -f "$out/before-$run/$file" ] || continue
    if cmp -s "$out/before-$run/$file" "$out/after-$run/$file"; then
      echo "$run $file: identical"
    else
      echo "$run $file: DIFFERS"
    fi
  done
  diff <($py -m json.tool "$out/before-$run/metrics.json") \
    <($py -m json.tool "$out/after-$run/metrics.json") || true
done
for tag in before after; do git -C "$repo" worktree remove --force "$out/$tag-tree"; done
