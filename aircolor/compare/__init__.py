"""``aircolor compare``: a colorized historical photo and today's color imagery of the same ground, on one grid.

The study's purpose is to compare past and present: this puts the two side by side (same CRS, extent and
resolution) for a GIS swipe, and as PNG previews.
"""
