"""labelbudget: choose which prompts to annotate, fine-tune with LoRA, evaluate."""

import os

# On small CPU machines OpenMP's default spin-then-sleep waiting gave every torch elementwise op
# a fixed cost of milliseconds whatever its size (measured: BENCHMARKS.md). Passive waiting
# avoids it. It only takes effect if set before torch loads OpenMP, and a value the
# user exported wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
