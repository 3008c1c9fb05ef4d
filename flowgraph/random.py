"""TF1's ``tf.random`` namespace: flowgraph's random ops under TF 1.15's
``tf.random.*`` names (the same function objects: ``fg.random.normal is
fg.random_normal``).

>>> import flowgraph as fg
>>> fg.random.normal is fg.random_normal, fg.random.uniform is fg.random_uniform
(True, True)
>>> with fg.Graph().as_default():
...     fg.random.set_random_seed(1)
...     x = fg.random.uniform([2, 3], minval=0.0, maxval=1.0)
...     print(fg.Session().run(x).shape)
(2, 3)
"""
from .random_ops import get_seed, set_random_seed, truncated_normal
from .random_ops import random_normal as normal
from .random_ops import random_uniform as uniform

# TF1's tf.random.shuffle / categorical / multinomial and the candidate samplers
from .sampling_ops import categorical, multinomial
from .sampling_ops import random_shuffle as shuffle
from .candidate_sampling_ops import (fixed_unigram_candidate_sampler,
                                     log_uniform_candidate_sampler,
                                     uniform_candidate_sampler)

__all__ = ["normal", "uniform", "truncated_normal", "set_random_seed", "get_seed",
           # TF1's sampling ops
           "shuffle", "categorical", "multinomial", "uniform_candidate_sampler",
           "log_uniform_candidate_sampler", "fixed_unigram_candidate_sampler"]
