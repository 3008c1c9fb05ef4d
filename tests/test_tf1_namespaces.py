"""TF1.15's tf.math, tf.random and tf.linalg namespaces: every name is the same function
object as flowgraph's own (so behavior is the tested one), every name exists in TF 1.15's
namespace (the lists below are TF 1.15's, restricted to what flowgraph has), and
importing flowgraph imports them without compiling anything."""
import subprocess
import sys

import pytest

import flowgraph as fg
from flowgraph import math_helpers, safe_math_ops
from flowgraph import sampling_ops  # TF1's tf.random.categorical

MATH = {
    "abs": fg.abs, "add": fg.add, "add_n": fg.add_n, "argmax": fg.argmax,
    "argmin": fg.argmin, "ceil": fg.ceil, "cos": fg.cos, "count_nonzero": fg.count_nonzero,
    "cumsum": fg.cumsum, "divide": fg.divide, "equal": fg.equal, "erf": fg.erf,
    "exp": fg.exp, "floor": fg.floor, "floordiv": fg.floordiv, "floormod": fg.floormod,
    "greater": fg.greater, "greater_equal": fg.greater_equal, "in_top_k": fg.nn.in_top_k,
    "is_finite": fg.is_finite, "is_inf": fg.is_inf, "is_nan": fg.is_nan,
    "l2_normalize": fg.nn.l2_normalize, "less": fg.less, "less_equal": fg.less_equal,
    "log": fg.log, "log1p": fg.log1p, "log_sigmoid": fg.log_sigmoid,
    "log_softmax": fg.nn.log_softmax, "logical_and": fg.logical_and,
    "logical_not": fg.logical_not, "logical_or": fg.logical_or,
    "logical_xor": fg.logical_xor, "maximum": fg.maximum, "minimum": fg.minimum,
    "mod": fg.mod, "multiply": fg.multiply, "negative": fg.negative,
    "not_equal": fg.not_equal, "pow": fg.pow, "reciprocal": fg.reciprocal,
    "reduce_all": fg.reduce_all, "reduce_any": fg.reduce_any,
    "reduce_logsumexp": fg.reduce_logsumexp, "reduce_max": fg.reduce_max,
    "reduce_mean": fg.reduce_mean, "reduce_min": fg.reduce_min,
    "reduce_prod": fg.reduce_prod, "reduce_sum": fg.reduce_sum, "round": fg.round,
    "rsqrt": fg.rsqrt, "segment_sum": fg.segment_sum, "sigmoid": fg.sigmoid,
    "sign": fg.sign, "sin": fg.sin, "softmax": fg.nn.softmax, "softplus": fg.nn.softplus,
    "softsign": fg.nn.softsign, "sqrt": fg.sqrt, "square": fg.square,
    "squared_difference": fg.squared_difference, "subtract": fg.subtract,
    "tanh": fg.tanh, "top_k": fg.nn.top_k, "truediv": fg.truediv,
    "unsorted_segment_sum": fg.unsorted_segment_sum,
    # the elementwise primitives added with the namespaces
    "tan": fg.tan, "atan": fg.atan, "asin": fg.asin, "acos": fg.acos, "sinh": fg.sinh,
    "cosh": fg.cosh, "asinh": fg.asinh, "atanh": fg.atanh, "acosh": fg.acosh,
    "expm1": fg.expm1, "atan2": fg.atan2, "cumprod": fg.cumprod, "erfc": fg.erfc, "rint": fg.round,
    "divide_no_nan": fg.div_no_nan, "xlogy": safe_math_ops.xlogy,
    "xdivy": safe_math_ops.xdivy, "reduce_variance": safe_math_ops.reduce_variance,
    "reduce_std": safe_math_ops.reduce_std,
    "polyval": math_helpers.polyval, "scalar_mul": math_helpers.scalar_mul,
    "zero_fraction": math_helpers.zero_fraction,
    "reduce_euclidean_norm": math_helpers.reduce_euclidean_norm,
}
RANDOM = {"normal": fg.random_normal, "uniform": fg.random_uniform,
          "truncated_normal": fg.truncated_normal, "set_random_seed": fg.set_random_seed,
          "get_seed": fg.get_seed,
          # TF1's sampling ops and candidate samplers
          "shuffle": fg.random_shuffle, "categorical": sampling_ops.categorical,
          "multinomial": fg.multinomial,
          "uniform_candidate_sampler": fg.nn.uniform_candidate_sampler,
          "log_uniform_candidate_sampler": fg.nn.log_uniform_candidate_sampler,
          "fixed_unigram_candidate_sampler": fg.nn.fixed_unigram_candidate_sampler}
LINALG = {"matmul": fg.matmul, "tensordot": fg.tensordot, "eye": fg.eye,
          "matrix_transpose": fg.matrix_transpose,
          "transpose": fg.matrix_transpose,          # TF1: linalg.transpose swaps the last two
          "l2_normalize": fg.nn.l2_normalize, "einsum": fg.einsum,
          "norm": fg.norm, "diag": fg.matrix_diag, "diag_part": fg.matrix_diag_part,
          "trace": fg.trace}
# TF 1.15's names in these namespaces (its tf_export v1 names, from the 1.15 API docs);
# a flowgraph name outside them would be an invention
TF115 = {
    "math": set("""abs accumulate_n acos acosh add add_n angle argmax argmin asin asinh atan
        atan2 atanh bessel_i0 bessel_i0e bessel_i1 bessel_i1e betainc bincount ceil
        confusion_matrix conj cos cosh count_nonzero cumprod cumsum cumulative_logsumexp
        digamma divide divide_no_nan equal erf erfc exp expm1 floor floordiv floormod
        greater greater_equal igamma igammac imag in_top_k invert_permutation is_finite
        is_inf is_nan is_non_decreasing is_strictly_increasing l2_normalize lbeta less
        less_equal lgamma log log1p log_sigmoid log_softmax logical_and logical_not
        logical_or logical_xor maximum minimum mod multiply multiply_no_nan negative
        nextafter not_equal polygamma polyval pow real reciprocal reciprocal_no_nan
        reduce_all reduce_any reduce_euclidean_norm reduce_logsumexp reduce_max reduce_mean
        reduce_min reduce_prod reduce_std reduce_sum reduce_variance rint round rsqrt
        scalar_mul segment_max segment_mean segment_min segment_prod segment_sum sigmoid
        sign sin sinh softmax softplus softsign sqrt square squared_difference subtract tan
        tanh top_k truediv unsorted_segment_max unsorted_segment_mean unsorted_segment_min
        unsorted_segment_prod unsorted_segment_sqrt_n unsorted_segment_sum xdivy xlogy
        zero_fraction zeta""".split()),
    "random": set("""all_candidate_sampler categorical fixed_unigram_candidate_sampler gamma
        get_seed learned_unigram_candidate_sampler log_uniform_candidate_sampler multinomial
        normal poisson set_random_seed shuffle stateless_categorical stateless_multinomial
        stateless_normal stateless_truncated_normal stateless_uniform truncated_normal
        uniform uniform_candidate_sampler""".split()),
    "linalg": set("""adjoint band_part cholesky cholesky_solve cross det diag diag_part eigh
        eigvalsh einsum expm eye inv l2_normalize logdet logm lstsq lu matmul
        matrix_transpose matvec norm normalize qr set_diag slogdet solve sqrtm svd
        tensor_diag tensor_diag_part tensordot trace transpose triangular_solve
        tridiagonal_matmul tridiagonal_solve""".split()),
}


@pytest.mark.parametrize("namespace,table", [("math", MATH), ("random", RANDOM),
                                             ("linalg", LINALG)])
def test_each_alias_is_the_same_function(namespace, table):
    module = getattr(fg, namespace)
    for name, function in table.items():
        assert getattr(module, name) is function, f"fg.{namespace}.{name}"
    # nothing public beyond the table (and so beyond TF 1.15's names)
    assert set(module.__all__) == set(table)
    assert set(table) <= TF115[namespace], set(table) - TF115[namespace]


def test_namespaces_import_as_modules_without_compiling():
    code = ("import sys, flowgraph as fg, flowgraph.math, flowgraph.random, flowgraph.linalg;"
            "assert fg.math is sys.modules['flowgraph.math'];"
            "assert not any(m.startswith('numba.cuda') for m in sys.modules);"
            "import math, random; assert math is not fg.math and random is not fg.random;"
            "print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr


def test_namespaced_ops_run(fresh_graph):
    import numpy as np
    x = fg.constant([[1.0, 2.0], [3.0, 4.0]], fg.float64)
    fg.random.set_random_seed(3)
    r = fg.random.normal([2, 2], dtype=fg.float64)
    y = fg.linalg.transpose(fg.linalg.matmul(x, fg.linalg.eye(2, dtype=fg.float64)))
    s = fg.math.reduce_sum(fg.math.log(x))
    with fg.Session() as sess:
        got_y, got_s, got_r = sess.run([y, s, r])
    np.testing.assert_array_equal(got_y, [[1.0, 3.0], [2.0, 4.0]])
    np.testing.assert_allclose(got_s, np.log(24.0))
    assert got_r.shape == (2, 2)
