"""The scoring pass: a pool's per-prompt scores (embeddings, confidences, greedy answers),
cached on disk, and per-task prompt sensitivity, cached the same way."""
