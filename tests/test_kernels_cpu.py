"""CPU kernel generation details that the end-to-end comparisons cannot see: the
float32 vector math against float64 NumPy, and in-place outputs in generated loops."""
import numpy as np
import pytest

from kernels import codegen

SPECIAL = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-30, -1e-8, 88.7, 89.0,
                    -103.0, -104.0, -150.0, 20.0, -20.0, 9.0, -0.02, 0.02], np.float32)


def run_unary_float32(op, x):
    out = np.empty_like(x)
    spec = codegen.FusedSpec(1, [(op, [("in", 0)], {}, "float32")], [0])
    step, source = codegen.compile_fused(spec, [x, out])
    assert "vmath." in source            # the vectorizable version, not libm
    step()
    return out


@pytest.mark.parametrize("op, exact", [
    ("Exp", np.exp), ("Tanh", np.tanh), ("Sigmoid", lambda x: 1.0 / (1.0 + np.exp(-x)))])
def test_float32_vector_math_is_within_one_ulp_of_float64_numpy(op, exact):
    rng = np.random.default_rng(0)
    x = np.concatenate([SPECIAL, rng.uniform(-30, 30, 20000).astype(np.float32),
                        rng.uniform(-0.05, 0.05, 5000).astype(np.float32),
                        rng.uniform(-110, 95, 5000).astype(np.float32)])
    got = run_unary_float32(op, x)
    with np.errstate(all="ignore"):
        want = exact(x.astype(np.float64)).astype(np.float32)   # correctly rounded
    assert np.array_equal(np.isnan(got), np.isnan(want))
    special = ~np.isfinite(want) | (want == 0)
    assert np.array_equal(got[special & ~np.isnan(want)], want[special & ~np.isnan(want)])
    assert np.array_equal(np.signbit(got[want == 0]), np.signbit(want[want == 0]))
    normal = ~special & (np.abs(want) >= np.finfo(np.float32).tiny)
    ulps = np.abs(got[normal].astype(np.float64) - want[normal]) / np.spacing(
        np.abs(want[normal]))
    assert ulps.max() <= 1.0
    subnormal = ~special & ~normal       # exp/sigmoid far below zero
    assert np.all(np.abs(got[subnormal] - want[subnormal]) <= np.spacing(np.float32(0)))


def test_an_output_in_place_of_its_input_is_stored_through_that_input():
    a = np.linspace(-1, 1, 12).reshape(3, 4)
    b = np.arange(4.0)
    expected = a + a + b
    spec = codegen.FusedSpec(2, [("Add", [("in", 0), ("in", 0)], {}, "float64"),
                                 ("Add", [("node", 0), ("in", 1)], {}, "float64")], [1])
    step, source = codegen.compile_fused(spec, [a, b, a])     # the output is a itself
    assert spec.inplace == {0: 0} and "def kernel(a0, a1)" in source
    step()
    np.testing.assert_array_equal(a, expected)
