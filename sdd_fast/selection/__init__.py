"""Label-free checkpoint selection from DSE components (checkpoints) and a run's report
(run_report: selection vs mIoU, Kendall's tau, plots), and its causal form while training
(causal: CausalSelector, the recombined score one evaluation at a time).

    from sdd_fast.selection import CausalSelector, select_checkpoints
"""

from .causal import CausalSelector
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

__all__ = ["COMPONENTS", "CausalSelector", "DEFAULT_TOP", "WINDOW_RADIUS", "Selection", "kendall_tau",
           "load_series", "recombined_scores", "select_checkpoints", "series_columns", "window_candidates"]
