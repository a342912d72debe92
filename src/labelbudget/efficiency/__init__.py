"""Data efficiency (Je and Raffel, 2025): learning curves and their area, CoS-Low from 32
low-confidence labels, the linear predictor, and a budget planner built on the predicted curves."""

from labelbudget.efficiency.curves import data_efficiency_auc

__all__ = ["data_efficiency_auc"]
