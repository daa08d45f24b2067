"""Ray Tune drivers for the ablation sweeps (filled in by the sweeps issue).

Runnable as ``python -m sweeps.run`` once the sweep driver exists; Ray imports stay inside this package.
"""
