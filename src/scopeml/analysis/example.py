"""The commented example that ``scopeml analyze init`` writes (it validates as it is)."""

from __future__ import annotations

EXAMPLE_SETTINGS = """\
# scopeml image-analysis settings (run with: scopeml analyze THIS.yaml IMAGES... -o RESULTS/)
version: 1

# Input channels by name, as the images call them (`scopeml` reads the names from the file's
# metadata; images without names have C0, C1, ...).
channels: [C0, C1]

# Other names a channel has in some files (another microscope's "Hoechst" for DAPI): a file
# is read by the first name it has; the results use the name above.
# aliases: {C0: [DAPI, Hoechst]}

# Fields saved one file per channel (plate readers' exports): each channel's files by a
# file-name pattern; the files of one folder whose names give * and ? the same text are one
# image (A01_s1_w1.tif and A01_s1_w2.tif: image A01_s1).
# inputs:
#   channel_files: {C0: "*_w1.tif", C1: "*_w2.tif"}

# Parts of each image's name as columns of every table (a plate's well and site: images found
# in a folder are named by their path there, A01/p2.tif as A01__p2).
# metadata: "{well}__p{site}"

# Size of the tiles the tiled stages work on (smoothing, labelling, measuring; model runs in
# tiles of at most 512, which bounds each worker's memory).
tile_size: 1024

# A plane (one scene and time point) whose stages need less memory than this many MB runs in
# memory, which is faster; a larger one runs tile by tile, out of core (the same results).
# Two channels of 16 bits and four classes need 36 bytes a pixel, and a grow class (below)
# 48 more: 2048² fits 512 MB (3500² would without the grow class).
memory_mb: 512

# Micrometres per pixel for images whose file records none (plain TIFFs, PNGs): one number,
# or "Y,X", or "Z,Y,X" for Z stacks with another Z step. A file's own size is kept.
# pixel_size: 0.65

# Object classes as a tree: a class with a `parent` is segmented only inside its parent's
# objects, and every child object records the parent object it lies in (parent_id).
classes:
  - name: cell
    segmenter:
      kind: threshold         # threshold | model | instances | grow
      channel: C1
      method: otsu            # fixed (with value: ...) | otsu | li | triangle
      sigma: 2.0              # Gaussian smoothing before thresholding (0 = none)
      # dark: true            # objects darker than the background (brightfield, H&E)
      # factor: 1.2           # the automatic level times this (stricter above 1)
      # minimum: 100          # the automatic level at least this: a blank image, no objects
      # maximum: 5000         # and at most this
    post:                     # binary post-processing, applied in this order
      - step: fill_holes
      - step: remove_small
        min_size: 200         # pixels
      - step: watershed_split # split touching objects at the necks between them
        min_distance: 10      # seeds at least this many pixels apart (or h: 2, fewer splits)
      # - step: remove_border # drop objects the image's edge cuts (not whole)
    measurements:
      shape: true             # perimeter, convex hull, solidity, Feret diameters
      intensity: [C0, C1]     # per-channel intensity statistics

  - name: nucleus
    parent: cell
    segmenter:
      kind: threshold
      channel: C0
      method: li
      sigma: 1.0
      scope: pooled           # a child's automatic level: one from all parent objects'
                              # pixels (pooled), or one per parent object (per_parent)
    # To use the built-in nuclei model (or a .czann / .czseg file) instead:
    #   kind: instances       # as `scopeml segment --outputs instances` (same objects);
    #   model: nuclei         #   or `model` for its class mask without the boundary split
    #   class: nucleus        #   the model's class (default: its one object class)
    #   channels: [C0]        #   the channels it reads (default: all of `channels` above)
    #   seed_threshold: 0.6   # seeds where P(nucleus) > 0.6 (null: the model's labels)
    #   grow: 4               # pixels a seed grows at most over the boundary class
    #   min_size: 8           # smaller seeds are dropped
    #   scale: auto           # the model sees the image magnified (auto: from the objects' size)
    #   normalize: per time point  # a time series: each time point's own statistics
    post:
      - step: fill_holes
      - step: remove_small
        min_size: 30
    measurements:
      intensity: [C0]
    # classifier: nuclei-classes.zip   # an object classifier (`scopeml objects train`)
    # rules:                  # or object classes by bounds on the measurements (not both):
    #   mitotic: {intensity_mean_C0: {min: 500}, area: {max: 150}}   # the first one met
    #   other: {}             # no bounds: every object left

  - name: spot
    parent: nucleus
    segmenter:
      kind: threshold
      channel: C1
      method: triangle
    post:
      - step: remove_small
        min_size: 3
      - step: remove_large
        max_size: 500
    measurements:
      shape: false

  - name: cytoplasm
    parent: cell
    segmenter:
      kind: grow              # each nucleus grown into the cell around it, keeping its id
      seeds: nucleus          # the class it grows from (segmented first)
      distance: 30            # pixels at most from its nucleus
      within:                 # only over these pixels of a cell stain, touching cells meeting
        channel: C1           #   at its dim line between them (without within: halfway
        method: triangle      #   between the nuclei; a membrane stain: dark: true); otsu
        sigma: 2.0            #   often keeps only a cytoplasm stain's bright part
      exclude_seeds: true     # the ring around the nucleus (its cytoplasm), not the whole cell
    measurements:
      intensity: [C0, C1]     # cytoplasm/nucleus ratios: join the tables on object_id

# What to write besides one table per class (CSV; Parquet too when pyarrow is installed).
outputs:
  labels: true      # one OME-Zarr label store per class and image
  parquet: true
  overview: true    # a PNG per image with outlines coloured by class
  summary: true     # the plots over all images (counts, tables and index.html: always)
"""
