"""TF1's ``tf.TensorShape`` and ``tf.Dimension``: what ``Tensor.get_shape()`` returns.

``Tensor.shape`` stays flowgraph's plain tuple (``None`` for an unknown dimension, or
``None`` for an unknown rank); ``Tensor.get_shape()`` wraps the same static shape in a
:class:`TensorShape` that behaves as TF1's (v1 behaviour: indexing gives a
:class:`Dimension`, whose ``.value`` is an ``int`` or ``None``).

>>> import flowgraph as fg
>>> with fg.Graph().as_default():
...     x = fg.placeholder(fg.float32, [None, 3])
...     s = x.get_shape()
>>> s
TensorShape([Dimension(None), Dimension(3)])
>>> print(s), s.as_list(), s[1].value, s.ndims, s.is_fully_defined()
(?, 3)
(None, [None, 3], 3, 2, False)
>>> s.merge_with([8, None]).as_list()
[8, 3]
"""
from __future__ import annotations


class Dimension:
    """One dimension of a :class:`TensorShape`: ``value`` is an ``int`` or ``None``
    (unknown). Arithmetic with ints or Dimensions gives a Dimension, unknown if either
    side is; comparisons with an unknown side give ``None`` (TF1).

    >>> d = Dimension(4)
    >>> d.value, int(d), d + 1, 2 * d, d // 3, Dimension(None) + 1
    (4, 4, Dimension(5), Dimension(8), Dimension(1), Dimension(None))
    >>> d == 4, Dimension(None) == 4
    (True, None)
    """

    __slots__ = ("_value",)

    def __init__(self, value):
        if value is None:
            self._value = None
        elif isinstance(value, Dimension):
            self._value = value.value
        else:
            try:
                self._value = int(value)
            except (TypeError, ValueError):
                raise TypeError(f"Dimension: expected an int or None, found "
                                f"{type(value).__name__} {value!r}") from None
            if not isinstance(value, (str, bytes)) and self._value != value:
                raise ValueError(f"Ambiguous dimension: {value}")
        if self._value is not None and self._value < 0:
            raise ValueError(f"Dimension {self._value} must be >= 0")

    @property
    def value(self):
        """The size as an ``int``, or ``None`` when unknown."""
        return self._value

    def __repr__(self):
        return f"Dimension({self._value!r})"

    def __str__(self):
        return "?" if self._value is None else str(self._value)

    def __int__(self):
        if self._value is None:
            raise TypeError("int() of an unknown Dimension (value None)")
        return self._value

    def __index__(self):
        if self._value is None:
            raise TypeError("an unknown Dimension (value None) is not an index")
        return self._value

    def __hash__(self):
        return hash(self._value)

    def is_compatible_with(self, other):
        """True unless both are known and differ."""
        other = as_dimension(other)
        return self._value is None or other.value is None or self._value == other.value

    def assert_is_compatible_with(self, other):
        """Raises ``ValueError`` unless :meth:`is_compatible_with`."""
        if not self.is_compatible_with(other):
            raise ValueError(f"Dimensions {self} and {other} are not compatible")

    def merge_with(self, other):
        """The known one of the two (they must be compatible, else ``ValueError``)."""
        other = as_dimension(other)
        self.assert_is_compatible_with(other)
        return Dimension(self._value if self._value is not None else other.value)

    # comparisons: None when either side is unknown (TF1)
    def _cmp(self, other, fn):
        try:
            other = as_dimension(other)
        except (TypeError, ValueError):
            return NotImplemented
        if self._value is None or other.value is None:
            return None
        return fn(self._value, other.value)

    def __eq__(self, other):
        return self._cmp(other, lambda a, b: a == b)

    def __ne__(self, other):
        return self._cmp(other, lambda a, b: a != b)

    def __lt__(self, other):
        return self._cmp(other, lambda a, b: a < b)

    def __le__(self, other):
        return self._cmp(other, lambda a, b: a <= b)

    def __gt__(self, other):
        return self._cmp(other, lambda a, b: a > b)

    def __ge__(self, other):
        return self._cmp(other, lambda a, b: a >= b)

    # arithmetic: unknown when either side is (TF1)
    def _arith(self, other, fn):
        try:
            other = as_dimension(other)
        except (TypeError, ValueError):
            return NotImplemented
        if self._value is None or other.value is None:
            return Dimension(None)
        return Dimension(fn(self._value, other.value))

    def __add__(self, other):
        return self._arith(other, lambda a, b: a + b)

    def __radd__(self, other):
        return self._arith(other, lambda a, b: b + a)

    def __sub__(self, other):
        return self._arith(other, lambda a, b: a - b)

    def __rsub__(self, other):
        return self._arith(other, lambda a, b: b - a)

    def __mul__(self, other):
        return self._arith(other, lambda a, b: a * b)

    def __rmul__(self, other):
        return self._arith(other, lambda a, b: b * a)

    def __floordiv__(self, other):
        return self._arith(other, lambda a, b: a // b)

    def __rfloordiv__(self, other):
        return self._arith(other, lambda a, b: b // a)

    def __mod__(self, other):
        return self._arith(other, lambda a, b: a % b)

    def __rmod__(self, other):
        return self._arith(other, lambda a, b: b % a)

    def __truediv__(self, other):
        raise TypeError(f"unsupported operand type(s) for /: 'Dimension' and "
                        f"'{type(other).__name__}', please use // instead")

    def __rtruediv__(self, other):
        raise TypeError(f"unsupported operand type(s) for /: '{type(other).__name__}' "
                        "and 'Dimension', please use // instead")

    def __reduce__(self):
        return Dimension, (self._value,)


def as_dimension(value):
    """``value`` if it is a :class:`Dimension`, else ``Dimension(value)``."""
    return value if isinstance(value, Dimension) else Dimension(value)


def dimension_value(dimension):
    """TF1's ``tf.compat.dimension_value``: the ``int`` (or ``None``) of a Dimension;
    anything else is returned as it is.

    >>> dimension_value(Dimension(3)), dimension_value(3), dimension_value(None)
    (3, 3, None)
    """
    return dimension.value if isinstance(dimension, Dimension) else dimension


class TensorShape:
    """A static shape, possibly partly or wholly unknown (TF1's ``tf.TensorShape``).

    ``TensorShape(None)`` has an unknown rank; ``TensorShape([None, 3])`` a known rank
    and an unknown first dimension. Indexing with an int gives a :class:`Dimension`,
    with a slice a TensorShape; iterating gives Dimensions. ``==`` compares dimension by
    dimension as TF1 does, so a shape with an unknown dimension is never equal to
    another (``TensorShape([None]) == [None]`` is False); compare ``as_list()`` for
    list equality.

    >>> s = TensorShape([2, None, 4])
    >>> s[0], s[1:], len(s), s.num_elements(), s.as_list()
    (Dimension(2), TensorShape([Dimension(None), Dimension(4)]), 3, None, [2, None, 4])
    >>> TensorShape([2, 4]) == [2, 4], s.is_compatible_with([2, 7, 4])
    (True, True)
    >>> s.concatenate([5]).as_list(), TensorShape(None)
    ([2, None, 4, 5], TensorShape(None))
    """

    __slots__ = ("_dims",)

    def __init__(self, dims):
        if dims is None:
            self._dims = None
        elif isinstance(dims, TensorShape):
            self._dims = None if dims.dims is None else list(dims.dims)
        else:
            try:
                items = iter(dims)
            except TypeError:
                self._dims = [as_dimension(dims)]     # a single int: a vector's shape
            else:
                self._dims = [as_dimension(d) for d in items]

    @property
    def dims(self):
        """The list of :class:`Dimension`, or ``None`` when the rank is unknown."""
        return self._dims

    @property
    def ndims(self):
        """The rank, or ``None`` when unknown."""
        return None if self._dims is None else len(self._dims)

    @property
    def rank(self):
        """Same as :attr:`ndims`."""
        return self.ndims

    def __repr__(self):
        return f"TensorShape({self._dims!r})"

    def __str__(self):
        if self._dims is None:
            return "<unknown>"
        if len(self._dims) == 1:
            return f"({self._dims[0]},)"
        return "(" + ", ".join(str(d) for d in self._dims) + ")"

    def __len__(self):
        if self._dims is None:
            raise ValueError("Cannot take the length of shape with unknown rank.")
        return len(self._dims)

    def __bool__(self):
        return self._dims is not None

    def __iter__(self):
        if self._dims is None:
            raise ValueError("Cannot iterate over a shape with unknown rank.")
        return iter(self._dims)

    def __getitem__(self, key):
        if self._dims is not None:
            if isinstance(key, slice):
                return TensorShape(self._dims[key])
            return self._dims[key]
        if isinstance(key, slice):
            start, stop = key.start, key.stop
            if key.step is None and start is not None and stop is not None \
                    and start >= 0 and stop >= 0:
                return TensorShape([None] * max(stop - start, 0))
            return TensorShape(None)
        return Dimension(None)

    def as_list(self):
        """The dimensions as ints and ``None``; ``ValueError`` if the rank is unknown."""
        if self._dims is None:
            raise ValueError("as_list() is not defined on an unknown TensorShape.")
        return [d.value for d in self._dims]

    def is_fully_defined(self):
        """True when the rank and every dimension are known."""
        return self._dims is not None and all(d.value is not None for d in self._dims)

    def assert_is_fully_defined(self):
        if not self.is_fully_defined():
            raise ValueError(f"Shape {self} is not fully defined")

    def num_elements(self):
        """The number of elements, or ``None`` unless fully defined."""
        if not self.is_fully_defined():
            return None
        n = 1
        for d in self._dims:
            n *= d.value
        return n

    def is_compatible_with(self, other):
        """True when some fully defined shape could be both."""
        other = as_shape(other)
        if self._dims is not None and other.dims is not None:
            if len(self._dims) != len(other.dims):
                return False
            return all(a.is_compatible_with(b) for a, b in zip(self._dims, other.dims))
        return True

    def assert_is_compatible_with(self, other):
        if not self.is_compatible_with(other):
            raise ValueError(f"Shapes {self} and {as_shape(other)} are incompatible")

    def assert_same_rank(self, other):
        other = as_shape(other)
        if self.ndims is not None and other.ndims is not None and self.ndims != other.ndims:
            raise ValueError(f"Shapes {self} and {other} must have the same rank")

    def assert_has_rank(self, rank):
        if self.ndims not in (None, rank):
            raise ValueError(f"Shape {self} must have rank {rank}")

    def with_rank(self, rank):
        """This shape merged with an unknown shape of rank ``rank``."""
        try:
            return self.merge_with(TensorShape([None] * rank))
        except ValueError:
            raise ValueError(f"Shape {self} must have rank {rank}") from None

    def merge_with(self, other):
        """The most specific shape compatible with both; ``ValueError`` if none is."""
        other = as_shape(other)
        if self._dims is None:
            return other
        try:
            self.assert_same_rank(other)
            if other.dims is None:
                return TensorShape(self)
            return TensorShape([a.merge_with(b) for a, b in zip(self._dims, other.dims)])
        except ValueError:
            raise ValueError(f"Shapes {self} and {other} are not compatible") from None

    def concatenate(self, other):
        """This shape's dimensions followed by ``other``'s (unknown if either rank is)."""
        other = as_shape(other)
        if self._dims is None or other.dims is None:
            return TensorShape(None)
        return TensorShape(self._dims + other.dims)

    def __add__(self, other):
        return self.concatenate(other)

    def __radd__(self, other):
        return as_shape(other).concatenate(self)

    def __eq__(self, other):
        try:
            other = as_shape(other)
        except (TypeError, ValueError):
            return NotImplemented
        return self._dims == other.dims

    def __ne__(self, other):
        try:
            other = as_shape(other)
        except (TypeError, ValueError):
            return NotImplemented
        if self.ndims is None or other.ndims is None:
            raise ValueError("The inequality of unknown TensorShapes is undefined.")
        if self.ndims != other.ndims:
            return True
        return self._dims != other.dims

    __hash__ = None       # mutable-looking and compared loosely, as in TF1

    def __reduce__(self):
        return TensorShape, (None if self._dims is None else self.as_list(),)

    def _as_tuple(self):
        """flowgraph's static shape: a tuple of int/None, or None."""
        return None if self._dims is None else tuple(self.as_list())


def as_shape(shape):
    """``shape`` if it is a :class:`TensorShape`, else ``TensorShape(shape)``."""
    return shape if isinstance(shape, TensorShape) else TensorShape(shape)


def unknown_shape(rank=None):
    """A shape of unknown dimensions: unknown rank, or ``rank`` unknown dimensions.

    >>> unknown_shape(2).as_list()
    [None, None]
    """
    return TensorShape(None if rank is None else [None] * rank)


class StaticShape(tuple):
    """What ``tensor.shape`` is: the plain tuple of the API contract (``(None, 3)``:
    ints, ``None`` for an unknown dimension; equal to, hashed and indexed as that tuple)
    that also answers TF1's ``TensorShape`` questions, so ``x.shape.as_list()`` and
    ``x.shape.ndims`` work as in TF1. Indexing gives ints (``x.shape[1]``), not
    Dimensions: ``x.get_shape()[1].value`` is TF1's spelling for that.

    >>> s = StaticShape((None, 3))
    >>> s == (None, 3), s.as_list(), s.ndims, s.is_fully_defined(), s[1]
    (True, [None, 3], 2, False, 3)
    """

    __slots__ = ()

    def as_list(self):
        return list(self)

    @property
    def ndims(self):
        return len(self)

    rank = ndims

    @property
    def dims(self):
        return [Dimension(d) for d in self]

    def is_fully_defined(self):
        return None not in self

    def num_elements(self):
        return TensorShape(self).num_elements()

    def is_compatible_with(self, other):
        return TensorShape(self).is_compatible_with(other)

    def merge_with(self, other):
        return TensorShape(self).merge_with(other)


__all__ = ["Dimension", "StaticShape", "TensorShape", "as_dimension", "as_shape",
           "dimension_value", "unknown_shape"]
