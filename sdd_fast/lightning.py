"""`import sdd_fast.lightning` keeps working: the callback lives in sdd_fast.integrations.lightning."""

from .integrations.lightning import DSECallback

__all__ = ["DSECallback"]
