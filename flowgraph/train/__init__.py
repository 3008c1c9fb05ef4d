"""Training: optimizers, gradient clipping and checkpoints."""
from .clip import clip_by_global_norm, global_norm
from .optimizers import AdamOptimizer, GradientDescentOptimizer, MomentumOptimizer, Optimizer
from .saver import Saver, latest_checkpoint
from ..distributed import DistributedOptimizer

__all__ = ["Optimizer", "GradientDescentOptimizer", "MomentumOptimizer", "AdamOptimizer",
           "clip_by_global_norm", "global_norm", "Saver", "latest_checkpoint",
           "DistributedOptimizer"]
