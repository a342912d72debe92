"""The four stages, one module each, each a `run_*` function that reads top to bottom:
select, train, evaluate and estimate. `common` holds what they share. The entry points
(select.py, train.py, evaluate.py, estimate.py) only call them."""
