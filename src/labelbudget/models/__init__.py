"""Models: loading a causal LM and its tokenizer, a checkpoint's content fingerprint, the
prompt templates every pass shares, and a tiny model for tests."""
