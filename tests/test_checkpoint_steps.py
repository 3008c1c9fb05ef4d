"""Saver.save(global_step=) names checkpoints by step; latest_checkpoint finds the newest."""
import os
import time

import numpy as np
import pytest

import flowgraph as fg


def test_save_with_global_step_returns_the_path_written(tmp_path):
    w = fg.Variable(np.array([1.0, 2.0], np.float32), name="w")
    step = fg.Variable(np.array(0, np.int64), name="global_step", trainable=False)
    saver = fg.train.Saver()
    sess = fg.Session()
    assert saver.save(sess, tmp_path / "model.npz", global_step=3) == \
        str(tmp_path / "model-3.npz")
    assert saver.save(sess, str(tmp_path / "model"), global_step=np.int32(4)) == \
        str(tmp_path / "model-4.npz")
    sess.run(step.assign(np.array(12, np.int64)))
    path = saver.save(sess, tmp_path / "model.npz", global_step=step)   # a variable
    assert path == str(tmp_path / "model-12.npz") and os.path.exists(path)
    assert saver.save(sess, tmp_path / "model.npz", global_step=step + 1).endswith(
        "model-13.npz")                                                  # a tensor
    assert saver.save(sess, tmp_path / "plain.npz") == str(tmp_path / "plain.npz")
    with pytest.raises(TypeError, match="global_step"):
        saver.save(sess, tmp_path / "model.npz", global_step=1.5)


def test_latest_checkpoint_is_the_newest_and_restores(tmp_path):
    w = fg.Variable(np.array([0.0, 0.0], np.float32), name="w")
    saver = fg.train.Saver()
    sess = fg.Session()
    assert fg.train.latest_checkpoint(tmp_path) is None
    assert fg.train.latest_checkpoint(tmp_path / "missing") is None
    now = time.time()
    for order, step in enumerate((1, 20, 3)):   # newest written last, not the largest step
        sess.run(w.assign(np.full(2, step, np.float32)))
        path = saver.save(sess, tmp_path / "model.npz", global_step=step)
        os.utime(path, (now + order, now + order))   # distinct times on coarse clocks
    (tmp_path / ".tmp-host-1-x-99.npz").write_bytes(b"partial")   # never a candidate
    latest = fg.train.latest_checkpoint(tmp_path)
    assert latest == str(tmp_path / "model-3.npz")
    sess.run(w.assign([9.0, 9.0]))
    saver.restore(sess, latest)
    np.testing.assert_array_equal(sess.run(w), [3.0, 3.0])
