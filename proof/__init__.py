"""`make proof`: the platform started as production runs it, faulted, loaded, fuzzed and probed
from outside (HTTP on loopback, real processes and services), with one table of figures.

Run `python -m proof --help` for the options; `proof.__main__` says what each probe does.
"""
