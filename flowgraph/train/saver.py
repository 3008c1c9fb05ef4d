"""Checkpoints: variables saved to a NumPy ``.npz`` keyed by variable name.

Never pickled (loaded with ``allow_pickle=False``); written to a temporary file in the
target directory and renamed over the old checkpoint with ``os.replace``, so a crash
mid-save leaves the previous checkpoint intact (and the temporary files of saves that
died are removed by the next save in that directory). ``restore`` reads and checks the
whole file first (members, array headers, names, shapes, dtypes) and only then sets the
session's variables: a bad checkpoint raises ``fg.errors.CheckpointError`` and changes
nothing. With ``global_step``, ``save`` writes ``model-<step>.npz`` and
:func:`latest_checkpoint` finds the newest such file.

>>> import os, tempfile
>>> import flowgraph as fg
>>> folder = tempfile.mkdtemp()
>>> with fg.Graph().as_default():
...     w = fg.Variable([1.0, 2.0], name="w")
...     saver = fg.train.Saver()
...     with fg.Session() as sess:
...         path = saver.save(sess, os.path.join(folder, "model.npz"), global_step=7)
...         _ = sess.run(w.assign([0.0, 0.0]))
...         saver.restore(sess, fg.train.latest_checkpoint(folder))
...         sess.run(w)
array([1., 2.], dtype=float32)
>>> os.path.basename(path)
'model-7.npz'
"""
from __future__ import annotations

import os
import re
import socket
import tempfile
import time
import zipfile

import numpy as np

from ..errors import CheckpointError, FlowgraphError
from ..variables import Variable, global_variables

FORMAT_KEY = "__flowgraph_checkpoint__"
FORMAT_VERSION = 1
# A temporary file of a save: ".tmp-<host>-<pid>-<random>.npz" (older versions wrote
# ".tmp-<random>.npz"). One whose process is gone (same host) or that is older than
# STALE_TEMP_SECONDS is left over from a save that died, and is removed.
_TEMP_PREFIX = ".tmp-"
_TEMP_NAME = re.compile(r"^\.tmp-(?:(?P<host>[A-Za-z0-9_.]+)-(?P<pid>\d+)-)?.+\.npz$")
STALE_TEMP_SECONDS = 24 * 3600
_STEP_NAME = re.compile(r"-(\d+)\.npz$")


def _checkpoint_name(var):
    return var.op.name


class Saver:
    """Saves and restores ``var_list`` (all global variables, trainable or not, at the
    time the saver is made, by default; or a list, or a dict ``{name: variable}``).

    ``max_to_keep`` (TF1's, default 5): the saver remembers the checkpoints it wrote
    (:attr:`last_checkpoints`, oldest first) and, when a save makes them more than
    ``max_to_keep``, deletes the oldest file; ``None`` or 0 keeps every file. Saving to
    a path it already holds moves that path to the newest place. Files that this saver
    did not write are never deleted. ``keep_checkpoint_every_n_hours`` (TF1's) spares
    from deletion one checkpoint per that many hours of the saver's life.

    >>> import os, tempfile
    >>> import flowgraph as fg
    >>> folder = tempfile.mkdtemp()
    >>> with fg.Graph().as_default():
    ...     saver = fg.train.Saver([fg.Variable(1.0, name="v")], max_to_keep=2)
    ...     with fg.Session() as sess:
    ...         for step in range(4):
    ...             _ = saver.save(sess, os.path.join(folder, "model"), global_step=step)
    >>> sorted(os.listdir(folder)), [os.path.basename(p) for p in saver.last_checkpoints]
    (['model-2.npz', 'model-3.npz'], ['model-2.npz', 'model-3.npz'])
    """

    def __init__(self, var_list=None, max_to_keep=5, keep_checkpoint_every_n_hours=10000.0,
                 name=None, sharded=False, allow_empty=False, write_version=2,
                 save_relative_paths=False):
        # TF1's name, sharded, write_version and save_relative_paths are accepted and
        # change nothing: one .npz per checkpoint, whatever the format version asked.
        if max_to_keep is not None and (isinstance(max_to_keep, bool) or
                                        not isinstance(max_to_keep, (int, np.integer))
                                        or max_to_keep < 0):
            raise ValueError(f"Saver: expected max_to_keep to be None or an int >= 0, found "
                             f"{max_to_keep!r}")
        self._max_to_keep = None if max_to_keep is None else int(max_to_keep)
        self._keep_every_seconds = float(keep_checkpoint_every_n_hours) * 3600.0
        self._next_kept_time = time.time() + self._keep_every_seconds
        self._last_checkpoints = []      # [(path, time saved)], oldest first
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
        if not items and not allow_empty:
            raise ValueError("Saver: no variables to save (allow_empty=True allows it)")
        self._items = items

    @property
    def var_list(self):
        return {name: v for name, v in self._items}

    @property
    def last_checkpoints(self):
        """The paths of the checkpoints this saver wrote and has not deleted, oldest
        first (TF1's ``Saver.last_checkpoints``)."""
        return [path for path, _ in self._last_checkpoints]

    def set_last_checkpoints(self, last_checkpoints):
        """TF1's: replace :attr:`last_checkpoints` (a list of paths, oldest first), for
        example to let a new saver rotate the files of an earlier run."""
        if not isinstance(last_checkpoints, (list, tuple)):
            raise TypeError(f"Saver.set_last_checkpoints: expected a list of paths, found "
                            f"{type(last_checkpoints).__name__}")
        now = time.time()
        self._last_checkpoints = [(os.fspath(p), now) for p in last_checkpoints]

    def recover_last_checkpoints(self, checkpoint_paths):
        """TF1's: like :meth:`set_last_checkpoints`, keeping only the paths that exist,
        with their files' modification times."""
        found = []
        for p in checkpoint_paths:
            p = os.fspath(p)
            try:
                found.append((p, os.stat(p).st_mtime))
            except OSError:
                continue
        self._last_checkpoints = found

    def _record(self, path):
        """Remember ``path`` as the newest checkpoint; delete the oldest beyond
        ``max_to_keep`` (unless kept by ``keep_checkpoint_every_n_hours``)."""
        self._last_checkpoints = [(p, t) for p, t in self._last_checkpoints if p != path]
        self._last_checkpoints.append((path, time.time()))
        if not self._max_to_keep:
            return
        while len(self._last_checkpoints) > self._max_to_keep:
            oldest, saved = self._last_checkpoints.pop(0)
            if saved > self._next_kept_time:
                self._next_kept_time += self._keep_every_seconds
                continue
            try:
                os.unlink(oldest)
            except OSError:
                pass      # already gone (TF1 logs and goes on)

    def save(self, sess, save_path, global_step=None, latest_filename=None,
             meta_graph_suffix="meta", write_meta_graph=True, write_state=True,
             strip_default_attrs=False):
        """Write the session's values atomically; returns the path written. TF1's
        ``latest_filename``, ``meta_graph_suffix``, ``write_meta_graph``,
        ``write_state`` and ``strip_default_attrs`` are accepted and change nothing
        (no meta graph or ``checkpoint`` state file is written; the newest checkpoint
        is found from the files themselves).

        ``global_step`` (an int, or a variable or tensor evaluated in ``sess``) adds
        ``-<step>`` before ``.npz``: ``save(sess, "ckpt/model.npz", global_step=100)``
        writes ``ckpt/model-100.npz`` (``"ckpt/model"`` gives the same name), which
        :func:`latest_checkpoint` finds.
        """
        _check_open(sess, "save")
        save_path = os.fspath(save_path)
        if global_step is not None:
            save_path = _step_path(save_path, _step_value(sess, global_step))
        arrays = {name: sess.variable_value(v) for name, v in self._items}
        arrays[FORMAT_KEY] = np.array(FORMAT_VERSION, np.int64)
        directory = os.path.dirname(os.path.abspath(save_path))
        os.makedirs(directory, exist_ok=True)
        _remove_stale_temporaries(directory)
        fd, tmp = tempfile.mkstemp(prefix=f"{_TEMP_PREFIX}{_host()}-{os.getpid()}-",
                                   suffix=".npz", dir=directory)
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
        self._record(save_path)
        return save_path

    def _read(self, path):
        """All arrays of the checkpoint at ``path``, fully read, or CheckpointError."""
        if not os.path.exists(path):
            raise CheckpointError(f"restore: checkpoint file {path!r} does not exist")
        try:
            with open(path, "rb") as f:
                if f.read(6) == b"\x93NUMPY":
                    raise CheckpointError(f"restore: {path!r} is a single .npy array, "
                                          "expected a flowgraph .npz checkpoint")
            with zipfile.ZipFile(path) as archive:
                arrays = {name: _read_member(archive, info, path)
                          for name, info in _members(archive, path)}
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
        version = arrays.pop(FORMAT_KEY)
        if version.shape != () or version.dtype.kind not in "iu" or int(version) != \
                FORMAT_VERSION:
            raise CheckpointError(f"restore: {path!r} has checkpoint format version "
                                  f"{version.tolist()!r}, expected {FORMAT_VERSION} (written "
                                  "by another version of flowgraph?)")
        return arrays

    def restore(self, sess, save_path):
        """Set ``var_list``'s values in ``sess`` from ``save_path``; checks every name,
        shape and dtype before changing anything. A ``save_path`` that does not exist
        but with ``.npz`` appended does (TF1's checkpoint prefix, ``"model-100"``) is
        read with the ``.npz``.
        """
        _check_open(sess, "restore")
        save_path = os.fspath(save_path)
        if not os.path.exists(save_path) and os.path.exists(save_path + ".npz"):
            # TF1 code restores the prefix it saved ("model.ckpt-1000"); save() wrote
            # "model.ckpt-1000.npz".
            save_path += ".npz"
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


def latest_checkpoint(directory):
    """The newest checkpoint that ``Saver.save(..., global_step=N)`` wrote in
    ``directory`` (its path), or ``None`` if there is none. Newest: last modified,
    then the highest step.

    >>> import tempfile
    >>> latest_checkpoint(tempfile.mkdtemp()) is None
    True
    """
    directory = os.fspath(directory)
    try:
        names = os.listdir(directory)
    except OSError:
        return None
    found = []
    for name in names:
        match = _STEP_NAME.search(name)
        if match is None or name.startswith(_TEMP_PREFIX):
            continue
        path = os.path.join(directory, name)
        try:
            st = os.stat(path)
        except OSError:
            continue
        if os.path.isfile(path):
            found.append((st.st_mtime_ns, int(match.group(1)), path))
    return max(found)[2] if found else None


def _check_open(sess, what):
    if getattr(sess, "_closed", False):
        raise FlowgraphError(f"Saver.{what}: the session is closed; expected an open "
                             f"session (its variable values are gone once it is closed)")


def _step_value(sess, global_step):
    if hasattr(global_step, "_as_tensor") or hasattr(global_step, "graph"):
        global_step = sess.run(global_step)
    value = np.asarray(global_step)
    if value.shape != () or value.dtype.kind not in "iu":
        raise TypeError(f"Saver.save: expected global_step to be an integer (or an integer "
                        f"scalar variable or tensor), found {value.dtype} of shape "
                        f"{value.shape}")
    return int(value)


def _step_path(save_path, step):
    base = save_path[:-4] if save_path.endswith(".npz") else save_path
    return f"{base}-{step}.npz"


def _host():
    return re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname()) or "host"


def _process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True       # exists, another user's (or cannot tell: keep the file)
    return True


def _remove_stale_temporaries(directory):
    """Remove the temporary files of saves that died: their process (on this host) is
    gone, or they are older than :data:`STALE_TEMP_SECONDS`. A live save's file is kept.
    """
    try:
        names = [n for n in os.listdir(directory) if n.startswith(_TEMP_PREFIX)]
    except OSError:
        return
    now = time.time()
    for name in names:
        match = _TEMP_NAME.match(name)
        if match is None:
            continue
        path = os.path.join(directory, name)
        try:
            age = now - os.stat(path).st_mtime
        except OSError:
            continue
        pid = match.group("pid")
        dead = (pid is not None and match.group("host") == _host()
                and int(pid) != os.getpid() and not _process_alive(int(pid)))
        if dead or age > STALE_TEMP_SECONDS:
            try:
                os.unlink(path)
            except OSError:
                pass


def _members(archive, path):
    """``(variable name, ZipInfo)`` of every member; each must be an ``.npy`` array."""
    out = []
    for info in archive.infolist():
        if not info.filename.endswith(".npy") or info.is_dir():
            raise CheckpointError(f"restore: {path!r} holds a member {info.filename!r} that "
                                  "is not an .npy array; expected only .npy members (a "
                                  "flowgraph checkpoint)")
        out.append((info.filename[:-4], info))
    return out


def _read_member(archive, info, path):
    """One member's array; its header is checked against the member's size before
    anything is allocated (a header may claim any shape)."""
    with archive.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise CheckpointError(f"restore: {path!r}: member {info.filename!r} has .npy "
                                  f"format version {version}, expected 1.0 or 2.0")
        header = f.tell() if f.seekable() else None
    count = 1
    for n in shape:
        count *= int(n)
    declared = count * dtype.itemsize
    available = info.file_size - (header or 0)
    if declared > available and not dtype.hasobject:  # objects: read_array refuses them
        raise CheckpointError(f"restore: {path!r}: member {info.filename!r} declares shape "
                              f"{tuple(shape)} {dtype} ({declared:,} bytes), but holds only "
                              f"{max(available, 0):,} bytes (corrupt or forged header)")
    with archive.open(info) as f:
        return np.lib.format.read_array(f, allow_pickle=False)


__all__ = ["Saver", "latest_checkpoint"]
