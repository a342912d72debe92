"""What a fine-tuned BBH run wrote where its saved answer is blank, special tokens shown.

    python studies/bbh_blank_answers.py "studies/bbh/budget=0.1,seed=2,selector=random"

A blank answer can be a stop string cutting the answer off (direct answers stop at the first
newline) or the model ending its turn at once. The saved outputs cannot tell them apart, so this
asks the run's model (the base model plus the job's adapter/, which the study does not commit:
rerun the job to get it) again, greedily, on the first blank question of each task, with no stop
string and the end-of-turn token kept. Embedded model (SmolLM2) runs only.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from labelbudget.evaluation.bbh import BBHEvaluation, bbh_prompt
from labelbudget.models.loading import convert_smollm2

NEW_TOKENS = 12


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("job", type=Path, help="a study job folder holding adapter/")
    parser.add_argument("--cache-dir", default="~/.cache/labelbudget/models")
    args = parser.parse_args(argv)
    if not (args.job / "adapter").is_dir():
        raise SystemExit(
            f"{args.job} holds no adapter/: rerun the job (the study does not commit it)"
        )
    settings = json.loads((args.job / "metrics.json").read_text())["config"]["eval"]["bbh"]
    evaluation = BBHEvaluation(**{k: v for k, v in settings.items() if k != "_target_"})
    inputs = evaluation.prepare(None, None)  # the questions the job was graded on, and their shots
    questions = {e.id: e for e in inputs.examples}
    first_blank: dict[str, str] = {}
    for line in (args.job / "bbh_predictions.jsonl").read_text().splitlines():
        row = json.loads(line)
        if not row["answer"]:
            first_blank.setdefault(row["task"], row["id"])

    base = convert_smollm2(args.cache_dir)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    model = PeftModel.from_pretrained(model, args.job / "adapter").eval()
    for task, id_ in sorted(first_blank.items()):
        example = questions[id_]
        description, exemplars = inputs.prompts[task]
        text = bbh_prompt(description, exemplars[: evaluation.shots], example.prompt, cot=False)
        ids = tokenizer(text, return_tensors="pt").input_ids
        with torch.no_grad():
            out = model.generate(ids, max_new_tokens=NEW_TOKENS, do_sample=False)
        written = tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=False)
        print(f"{id_}: target {example.response!r}, wrote {written!r}")


if __name__ == "__main__":
    main()
