"""python evaluate.py ...: arrives with the fine-tuning and evaluation loop (see the issues)."""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="select")
def main(cfg: DictConfig) -> None:
    raise SystemExit("evaluate.py: not yet implemented; select.py chooses the prompts to annotate today")


if __name__ == "__main__":
    main()
