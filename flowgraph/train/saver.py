"""Checkpoints: variables saved to a NumPy ``.npz`` keyed by variable name.

Never pickled (loaded with ``allow_pickle=False``); written to a temporary file in the
target directory and renamed over the old checkpoint with ``os.replace``, so a crash
mid-save leaves the previous checkpoint intact. ``restore`` reads and checks the whole
file first (names, shapes, dtypes) and only then sets the session's variables: a bad
checkpoint raises ``fg.errors.CheckpointError`` and changes nothing.

>>> import os, tempfile
>>> import flowgraph as fg
>>> with fg.Graph().as_default():
...     w = fg.Variable([1.0, 2.0], name="w")
...     saver = fg.train.Saver()
...     with fg.Session() as sess:
...         path = saver.save(sess, os.path.join(tempfile.mkdtemp(), "model.npz"))
...         _ = sess.run(w.assign([0.0, 0.0]))
...         saver.restore(sess, path)
...         sess.run(w)
array([1., 2.], dtype=float32)
"""
from __future__ import annotations

import os
import tempfile
import zipfile

import numpy as np

from ..errors import CheckpointError
from ..variables import Variable, global_variables

FORMAT_KEY = "__flowgraph_checkpoint__"
FORMAT_VERSION = 1


def _checkpoint_name(var):
    return var.op.name


class Saver:
    """Saves and restores ``var_list`` (all global variables, trainable or not, at the
    time the saver is made, by default; or a list, or a dict ``{name: variable}``).
    """

    def __init__(self, var_list=None):
        if var_list is None:
            var_list = global_variables()
        if isinstance(var_list, dict):
            items = list(var_list.items())
        else:
            items = [(_checkpoint_name(v), v) for v in var_list]
        names = [n for n, _ in items]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"Saver: duplicate variable names {dupes}")
        for name, v in items:
            if not isinstance(v, Variable):
                raise TypeError(f"Saver: expected fg.Variables, found {type(v).__name__} "
                                f"for {name!r}")
            if name.startswith("__"):
                raise ValueError(f"Saver: variable names starting with '__' are reserved, "
                                 f"found {name!r}")
        if not items:
            raise ValueError("Saver: no variables to save")
        self._items = items

    @property
    def var_list(self):
        return {name: v for name, v in self._items}

    def save(self, sess, save_path):
        """Write the session's values to ``save_path`` atomically; returns the path."""
        save_path = os.fspath(save_path)
        arrays = {name: sess.variable_value(v) for name, v in self._items}
        arrays[FORMAT_KEY] = np.array(FORMAT_VERSION, np.int64)
        directory = os.path.dirname(os.path.abspath(save_path))
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=directory)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, save_path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        return save_path

    def _read(self, path):
        """All arrays of the checkpoint at ``path``, fully read, or CheckpointError."""
        if not os.path.exists(path):
            raise CheckpointError(f"restore: checkpoint file {path!r} does not exist")
        try:
            data = np.load(path, allow_pickle=False)
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise CheckpointError(f"restore: {path!r} is a single .npy array, "
                                      "expected a flowgraph .npz checkpoint")
            with data:  # read every member now: a truncated one fails here, not later
                arrays = {name: data[name] for name in data.files}
        except CheckpointError:
            raise
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
            raise CheckpointError(f"restore: {path!r} is not a readable .npz checkpoint "
                                  f"(truncated or corrupt?): {type(exc).__name__}: "
                                  f"{exc}") from None
        if FORMAT_KEY not in arrays:
            raise CheckpointError(f"restore: {path!r} is an .npz file but not a flowgraph "
                                  f"checkpoint (no {FORMAT_KEY!r} entry); it holds "
                                  f"{sorted(arrays)[:8]}")
        return arrays

    def restore(self, sess, save_path):
        """Set ``var_list``'s values in ``sess`` from ``save_path``; checks every name,
        shape and dtype before changing anything.
        """
        save_path = os.fspath(save_path)
        arrays = self._read(save_path)
        problems = []
        for name, v in self._items:
            if name not in arrays:
                problems.append(f"{name}: missing from the checkpoint")
                continue
            a = arrays[name]
            if a.shape != tuple(v.shape):
                problems.append(f"{name}: expected shape {tuple(v.shape)}, found {a.shape}")
            if a.dtype != v.dtype:
                problems.append(f"{name}: expected dtype {v.dtype.name}, found "
                                f"{a.dtype.name}")
        if problems:
            raise CheckpointError(f"restore from {save_path!r}: the checkpoint does not match "
                                  f"the variables ({len(problems)} problem(s)): "
                                  + "; ".join(problems))
        for name, v in self._items:
            sess.load(v, arrays[name])


__all__ = ["Saver"]
