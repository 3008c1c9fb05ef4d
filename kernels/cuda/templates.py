"""Source templates of the non-elementwise CUDA kernels.

Each entry is Python source of one ``numba.cuda`` kernel with its compile-time
constants (block size, tile edge, element type, sum or max) as ``{placeholders}``.
:func:`kernels.cuda.codegen.load_kernel` fills them in, writes the source to the
flowgraph cache directory and compiles it lazily with numba's on-disk cache, exactly
as for the fused elementwise kernels. Every kernel loops grid-stride, so its launch
size (:mod:`kernels.cuda.runtime`) never changes its result.

>>> "def strided_copy(" in SOURCES["strided_copy"]
True
"""
from __future__ import annotations

SOURCES = {
    # dst[dst_off + sum(q_d * dst_st[d])] = src[src_off + sum(q_d * src_st[d])] over the
    # index space `shape`: transpose, broadcast, slices, concat and split.
    "strided_copy": '''
def strided_copy(n, shape, src, src_off, src_st, dst, dst_off, dst_st):
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        r = i
        so = src_off
        do = dst_off
        for d in range(len(shape) - 1, -1, -1):
            q = r % shape[d]
            r //= shape[d]
            so += q * src_st[d]
            do += q * dst_st[d]
        dst[do] = src[so]
''',
    "fill": '''
def fill(n, out, value):
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        out[i] = value
''',
    # Sums, products (is_prod) or maxima (neither).
    # One block per output element (grid-stride over outputs); the block's threads
    # split the reduced elements and combine them in shared memory.
    "reduce": '''
SHARED_DTYPE = _rt.shared_dtype("{dtype}")


def reduce(n_out, n_red, keep_shape, keep_st, red_shape, red_st, x, out, init):
    buf = cuda.shared.array({threads}, SHARED_DTYPE)
    tid = cuda.threadIdx.x
    for o in range(cuda.blockIdx.x, n_out, cuda.gridDim.x):
        r = o
        base = 0
        for d in range(len(keep_shape) - 1, -1, -1):
            q = r % keep_shape[d]
            r //= keep_shape[d]
            base += q * keep_st[d]
        acc = init
        for j in range(tid, n_red, {threads}):
            r = j
            off = base
            for d in range(len(red_shape) - 1, -1, -1):
                q = r % red_shape[d]
                r //= red_shape[d]
                off += q * red_st[d]
            v = x[off]
            if {is_sum}:
                acc += v
            elif {is_prod}:
                acc *= v
            elif v > acc or v != v:  # max, NaN wins as in NumPy
                acc = v
        buf[tid] = acc
        cuda.syncthreads()
        s = {threads} // 2
        while s > 0:
            if tid < s:
                if {is_sum}:
                    buf[tid] += buf[tid + s]
                elif {is_prod}:
                    buf[tid] *= buf[tid + s]
                elif buf[tid + s] > buf[tid] or buf[tid + s] != buf[tid + s]:
                    buf[tid] = buf[tid + s]
            cuda.syncthreads()
            s //= 2
        if tid == 0:
            out[o] = buf[0]
        cuda.syncthreads()
''',
    # One thread per output element, looping over its reduced elements: no shared
    # memory or barriers; chosen when there are at least as many outputs as elements
    # per output (bias gradients, row sums), where it keeps every thread busy and
    # neighbouring threads read neighbouring addresses.
    "reduce_rows": '''
def reduce_rows(n_out, n_red, keep_shape, keep_st, red_shape, red_st, x, out, init):
    for o in range(cuda.grid(1), n_out, cuda.gridsize(1)):
        r = o
        base = 0
        for d in range(len(keep_shape) - 1, -1, -1):
            q = r % keep_shape[d]
            r //= keep_shape[d]
            base += q * keep_st[d]
        acc = init
        for j in range(n_red):
            r = j
            off = base
            for d in range(len(red_shape) - 1, -1, -1):
                q = r % red_shape[d]
                r //= red_shape[d]
                off += q * red_st[d]
            v = x[off]
            if {is_sum}:
                acc += v
            elif {is_prod}:
                acc *= v
            elif v > acc or v != v:  # max, NaN wins as in NumPy
                acc = v
        out[o] = acc
''',
    # Tiled shared-memory matmul with register blocking. A block of (T x T) threads
    # computes one (T*R x T*R) output tile at a time (grid-stride over tiles and
    # batches); each thread accumulates R x R outputs, rows ty + i*T and columns
    # tx + j*T, so that its stores are coalesced across tx. Per K step of BK, the
    # block stages an A tile (BM x BK, stored k-major) and a B tile (BK x BN) in
    # shared memory; `ta`/`tb` read the operands transposed in place.
    "matmul": '''
SHARED_DTYPE = _rt.shared_dtype("{dtype}")
T = {threads}
R = {regs}
BK = {bk}
BM = T * R
A_LOADS = (BM * BK) // (T * T)


def matmul(a, b, out, M, N, K, ta, tb, a_bs, b_bs, nbatch, zero):
    sa = cuda.shared.array((BK, BM), SHARED_DTYPE)
    sb = cuda.shared.array((BK, BM), SHARED_DTYPE)
    acc = cuda.local.array((R, R), SHARED_DTYPE)
    areg = cuda.local.array(R, SHARED_DTYPE)
    breg = cuda.local.array(R, SHARED_DTYPE)
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    tid = ty * T + tx
    tiles_m = (M + BM - 1) // BM
    tiles_n = (N + BM - 1) // BM
    for z in range(cuda.blockIdx.z, nbatch, cuda.gridDim.z):
        a0 = z * a_bs
        b0 = z * b_bs
        for bi in range(cuda.blockIdx.y, tiles_m, cuda.gridDim.y):
            for bj in range(cuda.blockIdx.x, tiles_n, cuda.gridDim.x):
                row0 = bi * BM
                col0 = bj * BM
                for i in range(R):
                    for j in range(R):
                        acc[i, j] = zero
                for k0 in range(0, K, BK):
                    for l in range(A_LOADS):
                        idx = tid + l * T * T
                        # A: consecutive threads take consecutive k (row-major A) ...
                        r = idx // BK
                        k = idx % BK
                        row = row0 + r
                        kk = k0 + k
                        if row < M and kk < K:
                            sa[k, r] = a[a0 + (kk * M + row if ta else row * K + kk)]
                        else:
                            sa[k, r] = zero
                        # ... B: consecutive threads take consecutive columns.
                        k = idx // BM
                        c = idx % BM
                        col = col0 + c
                        kk = k0 + k
                        if kk < K and col < N:
                            sb[k, c] = b[b0 + (col * K + kk if tb else kk * N + col)]
                        else:
                            sb[k, c] = zero
                    cuda.syncthreads()
                    for k in range(BK):
                        for i in range(R):
                            areg[i] = sa[k, ty + i * T]
                        for j in range(R):
                            breg[j] = sb[k, tx + j * T]
                        for i in range(R):
                            for j in range(R):
                                acc[i, j] += areg[i] * breg[j]
                    cuda.syncthreads()
                for i in range(R):
                    row = row0 + ty + i * T
                    if row < M:
                        for j in range(R):
                            col = col0 + tx + j * T
                            if col < N:
                                out[z * M * N + row * N + col] = acc[i, j]
''',
    # An index outside [0, nrows) is recorded in err (code, value) and never read.
    "gather": '''
def gather(n, row, nrows, params, indices, out, err, code):
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        k = indices[i // row]
        if k < 0 or k >= nrows:
            err[1] = k
            err[0] = code
            out[i] = 0
        else:
            out[i] = params[k * row + i % row]
''',
    "gather_grad": '''
def gather_grad(n, row, nrows, g, indices, out, err, code):
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        k = indices[i // row]
        if k < 0 or k >= nrows:
            err[1] = k
            err[0] = code
        else:
            cuda.atomic.add(out, k * row + i % row, g[i])
''',
    # ArgMax/ArgMin along one axis of x seen as [outer, n, inner]: a thread per output
    # scans its n elements; the first best wins, and the first NaN (as in NumPy).
    "arg_reduce": '''
def arg_reduce(n_out, n, inner, x, out):
    for o in range(cuda.grid(1), n_out, cuda.gridsize(1)):
        base = (o // inner) * n * inner + o % inner
        best = x[base]
        bi = 0
        for j in range(1, n):
            if best != best:
                break
            v = x[base + j * inner]
            if v {better} best or v != v:
                best = v
                bi = j
        out[o] = bi
''',
    # Cumsum (combine "+") and Cumprod ("*"): a thread per line along the axis (`inner`
    # apart), combined in order, as the reference does (so the results agree bit for
    # bit); `exclusive` stores the result before the element is combined, `reverse`
    # walks the line from its end; `zero` is the identity (0 for sums, 1 for products).
    "cumsum": '''
def cumsum(n_lines, n, inner, x, out, exclusive, reverse, zero):
    for o in range(cuda.grid(1), n_lines, cuda.gridsize(1)):
        base = (o // inner) * n * inner + o % inner
        acc = zero
        for j in range(n):
            k = n - 1 - j if reverse else j
            idx = base + k * inner
            v = x[idx]
            if exclusive:
                out[idx] = acc
                acc = acc {combine} v
            else:
                acc = acc {combine} v
                out[idx] = acc
''',
    # Softmax cross-entropy over class indices: a thread per row for the loss and the
    # softmax, a thread per element for its gradient; a bad label is recorded in err
    # and never read.
    "sparse_xent": '''
def sparse_xent(rows, c, x, labels, loss, probs, err, code):
    for i in range(cuda.grid(1), rows, cuda.gridsize(1)):
        k = labels[i]
        if k < 0 or k >= c:
            err[1] = k
            err[0] = code
            loss[i] = 0
        else:
            top = x[i * c]
            for j in range(1, c):
                v = x[i * c + j]
                if v > top:
                    top = v
            total = 0.0
            for j in range(c):
                e = math.exp(x[i * c + j] - top)
                probs[i * c + j] = e
                total += e
            for j in range(c):
                probs[i * c + j] = probs[i * c + j] / total
            loss[i] = math.log(total) + top - x[i * c + k]
''',
    "dense_xent": '''
def dense_xent(rows, c, x, labels, loss, probs):
    for i in range(cuda.grid(1), rows, cuda.gridsize(1)):
        top = x[i * c]
        for j in range(1, c):
            v = x[i * c + j]
            if v > top:
                top = v
        total = 0.0
        for j in range(c):
            e = math.exp(x[i * c + j] - top)
            probs[i * c + j] = e
            total += e
        weight = 0.0
        dot = 0.0
        for j in range(c):
            probs[i * c + j] = probs[i * c + j] / total
            weight += labels[i * c + j]
            dot += labels[i * c + j] * x[i * c + j]
        loss[i] = weight * (math.log(total) + top) - dot
''',
    "sparse_xent_grad": '''
def sparse_xent_grad(n, c, probs, labels, g, out, err, code):
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        r = i // c
        k = labels[r]
        if k < 0 or k >= c:
            err[1] = k
            err[0] = code
            out[i] = 0
        else:
            v = g[r] * probs[i]
            if i - r * c == k:
                v -= g[r]
            out[i] = v
''',
    "one_hot": '''
def one_hot(n, depth, indices, out):
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        out[i] = 1 if indices[i // depth] == i % depth else 0
''',
    # ExtractPatches (im2col): a thread per patch element (b, oy, ox, tap, ch), zero
    # outside the image. PatchesGrad (col2im): a thread per image element, summing the
    # patch elements that read it, taps in increasing order (the reference's order;
    # no atomics).
    "extract_patches": '''
def extract_patches(n_out, x, out, h, w, c, oh, ow, kh, kw, sh, sw, dh, dw, pt, pl, zero):
    for e in range(cuda.grid(1), n_out, cuda.gridsize(1)):
        ch = e % c
        t = (e // c) % (kh * kw)
        p = e // (c * kh * kw)
        ox = p % ow
        oy = (p // ow) % oh
        b = p // (ow * oh)
        r = oy * sh - pt + (t // kw) * dh
        q = ox * sw - pl + (t % kw) * dw
        if r < 0 or r >= h or q < 0 or q >= w:
            out[e] = zero
        else:
            out[e] = x[((b * h + r) * w + q) * c + ch]
''',
    "patches_grad": '''
def patches_grad(n_out, g, out, h, w, c, oh, ow, kh, kw, sh, sw, dh, dw, pt, pl, zero):
    for e in range(cuda.grid(1), n_out, cuda.gridsize(1)):
        ch = e % c
        q = (e // c) % w
        r = (e // (c * w)) % h
        b = e // (c * w * h)
        acc = zero
        for i in range(kh):
            y = r + pt - i * dh
            if y >= 0 and y % sh == 0 and y // sh < oh:
                for j in range(kw):
                    z = q + pl - j * dw
                    if z >= 0 and z % sw == 0 and z // sw < ow:
                        acc += g[((b * oh + y // sh) * ow + z // sw) * (kh * kw * c)
                                 + (i * kw + j) * c + ch]
        out[e] = acc
''',
}


def render_kernel(name: str, **constants) -> str:
    """The source of kernel ``name`` with its compile-time constants filled in."""
    return SOURCES[name].format(**constants)
