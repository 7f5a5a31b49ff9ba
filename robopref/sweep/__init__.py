"""Benchmark sweeps on Ray and the benchmark table.

``robopref sweep FILE.yaml`` (:mod:`robopref.sweep.run`) expands the file
(:mod:`robopref.sweep.grid`) into cells, runs each (:mod:`robopref.sweep.cell`) as a Ray task
and gathers the results; ``robopref table`` (:mod:`robopref.sweep.table`) turns them into
the table papers report, with 95% confidence intervals over seeds.
"""
