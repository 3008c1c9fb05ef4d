"""Training: optimizers, gradient clipping and checkpoints."""
from .clip import clip_by_global_norm, clip_by_norm, global_norm
from .optimizers import AdamOptimizer, GradientDescentOptimizer, MomentumOptimizer, Optimizer
# issue 14: more TF1 optimizers, the global step and learning-rate schedules
from .optimizers import AdagradOptimizer, RMSPropOptimizer
from .schedules import (create_global_step, exponential_decay, get_global_step,
                        get_or_create_global_step, global_step, piecewise_constant)
from .schedules import cosine_decay, inverse_time_decay, natural_exp_decay, polynomial_decay
from .saver import Saver, latest_checkpoint
from ..distributed import DistributedOptimizer

__all__ = ["Optimizer", "GradientDescentOptimizer", "MomentumOptimizer", "AdamOptimizer",
           "clip_by_global_norm", "clip_by_norm", "global_norm", "Saver", "latest_checkpoint", "DistributedOptimizer",
           # issue 14
           "AdagradOptimizer", "RMSPropOptimizer", "get_global_step",
           "get_or_create_global_step", "create_global_step", "exponential_decay",
           "piecewise_constant", "global_step",
           # TF1's other learning-rate decays
           "polynomial_decay", "cosine_decay", "natural_exp_decay", "inverse_time_decay"]
