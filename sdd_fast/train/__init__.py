"""Bundled self-supervised trainers: one shared loop (`loop.py`) and one file per method."""
