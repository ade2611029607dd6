"""Labelled evaluation of checkpoints: dense linear-probe mIoU beside DSE (`sdd-fast eval`)."""

from .evaluate_run import EVAL_FILE, EvalError, evaluate_run
from .probe import (
                    IGNORE_INDEX,
                    LinearHead,
                    ProbeOptions,
                    ProbeResult,
                    confusion_matrix,
                    extract_tokens,
                    iou_from_confusion,
                    linear_probe,
                    train_linear_head,
)

__all__ = [
    "EVAL_FILE",
    "EvalError",
    "IGNORE_INDEX",
    "LinearHead",
    "ProbeOptions",
    "ProbeResult",
    "confusion_matrix",
    "evaluate_run",
    "extract_tokens",
    "iou_from_confusion",
    "linear_probe",
    "train_linear_head",
]
