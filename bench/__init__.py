"""Benchmarks of incident-runbooks: `python -m bench` (all) or `python -m bench intake|latency`.

Figures and the commands that produced them: bench/RESULTS.md. What makes alert → flow fast:
docs/latency.md.
"""
