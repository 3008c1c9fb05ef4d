"""Row binding: a loop body's plan run straight on the rows of the loop's stacked
arrays, with no copy of a sequence row in or of an emitted row out.

A counted loop (:mod:`flowgraph.loop_step`) runs its body plan once per row. Without
row binding, every iteration copies row ``t`` of each sequence into the body's feed
buffer and each emitted value from the body's buffer into row ``t`` of the loop's
output. Row binding removes those copies: the steps that read such a feed or write such
an emit are built once more for each row, by the plan's own step builders
(:class:`flowgraph.backends.cpu_steps.CpuSteps`), over the plan's arrays with that value
replaced by the row (a view of the stacked array: same shape, dtype and C layout, so
the same generated kernel). Every other step is shared by all rows. The result is one
step list per row, built once per outer plan and length (a few closures per row), and
an iteration runs its row's list.

A value is bound to rows only where replacing its array changes nothing else:

- a feed: pinned in the body plan (its buffer is never pooled or written in place:
  :class:`flowgraph.loop_step.BodyConfig`), not fetched itself or through a view (the
  loop copies fetches out of the plan's buffers);
- an emit: a buffer of its own (not a view, not a loop variable's carried buffer, not
  fetched but as emits, no view of it fetched: an emit of the same value twice is bound
  once and copied from that row), not stored in a second place, and neither it nor a
  window of it produced in place over its producer's input (the kernel's source would
  change), but where that input is bound with it (below);
- the views and windows cut from such a value (a split of the row, the gate gradients
  written straight into their windows of an emitted concatenation) are cut from the
  row in the same way, and the strided ones made known to the code generator as the
  layout does (:attr:`~flowgraph.buffers.BufferLayout._parents`), so that every
  rebuilt kernel is the one the plan compiled;
- every step that reads or writes it is rebuildable: a fused region (generated kernel,
  ufunc chain or interim chain, as the plan runs it), a concatenation's copies, or a
  plain node kernel (not a state, random or loop op, not a node kernel still waiting
  for a background compile).

An emit written in place over its producer's input (a GRU's ``h @ U + b``) is bound
together with the value under it (:func:`in_place_chain`): the product is written into
the row and the addition runs in place there. The loop's captured inputs in C order
(weights, hoisted products) are bound the same way, to one array for every row
(:func:`bindable_captures`): the steps read them where the outer plan keeps them. A
transposed weight (Fortran order) keeps its copy: the matmuls read a C-order copy
faster than they would read it in place.

Anything else keeps its copy. Rows are bound only while the plan's kernels are final
(compiled, or ``compile="never"``); until then, and with ``check_numerics`` (which
checks the plan's own steps), the loop copies.

>>> import numpy as np, flowgraph as fg
>>> with fg.Graph().as_default():
...     xs = fg.placeholder(fg.float64, (None, 2))
...     ys = fg.scan(lambda acc, x: fg.tanh(acc * 0.5 + x) * 2.0, xs,
...                  initializer=fg.zeros((2,), fg.float64))
...     sess = fg.Session(config=fg.SessionConfig(compile="never"))
...     out = sess.run(ys, {xs: np.ones((3, 2))})
...     loop, = [step.counted for plan in sess._plans.values() for step in plan._steps
...              if getattr(step, "counted", None)]
>>> loop.bound        # (sequences read in place, emits written in place)
(1, 0)
>>> [round(float(v), 4) for v in out[:, 0]]    # the emit is the carried acc: copied
[1.5232, 1.8854, 1.9195]
"""
from __future__ import annotations

import numpy as np

from .backends.cpu_steps import _along, uses_ufuncs
from .buffers import _make_view

ENABLED = True
"""Bind loop bodies to rows (tests turn it off to compare against the copying loop)."""

MAX_BOUND_STEPS = 200_000
"""At most this many row-bound steps per loop (rows times rebuilt steps); a longer
loop copies (the closures cost memory and time to build once per length)."""


def kernels_final(plan):
    """Will the plan's steps stay as they are (no compiled kernel still to come)?"""
    kernels = plan._kernels
    return not plan._swaps and (kernels is None or kernels.finished())


def bindable(plan, feeds, fetches):
    """The subset of feed tensors ``feeds`` and fetch positions ``fetches`` (the
    emits) that can be bound to rows (see the module's rules): ``(feed tensors, fetch
    positions)``; positions holding the same value come together (the first is bound,
    the others copy its row)."""
    kinds, root, arrays = plan._kinds, plan._root, plan._arrays
    cut = _cut_from(plan)
    second = {root(c) for places in plan._also_into.values() for c, _, _ in places}
    feed_buffers = [a for a, _ in plan._feed_loads]
    fetched = set(plan._fetch_values)
    ok_feeds = [t for t in feeds if _feed_replaceable(plan, t, cut, second, fetched)]
    # a value fetched elsewhere too (a loop variable's new value, a sum) stays put
    elsewhere = {v for k, v in enumerate(plan._fetch_values) if k not in set(fetches)}
    ok_fetches, seen = [], set()
    for k in fetches:
        v = plan._fetch_values[k]
        if v in seen:                 # emitted twice: the first is bound
            ok_fetches.append(k)
            continue
        a = arrays[v]
        chain = in_place_chain(plan, v, cut)
        family = [v] + cut.get(v, []) + chain
        if (kinds.get(v) != "buffer" or v in elsewhere or v in second
                or any(w in fetched for w in cut.get(v, ()))
                or v in plan._also_arrays or not a.flags.c_contiguous or not a.nbytes
                or any(np.shares_memory(a, b) for b in feed_buffers)
                or any(np.shares_memory(arrays[w], arrays[u]) for w in family
                       for u in _producer_inputs(w)
                       if u in arrays and root(u) != v and u not in chain)):
            continue
        seen.add(v)
        ok_fetches.append(k)
    # every step touching a bound value (or a view or window of one, or a value it is
    # written in place over) must be rebuildable
    family_of = {}
    for v in [plan._feed_values[t] for t in ok_feeds] + [plan._fetch_values[k]
                                                          for k in ok_fetches]:
        for w in [v] + cut.get(v, []) + in_place_chain(plan, v, cut):
            family_of[w] = v
    blocked = set()
    for kind, unit, _, _ in plan._unit_spans:
        touched = {family_of[w] for w in _values_of(plan, kind, unit) if w in family_of}
        if touched and not _rebuildable(plan, kind, unit):
            blocked |= touched
    return ([t for t in ok_feeds if plan._feed_values[t] not in blocked],
            [k for k in ok_fetches if plan._fetch_values[k] not in blocked])


def in_place_chain(plan, v, cut=None):
    """The values that ``v`` is written in place over, directly or not: producer
    inputs whose array is exactly ``v``'s (a GRU's ``h @ U + b_u``: the addition
    writes over the product). Bound with ``v`` to the same row, the product is written
    into the row and the addition runs in place there, as in the plan (the same
    kernels). Only plain buffers read by nobody else that way: none fetched, stored
    twice, fed, or with a view or window cut from it; otherwise ``[]`` for a value
    that shares memory with its producer's input some other way (no binding then)."""
    cut = _cut_from(plan) if cut is None else cut
    arrays, kinds = plan._arrays, plan._kinds
    fetched = set(plan._fetch_values)
    feeds = set(plan._feed_values.values())
    chain, todo = [], [v]
    while todo:
        w = todo.pop()
        a = arrays[w]
        for u in _producer_inputs(w):
            b = arrays.get(u) if u in arrays else None
            if (b is None or u in chain or u == v or b.shape != a.shape
                    or b.strides != a.strides or b.dtype != a.dtype
                    or b.__array_interface__["data"][0] != a.__array_interface__["data"][0]):
                continue
            if (kinds.get(u) != "buffer" or u in fetched or u in feeds or cut.get(u)
                    or u in plan._also_arrays or u in plan._also_into):
                return []
            chain.append(u)
            todo.append(u)
    return chain


def _feed_replaceable(plan, t, cut, second, fetched):
    """May feed ``t``'s buffer be replaced by another array in the plan's steps? It
    is pinned (never pooled, never written in place), a buffer of its own, stored in
    no second place, and neither it nor a view of it is fetched (the loop copies
    fetches out of the plan's buffers)."""
    v = plan._feed_values.get(t)
    return (v is not None and t in plan._pinned_feeds and plan._kinds.get(v) == "buffer"
            and v not in second and v not in fetched
            and not any(w in fetched for w in cut.get(v, ())))


def bindable_captures(plan, captures, stacked):
    """The captured feeds that the body's steps can read straight from the loop's
    input, with no copy into the body plan's buffer per loop run: ``captures`` lists
    ``(feed tensor, the loop's input array)``, ``stacked`` the loop's sequences and
    outputs (an input sharing memory with one keeps its copy: an output is written
    while the body runs, and a kernel's arguments cut from a sequence or an output
    move row by row in :func:`bind_rows`). Returns the tensors that can be bound.

    Besides the feed rules (:func:`_feed_replaceable`), the input must lay out as
    the buffer does (shape, dtype, C order: the same generated kernels), and every
    step touching it must be rebuildable. Not a transposed weight (a 2-D array in
    Fortran order, the backward loop's ``dz @ W[:H].T``), though BLAS takes either
    order: its GEMMs read it 1.1-1.4x slower than a C-order copy (OpenBLAS sgemm,
    one AVX-512 EPYC core: 64x1024 @ 1024x256 in 520 us vs 370 us, 16x256 @ 256x64
    7.0 vs 6.2 us), every iteration, where the copy is made once per loop run."""
    cut = _cut_from(plan)
    second = {plan._root(c) for places in plan._also_into.values() for c, _, _ in places}
    fetched = set(plan._fetch_values)
    units = [(kind, unit, _values_of(plan, kind, unit)) for kind, unit, _, _ in
             plan._unit_spans]
    ok = []
    for t, outer in captures:
        if not _feed_replaceable(plan, t, cut, second, fetched):
            continue
        v = plan._feed_values[t]
        buf = plan._arrays[v]
        if (not isinstance(outer, np.ndarray) or outer.shape != buf.shape
                or outer.dtype != buf.dtype or not outer.nbytes
                or any(np.shares_memory(outer, o) for o in stacked)):
            continue
        family = {v, *cut.get(v, ())}
        touching = [(kind, unit) for kind, unit, values in units if values & family]
        if not all(_rebuildable(plan, kind, unit) for kind, unit in touching):
            continue
        if not outer.flags.c_contiguous:
            continue
        ok.append(t)
    return ok


def bind_rows(plan, stacked, order, fixed=None, last_dead=()):
    """One step list per row: ``stacked`` maps each bound value (from
    :func:`bindable`'s choices) to the stacked array whose rows replace it (rows of the
    same shape, dtype and C layout), ``order`` lists the rows in iteration order.
    Returns a list of step tuples, or None when the loop is too long for
    :data:`MAX_BOUND_STEPS`. The last row runs no step of the units numbered in
    ``last_dead`` (indices into the plan's unit spans: :func:`dead_units`).

    A generated kernel is prepared once, for the first row; every other row calls the
    same compiled kernel on the same arguments moved by whole rows (:func:`_moved`:
    the arguments cut from a stacked array lie at the same place in every row). The
    other steps (GEMMs, ufunc chains, copies) are built again for each row.

    ``fixed`` maps values to arrays that replace them in every row (the loop's
    inputs bound by reference: :func:`bindable_captures`); a step touching only
    those is built once and shared by the rows."""
    if not order:
        return []
    fixed = fixed or {}
    cut = _cut_from(plan)
    # a value written in place over another: both lie in the row
    stacked = dict(stacked)
    for v, a in list(stacked.items()):
        for u in in_place_chain(plan, v, cut):
            stacked[u] = a
    by_row = {w for v in stacked for w in [v] + cut.get(v, [])}
    touched = by_row | {w for v in fixed for w in [v] + cut.get(v, [])}
    spans = [(kind, unit, start, count) for kind, unit, start, count in plan._unit_spans
             if _values_of(plan, kind, unit) & touched]
    per_row = [bool(_values_of(plan, kind, unit) & by_row) for kind, unit, _, _ in spans]
    if len(order) * sum(count for (*_, count), r in zip(spans, per_row) if r) \
            > MAX_BOUND_STEPS:
        return None
    if not _steps_are_units(plan):
        return None          # (rows are built unit by unit: else copy everything)
    from kernels import bind_call
    from kernels.cpu.codegen import overlap_pattern
    base = [plan._steps[start:start + count] for *_, start, count in plan._unit_spans]
    position = {(kind, unit): j for j, (kind, unit, _, _) in enumerate(plan._unit_spans)}
    kernels = {}             # span -> (kernel, first row's arguments, where they lie,
    #                          which of them overlap: codegen.overlap_pattern)
    recheck = _stacked_overlap(stacked)
    shared = {}              # span -> its steps, for a span no row changes
    first, last = order[0], order[-1]
    out = []
    for row in order:
        arrays, parents = _derive(plan, {**fixed, **{v: a[row, ...]
                                                     for v, a in stacked.items()}}, cut)
        segments = list(base)      # each unit's steps (every step is some unit's)
        for i in range(len(spans)):
            kind, unit, start, count = spans[i]
            j = position[(kind, unit)]
            if i in shared:
                segments[j] = shared[i]
                continue
            if i in kernels:
                kernel, args, places, pattern = kernels[i]
                moved = _moved(args, places, row - first)
                # (the kernel may promise LLVM that what it writes overlaps no other
                # argument, checked on the first row's: the moved arguments must
                # overlap as those did, or this row gets a kernel of its own)
                if not recheck or overlap_pattern(moved) == pattern:
                    segments[j] = [bind_call(kernel, moved)]
                    continue
            # the windows and views cut from the row are known to the kernels' code
            # generator (it indexes their parent) while this row's steps are built only
            plan._parents.update(parents)
            try:
                if kind == "group" and _generated(plan, unit):
                    kernel, args = _kernel(plan, unit, arrays)
                    if i not in kernels:
                        kernels[i] = (kernel, args, _places(args, stacked.values()),
                                      overlap_pattern(args))
                    rebuilt = [bind_call(kernel, args)]
                else:
                    rebuilt = _rebuild(plan, kind, unit, arrays)
                segments[j] = rebuilt
                if not per_row[i]:
                    shared[i] = rebuilt
            finally:
                for key in parents:
                    del plan._parents[key]
        dead = last_dead if row == last else ()
        out.append(tuple(step for j, unit_steps in enumerate(segments) if j not in dead
                         for step in unit_steps))
    return out


def _stacked_overlap(stacked):
    """Do two of the ``stacked`` arrays share memory (by bounds)?

    Moving a row moves each kernel argument cut from a stacked array along that
    array, and no other argument shares memory with one (:func:`_places`): unless
    two stacked arrays share memory, the arguments of every row overlap as the first
    row's do, and need no check per row (about 40 us for a 13-array kernel)."""
    distinct = list({id(a): a for a in stacked.values()}.values())
    return any(np.may_share_memory(a, b) for k, a in enumerate(distinct)
               for b in distinct[:k])


def last_steps(plan, dead):
    """The plan's own steps without those of the units numbered in ``dead`` (the last
    iteration of a loop whose rows are not bound: :func:`dead_units`)."""
    if not _steps_are_units(plan):
        return tuple(plan._steps)     # (steps are dropped by unit: else run all)
    return tuple(step for j, (*_, start, count) in enumerate(plan._unit_spans)
                 if j not in dead for step in plan._steps[start:start + count])


def _steps_are_units(plan):
    """Does every step of the plan belong to one of its unit spans (so that a row's
    steps can be built, or dropped, unit by unit)?"""
    return sum(count for *_, count in plan._unit_spans) == len(plan._steps)


def dead_units(plan, needed):
    """The units whose work no fetch in positions ``needed`` depends on: indices into
    the plan's unit spans. A loop's last iteration skips them: the new value of a
    loop variable that nothing reads after the loop (the backward loop's gradient
    with respect to the initial state, ``dz @ W[:H].T`` on the last row) is not
    computed.

    Walks the units backwards from the needed fetches over values (a view or window
    counts as the buffer it is cut from; a value a kernel also stores into a second
    concatenation counts as written there too). Only fused regions and pure node
    kernels may be dead; state, random and loop ops always run."""
    root = plan._root
    needed_roots = {root(plan._fetch_values[k]) for k in needed}
    dead = set()
    for j in reversed(range(len(plan._unit_spans))):
        kind, unit, _, _ = plan._unit_spans[j]
        values = _values_of(plan, kind, unit)
        if kind == "group":
            writes = set(plan._group_outputs[unit])
        elif (kind == "node" and unit.primitive.pure and unit.kind not in (
                "loop", "state", "random")):
            writes = {(unit, k) for k in range(len(unit.shapes))}
        else:
            needed_roots |= {root(v) for v in values}
            continue
        targets = {root(w) for w in writes} | {
            root(c) for w in writes for c, _, _ in plan._also_into.get(w, ())}
        if targets & needed_roots:
            needed_roots |= {root(v) for v in values - writes}
        else:
            dead.add(j)
    return dead


def _generated(plan, group):
    """Does the plan run ``group`` as its compiled generated kernel?"""
    return plan._kernels is not None and not uses_ufuncs(group)


def _kernel(plan, group, arrays):
    """``(compiled kernel, arguments)`` of ``group`` over ``arrays`` (what
    ``CompiledPlan._fused_kernel`` binds)."""
    from kernels.cache import compile_kernel
    source, types, args = plan._kernel_job(group, arrays)()
    plan.kernel_sources.add(source)
    return compile_kernel(source, "kernel", types), args


def _places(args, stacked):
    """For each kernel argument cut from one of the ``stacked`` arrays, where it lies
    in it (:func:`_moved`); None for the others (plan buffers, loop bounds)."""
    places = []
    for a in args:
        where = None
        if isinstance(a, np.ndarray):
            for s in stacked:
                if np.shares_memory(a, s):
                    offset = a.__array_interface__["data"][0] - s.__array_interface__[
                        "data"][0]
                    if (a.flags.c_contiguous and a.dtype == s.dtype
                            and offset % a.itemsize == 0):
                        # a run of the flat array (the common case: a cheap slice)
                        where = ("flat", s.reshape(-1), offset // a.itemsize,
                                 s.strides[0] // a.itemsize)
                    else:
                        where = ("strided", s, offset, s.strides[0])
                    break
        places.append(where)
    return places


def _moved(args, places, rows):
    """``args`` with every argument cut from a stacked array moved by ``rows`` rows of
    it: the same shape, strides and dtype (so the same kernel), another row."""
    moved = []
    for a, where in zip(args, places):
        if where is not None:
            how, s, offset, row = where
            if how == "flat":
                start = offset + rows * row
                a = s[start:start + a.size].reshape(a.shape)
            else:
                a = np.ndarray(a.shape, a.dtype, buffer=s, offset=offset + rows * row,
                               strides=a.strides)
        moved.append(a)
    return tuple(moved)


def _cut_from(plan):
    """``{value: [views and windows cut from it, directly or not, bases first]}``."""
    kinds, root = plan._kinds, plan._root
    cut = {}
    for w in plan._arrays:                 # (in the order the layout made them)
        if kinds[w] in ("view", "window"):
            cut.setdefault(root(w), []).append(w)
    return cut


def _derive(plan, replace, cut):
    """The plan's arrays with ``replace`` in place, and every view and window cut from
    a replaced value cut from its replacement; and ``{id: parent}`` of the strided
    ones (as the layout records them)."""
    arrays = _Overlay(plan._arrays, replace)
    parents, keep = {}, []

    def array_of(w):
        if w in replace or w not in plan._kinds or plan._kinds[w] not in ("view", "window"):
            return arrays[w]
        if w in derived:
            return derived[w]
        n, k = w
        if plan._kinds[w] == "window":
            c, axis, offset = plan._window_of[w]
            base = array_of(c)
            a = base[_along(axis, offset, n.shapes[k][axis])]
            if not a.flags.c_contiguous:
                parents[id(a)] = base
        else:
            base = array_of(n.inputs[0])
            a = _make_view(n, k, base)
            if n.type != "Reshape":
                parents[id(a)] = base
        keep.append(a)                      # (alive while its id is in parents)
        derived[w] = a
        return a

    derived = {}
    for v in replace:
        for w in cut.get(v, ()):
            arrays[w] = array_of(w)
    arrays.keep = keep
    return arrays, parents


class _Overlay:
    """The plan's arrays with some values' arrays replaced (a row's), as the step
    builders read them (``arrays[value]``); not a copy of the plan's."""

    __slots__ = ("base", "replaced", "keep")

    def __init__(self, base, replaced):
        self.base, self.replaced, self.keep = base, dict(replaced), []

    def __getitem__(self, v):
        a = self.replaced.get(v)
        return self.base[v] if a is None else a

    def __setitem__(self, v, a):
        self.replaced[v] = a

    def __contains__(self, v):
        return v in self.replaced or v in self.base

    def get(self, v, default=None):
        return self[v] if v in self else default


def _values_of(plan, kind, unit):
    """The values a unit's steps read or write."""
    if kind == "group":
        members = set(unit.nodes)
        return ({v for n in unit.nodes for v in n.inputs if v[0] not in members}
                | set(plan._group_outputs[unit]))
    return set(unit.inputs) | {(unit, k) for k in range(len(unit.shapes))}


def _producer_inputs(v):
    """The values the unit computing ``v`` reads (its fused region's, if any)."""
    group = getattr(v[0], "group", None)
    if group is None:
        return list(v[0].inputs)
    members = set(group.nodes)
    return [w for n in group.nodes for w in n.inputs if w[0] not in members]


def _rebuildable(plan, kind, unit):
    if kind == "group":
        return True
    # pure ops only: not state, random draws, loops, communication
    if kind != "node" or not unit.primitive.pure or unit.kind == "loop":
        return False
    if unit in plan._concat_copies:
        return True
    from kernels import lookup
    builder = lookup(unit.type, "cpu")     # None: its reference kernel
    # a Numba node kernel outside eager mode is swapped in by tiering: not rebuilt
    return not (getattr(builder, "compiles", False) and plan._compile_mode != "eager")


def _rebuild(plan, kind, unit, arrays):
    """The unit's steps over ``arrays``, as the plan now runs it."""
    if kind == "group":
        if uses_ufuncs(unit):
            return plan._ufunc_steps(unit, arrays)
        if plan._kernels is not None:          # compiled (kernels_final)
            return [plan._fused_kernel(unit, arrays)]
        return plan._group_steps(unit, arrays)  # compile="never": the ufunc chain
    if unit in plan._concat_copies:
        return [plan._concat_copy_step(unit, arrays)]
    step, _ = plan._node_step(unit, arrays)
    if getattr(step, "finish", None) is not None:
        raise AssertionError("row binding rebuilt a step with a finisher")
    return [step]
