"""Evaluations (`eval=...`): the pool's own tasks, MMLU, BBH and AlpacaEval, on the interface
of `base`, and the per-task scoring rules."""
