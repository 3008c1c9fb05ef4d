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
    # Forward: one [h, x] @ K per time step after the first (T = 20), whose zero state
    # leaves x0 @ K[H:]; the weight gradient: one stacked GEMM.
    assert ("19", "16", "96", "96", "64") in gemms and ("1", "16", "32", "32", "64") in gemms
    assert ("1", "96", "320", "320", "64") in gemms
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


def test_step_gemm_layouts_compute_the_same_products(bench_path):
    import numpy as np
    import gemm_layouts
    for cell in ("lstm", "gru"):
        fns = gemm_layouts.step_variants(cell, 6, 3, 4, 5, np.float64)
        got = {name: np.array(fn()) for name, (fn, _) in fns.items()}
        assert fns["forward plain"][1] == 5 and fns["state grad plain"][1] == 4
        for kind, flip in (("forward", True), ("state grad", True), ("weight grad", False)):
            moved = got[f"{kind} transposed"]
            np.testing.assert_allclose(moved.T if flip else moved, got[f"{kind} plain"],
                                       rtol=1e-12, err_msg=kind)
        np.testing.assert_allclose(got["state grad flag"], got["state grad plain"], rtol=1e-12)
        assert ("forward split: X @ K_x" in fns) == (cell == "lstm")


def test_placement_benchmark_compares_the_same_compiled_plan(bench_path, capsys):
    import placement
    times, plans = placement.main(["--repeats", "1", "--batch", "2"])
    assert plans["soft"] == plans["cpu"] and plans["cpu"].startswith("CompiledPlan:")
    assert times["cpu"] > 0 and times["soft"] > 0
    assert "ratio soft / cpu:" in capsys.readouterr().out


def test_compile_latency_children_report_their_measurements(bench_path, tmp_path):
    # Tiny model, no compiles (compile="never"): checks the children run and report.
    import compile_latency as C
    tiny = dict(vocab_size=11, hidden=8, seq_len=3, batch=2)
    first = C.first_step(tiny, "never", after=2)
    assert first["first_step_s"] > 0 and first["to_first_step_s"] >= first["first_step_s"]
    assert first["kernels"] == 0 and first["steps_before_compiled"] == 1
    steady = C.steady_state(tiny, str(tmp_path), repeats=2, modes=("never",))
    assert set(steady) == {"never_ms"} and steady["never_ms"] > 0
    rows = [C.scaling(T, str(tmp_path), mode="never", sizes=(2, 3, 4)) for T in (2, 4)]
    assert rows[1]["ops"] > rows[0]["ops"] > 0
    assert all(r["build_us_per_op"] > 0 and r["first_run_s"] > 0 for r in rows)
    assert not os.listdir(tmp_path)    # compile="never" wrote no kernel


def test_compile_latency_loop_child_compiles_no_body_for_a_new_length(bench_path, tmp_path):
    # --loop's child: one graph for every T; a second length compiles no loop body
    import compile_latency as C
    rows = [C.loop_compile(T, str(tmp_path), mode="never", sizes=(2, 3, 4)) for T in (3, 9)]
    assert rows[0]["ops"] == rows[1]["ops"] > 0            # the graph does not grow
    assert all(r["body_compiles"] == 2 and r["new_T_body_compiles"] == 0 for r in rows)
    assert all(r["compile_s"] > 0 and r["first_run_s"] > 0 for r in rows)


def test_programs_benchmark_models_agree_with_torch(bench_path, monkeypatch):
    """The whole-program steps start from the same weights as their torch twins:
    first-step losses agree (run() raises otherwise), and a second step still agrees
    roughly after one identical update."""
    pytest.importorskip("torch", reason="the bench extra (torch) is not installed")
    import programs
    small = {"char": dict(programs.PROGRAMS["char"], vocab=11, embed=5, hidden=6, T=3,
                          B=4),
             "ptb": dict(programs.PROGRAMS["ptb"], vocab=13, embed=6, hidden=6, T=3, B=2),
             "rows": dict(programs.PROGRAMS["rows"], inputs=5, hidden=6, T=4, B=3),
             "cnn": dict(programs.PROGRAMS["cnn"], size=8, B=3, filters=(3, 4), dense=6)}
    monkeypatch.setattr(programs, "PROGRAMS", small)
    for name, cfg in small.items():
        fg_step, initial, layout = programs.fg_program(name, cfg)
        torch_step = programs.torch_program(name, cfg, initial, layout)
        x, y = programs.make_batch(name, cfg)
        for _ in range(2):  # the second step checks the updates (optimizer, clipping)
            a, b = fg_step(x, y), torch_step(x, y)
            assert a == pytest.approx(b, rel=1e-4), name
    rows = programs.run(["rows"], repeats=1, warmup=0)
    assert rows[0]["program"] == "rows" and rows[0]["flowgraph_ms"] > 0


def test_gemm_floor_reads_the_plans_products_and_sums_their_best_times(bench_path,
                                                                       monkeypatch):
    """The floor is the products the compiled plan runs (T-1 forward [h, x] @ K, the
    first step's x @ K[H:], T-1 state gradients, one stacked weight gradient), each at
    the faster of the two BLAS timings, times its count."""
    pytest.importorskip("torch", reason="the bench extra (torch) is not installed")
    import gemm_floor
    timed = {}

    def fake_time(m, k, n, ta, tb, repeats):
        timed[(m, k, n, ta, tb)] = (0.001 * m, 0.002 * m)   # NumPy's the faster here
        return timed[(m, k, n, ta, tb)]
    monkeypatch.setattr(gemm_floor, "time_shape", fake_time)
    row = gemm_floor.cell_row("rnn", "small", repeats=1, gemm_repeats=1)
    # rnn small: B=16, I=32, H=64, T=20
    assert timed.keys() == {(16, 96, 64, False, False), (16, 32, 64, False, False),
                            (16, 64, 64, False, False), (96, 320, 64, True, False)}
    expected = 19 * 0.016 + 0.016 + 19 * 0.016 + 0.096
    assert row["gemm_floor_ms"] == pytest.approx(round(expected, 2))
    assert row["floor_over_torch"] == pytest.approx(row["gemm_floor_ms"] / row["torch_ms"],
                                                    rel=1e-2)


def test_cell_kernels_benchmark_runs_its_generated_and_hand_kernels(bench_path, capsys):
    import cell_kernels
    cell_kernels.report(3, 19, repeats=2)      # (main would pin this process to one core)
    out = capsys.readouterr().out
    for name in ("forward noalias", "backward noalias", "forward overlap checks",
                 "backward overlap checks", "forward hand (c and h)",
                 "forward hand, same stores"):
        assert re.search(re.escape(name) + r"\s+[\d.]+ ns per hidden element", out)


def test_rows_in_fresh_processes_runs_each_argument_list_in_its_own_process(
        bench_path, tmp_path):
    """Each row comes from a new process (so no row's timings depend on the heap an
    earlier row left), in the order of the argument lists, with the arguments given."""
    import common
    script = tmp_path / "child.py"
    script.write_text(
        "import json, os, sys\n"
        "path = sys.argv[sys.argv.index('--rows-json') + 1]\n"
        "json.dump([{'arg': sys.argv[1], 'pid': os.getpid()}], open(path, 'w'))\n")
    rows = common.rows_in_fresh_processes(str(script), [["a"], ["b"], ["c"]])
    assert [r["arg"] for r in rows] == ["a", "b", "c"]
    assert len({r["pid"] for r in rows} | {os.getpid()}) == 4


def test_programs_benchmark_child_hands_its_rows_to_the_parent(bench_path, tmp_path,
                                                               monkeypatch):
    """``--rows-json``: the child measures and writes its rows, not the table."""
    import json

    import programs
    monkeypatch.setattr(programs, "PROGRAMS", {"rows": dict(
        programs.PROGRAMS["rows"], inputs=5, hidden=6, T=4, B=3)})
    # not this test process's affinity and thread variables (pytest-xdist's workers)
    monkeypatch.setattr(programs, "pin_threads", lambda threads: None)
    pytest.importorskip("torch", reason="programs.py compares against torch")
    path = tmp_path / "rows.json"
    assert programs.main(["--programs", "rows", "--repeats", "1", "--warmup", "0",
                          "--rows-json", str(path)]) is None
    row, = json.loads(path.read_text())
    assert row["program"] == "rows" and row["flowgraph_ms"] > 0 and row["torch_ms"] > 0
