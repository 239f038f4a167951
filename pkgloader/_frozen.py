"""Immutable value types without ``@dataclass``'s cost at import.

``@dataclass(frozen=True)`` writes the source of six methods per class and compiles each
one when the module is imported (~4M instructions a class, a quarter of a cold fetch's
start-up over the classes on that path). The small value types a cold fetch loads derive
from :class:`Frozen` instead and write their ``__init__`` by hand; the base gives them what
the dataclass did: ``repr`` (``Name(field=value, ...)``), ``==`` (same class, equal fields;
``NotImplemented`` otherwise), ``hash`` of the field tuple, ``__match_args__``, and
attributes that cannot be assigned or deleted (``dataclasses.FrozenInstanceError``, the
same message). Instances keep a ``__dict__`` (copy and pickle work as before). They still
answer ``dataclasses.fields``, ``replace``, ``asdict``, ``astuple`` and ``is_dataclass``
as before: ``__dataclass_fields__`` is built on first use (that imports ``dataclasses``).
"""

from __future__ import annotations

from operator import attrgetter
from typing import Any, Callable, ClassVar

__all__ = ["FACTORY", "Frozen", "Record", "init_field", "replace"]

#: sets a field in ``__init__`` (the frozen ``__setattr__`` refuses)
init_field: Callable[[object, str, Any], None] = object.__setattr__


#: the default of a parameter whose field had ``default_factory``: ``__init__`` calls the
#: factory when it is given (an explicit None stays None, as with the dataclass)
FACTORY: Any = type("_Factory", (), {"__repr__": lambda self: "<factory>"})()


def _frozen_error(message: str) -> Exception:
    from dataclasses import FrozenInstanceError  # only when someone tries

    return FrozenInstanceError(message)


class _LazyDataclassFields:
    """``__dataclass_fields__`` of a :class:`Frozen` class, made when first looked up (by
    ``dataclasses.fields``, ``replace``, ``asdict``, ``is_dataclass``) and then kept on the
    class: a ``dataclasses.Field`` per field, with its annotation and class-level default."""

    def __get__(self, obj: object, cls: type | None = None) -> dict[str, Any]:
        import dataclasses

        owner = cls if cls is not None else type(obj)
        made: dict[str, Any] = {}
        annotations = getattr(owner, "__annotations__", {})
        for name in owner.__fields__:  # type: ignore[attr-defined]
            default = owner.__dict__.get(name, dataclasses.MISSING)
            f = dataclasses.field(default=default)
            f.name = name
            f.type = annotations.get(name, Any)
            f.kw_only = False
            f._field_type = dataclasses._FIELD  # type: ignore[attr-defined]
            made[name] = f
        setattr(owner, "__dataclass_fields__", made)  # type.__setattr__: the class is not frozen
        return made


class _Fields:
    """What ``Frozen`` and ``Record`` share: the fields, repr, ==, ``__match_args__``."""

    __slots__ = ()
    __dataclass_fields__: ClassVar[Any] = _LazyDataclassFields()
    #: the fields, in order (the subclass's ``__init__`` parameters)
    __fields__: ClassVar[tuple[str, ...]] = ()
    _astuple: ClassVar[Callable[[Any], tuple[Any, ...]]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        names = cls.__fields__
        get = attrgetter(*names) if names else (lambda self: ())
        cls._astuple = (lambda self: (get(self),)) if len(names) == 1 else get
        setattr(cls, "__match_args__", names)
        setattr(cls, "__dataclass_fields__", _LazyDataclassFields())  # each class its own

    def __repr__(self) -> str:
        fields = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__fields__)
        return f"{self.__class__.__qualname__}({fields})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            return self.__class__._astuple(self) == self.__class__._astuple(other)
        return NotImplemented



class Frozen(_Fields):
    """``@dataclass(frozen=True)``: hashable, and its fields cannot be assigned."""

    __slots__ = ()

    def __hash__(self) -> int:
        return hash(self.__class__._astuple(self))

    def __setattr__(self, name: str, value: Any) -> None:
        raise _frozen_error(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise _frozen_error(f"cannot delete field {name!r}")


class Record(_Fields):
    """``@dataclass``: mutable, and so (having ``==``) not hashable; ``__init__`` assigns the
    fields as usual."""

    __slots__ = ()
    __hash__ = None  # type: ignore[assignment]


def replace(obj: Any, /, **changes: Any) -> Any:
    """``dataclasses.replace`` for a :class:`Frozen` or :class:`Record` (without importing
    ``dataclasses``): a new instance with ``changes`` applied to the fields."""
    cls = obj.__class__
    for name in cls.__fields__:
        if name not in changes:
            changes[name] = getattr(obj, name)
    return cls(**changes)
