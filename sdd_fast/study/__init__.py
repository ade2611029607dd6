"""`sdd-fast study`: does DSE predict dense quality better than RankMe, alpha-ReQ and LiDAR?

    from sdd_fast.study import StudyPlan, run_study
    summary = run_study(StudyPlan(out="runs/study"))

Per method: train with T checkpoints, probe mIoU + DSE + baselines at each checkpoint, select
a checkpoint without labels, then branch from it with and without the DSE regulariser; all of
it per training seed, with the alarm (`--on-degrade warn`) and its online pick, a regulariser
sweep over beta, and means over seeds with bootstrap intervals (aggregate.py, stats.py).
"""

from .plan import StudyPlan
from .run import run_study

__all__ = ["StudyPlan", "run_study"]
