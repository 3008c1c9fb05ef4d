"""flowgraph: a graph-compiling, define-and-run deep-learning framework.

Build a dataflow graph of tensors and ops, then run it in a :class:`Session`::

    import flowgraph as fg
    x = fg.placeholder(fg.float32, (None, 3))
    y = fg.tanh(x @ fg.Variable(np.ones((3, 2), np.float32)))
    with fg.Session() as sess:
        sess.run(y, {x: np.ones((4, 3))})

This module only re-exports the public API.
"""
from . import errors
from .api import (abs, add, add_n, broadcast_like, cast, clip_by_value, concat, constant,
                  convert_to_tensor, divide, equal, exp, expand_dims, gather, greater,
                  greater_equal, group, identity, less, less_equal, log, log1p, matmul,
                  sin, cos, erf, cumsum,
                  maximum, minimum, multiply, negative, no_op, not_equal, one_hot, ones, ones_like,
                  placeholder, reduce_max, reduce_mean, reduce_sum, relu, reshape, sigmoid,
                  sign, split, sqrt, square, squeeze, stack, stop_gradient, subtract, tanh,
                  transpose, unstack, where, zeros, zeros_like)
# TF1's "more ops" (issue 14)
from .array_ops import (argmax, argmin, fill, logical_and, logical_not, logical_or,
                        logical_xor, pow, range, rank, reduce_all, reduce_any, reduce_min,
                        reduce_prod, reverse, reverse_sequence, sequence_mask, shape, size,
                        tile)
from .array_ops import placeholder_with_default
from .autodiff import gradients
from .control_flow import case, cond, foldl, foldr, map_fn, scan, while_loop
from .devices import list_devices
from .dtypes import bool_, float32, float64, int32, int64
from .graph import (Graph, Operation, Tensor, control_dependencies, device,
                    get_default_graph, name_scope, reset_default_graph)
from .explain import RunMetadata, RunOptions
from .session import ConfigProto, Session, SessionConfig
# TF1 spellings (issue 14): default sessions, tf.assign & co.
from .session import InteractiveSession, get_default_session
from .api import ceil, floor, round_ as round  # noqa: A004 - TF1's names
# TF1's tf.tan ... tf.expm1, tf.atan2 (elementwise primitives)
from .api import acos, acosh, asin, asinh, atan, atan2, atanh, cosh, expm1, sinh, tan
from .api import cumprod  # TF1's tf.cumprod
from .api import erfc  # TF1's tf.erfc
from .api import round_ as rint  # TF1's tf.rint: tf.round's half-to-even rounding
from .variables import assign, assign_add, assign_sub
from .train.clip import clip_by_global_norm, clip_by_norm, global_norm
from .variables import (Variable, global_variables, global_variables_initializer,
                        trainable_variables, variables_initializer)
from .variables import initialize_all_variables, local_variables, local_variables_initializer
from .visualize import summary
# TF1's tf.TensorShape / tf.Dimension (what Tensor.get_shape() returns)
from .tensor_shape import Dimension, TensorShape, dimension_value
# --- randomness, initializers and variable scopes (issue 14) ---
from .random_ops import get_seed, random_normal, random_uniform, set_random_seed, truncated_normal
from .initializers import (constant_initializer, glorot_uniform_initializer, ones_initializer,
                           orthogonal_initializer, random_normal_initializer,
                           random_uniform_initializer, truncated_normal_initializer,
                           zeros_initializer)
from .initializers import glorot_normal_initializer, variance_scaling_initializer
from .variable_scopes import (AUTO_REUSE, VariableScope, get_variable, get_variable_scope,
                             variable_scope)
# --- end of randomness, initializers and variable scopes ---
# TF1's tf.random_shuffle, tf.multinomial (tf.random.shuffle/categorical: fg.random)
from .sampling_ops import multinomial, random_shuffle  # noqa: E402
from . import ops as _ops  # registers the primitives  # noqa: F401
from . import dtypes, nn, testing, train  # noqa: E402
from .math_ops import (count_nonzero, eye, is_finite, is_inf, is_nan, log_sigmoid,  # noqa: E402
                       reciprocal, reduce_logsumexp, rsqrt, squared_difference, truediv)
from .slicing_ops import gather_nd, matrix_transpose, pad, slice  # noqa: E402
from .segment_ops import (scatter_add, scatter_update, segment_sum,  # noqa: E402
                          unsorted_segment_sum)
from .selection_ops import boolean_mask  # noqa: E402  (fg.nn.top_k: in nn)
from .logging_ops import Print, py_func  # noqa: E402  (TF1's tf.Print, tf.py_func)
from .contraction_ops import tensordot  # noqa: E402  (TF1's tf.tensordot)
from .nn.conv import extract_image_patches  # noqa: E402  (TF1's tf.extract_image_patches)
from .einsum_ops import einsum  # noqa: E402  (TF1's tf.einsum)
# TF1's tf.norm, tf.sort/argsort, tf.linspace/lin_space, tf.meshgrid (compositions)
from .norm_ops import norm  # noqa: E402
from .sort_ops import argsort, sort  # noqa: E402
from .grid_ops import lin_space, linspace, meshgrid  # noqa: E402
from .safe_math_ops import div_no_nan  # noqa: E402  (TF1's tf.div_no_nan; the rest: fg.math)
from .diag_ops import matrix_diag, matrix_diag_part, trace  # noqa: E402  (TF1's tf.trace...)
from . import layers, losses  # noqa: E402  (TF1's tf.layers and tf.losses; after nn)
from . import image  # noqa: E402  (TF1's tf.image: resizers and cheap image ops)
from . import contrib  # noqa: E402  (TF1's tf.contrib: the parts flowgraph has)
# TF1.15's tf.math, tf.random, tf.linalg namespaces (re-exports under TF1's names)
from . import linalg, math, random  # noqa: E402,A004
from .graph_collections import (GraphKeys, add_to_collection, add_to_collections,  # noqa: E402
                                get_collection)
# TF1's //, %, &, |, ^, ~, tensor ** and tf.to_float & co. (installs the operators)
from .tf1_operators import (floordiv, floormod, mod, to_double, to_float, to_int32,  # noqa: E402
                            to_int64)

__version__ = "0.1.0"

__all__ = [name for name in dir() if not name.startswith("_")]
