"""Helpers every layer shares: atomic file writes, JSON-lines files, one-writer run locks,
device choice and torch.distributed helpers."""
