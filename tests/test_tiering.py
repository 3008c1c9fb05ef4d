"""Tiered execution (``SessionConfig(compile=...)``): the same plan runs on NumPy ufunc
chains (``"never"``, and ``"background"`` until its kernels are ready) and on generated
kernels (``"eager"``, ``"background"`` after ``wait_compiled``), with results that
agree within rounding (float32 rtol 1e-5, float64 rtol 1e-10)."""
import glob
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import flowgraph as fg
from flowgraph import tiering

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOLERANCE = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-10, atol=1e-12)}


def _lstm_step(dtype, steps=4, batch=3, inputs=5, units=6):
    rng = np.random.default_rng(0)
    xs = [fg.placeholder(dtype, (batch, inputs), name=f"x{t}") for t in range(steps)]
    cell = fg.nn.LSTMCell(units, seed=1)
    outputs, _ = fg.nn.static_rnn(cell, xs, dtype=dtype)
    loss = fg.reduce_mean(fg.square(outputs[-1])) + fg.reduce_sum(fg.exp(-outputs[0]))
    variables = fg.get_default_graph().get_collection("trainable_variables")
    fetches = [loss] + fg.gradients(loss, variables)
    feeds = {x: rng.standard_normal((batch, inputs)).astype(dtype) for x in xs}
    return fetches, feeds


def _plan(sess):
    plans = list(sess._plans.values())
    assert len(plans) == 1
    return plans[0]


def _interim_steps(plan):
    return [s for s in plan._steps if getattr(s, "__name__", "") == "interim_region"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_same_plan_agrees_under_every_compile_mode(dtype):
    fetches, feeds = _lstm_step(dtype)
    results = {}
    for mode in ("never", "eager", "background"):
        with fg.Session(config=fg.SessionConfig(optimize=True, compile=mode)) as sess:
            first = sess.run(fetches, feeds)
            assert sess.wait_compiled()
            plan = _plan(sess)
            assert plan.compiled
            if mode == "never":
                assert plan.distinct_kernels == 0 and _interim_steps(plan)
            else:
                assert plan.distinct_kernels >= 1 and not _interim_steps(plan)
            second = sess.run(fetches, feeds)     # on the compiled kernels, if any
            results[mode] = (first, second)
    with fg.Session(config=fg.SessionConfig(optimize=False)) as sess:
        reference = sess.run(fetches, feeds)
    for mode, runs in results.items():
        for got in runs:
            for a, b in zip(got, reference):
                np.testing.assert_allclose(a, b, **TOLERANCE[dtype], err_msg=mode)


def test_background_mode_swaps_kernels_in_between_runs():
    fetches, feeds = _lstm_step(np.float64, steps=3)
    with fg.Session(config=fg.SessionConfig(optimize=True, compile="background")) as sess:
        sess.run(fetches, feeds)
        plan = _plan(sess)
        assert sess.wait_compiled()
        # Compiled steps are staged; the plan has put them in place (wait_compiled
        # applies them between runs, as the next run would).
        assert plan.compiled and not plan._swaps and not _interim_steps(plan)
        assert plan._quiet == plan._quiet_compiled


def test_closing_a_session_drops_kernels_not_started():
    fetches, feeds = _lstm_step(np.float64, steps=2)
    sess = fg.Session(config=fg.SessionConfig(optimize=True, compile="background"))
    sess.run(fetches, feeds)
    plan = _plan(sess)
    sess.close()
    assert plan.compiled or plan._kernels.cancelled
    with pytest.raises(fg.errors.FlowgraphError, match="closed"):
        sess.wait_compiled()


def test_an_unknown_compile_mode_is_refused():
    with pytest.raises(ValueError, match="compile.*'background', 'eager', 'never'.*'lazy'"):
        fg.SessionConfig(optimize=True, compile="lazy")


def test_compile_never_does_not_import_numba(tmp_path):
    code = textwrap.dedent("""
        import sys, numpy as np, flowgraph as fg
        x = fg.placeholder(fg.float32, (4, 3))
        w = fg.Variable(np.ones((3, 3), np.float32))
        y = fg.tanh(fg.matmul(x, w)) * x + 1.0
        loss = fg.reduce_sum(y * y)
        g, = fg.gradients(loss, [w])
        # ops with kernels of their own (row cross-entropy, the embedding gradient's
        # scatter, Philox rounds) run their reference kernels
        emb = fg.Variable(np.ones((5, 3), np.float32))
        xent = fg.nn.sparse_softmax_cross_entropy_with_logits(
            labels=[0, 1, 2, 1], logits=fg.nn.embedding_lookup(emb, [0, 1, 1, 3]) @ w)
        extra = fg.gradients(fg.reduce_sum(xent), [emb]) + [fg.random_uniform((3,), seed=1)]
        with fg.Session(config=fg.SessionConfig(optimize=True, compile="never")) as sess:
            out = sess.run([loss, g], {x: np.ones((4, 3), np.float32)})
            sess.run(extra)
        assert "numba" not in sys.modules, "numba was imported"
        print(float(out[0]))
    """)
    env = dict(os.environ, PYTHONPATH=ROOT, FLOWGRAPH_CACHE_DIR=str(tmp_path))
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert abs(float(done.stdout) - 12 * (np.tanh(3.0) + 1.0) ** 2) < 1e-3
    assert not os.listdir(tmp_path)         # nothing was compiled or cached


def test_exit_during_a_background_compile_leaves_no_process_or_partial_file(tmp_path):
    code = textwrap.dedent("""
        import numpy as np, flowgraph as fg
        x = fg.placeholder(fg.float64, (4, 3))
        ys = [fg.tanh(x * float(k)) + fg.sigmoid(x) * float(k) for k in range(1, 6)]
        sess = fg.Session()                      # background by default
        sess.run(ys, {x: np.ones((4, 3))})
        print("ran")                             # and exit while kernels compile
    """)
    env = dict(os.environ, PYTHONPATH=ROOT, FLOWGRAPH_CACHE_DIR=str(tmp_path))
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ran"
    leftovers = glob.glob(str(tmp_path / "**" / "*.tmp"), recursive=True)
    assert not leftovers


def test_a_long_compile_prints_progress_unless_quiet(monkeypatch, capfd):
    monkeypatch.setattr(tiering, "PROGRESS_AFTER_S", 0.0)
    fetches, feeds = _lstm_step(np.float64, steps=2)
    for quiet, expect in (("1", False), ("0", True)):
        monkeypatch.setenv("FLOWGRAPH_QUIET", quiet)
        with fg.Session(config=fg.SessionConfig(optimize=True, compile="eager")) as sess:
            sess.run(fetches, feeds)
            total = _plan(sess).distinct_kernels
        err = capfd.readouterr().err
        assert ("flowgraph: compiling kernel 1 of" in err) is expect, err
        assert (f"compiled {total} kernels" in err) is expect, err


def test_the_child_process_backend_compiles_and_leaves_no_orphan(tmp_path):
    code = textwrap.dedent("""
        import time, numpy as np, flowgraph as fg
        from flowgraph import tiering
        assert tiering.BACKEND == "process"
        x = fg.placeholder(fg.float64, (4, 3))
        y = fg.tanh(x * 2.0) + fg.sigmoid(x) * 3.0
        with fg.Session() as sess:
            first = sess.run(y, {x: np.ones((4, 3))})
            assert sess.wait_compiled(timeout=240)
            plan, = sess._plans.values()
            assert plan.compiled and plan.distinct_kernels >= 1
            second = sess.run(y, {x: np.ones((4, 3))})
        np.testing.assert_allclose(first, second, rtol=1e-10)
        # A second plan whose compile is still running at exit:
        z = [fg.exp(x * float(k)) - x * float(k) for k in range(2, 7)]
        sess = fg.Session()
        sess.run(z, {x: np.ones((4, 3))})
        deadline = time.time() + 60
        while not tiering._CHILDREN and time.time() < deadline:
            time.sleep(0.05)
        print(" ".join(str(c.pid) for c in tiering._CHILDREN))
    """)
    env = dict(os.environ, PYTHONPATH=ROOT, FLOWGRAPH_CACHE_DIR=str(tmp_path),
               FLOWGRAPH_BACKGROUND="process")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    pids = [int(p) for p in done.stdout.split()]
    assert pids                              # a child was compiling at exit
    for pid in pids:                         # it was stopped and reaped with its parent
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not glob.glob(str(tmp_path / "**" / "*.tmp"), recursive=True)


def test_a_failed_background_compile_is_reported_and_the_plan_keeps_working(monkeypatch):
    import kernels.cache

    def broken(*args, **kwargs):
        raise RuntimeError("no compiler today")

    monkeypatch.setattr(kernels.cache, "compile_kernel", broken)
    fetches, feeds = _lstm_step(np.float64, steps=2)
    with fg.Session(config=fg.SessionConfig(optimize=True, compile="background")) as sess:
        first = sess.run(fetches, feeds)
        with pytest.raises(fg.errors.FlowgraphError, match="no compiler today"):
            sess.wait_compiled()
        plan = _plan(sess)
        assert not plan.compiled and _interim_steps(plan) and not plan._quiet
        again = sess.run(fetches, feeds)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)


def test_a_background_run_does_not_wait_for_the_compiler(monkeypatch):
    import threading

    import kernels.cache

    release, entered = threading.Event(), threading.Event()
    real = kernels.cache.compile_kernel

    def held_compile(*args, **kwargs):
        entered.set()
        assert release.wait(60), "the test never released the compiler"
        return real(*args, **kwargs)

    monkeypatch.setattr(kernels.cache, "compile_kernel", held_compile)
    fetches, feeds = _lstm_step(np.float32, steps=2)
    with fg.Session(config=fg.SessionConfig(optimize=True, compile="background")) as sess:
        runs = [sess.run(fetches, feeds) for _ in range(3)]   # the compiler is held
        plan = _plan(sess)
        assert not plan.compiled and _interim_steps(plan)
        assert entered.wait(60)          # it was compiling meanwhile, in the background
        release.set()
        assert sess.wait_compiled(timeout=240)
        compiled = sess.run(fetches, feeds)
        assert not _interim_steps(plan)
    for a, b in zip(runs[0], compiled):
        np.testing.assert_allclose(a, b, **TOLERANCE[np.float32])


def test_an_op_without_a_ufunc_runs_its_reference_kernel_until_compiled(monkeypatch):
    """A region meant for a generated kernel whose op has no ufunc entry: before the
    kernel is compiled (here: never) the op runs its NumPy reference kernel inside the
    interim chain, never a KeyError."""
    _drop_tanh_ufunc(monkeypatch)
    with fg.Graph().as_default():
        x = fg.placeholder(fg.float32, (3, 4))
        y = fg.tanh(x * 2.0) + 1.0
        feed = {x: np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)}
        sess = fg.Session(config=fg.SessionConfig(compile="never"))
        np.testing.assert_allclose(sess.run(y, feed), np.tanh(feed[x] * 2.0) + 1.0,
                                   rtol=1e-6)


def test_ops_with_numba_kernels_start_on_their_reference_kernels():
    """Under compile="background" the row cross-entropy, the embedding gradient and the
    random op run their reference kernels first and their Numba kernels after
    wait_compiled, with the same results (the random draws bit-identical)."""
    from flowgraph.plan import CompiledPlan
    with fg.Graph().as_default():
        emb = fg.Variable(np.linspace(-1, 1, 15).reshape(5, 3))
        ids = fg.placeholder(fg.int32, (4,))
        logits = fg.nn.embedding_lookup(emb, ids) * 2.0
        loss = fg.reduce_sum(fg.nn.sparse_softmax_cross_entropy_with_logits(
            labels=[0, 1, 2, 1], logits=logits))
        fetches = [loss, fg.gradients(loss, [emb])[0],
                   fg.random_normal((6,), dtype=fg.float64, seed=3)]
        feed = {ids: np.array([0, 1, 1, 4], np.int32)}
        sess = fg.Session(config=fg.SessionConfig(compile="background"))
        before = sess.run(fetches, feed)
        plan = next(p for p in sess._plans.values() if isinstance(p, CompiledPlan))
        kinds = [info.kind for info in plan.step_infos]
        assert sess.wait_compiled(timeout=300)
        after = sess.run(fetches, feed)
        np.testing.assert_allclose(after[0], before[0], rtol=1e-12)
        np.testing.assert_allclose(after[1], before[1], rtol=1e-12, atol=1e-15)
        reference = fg.Session(config=fg.SessionConfig(optimize=False))
        reference.run(fetches, feed)                 # run 0: the same draw as `before`
        np.testing.assert_array_equal(reference.run(fetches, feed)[2], after[2])
        assert "reference" not in kinds      # a kernel step, reference until compiled
        assert plan.compiled


def _drop_tanh_ufunc(monkeypatch):
    """Declare Tanh without a ufunc (as a new primitive might be)."""
    import dataclasses
    from flowgraph import primitives
    tanh = primitives.get_primitive("Tanh")
    monkeypatch.setitem(primitives._PRIMITIVES, "Tanh", dataclasses.replace(tanh, ufunc=None))


def test_a_transposing_copy_compiles_like_the_other_numba_node_kernels():
    """The untransposed recurrent weight (a Copy of w.T, 256 float32 = 1 KiB rows) is
    the tiled transpose kernel: NumPy's copy until it is compiled in the background,
    never compiled with "never", at once with "eager"; the products agree with the
    reference in every mode."""
    rng = np.random.default_rng(2)
    w = fg.placeholder(fg.float32, (64, 256), name="w")
    gs = [fg.placeholder(fg.float32, (64, 256), name=f"g{k}") for k in range(3)]
    outs = [fg.matmul(g, w, transpose_b=True) for g in gs]
    feeds = {t: rng.standard_normal(t.shape).astype(np.float32) for t in gs + [w]}
    with fg.Session(config=fg.SessionConfig(optimize=False)) as sess:
        reference = sess.run(outs, feeds)
    for mode in ("never", "eager", "background"):
        with fg.Session(config=fg.SessionConfig(optimize=True, compile=mode)) as sess:
            first = sess.run(outs, feeds)
            plan = _plan(sess)
            copies = [s for s, _, origin in plan._checked_steps if origin.type == "Copy"]
            assert len(copies) == 1
            assert sess.wait_compiled()
            kernel = getattr(plan._steps[plan._steps.index(copies[0][0])], "__name__", "")
            second = sess.run(outs, feeds)
            assert (kernel == "reference_step") == (mode == "never"), mode
            for got in (first, second):
                for a, b in zip(got, reference):
                    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4, err_msg=mode)
