"""Label-free checkpoint selection from DSE components (checkpoints) and a run's report
(run_report: selection vs mIoU, Kendall's tau, plots).

    from sdd_fast.selection import select_checkpoints
"""

from .checkpoints import (
                          COMPONENTS,
                          DEFAULT_TOP,
                          WINDOW_RADIUS,
                          Selection,
                          kendall_tau,
                          load_series,
                          recombined_scores,
                          select_checkpoints,
                          series_columns,
                          window_candidates,
)

__all__ = ["COMPONENTS", "DEFAULT_TOP", "WINDOW_RADIUS", "Selection", "kendall_tau", "load_series",
           "recombined_scores", "select_checkpoints", "series_columns", "window_candidates"]
