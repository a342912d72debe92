#!/usr/bin/env bash
# The CoS-Low study on the CPU (BENCHMARKS.md, "Data efficiency"): learning curves for 12
# synthetic tasks with SmolLM2, CoS-Low and the comparison signals for each, the fit.
#   bash benchmarks/data_efficiency_study.sh [OUT]        (about 1.5 hours on a 2-core CPU)
# Budgets 0, 25, 50, 100 (n_max = 100): what a CPU allows; the paper's grid runs to 5,000.
set -euo pipefail
OUT=${1:-outputs/study}
TASKS=(arith_sub_two_digit arith_mul_two_digit str_reverse_letters str_count_letter cls_even_odd cls_colour_word
       extract_json_key extract_price extract_person_name convert_date_iso convert_time_12h reason_sort_numbers)
SWEEP=$(printf '[%s],' "${TASKS[@]}"); SWEEP=${SWEEP%,}
LIST=$(IFS=,; echo "[${TASKS[*]}]")
DATA=(dataset.pool_per_task=100 dataset.test_per_task=30)
python train.py -m experiment=learning_curve "dataset.tasks=$SWEEP" budget=0,25,50,100 "${DATA[@]}" logger=none \
  hydra.sweep.dir="$OUT/curves_runs"
python estimate.py mode=curves "runs=[$OUT/curves_runs]" n_max=100 hydra.run.dir="$OUT/curves"
python estimate.py mode=coslow "dataset.tasks=$LIST" "${DATA[@]}" dataset.pool_sizes=equal hydra.run.dir="$OUT/coslow"
python estimate.py mode=fit curves="$OUT/curves/curves.json" signals="$OUT/coslow/coslow.json" hydra.run.dir="$OUT/fit"
