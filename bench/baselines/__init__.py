"""Baselines: the algorithms coinharvest is compared with (the seed's, in `seed.py`)."""
