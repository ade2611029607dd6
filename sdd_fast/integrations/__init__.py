"""DSE inside a training loop: the per-step monitor, the loss regularizer, the Lightning
callback and the metric loggers (JSON lines, CSV, TensorBoard)."""
