"""Selectors by family. Importing this package imports every module in it, and so registers
every selector by name: a new selector is one module here and one YAML in conf/selector/."""

import importlib
import pkgutil

from labelbudget.selection.base import (
    PREDICTED_AUC,
    PROMPT_SENSITIVITY,
    SCORES,
    SELECTORS,
    Candidates,
    Selection,
    Selector,
    make_selector,
)

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "PREDICTED_AUC",
    "PROMPT_SENSITIVITY",
    "SCORES",
    "SELECTORS",
    "Candidates",
    "Selection",
    "Selector",
    "make_selector",
]
