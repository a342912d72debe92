"""Which prompts to annotate: python select.py selector=weighted_task budget=300 -m seed=0,1,2

This file shares its name with the standard library's `select` module. When the repository root
is on sys.path (python train.py, pytest), `import select` would find this file and break
subprocess, asyncio and more; so when imported under that name it loads the real module in its
place and stands aside. Only when run as a script is it the entry point.
"""

if __name__ == "select":
    import importlib.machinery
    import importlib.util
    import os
    import sys

    _here = os.path.dirname(os.path.abspath(__file__))
    _path = [p for p in sys.path if os.path.abspath(p or os.curdir) != _here]
    _spec = importlib.machinery.PathFinder.find_spec("select", _path)
    if _spec is None:  # a built-in module on this platform
        _spec = importlib.machinery.BuiltinImporter.find_spec("select")
    _real = importlib.util.module_from_spec(_spec)
    sys.modules["select"] = _real
    _spec.loader.exec_module(_real)
elif __name__ == "__main__":
    import sys

    import hydra
    from omegaconf import DictConfig

    from labelbudget.cli import hoist_multirun_flag, run_entry

    @hydra.main(version_base="1.3", config_path="conf", config_name="select")
    def main(cfg: DictConfig) -> None:
        run_entry("labelbudget.stages.select.run_select", cfg)

    sys.argv = hoist_multirun_flag(sys.argv)
    main()
