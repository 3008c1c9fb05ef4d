"""Bad input and numerics: a named ``fg.errors`` error, or the right finite answer
(issue 15, the scenarios outside the kernel cache; those are in test_security.py).

9. test_result_too_large_for_memory_names_the_op: the compiled path raised a bare
   MemoryError from plan.py for ``(2**23, 1) + (1, 2**23)`` float32.
10. test_sparse_xent_label_too_large_raises: a label of 3 for 3 classes gave a loss of -0.0.
11. test_sparse_xent_negative_label_raises: so did a label of -1.
12. test_sparse_xent_minus_inf_logit_is_finite: a -inf logit on another class than the
    label gave NaN (0 * -inf).
13. test_saver_save_on_closed_session_raises: wrote the initial values.
14. test_saver_restore_into_closed_session_raises: "succeeded".
15. test_restore_npz_with_a_member_that_is_not_npy_raises: AttributeError.
16. test_restore_npz_member_with_huge_header_raises: MemoryError (2**45 elements).
17. test_restore_checkpoint_format_version_99_raises: restored silently.
18. test_interrupted_save_temp_files_are_cleaned: ``.tmp-*.npz`` files were never removed.

Every test runs on the session default path (``pytest --optimize=on|off|both``).
"""
import io
import os
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

import flowgraph as fg
from flowgraph.errors import CheckpointError, FlowgraphError, InvalidArgumentError


def test_result_too_large_for_memory_names_the_op():
    a = fg.placeholder(fg.float32, (2**23, 1))
    b = fg.placeholder(fg.float32, (1, 2**23))
    total = fg.add(a, b, name="huge_sum")
    sess = fg.Session()
    feed = {a: np.ones((2**23, 1), np.float32), b: np.ones((1, 2**23), np.float32)}
    with pytest.raises(InvalidArgumentError, match=r"Add 'huge_sum' \(created at "
                       r"test_reliability.py:\d+\).*MemoryError"):
        sess.run(total, feed)
    # nothing lost: the session still runs other fetches of the same graph
    np.testing.assert_array_equal(sess.run(a[:2] * 2.0, {a: feed[a]}), [[2.0], [2.0]])


def _sparse_loss():
    logits = fg.placeholder(fg.float32, (None, 3))
    labels = fg.placeholder(fg.int32, (None,))
    loss = fg.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    (grad,) = fg.gradients(fg.reduce_sum(loss), [logits])
    return logits, labels, loss, grad


@pytest.mark.parametrize("bad", [3, 7])
def test_sparse_xent_label_too_large_raises(bad):
    logits, labels, loss, grad = _sparse_loss()
    sess = fg.Session()
    feed = {logits: np.zeros((2, 3), np.float32), labels: [0, bad]}
    for fetch in (loss, grad):              # the loss and its gradient both check
        with pytest.raises(InvalidArgumentError,
                           match=rf"labels_in_range' \(created at test_reliability.py:\d+\)"
                                 rf": expected indices in \[0, 3\), found {bad}"):
            sess.run(fetch, feed)
    ok = sess.run(loss, {logits: np.zeros((2, 3), np.float32), labels: [0, 2]})
    np.testing.assert_allclose(ok, [np.log(3.0)] * 2, rtol=1e-6)


def test_sparse_xent_negative_label_raises():
    logits, labels, loss, grad = _sparse_loss()
    sess = fg.Session()
    feed = {logits: np.zeros((2, 3), np.float32), labels: [-1, 0]}
    for fetch in (loss, grad):
        with pytest.raises(InvalidArgumentError, match=r"expected indices in \[0, 3\), "
                                                       r"found -1"):
            sess.run(fetch, feed)


def test_sparse_xent_minus_inf_logit_is_finite():
    logits, labels, loss, grad = _sparse_loss()
    values = np.array([[1.0, -np.inf, 2.0], [-np.inf, 0.5, 0.0]], np.float32)
    got_loss, got_grad = fg.Session().run([loss, grad], {logits: values, labels: [0, 1]})
    # The same loss computed without the -inf class (exp(-inf) = 0 adds nothing).
    finite = [np.array([1.0, 2.0]), np.array([0.5, 0.0])]
    picked = [1.0, 0.5]
    want = [np.log(np.exp(v).sum()) - p for v, p in zip(finite, picked)]
    np.testing.assert_allclose(got_loss, want, rtol=1e-6)
    assert np.isfinite(got_grad).all()
    softmax = [np.exp(v) / np.exp(v).sum() for v in finite]
    want_grad = np.array([[softmax[0][0] - 1, 0.0, softmax[0][1]],
                          [0.0, softmax[1][0] - 1, softmax[1][1]]])
    np.testing.assert_allclose(got_grad, want_grad, rtol=1e-5, atol=1e-7)


@pytest.fixture
def model():
    w = fg.Variable(np.array([1.0, 2.0], np.float32), name="w")
    return w, fg.train.Saver()


def test_saver_save_on_closed_session_raises(model, tmp_path):
    w, saver = model
    sess = fg.Session()
    sess.run(w.assign([5.0, 6.0]))
    sess.close()
    with pytest.raises(FlowgraphError, match="Saver.save: the session is closed"):
        saver.save(sess, tmp_path / "model.npz")
    assert not os.listdir(tmp_path)         # nothing written (no initial values saved)


def test_saver_restore_into_closed_session_raises(model, tmp_path):
    w, saver = model
    sess = fg.Session()
    path = saver.save(sess, tmp_path / "model.npz")
    sess.close()
    with pytest.raises(FlowgraphError, match="Saver.restore: the session is closed"):
        saver.restore(sess, path)


def _checkpoint_with(tmp_path, extra_members):
    """A valid checkpoint of ``w`` plus raw zip members ``{name: bytes}``."""
    path = tmp_path / "ckpt.npz"
    np.savez(path, w=np.array([1.0, 2.0], np.float32),
             __flowgraph_checkpoint__=np.array(1, np.int64))
    with zipfile.ZipFile(path, "a") as z:
        for name, data in extra_members.items():
            z.writestr(name, data)
    return path


def test_restore_npz_with_a_member_that_is_not_npy_raises(model, tmp_path):
    w, saver = model
    path = _checkpoint_with(tmp_path, {"notes.txt": b"hello"})
    sess = fg.Session()
    with pytest.raises(CheckpointError, match="member 'notes.txt' that is not an .npy"):
        saver.restore(sess, path)
    np.testing.assert_array_equal(sess.run(w), [1.0, 2.0])


def test_restore_npz_member_with_huge_header_raises(model, tmp_path):
    w, saver = model
    header = {"descr": "<f4", "fortran_order": False, "shape": (2**45,)}
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    member = buf.getvalue() + b"\0" * 64       # the header promises 128 TiB
    path = tmp_path / "huge.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("w.npy", member)
        buf = io.BytesIO()
        np.lib.format.write_array(buf, np.array(1, np.int64))
        z.writestr("__flowgraph_checkpoint__.npy", buf.getvalue())
    sess = fg.Session()
    with pytest.raises(CheckpointError, match=r"declares shape \(35184372088832,\) float32"):
        saver.restore(sess, path)
    np.testing.assert_array_equal(sess.run(w), [1.0, 2.0])


def test_restore_checkpoint_format_version_99_raises(model, tmp_path):
    w, saver = model
    path = tmp_path / "future.npz"
    np.savez(path, w=np.array([7.0, 8.0], np.float32),
             __flowgraph_checkpoint__=np.array(99, np.int64))
    sess = fg.Session()
    with pytest.raises(CheckpointError, match="format version 99, expected 1"):
        saver.restore(sess, path)
    np.testing.assert_array_equal(sess.run(w), [1.0, 2.0])


def test_interrupted_save_temp_files_are_cleaned(model, tmp_path):
    from flowgraph.train import saver as saver_module
    w, saver = model
    host = saver_module._host()
    # A save killed mid-write (its process is gone), an old one from another host, a
    # pre-pid name left long ago, and a live writer's file (this test's parent process).
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    stale = [tmp_path / f".tmp-{host}-{dead}-abc.npz", tmp_path / ".tmp-other-1-abc.npz",
             tmp_path / ".tmp-xyz.npz"]
    live = tmp_path / f".tmp-{host}-{os.getppid()}-abc.npz"
    for path in stale + [live]:
        path.write_bytes(b"partial")
    old = time.time() - 2 * saver_module.STALE_TEMP_SECONDS
    for path in stale[1:]:
        os.utime(path, (old, old))
    sess = fg.Session()
    written = saver.save(sess, tmp_path / "model.npz")
    assert not any(p.exists() for p in stale)
    assert live.exists()                     # another process may still be writing it
    assert sorted(os.listdir(tmp_path)) == sorted([live.name, "model.npz"])
    saver.restore(sess, written)
