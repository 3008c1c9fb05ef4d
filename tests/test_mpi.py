"""Multi-process tests: each starts ``mpiexec -n 2`` on a program in tests/mpi_programs
(about 0.5 s each) and compares what the ranks computed with the same model run here in
one process.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

import flowgraph as fg

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROGRAMS = os.path.join(ROOT, "tests", "mpi_programs")
sys.path.insert(0, PROGRAMS)

import models  # noqa: E402

TIMEOUT_S = 60


def mpiexec():
    """The mpiexec next to this Python (the mpich wheel puts it in the venv's bin)."""
    here = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    if os.path.exists(here):
        return here
    import shutil
    found = shutil.which("mpiexec")
    if found is None:
        pytest.fail("mpiexec not found: install the test extras (`pip install .[test]`, "
                    "which include mpi4py and the mpich wheel)")
    return found


def run_mpi(program, *args, ranks=2, via_mpi4py=True):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for name in ("PMI_RANK", "PMI_SIZE", "PMI_FD", "FLOWGRAPH_MPI"):
        env.pop(name, None)
    launcher = ["-m", "mpi4py"] if via_mpi4py else []
    cmd = [mpiexec(), "-n", str(ranks), sys.executable, *launcher,
           os.path.join(PROGRAMS, program), *map(str, args)]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S,
                              env=env, cwd=ROOT)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"{program} {args} hung for {TIMEOUT_S} s; output so far:\n"
                             f"{exc.stdout}\n{exc.stderr}") from None


def run_ok(program, out_dir, *args, ranks=2):
    proc = run_mpi(program, out_dir, *args, ranks=ranks)
    assert proc.returncode == 0, f"{program} failed:\n{proc.stdout}\n{proc.stderr}"
    return [np.load(os.path.join(out_dir, f"rank{r}.npz")) for r in range(ranks)]


def test_two_rank_data_parallel_training_equals_full_batch_training(tmp_path):
    ranks = run_ok("dp_train.py", tmp_path)
    expected, ops = models.train_data_parallel()  # one process, the whole batch
    assert not any(op.type == "AllReduceMean" for op in ops)  # size 1 adds no collective
    for r, result in enumerate(ranks):
        assert int(result["size"]) == 2
        # all three gradients travel in one fused allreduce op
        assert int(result["allreduce_ops"]) == 1
        assert list(result["allreduce_inputs"]) == [3]
        np.testing.assert_allclose(result["history"], expected, rtol=1e-12, atol=1e-14,
                                   err_msg=f"rank {r}")
        # compiled: the step is one compiled plan with the allreduce as one of its steps
        explained = str(result["explain"])
        assert explained.startswith("CompiledPlan:"), explained
        assert sum(" allreduce " in line for line in explained.splitlines()) == 1
        assert "gemm" in explained
    # training moved the weights, so the comparison is not of initial values
    assert np.abs(expected[-1] - expected[0]).max() > 1e-3


def test_partitioned_lstm_equals_single_process_forward_backward_and_step(tmp_path):
    ranks = run_ok("lstm_partition.py", tmp_path)
    expected = models.partitioned_lstm()
    for r, result in enumerate(ranks):  # every rank receives every fetched value
        msg = f"rank {r}"
        np.testing.assert_allclose(result["loss"], expected["loss"], rtol=1e-12, err_msg=msg)
        np.testing.assert_allclose(result["loss_after"], expected["loss_after"], rtol=1e-12,
                                   err_msg=msg)
        for i, g in enumerate(expected["grads"]):
            np.testing.assert_allclose(result[f"grad{i}"], g, rtol=1e-10, atol=1e-14,
                                       err_msg=f"{msg}, gradient {i}")
        for i, v in enumerate(expected["variables"]):
            np.testing.assert_allclose(result[f"var{i}"], v, rtol=1e-12, atol=1e-14,
                                       err_msg=f"{msg}, variable {i}")
    assert expected["loss_after"] < expected["loss"]
    # each rank ran only its own ops, together all of them, and tensors crossed both ways
    mine = [set(result["local_ops"]) for result in ranks]
    assert mine[0] and mine[1] and not mine[0] & mine[1]
    assert mine[0] | mine[1] == set(ranks[0]["all_ops"])
    assert any(name.startswith("layer2/") for name in mine[1])
    assert not any(name.startswith("layer2/") for name in mine[0])
    assert int(ranks[0]["sends"]) == int(ranks[1]["recvs"]) > 0
    assert int(ranks[1]["sends"]) == int(ranks[0]["recvs"]) > 0
    # both transports ran: fixed-shape buffers and values of run-time shape
    for kind in ("static_sends", "dynamic_sends"):
        assert all(int(result[kind]) > 0 for result in ranks), kind


@pytest.mark.parametrize("via_mpi4py", [True, False], ids=["python-m-mpi4py", "plain-python"])
def test_a_rank_that_raises_ends_the_job_with_an_error(via_mpi4py):
    # Rank 0 waits in an allreduce for rank 1, which raises. `python -m mpi4py` aborts
    # the job; without it, flowgraph.distributed's exception hook does.
    proc = run_mpi("rank_fails.py", "raise", via_mpi4py=via_mpi4py)
    assert proc.returncode != 0
    assert "rank 1 failed on purpose" in proc.stderr
    assert "should not get here" not in proc.stdout


def test_a_failing_partition_aborts_every_rank_even_without_mpi4py_launcher(tmp_path):
    # Started without `-m mpi4py`: flowgraph itself must abort the job, since rank 0 is
    # blocked waiting for the output of the op that failed on rank 1.
    out = tmp_path / "first"
    proc = run_mpi("rank_fails.py", "partition", out, via_mpi4py=False)
    assert proc.returncode != 0
    # The first run worked on both ranks (read from files: MPI_Abort can cut off the
    # launcher's forwarding of stdout already printed).
    for rank in (0, 1):
        assert (tmp_path / f"first.rank{rank}").read_text() == "ok 4.0\n"
    assert "rank 1 of 2 failed in a partitioned run" in proc.stderr
    assert "Gather 'picked'" in proc.stderr and "found 7" in proc.stderr
    assert "should not get here" not in proc.stdout


def test_data_parallel_example_under_mpiexec_matches_one_process(tmp_path):
    import importlib.util
    import json
    example = os.path.join(ROOT, "examples", "data_parallel.py")
    args = ["--steps", "3", "--seq", "4", "--hidden", "8", "--batch", "4", "--warmup", "1"]
    out = tmp_path / "two.json"
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.run([mpiexec(), "-n", "2", sys.executable, "-m", "mpi4py", example,
                           *args, "--json", str(out)], capture_output=True, text=True,
                          timeout=TIMEOUT_S, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "2 rank(s):" in proc.stdout
    spec = importlib.util.spec_from_file_location("data_parallel_example", example)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    one = module.main(args)
    two = json.load(open(out))["losses"]
    assert [step for step, _ in one] == [step for step, _ in two] == [0, 2]
    np.testing.assert_allclose([v for _, v in two], [v for _, v in one], rtol=1e-5)


def test_char_rnn_data_parallel_equals_one_process_on_the_full_batch(tmp_path):
    """`mpiexec -n 2 python -m mpi4py examples/char_rnn.py --data-parallel` trains the
    same weights as one process (sharded batches, averaged gradients, rank-0 init)."""
    example = os.path.join(ROOT, "examples", "char_rnn.py")
    tiny = ["--steps", "4", "--hidden", "8", "--batch", "4", "--seq-len", "6",
            "--max-chars", "4000", "--eval-batches", "1", "--sample-length", "5",
            "--sample-every", "0", "--quiet"]
    env = dict(os.environ, PYTHONPATH=ROOT)
    for name in ("PMI_RANK", "PMI_SIZE", "PMI_FD", "FLOWGRAPH_MPI"):
        env.pop(name, None)
    runs = {"two": [mpiexec(), "-n", "2", sys.executable, "-m", "mpi4py", example,
                    "--data-parallel"],
            "one": [sys.executable, example]}
    weights = {}
    for key, cmd in runs.items():
        ckpt = tmp_path / f"{key}.npz"
        proc = subprocess.run(cmd + tiny + ["--checkpoint", str(ckpt)], capture_output=True,
                              text=True, timeout=TIMEOUT_S, env=env, cwd=tmp_path)
        assert proc.returncode == 0, f"{key}:\n{proc.stdout}\n{proc.stderr}"
        assert proc.stdout.count("final loss:") == 1, proc.stdout  # one rank reports
        if key == "two":  # each rank really trained on half of every batch
            assert "data parallel: 2 ranks x 2 rows of each batch of 4" in proc.stdout
            # the reported training loss is rank 0's shard's, and says so
            assert "(rank 0's rows, mean of last 4 steps)" in proc.stdout, proc.stdout
        else:
            assert "(mean of last 4 steps)" in proc.stdout, proc.stdout
        weights[key] = dict(np.load(ckpt))
    assert weights["two"].keys() == weights["one"].keys()
    for name, value in weights["one"].items():
        np.testing.assert_allclose(weights["two"][name], value, rtol=2e-5, atol=2e-6,
                                   err_msg=name)


def test_compiled_partitioned_lstm_equals_single_process(tmp_path):
    """Each rank's part of the 2-layer LSTM (one layer per task) runs compiled, with
    its sends and receives as plan steps, and trains exactly as one process does."""
    ranks = run_ok("lstm_partition.py", tmp_path, "compiled")
    expected = models.partitioned_lstm()                  # one process, reference path
    for r, result in enumerate(ranks):
        msg = f"rank {r}"
        assert set(result["plan_types"]) == {"CompiledPartitionPlan"}, msg
        explained = str(result["explain"])
        assert " send " in explained and " recv " in explained, explained
        assert f"/job:worker/task:{r}/cpu:0" in explained
        assert "fused kernel" in explained and "gemm" in explained
        np.testing.assert_allclose(result["loss"], expected["loss"], rtol=1e-12, err_msg=msg)
        np.testing.assert_allclose(result["loss_after"], expected["loss_after"], rtol=1e-12,
                                   err_msg=msg)
        for i, g in enumerate(expected["grads"]):
            np.testing.assert_allclose(result[f"grad{i}"], g, rtol=1e-10, atol=1e-14,
                                       err_msg=f"{msg}, gradient {i}")
        for i, v in enumerate(expected["variables"]):
            np.testing.assert_allclose(result[f"var{i}"], v, rtol=1e-12, atol=1e-14,
                                       err_msg=f"{msg}, variable {i}")
    assert expected["loss_after"] < expected["loss"]
    assert int(ranks[0]["sends"]) == int(ranks[1]["recvs"]) > 0
    assert int(ranks[1]["sends"]) == int(ranks[0]["recvs"]) > 0


def test_compiled_partition_with_values_crossing_back_and_forth(tmp_path):
    ranks = run_ok("pingpong.py", tmp_path)
    x = np.linspace(-1, 1, 12).reshape(4, 3)
    a = np.tanh(x) * 2.0
    c = 1.0 / (1.0 + np.exp(-(a + 1.0)))
    d = c * a + np.tanh(x)
    out = (d * c).sum(axis=1) * 3.0 + a.sum(axis=1)
    for r, result in enumerate(ranks):
        assert str(result["compiled_kind"]) == "CompiledPartitionPlan"
        assert str(result["reference_kind"]) == "PartitionPlan"
        np.testing.assert_allclose(result["out"], out, rtol=1e-12, err_msg=f"rank {r}")
        np.testing.assert_allclose(result["d"], d, rtol=1e-12, err_msg=f"rank {r}")
        np.testing.assert_allclose(result["out"], result["ref_out"], rtol=1e-13)
        # the trace: one process track per rank, this rank's device, sends and receives
        assert set(result["trace_pids"]) == {r}
        assert set(result["trace_devices"]) == {f"/job:worker/task:{r}/cpu:0"}
        assert {"send", "recv"} <= set(result["trace_kinds"])
