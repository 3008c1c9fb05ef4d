"""The CPU backend's steps: how a compiled CPU plan runs each unit.

- a fused elementwise region: one generated Numba loop (:mod:`kernels.cpu.codegen`,
  compiled now, in the background or never: :mod:`flowgraph.tiering`), a chain of
  NumPy ufunc calls where the cost model (:func:`uses_ufuncs`) says that is faster,
  and the same chain as the interim step until the loop is compiled;
- a node: its registered CPU kernel (BLAS GEMM, reductions, gathers...), variable
  reads and updates, random draws (Philox, bit-identical to the reference), or its
  NumPy reference kernel (never a ``KeyError``).

Every step is a zero-argument callable with its arrays bound. What it reads about an
op type (template, ufunc, cost, commutativity, what explain calls its step) is
declared with the op's primitive (:mod:`flowgraph.primitives`).

>>> from flowgraph.primitives import get_primitive
>>> get_primitive("MatMul").step_kind
'gemm'
"""
from __future__ import annotations

import functools
import math

import numpy as np

from .. import shapes as S
from ..errors import FlowgraphError
from ..executor import run_state_op
from ..ops import get_primitive



class CpuSteps:
    """The step builders of :class:`~flowgraph.plan.CompiledPlan` (the CPU backend's
    lowering table)."""

    def _group_steps(self, group, arrays):
        """A fused region: one generated kernel, or for regions with transcendental
        functions a chain of NumPy ufunc calls over shared scratch buffers (see
        :mod:`kernels.cpu.ufuncs` for the measurements behind that choice).
        """
        outs = self._group_outputs[group]
        if not outs:
            return []
        if uses_ufuncs(group):
            return self._ufunc_steps(group, arrays)
        return [self._interim_step(group, arrays)]

    def _interim_step(self, group, arrays):
        """A region meant for a generated kernel, as NumPy ufunc calls: what runs
        until (or, with ``compile="never"``, instead of) the kernel is compiled.

        Every value goes to scratch first and the outputs are copied out at the end:
        the plan may have given an output the memory of an input (safe for a kernel,
        which loads before it stores, not for a chain), or a second place to go.
        """
        from kernels.cpu.ufuncs import bind, has_ufunc
        outs = self._group_outputs[group]
        local, calls, slots = {}, [], {}
        scratch = self._interim_scratch
        for n in group.nodes:
            shape, dtype = n.shapes[0], n.dtypes[0]
            slot = slots[(dtype.str, shape)] = slots.get((dtype.str, shape), -1) + 1
            out = scratch.get((dtype.str, shape, slot))
            if out is None:
                out = scratch[(dtype.str, shape, slot)] = np.empty(shape, dtype)
            v = (n, 0)
            local[v] = out
            ins = [local[w] if w in local else arrays[w] for w in n.inputs]
            if has_ufunc(n.type):
                calls.append(bind(n.type, n.attrs, out, ins))
            else:     # no ufunc for it: its reference kernel until the loop compiles
                calls.append(self._reference_step(n, ins, [out]))
        copies = [(arrays[v], local[v]) for v in outs]
        copies += [(a, local[v]) for v in outs for a in self._also_arrays.get(v, ())]
        copyto = np.copyto

        def interim_region():
            for call in calls:
                call()
            for dst, src in copies:
                copyto(dst, src)
        return interim_region

    def _kernel_job(self, group, arrays, shape=None):
        """``prepare() -> (source, argument types, arguments)`` for the group's
        generated kernel (:func:`kernels.cpu.codegen.prepare_fused`), run where it
        compiles (it imports Numba)."""
        from kernels.cpu.codegen import FusedSpec
        members = {n: i for i, n in enumerate(group.nodes)}
        ins, index = [], {}
        spec = FusedSpec(0)
        for n in group.nodes:
            operands = []
            for v in n.inputs:
                if v[0] in members:
                    operands.append(("node", members[v[0]]))
                else:
                    if v not in index:
                        index[v] = len(ins)
                        ins.append(v)
                    operands.append(("in", index[v]))
            if n.primitive.commutative:
                # One order for the same arithmetic (values computed in the kernel
                # first, then inputs, each by number): one kernel, not two. Exact:
                # IEEE addition and multiplication are commutative.
                operands.sort(key=lambda ref: (ref[0] == "in", ref[1]))
            spec.nodes.append((n.type, operands, dict(n.attrs), n.dtypes[0].name))
        spec.n_inputs = len(ins)
        spec.input_dtypes = [v[0].dtypes[v[1]].name for v in ins]
        outs = self._group_outputs[group]
        spec.outputs = [members[v[0]] for v in outs]
        shape = group.shape if shape is None else shape
        # A reduction's output, and its second home (a window of a concatenation),
        # has the loop's rank, 1 where reduced.
        bound = [np.broadcast_to(arrays[v], shape) if arrays[v].shape != shape else arrays[v]
                 for v in ins] + [_kept_dims(v[0], arrays[v], shape) for v in outs]
        for v in outs:
            for a in self._also_arrays.get(v, ()):
                spec.outputs.append(members[v[0]])
                bound.append(_kept_dims(v[0], a, shape))
        parents = self._parents
        label = "+".join(dict.fromkeys(n.type for n in group.nodes))

        def prepare():
            from kernels.cpu.codegen import prepare_fused
            return prepare_fused(spec, bound, parents, shape)
        prepare.label = label
        return prepare

    def _ufunc_steps(self, group, arrays):
        from kernels.cpu.ufuncs import bind
        outs = set(self._group_outputs[group])
        local, steps, slots = {}, [], {}
        for n in group.nodes:
            v = (n, 0)
            if v in outs:
                out = arrays[v]
            else:
                key = (n.dtypes[0].str, group.shape, slots.setdefault(
                    (n.dtypes[0].str, group.shape), 0))
                slots[(n.dtypes[0].str, group.shape)] += 1
                out = self._scratch.get(key)
                if out is None:
                    out = self._scratch[key] = np.empty(group.shape, n.dtypes[0])
            local[v] = out
            ins = [local[w] if w in local else arrays[w] for w in n.inputs]
            steps.append(bind(n.type, n.attrs, out, ins))
        return steps

    def _fused_kernel(self, group, arrays, shape=None):
        """The group's generated kernel, compiled now (row-blocked epilogues)."""
        from kernels import bind_call
        from kernels.cache import compile_kernel
        source, types, args = self._kernel_job(group, arrays, shape)()
        self.kernel_sources.add(source)
        return bind_call(compile_kernel(source, "kernel", types), args)

    def _concat_copy_step(self, n, arrays):
        """The parts of a concatenation that are not windows, copied into place; its
        constant parts on the first run only where the layout keeps them there (a root
        in ``_write_once``: storage nothing else writes), and the plan's own arrays are
        the ones bound (row binding passes others)."""
        out = arrays[(n, 0)]
        once = (arrays is getattr(self, "_arrays", None)
                and self._root((n, 0)) in getattr(self, "_write_once", ()))
        pairs, first = [], []
        for w, axis, offset in self._concat_copies[n]:
            dst = out[_along(axis, offset, w[0].shapes[w[1]][axis])]
            src = np.broadcast_to(arrays[w], dst.shape)
            if dst.ndim > 1 and dst.shape[-1] == 1:
                # One column (fold_column_sums_into_matmuls' ones): copied as a 1-D
                # strided run, not row by row (3584 rows: 59 us against a few).
                dst, src = dst[..., 0], src[..., 0]
            (first if once and self._kinds.get(w) == "const" else pairs).append((dst, src))
        copyto = np.copyto
        if not first:
            def copy_parts():
                for dst, src in pairs:
                    copyto(dst, src)
            return copy_parts

        def copy_parts_constants_once():
            # (the flag drops only once the constants are in place)
            if first:
                for dst, src in first:
                    copyto(dst, src)
                first.clear()
            for dst, src in pairs:
                copyto(dst, src)
        return copy_parts_constants_once

    def _node_step(self, n, arrays):
        """``(step, kind)`` for one node (``kind`` as :meth:`explain` shows it)."""
        from kernels import compiles_for, lookup
        from kernels.cpu import build
        ins = [arrays[v] for v in n.inputs]
        outs = [arrays[(n, k)] for k in range(len(n.shapes))]
        if n.kind == "state":
            return self._state_step(n, ins, outs), "state"
        if n.kind == "random":
            return self._random_step(n, ins, outs), "kernel"
        if n.kind == "loop":      # While/If: the body plans follow this plan's config
            from ..loop_step import build as loop_build
            return loop_build(self, n, ins, outs), n.primitive.step_kind
        builder = lookup(n.type, "cpu")
        if self._compile_mode != "eager" and compiles_for(builder, n.attrs, ins, outs):
            # A Numba kernel: the reference kernel runs until it is compiled in the
            # background (tiering), or for good with compile="never".
            step = self._reference_step(n, ins, outs)
            if self._compile_mode == "background":
                step.later = _later(lambda: build(n.type, n.attrs, ins, outs), n.type)
            return step, n.primitive.step_kind
        step = build(n.type, n.attrs, ins, outs)
        if step is not None:
            finish = getattr(step, "finish", None)   # work after the last step (MPI sends)
            if finish is not None:
                self._finishers.append(finish)
            return step, n.primitive.step_kind
        return self._reference_step(n, ins, outs), "reference"

    @staticmethod
    def _reference_step(n, ins, outs):
        """A step running ``n``'s NumPy reference kernel into ``outs``."""
        ref = get_primitive(n.type).ref
        copyto = np.copyto

        def reference_step():
            values = ref(n, *ins)
            if not isinstance(values, tuple):
                values = (values,)
            for out, value in zip(outs, values):
                if np.shape(value) != out.shape:
                    raise FlowgraphError(f"produced shape {np.shape(value)}, expected "
                                         f"{out.shape}")
                copyto(out, value, casting="unsafe")
        return reference_step

    def _state_step(self, n, ins, outs):
        """A variable read or update. Its outputs are stored only where something reads
        them: an optimizer's assignments, run for effect, would otherwise copy every
        updated weight once more per step. (``check_numerics`` checks every output:
        there all are stored.)"""
        holder, op, copyto = self._state, n.origin, np.copyto
        read = getattr(self, "_read_values", None)
        stored = [k for k in range(len(outs)) if read is None or self._check_numerics
                  or (n, k) in read]
        mirror = None      # for a variable whose read buffer keeps its new value
        resident = getattr(self, "_resident", {}).get(n.attrs.get("variable"))
        if resident is not None and (n.type == "Variable" and (n, 0) == resident[0] or
                                     n.type == "Assign" and n.inputs[0] == resident[1]):
            mirror = self._mirrors.setdefault(n.attrs["variable"], [None])
        direct = _direct_state_step(n, ins, outs, holder, bool(stored), mirror)
        if direct is not None:
            return direct
        if len(stored) == len(outs):
            def state_step():
                values = run_state_op(op, ins, holder[0])
                for out, value in zip(outs, values):
                    copyto(out, value)
            return state_step
        pairs = [(outs[k], k) for k in stored]

        def state_step_stored_only():
            values = run_state_op(op, ins, holder[0])
            for out, k in pairs:
                copyto(out, values[k])
        return state_step_stored_only

    def _random_step(self, n, ins, outs):
        # The reference kernel with the Philox rounds in a Numba loop: the same 32-bit
        # words (exact integer arithmetic), converted by the same NumPy code, so the
        # compiled and reference paths draw bit-identical numbers.
        holder, ref, copyto = self._state, get_primitive(n.type).ref, np.copyto

        def step_with(generator):
            if len(outs) > 1:      # a candidate sampler: three outputs of one draw
                def random_step_outputs():
                    values = ref(n, *ins, counter=holder[0].random_counter(),
                                 generator=generator)
                    for out, value in zip(outs, values):
                        copyto(out, value)
                return random_step_outputs

            def random_step():
                copyto(outs[0], ref(n, *ins, counter=holder[0].random_counter(),
                                    generator=generator))
            return random_step

        if self._compile_mode == "eager":
            from kernels.cpu.philox import contiguous_blocks
            return step_with(contiguous_blocks)
        # The NumPy rounds (the same words) until the Numba loop is compiled.
        step = step_with(None)
        if self._compile_mode == "background":
            def with_numba_rounds():
                from kernels.cpu.philox import contiguous_blocks
                contiguous_blocks((0, 0), 0, 1)          # compiles it here, not in a run
                return step_with(contiguous_blocks)
            step.later = _later(with_numba_rounds, "Philox")
        return step


def _direct_state_step(n, ins, outs, holder, stored, mirror=None):
    """A variable read or a plain assignment as the few operations it takes, not
    through :func:`~flowgraph.executor.run_state_op` (its dispatch and checks cost
    0.6-1.1 us a step, 28 steps of an Adam update of 4 weights): ``None`` where the
    general step is needed.

    A read copies the value at the start of the run (``RunState.read``: only a value
    not yet in the run's snapshot, or one held on a device, takes that path). An
    assignment of a value whose static shape and dtype are the variable's (checked
    here, once) stores a read-only copy as pending, which is what ``RunState.write``
    does after its checks. Both keep the semantics of the reference path.

    ``mirror``: for a variable the layout keeps resident (``BufferLayout._resident``:
    the kernel computing its new value writes it over the read buffer, which nothing
    else writes), a one-item list holding the array this plan's assignment committed
    last, while the read buffer still holds its values. The read copies nothing when
    the run's value is that array (committed arrays are never written), and clears
    the mirror before the kernel overwrites the buffer; the assignment sets it. A
    run that fails after the kernel (the session keeps the older value) or a value
    set meanwhile by another plan, ``load`` or a restore is another array: copied."""
    var, copyto, ndarray = n.attrs.get("variable"), np.copyto, np.ndarray
    if n.type == "Variable" and stored and mirror is not None:
        out = outs[0]

        def variable_read_resident():
            state = holder[0]
            value = state.snapshot.get(var)
            if value is None or value is not mirror[0]:
                if value.__class__ is not ndarray:
                    value = state.read(var)
                copyto(out, value)
            mirror[0] = None
        return variable_read_resident
    if n.type == "Variable" and stored:
        out = outs[0]

        def variable_read():
            state = holder[0]
            value = state.snapshot.get(var)
            if value.__class__ is not ndarray:
                value = state.read(var)
            copyto(out, value)
        return variable_read
    if (n.type == "Assign" and ins[0].shape == tuple(var.shape)
            and ins[0].dtype == var.dtype):
        x, out = ins[0], outs[0]

        def assign():
            value = x.copy()   # (resident: x is the read buffer, holding the new value)
            value.flags.writeable = False
            holder[0].pending[var] = value
            if mirror is not None:
                mirror[0] = value
            if stored:
                copyto(out, value)
        return assign
    return None


def _later(build, label):
    """A background job building a plan step whose kernel Numba compiles (the
    :func:`kernels.compiles` builders, the random ops' Philox loop): ``build()``
    returns the step, or ``None`` to keep the one that runs now."""
    build.builds_step = True
    build.label = label
    return build


def uses_ufuncs(group):
    """Run this region as NumPy ufunc calls rather than one generated loop?

    A cost model from measurements on this machine (one core, float32, 64x256 and
    16x64 LSTM cells). A generated loop vectorizes (see :mod:`kernels.cache` and the
    row views of :mod:`kernels.cpu.codegen`): about 0.3 ns per element per array it reads
    or writes, plus per element 1-1.6 ns for each exp, tanh or sigmoid in float32
    (:mod:`kernels.cpu.vmath`) and 12-33 ns in float64 (scalar libm calls). A ufunc call
    costs about 1.2 us plus 0.6 ns per element (NumPy's SIMD loops; sigmoid is four
    calls), plus what the op declares for its NumPy loop (``ufunc_ns``) where NumPy
    has no AVX-512 version of it: float32 ``tanh`` takes 3-4.6 ns per element on an
    AVX2 core, twice the generated loop's. So arithmetic regions are loops; large
    float64 regions full of transcendental functions are ufunc chains. Each op's loop
    cost is what it declares (``cost_ns``), its number of ufunc calls what its ufunc
    makes.
    """
    from kernels.cpu.ufuncs import calls, has_ufunc
    if not all(has_ufunc(n.type) for n in group.nodes):
        return False    # an op with no ufunc entry: the generated loop (never a KeyError)
    members = set(group.nodes)
    operands = len({v for n in group.nodes for v in n.inputs if v[0] not in members})
    elems = math.prod(group.shape)
    per_element = 0.3 * (operands + len(group.nodes) // 2)
    for n in group.nodes:
        per_element += n.primitive.cost_ns[1 if n.dtypes[0] == np.float32 else 0]
    loop_ns = 500.0 + elems * per_element
    ufunc_ns = sum(calls(n.type) for n in group.nodes) * (1200.0 + 0.6 * elems)
    if not _numpy_avx512():
        ufunc_ns += elems * sum(n.primitive.ufunc_ns[1 if n.dtypes[0] == np.float32 else 0]
                                for n in group.nodes)
    return ufunc_ns < loop_ns


@functools.lru_cache(maxsize=None)
def _numpy_avx512():
    """Does NumPy dispatch its AVX-512 (Skylake-X) loops on this CPU? Those include
    SIMD ``exp``, ``log`` and ``tanh``; without them these are the slower loops
    ``ufunc_ns`` declares."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:     # (NumPy 1.x)
        from numpy.core._multiarray_umath import __cpu_features__
    return bool(__cpu_features__.get("AVX512_SKX"))


def _kept_dims(node, array, shape):
    """A fused reduction's output as a view with the loop's rank (1 where reduced)."""
    if node.type != "ReduceSum" or node.attrs.get("keepdims"):
        return array
    axes = S.normalize_axes(node.attrs["axis"], len(shape))
    return np.expand_dims(array, tuple(axes))


def _along(axis, offset, size):
    """The index of ``size`` entries from ``offset`` along ``axis``."""
    return (slice(None),) * axis + (slice(offset, offset + size),)
