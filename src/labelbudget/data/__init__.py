"""Task-labelled pools: the one example schema, the loaders (synthetic, JSONL, the hub, BBH,
MMLU), and the annotation step that gives the selected prompts their responses."""
