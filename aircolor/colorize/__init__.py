"""Colorize an archive of historical aerial photos with a trained generator (``aircolor colorize``).

* :mod:`~aircolor.colorize.source`: find the generator (file, run folder, MLflow run id, ``models:/`` URI);
* :mod:`~aircolor.colorize.tiling`: overlapping tiles in blocks, with feathered blending, for images of any size;
* :mod:`~aircolor.colorize.engine`: one image: the model's chroma on the input's own full-resolution L*, in stages
  (model input, blocks of tiles, bands of rows) that ``--ray`` workers run too (:mod:`sweeps.colorize`);
* :mod:`~aircolor.colorize.delivery`: the delivered image: the input's L* with the model's chroma, gamut-fitted;
* :mod:`~aircolor.colorize.imageio`: 8/16-bit gray, gray+alpha, gray saved as RGB; GeoTIFF and world files;
* :mod:`~aircolor.colorize.archive`: inputs, resumable outputs, per-file errors and the summary.
"""
