"""The Ray drivers, above the library: the ablation sweeps on Ray Tune (``python -m sweeps.run``) and colorizing an
archive on a Ray cluster (``aircolor colorize --ray``, :mod:`sweeps.colorize`). Ray imports stay inside this package
(and ``aircolor/training/ray_backend.py``).
"""
