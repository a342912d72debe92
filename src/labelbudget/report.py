"""`python -m labelbudget.report <folders>`: see labelbudget.tracking.report."""

from labelbudget.errors import one_line_errors
from labelbudget.tracking.report import main

if __name__ == "__main__":
    one_line_errors(main)()
