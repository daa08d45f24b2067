"""``aircolor adapt``: learn the colours of one place from today's colour imagery of it.

* :mod:`~aircolor.adapt.place_tiles`: the imagery cut into tiles and split into training / validation by spatial
  blocks;
* :mod:`~aircolor.adapt.geo_source`: the imagery over georeferenced photos or a box, from a raster or a tile server;
* :mod:`~aircolor.adapt.tune`: fine-tuning within a time budget, keeping the best validation state;
* :mod:`~aircolor.adapt.fallback`: what is delivered (the network, the place's best prior, or a blend), never worse
  on the validation blocks than that prior;
* :mod:`~aircolor.adapt.run` and :mod:`~aircolor.adapt.card`: the adapted model folder and its card.
"""
