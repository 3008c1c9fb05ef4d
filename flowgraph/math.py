"""TF1's ``tf.math`` namespace: the flowgraph functions TF 1.15 also exports under
``tf.math.*``, re-exported under those names (the same function objects, so
``fg.math.log is fg.log``). Only names TF 1.15's ``tf.math`` has are here.

>>> import flowgraph as fg
>>> fg.math.reduce_sum is fg.reduce_sum, fg.math.top_k is fg.nn.top_k
(True, True)
>>> with fg.Graph().as_default():
...     x = fg.constant([1.0, 2.0, 3.0])
...     print(fg.Session().run(fg.math.reduce_sum(fg.math.log(x))).round(4))
1.7918
"""
from .api import (abs, add, add_n, ceil, cos, cumsum, divide, equal, erf, exp, floor,  # noqa: A004
                  greater, greater_equal, less, less_equal, log, log1p, maximum, minimum,
                  multiply, negative, not_equal, reduce_max, reduce_mean, reduce_sum,
                  round_ as round, sigmoid, sign, sin, sqrt, square, subtract, tanh)
from .api import acos, acosh, asin, asinh, atan, atan2, atanh, cosh, expm1, sinh, tan
from .api import cumprod, erfc
from .api import round_ as rint       # tf.math.rint: half to even, as fg.round
from .math_helpers import polyval, reduce_euclidean_norm, scalar_mul, zero_fraction
from .safe_math_ops import (divide_no_nan, reduce_std, reduce_variance, xdivy,
                            xlogy)
from .array_ops import (argmax, argmin, logical_and, logical_not, logical_or, logical_xor,
                        pow, reduce_all, reduce_any, reduce_min, reduce_prod)
from .math_ops import (count_nonzero, is_finite, is_inf, is_nan, log_sigmoid, reciprocal,
                       reduce_logsumexp, rsqrt, squared_difference, truediv)
from .segment_ops import segment_sum, unsorted_segment_sum
from .selection_ops import top_k
from .tf1_operators import floordiv, floormod, mod
from .nn.activations import l2_normalize, softplus, softsign
from .nn.evaluation import in_top_k
from .nn.losses import log_softmax, softmax

__all__ = [name for name in dir() if not name.startswith("_")]
