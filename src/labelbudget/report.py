"""`python -m labelbudget.report <folders>`: see labelbudget.tracking.report."""

from labelbudget.tracking.report import main

if __name__ == "__main__":
    main()
