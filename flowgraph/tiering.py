"""Tiered execution: a compiled plan runs at once, its generated kernels come later.

A :class:`~flowgraph.plan.CompiledPlan` is built with every region meant for a
generated (Numba) kernel running as a chain of NumPy ufunc calls (no compile), beside
its BLAS and NumPy steps. ``SessionConfig(compile=...)`` then decides:

- ``"background"`` (the default): the kernels compile on one background thread, one
  distinct kernel at a time (most used first); each compiled kernel is staged and
  swapped into the plan's step list at the start of the next run (never during one).
  :meth:`Session.wait_compiled <flowgraph.Session.wait_compiled>` blocks until every
  plan built so far runs its compiled kernels.
- ``"eager"``: the kernels compile before the first run returns (the behaviour of
  earlier versions).
- ``"never"``: Numba is never called; the ufunc chains stay.

Results agree whichever kernel ran, within floating-point rounding: elementwise
arithmetic is the same operations in the same dtypes (bitwise equal); float32
``exp``/``tanh``/``sigmoid`` of a generated kernel are within 2.4 float32 ulps of
the exact value (:mod:`kernels.cpu.vmath`; NumPy's float32 ``exp`` is within 2.52), and a fused float sum accumulates in float64 where
NumPy sums pairwise in the array's dtype. The tests hold both to ``rtol=1e-5`` in
float32 and ``1e-10`` in float64 (tests/test_tiering.py).

A compile that keeps a caller waiting more than :data:`PROGRESS_AFTER_S` seconds (an
eager first run, or :meth:`~flowgraph.Session.wait_compiled`) prints a progress line
on stderr (``flowgraph: compiling kernel 3 of 20 (Mul+Sigmoid+Tanh) 4.1 s``);
``FLOWGRAPH_QUIET=1`` turns it off. Background compilation that nobody waits for
prints nothing.

The thread is a daemon started on first use. At interpreter exit (``atexit``) it is
told to stop, the kernels not started are dropped, and the exit waits for the one in
progress, so no cache file is left half written (cache writes are atomic renames
anyway). Closing a session drops its plans' kernels not started yet.

>>> import numpy as np, flowgraph as fg
>>> with fg.Graph().as_default():
...     x = fg.placeholder(fg.float64, (3,))
...     y = fg.tanh(x) * 2.0 + 1.0
...     with fg.Session(config=fg.SessionConfig(compile="never")) as sess:
...         out = sess.run(y, {x: np.zeros(3)})
...         done = sess.wait_compiled()      # nothing to wait for: nothing compiles
>>> out.tolist(), done
([1.0, 1.0, 1.0], True)
"""
from __future__ import annotations

import atexit
import collections
import os
import sys
import threading
import time

MODES = ("background", "eager", "never")
PROGRESS_AFTER_S = 2.0


def quiet():
    return os.environ.get("FLOWGRAPH_QUIET", "") not in ("", "0")


class Progress:
    """A one-line progress report on stderr, shown once a wait passes
    :data:`PROGRESS_AFTER_S` seconds (unless ``FLOWGRAPH_QUIET=1``)."""

    def __init__(self, start=None):
        self.start = time.perf_counter() if start is None else start
        self.shown = False
        self.last = None
        # On a terminal the line is rewritten in place; elsewhere (a log file) a new
        # line is written only when the kernel being compiled changes.
        self.tty = hasattr(sys.stderr, "isatty") and sys.stderr.isatty()

    def update(self, done, total, label):
        elapsed = time.perf_counter() - self.start
        if elapsed < PROGRESS_AFTER_S or quiet() or not total:
            return
        current = min(done + 1, total)
        if not self.tty and current == self.last:
            return
        self.last = current
        what = f" ({label})" if label else ""
        line = f"flowgraph: compiling kernel {current} of {total}{what} {elapsed:.1f} s"
        sys.stderr.write(f"\r{line}\033[K" if self.tty else line + "\n")
        sys.stderr.flush()
        self.shown = True

    def close(self, total):
        if self.shown:
            elapsed = time.perf_counter() - self.start
            line = f"flowgraph: compiled {total} kernels in {elapsed:.1f} s"
            sys.stderr.write(f"\r{line}\033[K\n" if self.tty else line + "\n")
            sys.stderr.flush()


class KernelSet:
    """The generated kernels of one plan: compiles them (:meth:`compile`) and stages
    each compiled step for the plan to swap in."""

    def __init__(self, plan):
        self.plan = plan
        self.slots = plan._kernel_slots
        self.total = None           # distinct kernels, once prepared
        self.done = 0
        self.label = ""
        self.cancelled = False
        self.complete = False       # every kernel compiled and staged
        self.error = None           # why a background compile stopped, if it failed
        self._finished = threading.Event()

    def finished(self):
        """Is every kernel compiled and staged (nothing more will come)?"""
        return self.complete

    def wait(self, timeout=None):
        """Wait for the compile, with a progress line after a while. True when every
        kernel is in; False on timeout, cancellation or interpreter exit; raises
        if the background compile failed (the plan keeps its ufunc chains)."""
        progress = Progress()
        deadline = None if timeout is None else time.perf_counter() + timeout
        while not self._finished.wait(0.2):
            if self.cancelled or _STOP.is_set():
                return False
            progress.update(self.done, self.total or 0, self.label)
            if deadline is not None and time.perf_counter() > deadline:
                return False
        progress.close(self.total or 0)
        if self.error is not None:
            from .errors import FlowgraphError
            raise FlowgraphError(f"the background compile of a kernel ({self.label}) "
                                 f"failed: {type(self.error).__name__}: {self.error}; "
                                 "the plan runs on NumPy ufunc chains") from self.error
        return self.complete

    def compile(self, progress=None):
        """Prepare every kernel, then compile each distinct one (most used first)
        and stage its steps. Stops early when cancelled."""
        from kernels import bind_call
        from kernels.cache import compile_kernel
        try:
            by_key = collections.defaultdict(list)
            labels = {}
            builders = [slot for slot in self.slots if getattr(slot[0], "builds_step", False)]
            for job, index, unit_steps in self.slots:
                if getattr(job, "builds_step", False):
                    continue
                source, types, args = job()
                by_key[(source, types)].append((index, unit_steps, args))
                labels[(source, types)] = job.label
            self.plan.kernel_sources.update(source for source, _ in by_key)
            self.total = len(by_key) + len(builders)
            keys = sorted(by_key, key=lambda k: -len(by_key[k]))
            # In the background, a child process compiles into the disk cache (this
            # thread just waits for it, holding no GIL) and each kernel is then
            # loaded from there; see BACKEND.
            compiled_elsewhere = (_child_compiles(keys, self) if progress is None
                                  and BACKEND == "process" else iter(keys))
            for key in compiled_elsewhere:
                if self.cancelled or _STOP.is_set():
                    return                 # unfinished: the ufunc chains stay
                self.label = labels[key]
                if progress is not None:
                    progress.update(self.done, self.total, self.label)
                entry = compile_kernel(key[0], "kernel", key[1])
                self.plan._swaps.extend((index, unit_steps, bind_call(entry, args))
                                        for index, unit_steps, args in by_key[key])
                self.done += 1
            # Steps with kernels of their own (cross-entropy rows, the embedding
            # gradient's scatter, the Philox loop): each builder compiles and returns
            # the step, or None to keep the reference step.
            for build, index, unit_steps in builders:
                if self.cancelled or _STOP.is_set():
                    return
                self.label = build.label
                if progress is not None:
                    progress.update(self.done, self.total, self.label)
                step = build()
                if step is not None:
                    self.plan._swaps.append((index, unit_steps, step))
                self.done += 1
            self.complete = True          # (after the last swap is staged)
            self._finished.set()
        except Exception as exc:
            self.error = exc
            self._finished.set()
            raise
        finally:
            self.slots = []           # the jobs hold arrays: let them go
            self.plan._kernel_slots = []
        if progress is not None:
            progress.close(self.total)


def start(plan):
    """Called by a new plan: compile its kernels as its session's config says."""
    if not plan._kernel_slots:
        return
    mode = plan._compile_mode
    if mode == "never":
        plan._kernel_slots = []
        return
    kernels = plan._kernels = KernelSet(plan)
    if mode == "eager":
        kernels.compile(Progress())
        plan._apply_swaps()
    else:
        _worker().submit(kernels)


def cancel(plan):
    """Drop the plan's kernels that have not started compiling (session close)."""
    kernels = getattr(plan, "_kernels", None)
    if kernels is not None and not kernels.finished():
        kernels.cancelled = True


# --- the background thread ---------------------------------------------------------------

# "thread": background kernels compile on the background thread itself; "process":
# in a child process (kernels/compile_child.py) that fills the disk cache, from which
# the thread then loads them. Numba's compiler is mostly Python and holds the GIL, so
# in theory a process, on a second free core, is the better choice. Measured on this
# project's 2-vCPU machine shared with other jobs (load 5-6; README, "Compile time and
# tiered execution"), the thread finished compiling sooner (the char-LSTM's 16 kernels
# in 63 s against 76-80 s; six small kernels in 5.6 s against 11.2 s, the child's
# Numba import included) and slowed the training steps beside it no more (0.71 of
# the lone rate against 0.50), so it is the default; FLOWGRAPH_BACKGROUND=process
# selects the child process.
BACKEND = os.environ.get("FLOWGRAPH_BACKGROUND", "thread")
_CHILDREN = set()


def _child_compiles(keys, kernels):
    """Yield each key once a child process has compiled it into the disk cache
    (every key not yet yielded is yielded at the end if the child fails: then this
    process compiles it)."""
    import pickle
    import subprocess
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    pending = list(keys)
    try:
        child = subprocess.Popen([sys.executable, "-m", "kernels.compile_child"],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, env=env, cwd=root)
    except OSError:
        yield from pending
        return
    _CHILDREN.add(child)
    try:
        child.stdin.write(pickle.dumps(pending))
        child.stdin.close()
        done = set()
        for line in child.stdout:
            index = int(line.split()[0])
            done.add(index)
            yield pending[index]
            if kernels.cancelled or _STOP.is_set():
                return
        yield from (key for k, key in enumerate(pending) if k not in done)
    finally:
        _stop_child(child)
        _CHILDREN.discard(child)


def _stop_child(child, timeout=60.0):
    """Ask the child to stop after its current kernel, and reap it."""
    if child.poll() is None:
        child.terminate()          # handled: it stops between kernels
        try:
            child.wait(timeout)
        except Exception:
            child.kill()
            child.wait()
    for stream in (child.stdin, child.stdout):
        try:
            stream.close()
        except Exception:
            pass

_STOP = threading.Event()


class _Worker:
    def __init__(self):
        self._queue = collections.deque()
        self._ready = threading.Condition()
        self._thread = threading.Thread(target=self._loop, name="flowgraph-compiler",
                                        daemon=True)
        self._thread.start()

    def submit(self, kernels):
        with self._ready:
            self._queue.append(kernels)
            self._ready.notify()

    def _loop(self):
        while not _STOP.is_set():
            with self._ready:
                while not self._queue and not _STOP.is_set():
                    self._ready.wait()
                if _STOP.is_set():
                    return
                kernels = self._queue.popleft()
            if kernels.cancelled:
                continue
            try:
                kernels.compile()
            except Exception:     # kept in kernels.error; the plan keeps its chains
                pass

    def stop(self, timeout=60.0):
        _STOP.set()
        with self._ready:
            for kernels in self._queue:
                kernels.cancelled = True
            self._queue.clear()
            self._ready.notify_all()
        for child in list(_CHILDREN):
            _stop_child(child, timeout)
        self._thread.join(timeout)


_WORKER = []
_WORKER_LOCK = threading.Lock()


def _worker():
    with _WORKER_LOCK:
        if not _WORKER:
            _WORKER.append(_Worker())
            atexit.register(_shutdown)
        return _WORKER[0]


def _shutdown():
    """At exit: no new compile starts, and the one running finishes its files."""
    if _WORKER:
        _WORKER[0].stop()
