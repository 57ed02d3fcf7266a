"""Training tooling: the procedural world, dataset loaders, models, losses and loops.

Run from the repository root, e.g. ``python -m train.teacher --help``. Nothing here does
work at import time.
"""
