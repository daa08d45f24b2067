"""The study's data: tile fetching, vetting and preparation, color spaces, and the torch datasets.

Submodules are imported on demand (``aircolor.data.prepare``, ``aircolor.data.datasets``, ...) so that the CLI
does not pay for torch when it only prepares files.
"""
