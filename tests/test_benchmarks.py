"""The benchmark scripts still run (on the smallest sizes; their timings are not tested)."""
import os
import re
import sys

import pytest

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")


@pytest.fixture
def bench_path(monkeypatch):
    monkeypatch.syspath_prepend(BENCH)


def test_step_profile_accounts_for_the_plan_units(bench_path, capsys):
    import step_profile
    results, rows, plan = step_profile.profile("rnn", "small", "float64", repeats=2)
    out = capsys.readouterr().out
    assert out.startswith("rnn small float64: step ")
    shares = [float(s) for s in re.findall(r"ms\s+([\d.]+)%", out)]
    assert shares and all(s >= 0.0 for s in shares)   # timings themselves are noisy
    gemms = re.findall(r"(\d+) x (\d+)x(\d+) @ (\d+)x(\d+)", out)
    # Forward: one [h, x] @ K per time step (T = 20); the weight gradient: one stacked GEMM.
    assert ("20", "16", "96", "96", "64") in gemms
    assert sum(int(g[0]) for g in gemms) >= 21
    assert "MatMul" in out and "fused" in out


def test_step_profile_times_units_inside_real_runs(bench_path):
    """The units are timed in runs that read the real feeds and variables (rerunning
    them afterwards read stale buffers: another loss, and GEMM times 20x the step's on
    an Intel core); per run, the GEMMs' time is part of the units' time, which is part
    of the run's."""
    import numpy as np
    import step_profile
    from rnn_step import SIZES, fg_training_step
    d = SIZES["small"]
    step, sess, _ = fg_training_step("gru", d["B"], d["I"], d["H"], d["T"], "float64")
    xs = list(np.random.default_rng(1).standard_normal((d["T"], d["B"], d["I"])))
    want = step(*xs)
    plan = next(iter(sess._plans.values()))
    results, rows = step_profile.timed_runs(lambda: step(*xs), plan, 3)
    for got in results:
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)
    gemm_units = [u for u, (_, _, origin) in enumerate(plan._checked_steps)
                  if origin.type == "MatMul"]
    assert gemm_units
    for wall, spent in rows:
        assert len(spent) == len(plan._checked_steps) and min(spent) >= 0.0 < sum(spent)
        assert sum(spent[u] for u in gemm_units) <= sum(spent) <= wall
    per_kind, gemms = step_profile.summarize(plan, rows)
    assert sum(count for _, count, _ in gemms.values()) == len(gemm_units)
    assert per_kind["MatMul"] > 0.0
    sess.close()


def test_gemm_layout_variants_compute_the_same_product(bench_path):
    import numpy as np
    import gemm_layouts
    results = {name: fn() for name, fn in gemm_layouts.variants(6, 5, 12, 4, np.float64).items()}
    plain = results.pop("a @ b ms")
    assert plain.shape == (6, 12) and len(results) == 2
    for name, value in results.items():
        np.testing.assert_allclose(value, plain, rtol=1e-12, err_msg=name)
