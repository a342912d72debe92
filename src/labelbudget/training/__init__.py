"""LoRA fine-tuning: the SFT data and LightningModule, the recipe, adapters saved with their
base's identity, and the memory plan."""
