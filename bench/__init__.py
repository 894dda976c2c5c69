"""geosentry benchmark (issue 6): ``python -m bench [--quick]``; see ``bench/run.py``."""
