"""Sessions: feeds, fetches, variable state, and a cache of plans.

A session turns each distinct (fetches, feeds, feed shapes and dtypes) signature into a
*plan* once — the reference plan (:mod:`flowgraph.executor`) with ``optimize=False``,
the compiled plan (:mod:`flowgraph.compiler`) otherwise — and reuses it, so repeated
``run`` calls do no graph work.

>>> import flowgraph as fg
>>> with fg.Graph().as_default():
...     x = fg.placeholder(fg.float32, (2,), name="x")
...     with fg.Session() as sess:
...         sess.run({"double": x * 2.0}, feed_dict={"x:0": [1.0, 2.0]})
{'double': array([2., 4.], dtype=float32)}
"""
from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass

import numpy as np

from . import shapes as S
from .errors import FeedError, FlowgraphError, describe_op
from .executor import ReferencePlan, RunState, to_host
from .graph import Graph, Operation, Tensor, get_default_graph
from .nest import flatten


@dataclass(frozen=True)
class SessionConfig:
    """How a session runs graphs.

    ``optimize=False`` runs the unoptimized reference path (NumPy per op), the oracle
    the compiled path is tested against. ``check_numerics=True`` raises
    ``NumericsError`` naming the first op that produced a NaN or Inf.

    ``compile`` says when the compiled path's generated (Numba) kernels compile:
    ``"background"`` (default: runs start at once on NumPy ufunc chains and switch to
    each kernel when it is ready), ``"eager"`` (before the first run returns) or
    ``"never"`` (NumPy only). See :mod:`flowgraph.tiering`.

    ``intra_op_parallelism_threads`` (TF1's name): the number of threads BLAS (NumPy's
    matmuls) may use; 0 (the default) leaves the library's own choice. A positive
    value limits BLAS in the whole process when the session is created (BLAS has one
    thread pool per process). One thread is the right choice for small matrices and
    on a machine other jobs keep busy, where a multi-threaded GEMM waits for its
    descheduled threads (on a 2-vCPU AMD EPYC with both vCPUs loaded by other
    processes, a 100x784 @ 784x128 float32 matmul took 0.2 ms on one OpenBLAS thread
    and 36 ms on two).

    >>> import flowgraph as fg
    >>> fg.SessionConfig(compile="eager").compile
    'eager'
    """

    optimize: bool = True
    allow_soft_placement: bool = False
    log_device_placement: bool = False
    check_numerics: bool = False
    compile: str = "background"
    intra_op_parallelism_threads: int = 0

    def __post_init__(self):
        from .tiering import MODES
        if self.compile not in MODES:
            raise ValueError(f"SessionConfig: expected compile to be one of "
                             f"{', '.join(map(repr, MODES))}, found {self.compile!r}")
        n = self.intra_op_parallelism_threads
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"SessionConfig: expected intra_op_parallelism_threads to be "
                             f"an int >= 0 (0: the BLAS library's default), found {n!r}")


# TF1's ConfigProto fields that mean something here, and those accepted for source
# compatibility that change nothing (flowgraph runs one plan step at a time).
_CONFIG_FIELDS = ("allow_soft_placement", "log_device_placement",
                  "intra_op_parallelism_threads")
_CONFIG_ACCEPTED = ("inter_op_parallelism_threads", "use_per_session_threads")


def ConfigProto(**fields):   # noqa: N802  (TF1's name)
    """TF1's ``tf.ConfigProto``: a :class:`SessionConfig` from its field names.

    ``allow_soft_placement``, ``log_device_placement`` and
    ``intra_op_parallelism_threads`` carry over; ``inter_op_parallelism_threads`` and
    ``use_per_session_threads`` are accepted and change nothing (a run executes one
    plan step at a time); any other field (``gpu_options``, ``device_count``...) is a
    ``TypeError`` naming it.

    >>> import flowgraph as fg
    >>> config = fg.ConfigProto(allow_soft_placement=True, intra_op_parallelism_threads=1)
    >>> config.allow_soft_placement, config.intra_op_parallelism_threads
    (True, 1)
    """
    unknown = sorted(set(fields) - set(_CONFIG_FIELDS) - set(_CONFIG_ACCEPTED))
    if unknown:
        raise TypeError(f"ConfigProto: flowgraph does not support the field(s) "
                        f"{', '.join(unknown)}; expected any of "
                        f"{', '.join(_CONFIG_FIELDS + _CONFIG_ACCEPTED)}")
    for name in _CONFIG_ACCEPTED:
        value = fields.pop(name, 0)
        if not isinstance(value, (bool, int, np.integer)) or value < 0:
            raise ValueError(f"ConfigProto: expected {name} to be an int >= 0, "
                             f"found {value!r}")
    return SessionConfig(**fields)


def _limit_blas_threads(n):
    """Limit the process's BLAS thread pools to ``n`` threads (threadpoolctl works on
    whichever BLAS NumPy loaded, after it loaded, where environment variables no
    longer can)."""
    from threadpoolctl import threadpool_limits
    threadpool_limits(limits=int(n), user_api="blas")


def _a(word):
    """``"an int32"``, ``"a float32"``: the article for a dtype's name in messages."""
    return ("an " if word[:1] in "aeiou" else "a ") + word


def _is_fetch_leaf(x):
    return isinstance(x, (Tensor, Operation, str)) or hasattr(x, "_as_tensor")


def _check_session_args(cls_name, graph, config):
    """``TypeError`` for a ``graph`` that is not a Graph or a ``config`` that is not a
    SessionConfig: TF1's ``Session(target, graph, config)`` puts a target string first,
    which here would land in ``graph`` (and the graph in ``config``)."""
    if graph is not None and not isinstance(graph, Graph):
        hint = (" (TF1's first argument is a target; flowgraph has no remote targets: "
                "use Session(graph=..., config=...))" if isinstance(graph, str) else "")
        raise TypeError(f"{cls_name}: expected graph to be an fg.Graph or None, found "
                        f"{type(graph).__name__} {graph!r:.40}{hint}")
    if config is not None and not isinstance(config, SessionConfig):
        raise TypeError(f"{cls_name}: expected config to be an fg.SessionConfig (or "
                        f"fg.ConfigProto) or None, found {type(config).__name__}")


class Session:
    """Runs a graph. Holds its own variable values, set to their initial values when
    the session is created (variables created later start from theirs at first use).

    Concurrent ``run`` calls from several threads are safe; assignments from runs that
    overlap are committed whole, one run after another.
    """

    def __init__(self, graph=None, config=None):
        _check_session_args(type(self).__name__, graph, config)
        self.graph = graph or get_default_graph()
        self.config = config or SessionConfig()
        if self.config.intra_op_parallelism_threads:
            _limit_blas_threads(self.config.intra_op_parallelism_threads)
        self._lock = threading.RLock()
        self._plans = {}
        self._feed_checks = {}
        self._runners = {}
        # Variable -> value. Copy-on-write: replaced whole under the lock, never mutated,
        # so a run's snapshot is just a reference to it.
        self._values = {var: var.initial_value
                        for var in self.graph.get_collection("variables")}
        self._closed = False
        # Random ops: the number of the next run that draws, and this session's salt
        # (the graph seed of ops with no seed at all, so their numbers differ per
        # session, as TF1's). A run that fails gives its number back.
        self._next_run = 0
        self._salt = int(np.random.SeedSequence().generate_state(1)[0]) & 0x7FFFFFFF
        # Callables registered on the graph that prepare each new session, e.g.
        # flowgraph.distributed's broadcast of rank 0's variable values.
        for hook in self.graph.get_collection("session_start_hooks"):
            hook(self)

    # --- context manager and the default session -----------------------------------
    def __enter__(self):
        # TF1: `with Session() as sess:` makes it the default session (for
        # tensor.eval() and op.run()) and its graph the default graph.
        self._entered = getattr(self, "_entered", [])
        scope = _default_session_scope(self)
        graph_scope = self.graph.as_default()
        scope.__enter__()
        graph_scope.__enter__()
        self._entered.append((scope, graph_scope))
        return self

    def __exit__(self, *exc):
        scope, graph_scope = self._entered.pop()
        graph_scope.__exit__(*exc)
        scope.__exit__(*exc)
        self.close()

    def as_default(self):
        """A context manager making this the default session (``tensor.eval()``,
        ``op.run()``, ``fg.get_default_session()``); it does not close the session.

        >>> import flowgraph as fg
        >>> with fg.Graph().as_default():
        ...     sess = fg.Session()
        ...     with sess.as_default():
        ...         float((fg.constant(2.0) * 3.0).eval())
        6.0
        """
        return _default_session_scope(self)

    def close(self):
        """Release the session's state; later ``run`` calls raise. Kernels of its
        plans that have not started compiling in the background are dropped."""
        from . import tiering
        self._closed = True
        for plan in list(self._plans.values()):
            tiering.cancel(plan)
        self._plans.clear()
        self._runners.clear()
        self._values = {}

    # --- resolving fetches and feeds -----------------------------------------------
    def _resolve_fetch(self, item):
        if hasattr(item, "_as_tensor"):
            item = item._as_tensor()
        if isinstance(item, str):
            try:
                item = (self.graph.get_tensor_by_name(item) if ":" in item
                        else self.graph.get_operation_by_name(item))
            except KeyError as exc:
                raise FeedError(f"fetch {item!r}: {exc.args[0]}") from None
        if isinstance(item, (Tensor, Operation)):
            if item.graph is not self.graph:
                op = item if isinstance(item, Operation) else item.op
                raise FlowgraphError(f"fetch {item.name!r} ({describe_op(op)}) belongs to "
                                     "another graph than this session's: run it in a "
                                     "session of its own graph (a `with g.as_default():` "
                                     "missing where it was built?)")
            return item
        raise TypeError(f"expected fetches to be tensors, operations, variables or names, "
                        f"found {type(item).__name__}: {item!r:.60}")

    def _resolve_feed_key(self, key):
        if hasattr(key, "_as_tensor"):
            key = key._as_tensor()
        if isinstance(key, str):
            name = key if ":" in key else f"{key}:0"
            try:
                key = self.graph.get_tensor_by_name(name)
            except KeyError:
                raise FeedError(f"feed key {key!r}: expected the name of a tensor in this "
                                "graph, found none by that name") from None
        if not isinstance(key, Tensor):
            raise FeedError(f"expected feed keys to be tensors or tensor names, found "
                            f"{type(key).__name__}: {key!r:.60}")
        if key.graph is not self.graph:
            raise FeedError(f"feed key {key.name!r} ({describe_op(key.op)}) belongs to "
                            "another graph than this session's")
        return key

    @staticmethod
    def _check_feed_value(tensor, value):
        op = tensor.op
        try:
            arr = np.asarray(value)
        except Exception as exc:
            raise FeedError(f"{describe_op(op)}: could not convert the fed value to an "
                            f"array: {exc}") from None
        if arr.dtype == object or arr.dtype.kind not in "biuf":
            raise FeedError(f"{describe_op(op)}: expected {_a(tensor.dtype.name)} value for "
                            f"'{tensor.name}', found {arr.dtype} ({type(value).__name__})")
        want = tensor.dtype.kind
        got = arr.dtype.kind.replace("u", "i")
        python_ints_for_float = want == "f" and got in "ib" and not isinstance(
            value, (np.ndarray, np.generic))
        if got != want.replace("u", "i") and not python_ints_for_float:
            raise FeedError(f"{describe_op(op)}: expected {_a(tensor.dtype.name)} value for "
                            f"'{tensor.name}', found dtype {arr.dtype.name}")
        if want in "iu" and arr.dtype != tensor.dtype and arr.size:
            # a narrowing cast would wrap around silently: refuse out-of-range values
            info = np.iinfo(tensor.dtype)
            lo, hi = arr.min(), arr.max()
            if lo < info.min or hi > info.max:
                raise FeedError(f"{describe_op(op)}: expected {tensor.dtype.name} values "
                                f"in [{info.min}, {info.max}] for '{tensor.name}', found "
                                f"{lo if lo < info.min else hi}")
        if not S.compatible(tensor.shape, arr.shape):
            expected = S.fmt(tensor.shape)
            if tensor.shape is not None and len(tensor.shape) != arr.ndim:
                detail = f"rank {len(tensor.shape)}, found rank {arr.ndim}"
            else:
                detail = "matching dimensions"
            raise FeedError(f"{describe_op(op)}: expected a value of shape {expected} for "
                            f"'{tensor.name}' ({detail}), found shape {arr.shape}")
        return arr.astype(tensor.dtype, copy=False)

    # --- plans ------------------------------------------------------------------------
    def _plan(self, fetch_tensors, target_ops, feed_tensors, feed_arrays):
        key = (tuple(map(id, fetch_tensors)), tuple(map(id, target_ops)),
               tuple(map(id, feed_tensors)),
               tuple((a.shape, a.dtype.str) for a in feed_arrays))
        plan = self._plans.get(key)
        if plan is None:
            plan = self._build_plan(fetch_tensors, target_ops, feed_tensors, feed_arrays)
            with self._lock:
                self._plans[key] = plan
        return plan

    def _build_plan(self, fetch_tensors, target_ops, feed_tensors, feed_arrays):
        from . import placement, write_conflicts
        from .executor import needed_ops
        roots = [t.op for t in fetch_tensors] + list(target_ops)
        needed = needed_ops(roots, set(feed_tensors))
        # Two independent overwrites of one variable: one would be lost (both paths).
        write_conflicts.check(needed)
        if any(op.device is not None and op.device.startswith("/job:") for op in needed):
            # Ops on remote tasks ("/job:worker/task:N/..."): each MPI rank runs its part.
            from .distributed.partition import PartitionPlan, compile_partition
            if self.config.optimize:
                return compile_partition(self.graph, fetch_tensors, target_ops,
                                         feed_tensors, feed_arrays, self.config)
            return PartitionPlan(self.graph, fetch_tensors, target_ops, feed_tensors,
                                 self.config)
        # Placement first: what follows depends on where ops landed (after soft
        # placement), not on what they asked for.
        chosen = placement.place(fetch_tensors, target_ops, feed_tensors, self.config)
        if self.config.optimize:
            from . import compiler
            return compiler.compile_plan(self.graph, fetch_tensors, target_ops, feed_tensors,
                                         feed_arrays, self.config, chosen)
        return ReferencePlan(self.graph, fetch_tensors, target_ops, feed_tensors,
                             self.config.check_numerics)

    def _initial_value(self, var):
        value = self._values.get(var)
        if value is None:
            with self._lock:
                value = self._values.get(var)
                if value is None:
                    value = var.initial_value
                    self._values = {**self._values, var: value}
        return value

    def _reserve_run(self):
        with self._lock:
            number = self._next_run
            self._next_run += 1
        return number, self._salt

    def _rewind_random_draws(self):
        """Make the next run draw what this session's first run drew (fg.testing's
        finite differences compare runs that must see the same dropout masks)."""
        with self._lock:
            self._next_run = 0

    def _release_run(self, number):
        with self._lock:
            if self._next_run == number + 1:   # no run reserved a later number meanwhile
                self._next_run = number

    def _execute(self, plan, feed_arrays, metadata=None):
        state = RunState(self._values, self._initial_value, self._reserve_run)
        feeds = dict(zip(plan.feed_tensors, feed_arrays))
        try:
            if metadata is None:
                outputs = plan.run(feeds, state)
            else:
                from .explain import run_traced
                outputs = run_traced(plan, feeds, state, metadata)
        except BaseException:
            if state.counter is not None:
                self._release_run(state.counter[0])
            raise
        if state.pending or state.resident:
            with self._lock:
                values = dict(self._values)
                values.update(state.pending)
                for var, (host, device) in state.resident.items():
                    if values.get(var) is host:  # unchanged: keep the device copy
                        values[var] = device
                self._values = values
        return outputs

    def _feed_check(self, tensor):
        """A checker for values fed to ``tensor``: an ndarray of exactly its dtype and a
        fitting shape passes at once; anything else gets the full check."""
        cached = self._feed_checks.get(tensor)
        # Rebuilt when set_shape has refined the tensor's shape since (a new tuple).
        if cached is not None and cached[0] is tensor.shape:
            return cached[1]
        dtype, shape, full = tensor.dtype, tensor.shape, self._check_feed_value
        rank = None if shape is None else len(shape)
        known = () if shape is None else tuple(
            (i, d) for i, d in enumerate(shape) if d is not None)

        def check(value):
            if type(value) is np.ndarray and value.dtype == dtype:
                found = value.shape
                if rank is None or (len(found) == rank
                                    and all(found[i] == d for i, d in known)):
                    return value
            return full(tensor, value)

        self._feed_checks[tensor] = (shape, check)
        return check

    def _runner(self, leaves, feed_keys):
        """``call(*feed_values) -> [value per leaf]`` for flat fetch ``leaves`` and
        ``feed_keys``: everything that does not depend on the fed values is resolved
        once here, so a call checks the feeds, finds the plan by feed shapes and runs it.
        """
        resolved = [self._resolve_fetch(x) for x in leaves]
        feed_tensors = [self._resolve_feed_key(k) for k in feed_keys]
        if len(set(feed_tensors)) != len(feed_tensors):
            raise FeedError("a tensor is fed twice (by object and by name?)")
        fetch_tensors = list(dict.fromkeys(t for t in resolved if isinstance(t, Tensor)))
        target_ops = list(dict.fromkeys(t for t in resolved if isinstance(t, Operation)))
        index = {t: i for i, t in enumerate(fetch_tensors)}
        picks = [index[t] if isinstance(t, Tensor) else None for t in resolved]
        checks = [self._feed_check(t) for t in feed_tensors]
        n_feeds = len(feed_tensors)
        plans = {}  # feed shapes -> plan (dtypes are fixed by the checks)

        def call(*feed_values):
            if self._closed:
                raise FlowgraphError("this session is closed")
            if len(feed_values) != n_feeds:
                raise FeedError(f"expected {n_feeds} feed values "
                                f"({', '.join(t.name for t in feed_tensors)}), found "
                                f"{len(feed_values)}")
            arrays = [check(v) for check, v in zip(checks, feed_values)]
            shapes = tuple(a.shape for a in arrays)
            plan = plans.get(shapes)
            if plan is None:
                plan = plans[shapes] = self._plan(fetch_tensors, target_ops, feed_tensors,
                                                  arrays)
            outs = self._execute(plan, arrays)
            return [None if i is None else _to_user(outs[i]) for i in picks]

        def plan_for(feed_values):
            """``(plan, checked feed arrays)`` for these feed values (builds the plan)."""
            if len(feed_values) != n_feeds:
                raise FeedError(f"expected {n_feeds} feed values, found {len(feed_values)}")
            arrays = [check(v) for check, v in zip(checks, feed_values)]
            shapes = tuple(a.shape for a in arrays)
            plan = plans.get(shapes)
            if plan is None:
                plan = plans[shapes] = self._plan(fetch_tensors, target_ops, feed_tensors,
                                                  arrays)
            return plan, arrays

        def traced(metadata, *feed_values):
            # The untraced `call` above stays as it is: tracing costs nothing there.
            if self._closed:
                raise FlowgraphError("this session is closed")
            plan, arrays = plan_for(feed_values)
            outs = self._execute(plan, arrays, metadata)
            return [None if i is None else _to_user(outs[i]) for i in picks]

        call.plan_for, call.traced = plan_for, traced
        return call

    # --- public API -------------------------------------------------------------------
    def run(self, fetches, feed_dict=None, options=None, run_metadata=None):
        """Run the ops needed for ``fetches`` and return their values.

        ``fetches`` is a tensor, an operation (its result is ``None``), a variable, a
        name, or any nesting of lists, tuples, namedtuples and dicts of them; the
        result has the same structure with NumPy arrays. ``feed_dict`` maps
        placeholders (or any tensor, or names like ``"x:0"``) to values.
        ``options=fg.RunOptions(trace=True)`` records each plan step's start and end
        into ``run_metadata`` (an ``fg.RunMetadata``; see its ``chrome_trace()``).
        """
        if self._closed:
            raise FlowgraphError("this session is closed")
        runner, rebuild, feed_dict = self._runner_for(fetches, feed_dict)
        if options is not None and options.trace and run_metadata is not None:
            values = runner.traced(run_metadata, *feed_dict.values())
        else:
            values = runner(*feed_dict.values())
        return values[0] if rebuild is None else rebuild(values)

    def _runner_for(self, fetches, feed_dict):
        """``(runner, rebuild, feed_dict)`` for a ``run``/``explain`` call."""
        if _is_fetch_leaf(fetches):
            leaves, rebuild = (fetches,), None
        else:
            leaves, rebuild = flatten(fetches, is_leaf=_is_fetch_leaf)
        feed_dict = feed_dict or {}
        # Keyed by the objects themselves (tensors hash by identity, names by value), so
        # a repeated run with the same fetches and feed keys resolves nothing again.
        # The shape epoch: a Tensor.set_shape since changes what a feed may be.
        signature = (tuple(leaves), tuple(feed_dict), self.graph._shape_epoch)
        try:
            runner = self._runners.get(signature)
        except TypeError:  # an unhashable fetch: _runner raises the clear error
            runner = self._runner(leaves, list(feed_dict))
        if runner is None:
            runner = self._runner(leaves, list(feed_dict))
            with self._lock:
                self._runners[signature] = runner
        return runner, rebuild, feed_dict

    def explain(self, fetches, feed_dict=None) -> str:
        """The plan a ``run(fetches, feed_dict)`` would use, as text: one line per
        step with its device, its kind (gemm, fused kernel, ufunc chain, copy,
        send/recv, allreduce, state, reference, ...) and the graph ops it covers, and
        the number of distinct generated kernels. Builds (and caches) the plan; runs
        nothing. The feed values only give the shapes.

        >>> import numpy as np, flowgraph as fg
        >>> with fg.Graph().as_default():
        ...     x = fg.placeholder(fg.float32, (4, 3))
        ...     y = fg.relu(x @ fg.constant(np.ones((3, 2), np.float32)))
        ...     sess = fg.Session(config=fg.SessionConfig(optimize=True))
        ...     print(sess.explain(y, {x: np.zeros((4, 3))}).splitlines()[0])
        CompiledPlan: 2 steps, 1 distinct kernels (1 gemm, 1 fused kernel)
        """
        from .explain import explain
        if self._closed:
            raise FlowgraphError("this session is closed")
        runner, _, feed_dict = self._runner_for(fetches, feed_dict)
        plan, _ = runner.plan_for(list(feed_dict.values()))
        return explain(plan)

    def make_callable(self, fetches, feed_list=()):
        """A function ``f(*feed_values)`` that runs ``fetches`` with the least overhead
        per call: the fetch structure and feeds are resolved once.

        >>> import flowgraph as fg
        >>> with fg.Graph().as_default():
        ...     x = fg.placeholder(fg.float64, ())
        ...     step = fg.Session().make_callable(x + 1.0, [x])
        ...     float(step(2.0))
        3.0
        """
        if _is_fetch_leaf(fetches):
            runner = self._runner([fetches], list(feed_list))
            return lambda *feed_values: runner(*feed_values)[0]
        leaves, rebuild = flatten(fetches, is_leaf=_is_fetch_leaf)
        runner = self._runner(leaves, list(feed_list))
        return lambda *feed_values: rebuild(runner(*feed_values))

    def wait_compiled(self, timeout=None):
        """Block until every plan built so far runs its compiled kernels
        (``SessionConfig(compile="background")``; with the other modes there is
        nothing to wait for). Prints a progress line on stderr while the wait lasts
        over 2 s (``FLOWGRAPH_QUIET=1`` turns it off). Returns False if ``timeout``
        seconds passed first.

        >>> import flowgraph as fg
        >>> with fg.Graph().as_default():
        ...     x = fg.placeholder(fg.float64, (2,))
        ...     with fg.Session() as sess:
        ...         _ = sess.run(fg.exp(x) + x * 3.0, {x: [0.0, 1.0]})
        ...         sess.wait_compiled()
        True
        """
        if self._closed:
            raise FlowgraphError("this session is closed")
        with self._lock:
            plans = list(self._plans.values())
        done = True
        for plan in plans:
            wait = getattr(plan, "wait_compiled", None)
            if wait is not None:
                done = wait(timeout) and done
        return done

    def variable_value(self, var):
        """The session's current value of ``var`` (a copy)."""
        return np.array(to_host(self._initial_value(var)))

    def load(self, var, value):
        """Set ``var`` to ``value`` in this session, without running a graph."""
        arr = np.asarray(value, dtype=var.dtype)
        if arr.shape != tuple(var.shape):
            raise FeedError(f"load into {var.name}: expected shape {var.shape}, found "
                            f"{arr.shape}")
        arr = arr.copy()
        arr.setflags(write=False)
        with self._lock:
            self._values = {**self._values, var: arr}


class _DefaultSessionStack(threading.local):
    def __init__(self):
        self.stack = []


_default_sessions = _DefaultSessionStack()


@contextlib.contextmanager
def _default_session_scope(session):
    _default_sessions.stack.append(session)
    try:
        yield session
    finally:
        # (removed by identity: an InteractiveSession closed inside the block is gone)
        for i in range(len(_default_sessions.stack) - 1, -1, -1):
            if _default_sessions.stack[i] is session:
                del _default_sessions.stack[i]
                break


def get_default_session():
    """The innermost session of a ``with sess.as_default():`` or ``with fg.Session()
    as sess:`` block in this thread (or an open ``InteractiveSession``), else ``None``.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     with fg.Session() as sess:
    ...         fg.get_default_session() is sess
    True
    """
    stack = _default_sessions.stack
    return stack[-1] if stack else None


class InteractiveSession(Session):
    """A session that makes itself the default session (and its graph the default
    graph) from creation until ``close()``, for shells and notebooks (TF1).

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     sess = fg.InteractiveSession()
    ...     float(fg.constant(5.0).eval())
    ...     sess.close()
    5.0
    """

    def __init__(self, graph=None, config=None):
        super().__init__(graph, config)
        self._default_scope = _default_session_scope(self)
        self._default_scope.__enter__()

    def close(self):
        scope, self._default_scope = getattr(self, "_default_scope", None), None
        if scope is not None:
            scope.__exit__(None, None, None)
        super().close()


def run_in_default_session(fetches, feed_dict, session, what):
    """``session.run(fetches, feed_dict)``, the default session when ``session`` is
    None: ``Tensor.eval``, ``Operation.run`` and ``Variable.eval``."""
    session = session or get_default_session()
    if session is None:
        raise ValueError(f"Cannot {what}: no default session is registered. Use `with "
                         f"sess.as_default():` (or `with fg.Session() as sess:`) or pass "
                         f"an explicit session (session=sess)")
    graph = fetches.graph
    if session.graph is not graph:
        raise ValueError(f"Cannot {what}: the session's graph is not the graph of "
                         f"{fetches.name!r}")
    return session.run(fetches, feed_dict)


def _to_user(value):
    """Fetched values are owned by the caller: writable arrays (NumPy scalars for 0-d)."""
    value = np.asarray(value)
    if value.ndim == 0:
        return value[()]
    if not value.flags.writeable or not value.flags.owndata and value.base is not None \
            and not value.base.flags.writeable:
        return value.copy()
    return value


def evaluate_constant(tensor):
    """Evaluate a tensor that depends on no placeholder or variable (used for variable
    initial values given as tensors).
    """
    plan = ReferencePlan(tensor.graph, [tensor], [], [])
    for op in plan.ops:
        if op.primitive.kind == "state":
            raise FlowgraphError(
                f"{describe_op(op)}: an initial value must not depend on variables, "
                f"found {tensor.name} reading it; to start from another variable's "
                f"initial value use its initialized_value() (TF1's spelling)")
    # Random ops in an initial value draw as a session's first run would; unseeded ones
    # take a fresh salt (different numbers each time, as TF1's).
    salt = int(np.random.SeedSequence().generate_state(1)[0]) & 0x7FFFFFFF
    return plan.run({}, RunState({}, lambda v: v.initial_value, lambda: (0, salt)))[0]
