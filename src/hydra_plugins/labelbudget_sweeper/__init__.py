"""labelbudget's Hydra plugins (see resumable_sweeper)."""
