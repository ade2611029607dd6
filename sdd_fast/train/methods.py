"""Name -> SSL method class (`--method`)."""

from __future__ import annotations

from .cotap import CoTAP
from .dino import DINO
from .ibot import IBOT
from .mae import MAE
from .mocov3 import MoCoV3

METHODS = {cls.name: cls for cls in (DINO, IBOT, MoCoV3, MAE, CoTAP)}


def build_method(config):
    """The SSLMethod named by config.method, with freshly initialised weights."""
    return METHODS[config.method](config)
