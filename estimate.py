"""python estimate.py mode=coslow|curves|fit|plan [key=value ...]  (conf/estimate.yaml)"""

import sys

import hydra
from omegaconf import DictConfig

from labelbudget.cli import hoist_multirun_flag, run_entry


@hydra.main(version_base="1.3", config_path="conf", config_name="estimate")
def main(cfg: DictConfig) -> None:
    run_entry("labelbudget.stages.estimate.run_estimate", cfg)


if __name__ == "__main__":
    sys.argv = hoist_multirun_flag(sys.argv)
    main()
