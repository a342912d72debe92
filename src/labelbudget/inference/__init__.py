"""Inference passes over prompts, shared by scoring, evaluation and prompt sensitivity: batching
and left padding, the Lightning predict loop with its DDP split and progress bar, greedy
generation with optional measures, and answer-letter scoring."""
