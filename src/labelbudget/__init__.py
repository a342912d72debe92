"""labelbudget: choose which prompts to annotate, fine-tune with LoRA, evaluate."""

__version__ = "0.1.0"
