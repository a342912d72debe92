"""Annotation tools that labelbudget pushes selections to and pulls answers from."""
