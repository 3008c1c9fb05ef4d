"""Saver: round trip, atomic writes, and every kind of bad checkpoint."""
import os
import zipfile

import numpy as np
import pytest

import flowgraph as fg
from flowgraph.errors import CheckpointError


@pytest.fixture
def model():
    w = fg.Variable(np.arange(6, dtype=np.float32).reshape(2, 3), name="layer/w")
    b = fg.Variable(np.array([1.0, 2.0]), name="layer/b")  # float64
    step = fg.Variable(np.int64(7), name="global_step", trainable=False)
    return w, b, step


def _scramble(sess, variables):
    for v in variables:
        sess.load(v, np.full(v.shape, -1, v.dtype))


def _values(sess, variables):
    return [sess.variable_value(v) for v in variables]


def test_round_trip_of_all_variables(model, tmp_path):
    saver = fg.train.Saver()
    sess = fg.Session()
    sess.load(model[0], np.ones((2, 3)) * 0.5)
    original = _values(sess, model)
    path = saver.save(sess, tmp_path / "ckpt.npz")
    assert path == str(tmp_path / "ckpt.npz")
    _scramble(sess, model)
    saver.restore(sess, path)
    for got, want, v in zip(_values(sess, model), original, model):
        np.testing.assert_array_equal(got, want)
        assert got.dtype == v.dtype
    # keyed by variable name, plain arrays (loadable without pickle)
    with np.load(path, allow_pickle=False) as data:
        assert {"layer/w", "layer/b", "global_step"} <= set(data.files)


def test_restore_into_a_new_session_and_graph(model, tmp_path):
    sess = fg.Session()
    sess.load(model[1], [5.0, 6.0])
    path = fg.train.Saver().save(sess, tmp_path / "a.npz")
    with fg.Graph().as_default():
        w = fg.Variable(np.zeros((2, 3), np.float32), name="layer/w")
        b = fg.Variable(np.zeros(2), name="layer/b")
        sess2 = fg.Session()
        fg.train.Saver([w, b]).restore(sess2, path)  # a subset of the file is fine
        np.testing.assert_array_equal(sess2.variable_value(b), [5.0, 6.0])


def test_var_list_dict_uses_the_given_names(model, tmp_path):
    w, b, _ = model
    sess = fg.Session()
    path = fg.train.Saver({"weights": w}).save(sess, tmp_path / "d.npz")
    with np.load(path) as data:
        assert "weights" in data.files and "layer/w" not in data.files


def test_save_is_atomic_when_the_write_crashes(model, tmp_path, monkeypatch):
    saver = fg.train.Saver()
    sess = fg.Session()
    path = saver.save(sess, tmp_path / "ckpt.npz")
    before = open(path, "rb").read()
    sess.load(model[0], np.full((2, 3), 9.0))

    def crash(*args, **kwargs):
        raise OSError("disk full (simulated)")
    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(OSError, match="simulated"):
        saver.save(sess, path)
    assert open(path, "rb").read() == before
    assert os.listdir(tmp_path) == ["ckpt.npz"]  # the temporary file is cleaned up


def test_save_is_atomic_when_the_rename_crashes(model, tmp_path, monkeypatch):
    saver = fg.train.Saver()
    sess = fg.Session()
    path = saver.save(sess, tmp_path / "ckpt.npz")
    before = open(path, "rb").read()
    sess.load(model[0], np.full((2, 3), 9.0))
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(
        KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        saver.save(sess, path)
    monkeypatch.undo()
    assert open(path, "rb").read() == before
    assert os.listdir(tmp_path) == ["ckpt.npz"]
    saver.restore(sess, path)
    np.testing.assert_array_equal(sess.variable_value(model[0]),
                                  np.arange(6, dtype=np.float32).reshape(2, 3))


def _bad_checkpoint_cases(tmp_path, good):
    data = open(good, "rb").read()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(data[: len(data) // 2])
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"this is not a zip file at all")
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, weights=np.zeros(3))
    npy = tmp_path / "single.npy"
    np.save(npy, np.zeros(3))
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, **{"layer/w": np.array([{"a": 1}], dtype=object),
                         "__flowgraph_checkpoint__": np.array(1)})
    with np.load(good) as d:
        arrays = dict(d)
    cases = {"missing": (tmp_path / "nope.npz", "does not exist"),
             "truncated": (truncated, "truncated or corrupt"),
             "garbage": (garbage, "truncated or corrupt"),
             "empty": (empty, "truncated or corrupt"),
             "foreign": (foreign, "not a flowgraph checkpoint"),
             "npy": (npy, "single .npy array"),
             "pickled": (pickled, "truncated or corrupt")}
    for label, change, message in [
            ("missing_name", lambda a: a.pop("layer/b"), "layer/b: missing"),
            ("wrong_shape", lambda a: a.__setitem__("layer/w", np.zeros((3, 2), np.float32)),
             r"layer/w: expected shape \(2, 3\), found \(3, 2\)"),
            ("wrong_dtype", lambda a: a.__setitem__("layer/b", np.zeros(2, np.float32)),
             "layer/b: expected dtype float64, found float32")]:
        bad = dict(arrays)
        change(bad)
        path = tmp_path / f"{label}.npz"
        np.savez(path, **bad)
        cases[label] = (path, message)
    return cases


def test_every_bad_checkpoint_raises_and_leaves_variables_untouched(model, tmp_path):
    saver = fg.train.Saver()
    sess = fg.Session()
    good = saver.save(sess, tmp_path / "good.npz")
    _scramble(sess, model)
    current = _values(sess, model)
    cases = _bad_checkpoint_cases(tmp_path, good)
    for label, (path, message) in cases.items():
        with pytest.raises(CheckpointError, match=message):
            saver.restore(sess, path)
        for got, want in zip(_values(sess, model), current):
            np.testing.assert_array_equal(got, want, err_msg=label)
    # the session is still usable and the good checkpoint still restores
    saver.restore(sess, good)
    assert int(sess.variable_value(model[2])) == 7


def test_mismatch_message_lists_every_problem(model, tmp_path):
    w, b, step = model
    sess = fg.Session()
    path = fg.train.Saver([w]).save(sess, tmp_path / "only_w.npz")
    with fg.Graph().as_default():
        w2 = fg.Variable(np.zeros((4,), np.float32), name="layer/w")
        b2 = fg.Variable(np.zeros(2), name="layer/b")
        with pytest.raises(CheckpointError) as info:
            fg.train.Saver([w2, b2]).restore(fg.Session(), path)
    text = str(info.value)
    assert "2 problem(s)" in text and "layer/b: missing" in text and "(2, 3)" in text


def test_saver_rejects_bad_var_lists():
    with pytest.raises(ValueError, match="no variables"):
        fg.train.Saver([])
    with pytest.raises(TypeError, match="expected fg.Variables"):
        fg.train.Saver({"x": fg.constant(1.0)})


def test_checkpoint_is_a_plain_zip_of_npy_members(model, tmp_path):
    path = fg.train.Saver().save(fg.Session(), tmp_path / "z.npz")
    with zipfile.ZipFile(path) as z:
        assert all(name.endswith(".npy") for name in z.namelist())


def test_resumed_adam_training_equals_uninterrupted_training(tmp_path):
    """Slots and beta powers are checkpointed: save after 3 steps, restore into a new
    session, 3 more steps == 6 steps straight.
    """
    rng = np.random.default_rng(0)
    w = fg.Variable(rng.normal(size=(3,)), name="w")
    step = fg.Variable(np.int64(0), name="global_step", trainable=False)
    loss = fg.reduce_sum(fg.square(w - 1.0) * fg.constant([1.0, 2.0, 3.0]))
    train = fg.train.AdamOptimizer(0.1).minimize(loss, global_step=step)
    saver = fg.train.Saver()
    straight = fg.Session()
    for _ in range(6):
        straight.run(train)
    first = fg.Session()
    for _ in range(3):
        first.run(train)
    path = saver.save(first, tmp_path / "mid.npz")
    second = fg.Session()
    saver.restore(second, path)
    for _ in range(3):
        second.run(train)
    np.testing.assert_array_equal(second.variable_value(w), straight.variable_value(w))
    assert int(second.variable_value(step)) == 6


# --- max_to_keep (TF1's) ---

def _names(folder):
    return sorted(n for n in os.listdir(folder) if not n.startswith(".tmp-"))


def test_max_to_keep_defaults_to_five_and_deletes_the_oldest(tmp_path):
    fg.Variable(np.array([1.0], np.float32), name="w")
    saver, sess = fg.train.Saver(), fg.Session()
    (tmp_path / "model-0.npz").write_bytes(b"not this saver's")   # never deleted
    paths = [saver.save(sess, tmp_path / "model", global_step=s) for s in range(1, 8)]
    assert _names(tmp_path) == ["model-0.npz"] + [f"model-{s}.npz" for s in range(3, 8)]
    assert saver.last_checkpoints == paths[2:]
    assert fg.train.latest_checkpoint(tmp_path) == paths[-1]
    saver.restore(sess, saver.last_checkpoints[0])


@pytest.mark.parametrize("keep", [None, 0])
def test_max_to_keep_none_or_zero_keeps_every_checkpoint(tmp_path, keep):
    fg.Variable(np.array([1.0], np.float32), name="w")
    saver, sess = fg.train.Saver(max_to_keep=keep), fg.Session()
    paths = [saver.save(sess, tmp_path / "m.npz", global_step=s) for s in range(7)]
    assert _names(tmp_path) == sorted(f"m-{s}.npz" for s in range(7))
    assert saver.last_checkpoints == paths


def test_saving_a_held_path_again_makes_it_the_newest(tmp_path):
    fg.Variable(np.array([1.0], np.float32), name="w")
    saver, sess = fg.train.Saver(max_to_keep=2), fg.Session()
    a = saver.save(sess, tmp_path / "a.npz")
    b = saver.save(sess, tmp_path / "b.npz")
    assert saver.save(sess, tmp_path / "a.npz") == a      # a moves after b
    assert saver.last_checkpoints == [b, a]
    c = saver.save(sess, tmp_path / "c.npz")               # b is now the oldest
    assert saver.last_checkpoints == [a, c] and _names(tmp_path) == ["a.npz", "c.npz"]
    os.unlink(a)                                            # gone already: no error
    saver.save(sess, tmp_path / "d.npz")
    assert _names(tmp_path) == ["c.npz", "d.npz"]


def test_set_and_recover_last_checkpoints_and_bad_max_to_keep(tmp_path):
    fg.Variable(np.array([1.0], np.float32), name="w")
    first, sess = fg.train.Saver(max_to_keep=None), fg.Session()
    old = [first.save(sess, tmp_path / "m", global_step=s) for s in range(3)]
    second = fg.train.Saver(max_to_keep=2)
    second.recover_last_checkpoints(old + [str(tmp_path / "missing.npz")])
    assert second.last_checkpoints == old
    new = second.save(sess, tmp_path / "m", global_step=3)
    assert second.last_checkpoints == [old[2], new]
    assert _names(tmp_path) == ["m-2.npz", "m-3.npz"]
    second.set_last_checkpoints([new])
    assert second.last_checkpoints == [new]
    with pytest.raises(TypeError, match="list of paths"):
        second.set_last_checkpoints(new)
    for bad in (-1, 2.5, True, "5"):
        with pytest.raises(ValueError, match="max_to_keep"):
            fg.train.Saver(max_to_keep=bad)


def test_keep_checkpoint_every_n_hours_spares_one_per_period(tmp_path, monkeypatch):
    import flowgraph.train.saver as saver_module
    clock = [1000.0]
    monkeypatch.setattr(saver_module.time, "time", lambda: clock[0])
    fg.Variable(np.array([1.0], np.float32), name="w")
    saver = fg.train.Saver(max_to_keep=1, keep_checkpoint_every_n_hours=1.0)
    sess = fg.Session()
    for step in range(6):                    # one save every 40 minutes
        saver.save(sess, tmp_path / "m", global_step=step)
        clock[0] += 2400.0
    # saved at 0, 40, 80, 120, 160, 200 min; spared: the first saved after 60 min (80)
    # and then the first after 120 min (160); the newest (200) is the kept one
    assert _names(tmp_path) == ["m-2.npz", "m-4.npz", "m-5.npz"]
