"""python annotate.py action=push|pull selection=<run folder>  (conf/annotate.yaml)"""

import sys

import hydra
from omegaconf import DictConfig

from labelbudget.cli import hoist_multirun_flag, run_entry


@hydra.main(version_base="1.3", config_path="conf", config_name="annotate")
def main(cfg: DictConfig) -> None:
    run_entry("labelbudget.stages.annotate.run_annotate", cfg)


if __name__ == "__main__":
    sys.argv = hoist_multirun_flag(sys.argv)
    main()
