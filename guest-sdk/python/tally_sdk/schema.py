"""Payload schemas: dataclasses whose typed fields are the JSON data of a command,
an event or a state.

A field's annotation says what JSON it takes:

| annotation                  | JSON                                                 |
|-----------------------------|------------------------------------------------------|
| `int`                       | an integer in the i64 range, exactly; not a bool, not `5.0` |
| `float`                     | a number, not a bool                                 |
| `bool`, `str`               | `true`/`false`, a string                             |
| `T \\| None`, `Optional[T]`  | `null` or a `T`                                      |
| `list[T]`, `dict[str, T]`   | an array, an object                                  |
| another dataclass           | an object of its fields                              |
| `typing.Any`                | any JSON value, as parsed                            |

A field with a default (or a `T | None` field, whose default is `None`) is optional:
absent or `null` means its default. Decoding in strict mode (commands) refuses a
field the dataclass does not have, at any depth; lenient mode (events, states)
ignores it. Errors name the field by its path: `to.zip`.
"""

import dataclasses
import functools
import types
import typing

I64_MIN = -(2**63)
I64_MAX = 2**63 - 1


class SchemaError(ValueError):
    """The data does not fit the schema; the message is for people."""


@dataclasses.dataclass(frozen=True)
class _Field:
    """One field of a payload dataclass."""

    name: str
    shape: "_Shape"
    optional: bool
    default: typing.Callable[[], typing.Any] | None


def decode(cls: type, value, strict: bool):
    """Builds an instance of the dataclass `cls` from a parsed JSON value."""
    return _shape_of(cls).decode(value, (), strict)


def encode(instance) -> dict:
    """The JSON object of a payload dataclass instance, fields in declaration order.

    Raises SchemaError if a field holds what its annotation does not allow (an int
    beyond i64, a string where a number belongs): such a value would not read back.
    """
    return _shape_of(type(instance)).encode(instance, ())


def field_names(cls: type) -> list[str]:
    """The JSON names of a payload dataclass's fields, in declaration order."""
    return [field.name for field in _shape_of(cls).fields]


def required_field_names(cls: type) -> list[str]:
    """The fields of a payload dataclass that have no default."""
    return [field.name for field in _shape_of(cls).fields if not field.optional]


def has_fields(cls: type) -> bool:
    """Whether the payload dataclass has any field."""
    return bool(_shape_of(cls).fields)


def check_payload_class(cls) -> None:
    """Raises TypeError unless `cls` is a dataclass whose annotations all have a shape."""
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise TypeError(f"{cls!r} is not a dataclass")
    _shape_of(cls)


def describe_value(value) -> str:
    """How serde names a JSON value in its messages: `string "5"`, `integer 5`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"floating point {value!r}"
    if isinstance(value, str):
        return f'string "{value}"'
    if isinstance(value, list):
        return "an array"
    return "an object"


def _invalid_type(value, expected: str, path) -> SchemaError:
    return SchemaError(_at(path, f"invalid type: {describe_value(value)}, expected {expected}"))


def _at(path, message: str) -> str:
    """A message about the field at `path`, or about the whole data at the root."""
    if not path:
        return message
    return f"field {_quoted_path(path)}: {message}"


def _quoted_path(path) -> str:
    return '"' + ".".join(str(segment) for segment in path) + '"'


class _Shape:
    """How one annotation decodes and encodes."""

    expected = "a value"

    def decode(self, value, path, strict):
        raise NotImplementedError

    def encode(self, value, path):
        raise NotImplementedError


class _Int(_Shape):
    """An `int`: an integer in the i64 range, never a bool or a float."""

    expected = "i64"

    def decode(self, value, path, strict):
        return self._checked(value, path)

    def encode(self, value, path):
        return self._checked(value, path)

    def _checked(self, value, path):
        if isinstance(value, bool) or not isinstance(value, int):
            raise _invalid_type(value, self.expected, path)
        if not I64_MIN <= value <= I64_MAX:
            raise SchemaError(_at(path, f"invalid value: integer {value}, expected i64"))
        return value


class _Float(_Shape):
    """A `float`: any number but a bool."""

    expected = "f64"

    def decode(self, value, path, strict):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _invalid_type(value, self.expected, path)
        try:
            return float(value)
        except OverflowError:
            raise SchemaError(_at(path, f"number out of range: {value}")) from None

    def encode(self, value, path):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _invalid_type(value, self.expected, path)
        return float(value)


class _Exact(_Shape):
    """A JSON type that maps to one Python type: bool, str."""

    def __init__(self, python_type: type, expected: str):
        self.python_type = python_type
        self.expected = expected

    def decode(self, value, path, strict):
        return self.encode(value, path)

    def encode(self, value, path):
        if type(value) is not self.python_type:
            raise _invalid_type(value, self.expected, path)
        return value


class _AnyValue(_Shape):
    """`typing.Any`: any JSON value, as parsed."""

    def decode(self, value, path, strict):
        return value

    def encode(self, value, path):
        return value


class _Optional(_Shape):
    """`T | None`: `null` or a `T`."""

    def __init__(self, inner: _Shape):
        self.inner = inner
        self.expected = f"{inner.expected} or null"

    def decode(self, value, path, strict):
        return None if value is None else self.inner.decode(value, path, strict)

    def encode(self, value, path):
        return None if value is None else self.inner.encode(value, path)


class _List(_Shape):
    """`list[T]`: an array of `T`."""

    def __init__(self, item: _Shape):
        self.item = item
        self.expected = "an array"

    def decode(self, value, path, strict):
        if not isinstance(value, list):
            raise _invalid_type(value, self.expected, path)
        return [self.item.decode(item, (*path, i), strict) for i, item in enumerate(value)]

    def encode(self, value, path):
        if not isinstance(value, (list, tuple)):
            raise _invalid_type(value, self.expected, path)
        return [self.item.encode(item, (*path, i)) for i, item in enumerate(value)]


class _Dict(_Shape):
    """`dict[str, T]`: an object of `T`."""

    def __init__(self, item: _Shape):
        self.item = item
        self.expected = "an object"

    def decode(self, value, path, strict):
        if not isinstance(value, dict):
            raise _invalid_type(value, self.expected, path)
        return {key: self.item.decode(item, (*path, key), strict) for key, item in value.items()}

    def encode(self, value, path):
        if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
            raise _invalid_type(value, "an object with string keys", path)
        return {key: self.item.encode(item, (*path, key)) for key, item in value.items()}


class _Dataclass(_Shape):
    """A dataclass: an object of its fields."""

    expected = "an object"

    def __init__(self, cls: type, fields: list[_Field]):
        self.cls = cls
        self.fields = fields
        self.names = frozenset(field.name for field in fields)

    def decode(self, value, path, strict):
        if not isinstance(value, dict):
            raise _invalid_type(value, self.expected, path)
        unknown = [key for key in value if key not in self.names]
        if strict and unknown:
            raise SchemaError(self._unknown_field_message(value, unknown, path))
        return self.cls(
            **{field.name: self._decode_field(field, value, path, strict) for field in self.fields}
        )

    def encode(self, value, path):
        if not isinstance(value, self.cls):
            raise SchemaError(_at(path, f"{value!r} is not a {self.cls.__name__}"))
        return {
            field.name: field.shape.encode(getattr(value, field.name), (*path, field.name))
            for field in self.fields
        }

    def _decode_field(self, field: _Field, data: dict, path, strict):
        value = data.get(field.name)
        if value is None and field.optional:
            return field.default()
        if field.name not in data:
            raise SchemaError(f"missing field {_quoted_path((*path, field.name))}")
        return field.shape.decode(value, (*path, field.name), strict)

    def _unknown_field_message(self, data: dict, unknown: list[str], path) -> str:
        """Names the first unknown field and what was expected; a required field
        missing too (a misspelt one, likely) is named after it."""
        message = f"unknown field {_quoted_path((*path, unknown[0]))} ({_expected(self.fields)})"
        missing = [f.name for f in self.fields if not f.optional and f.name not in data]
        if missing:
            message += f"; missing field {_quoted_path((*path, missing[0]))}"
        return message


def _expected(fields: list[_Field]) -> str:
    names = [f'"{field.name}"' for field in fields]
    if not names:
        return "expected no field"
    if len(names) == 1:
        return f"expected {names[0]}"
    return "expected one of " + ", ".join(names)


@functools.cache
def _shape_of(annotation) -> _Shape:
    """The shape of an annotation; dataclasses are analysed once and cached."""
    if annotation is int:
        return _Int()
    if annotation is float:
        return _Float()
    if annotation is bool:
        return _Exact(bool, "a boolean")
    if annotation is str:
        return _Exact(str, "a string")
    if annotation is typing.Any:
        return _AnyValue()
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        return _dataclass_shape(annotation)
    return _generic_shape(annotation)


def _generic_shape(annotation) -> _Shape:
    """The shape of `T | None`, `Optional[T]`, `list[T]` and `dict[str, T]`."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType) and len(args) == 2 and type(None) in args:
        (inner,) = [arg for arg in args if arg is not type(None)]
        return _Optional(_shape_of(inner))
    if origin is list and len(args) == 1:
        return _List(_shape_of(args[0]))
    if origin is dict and len(args) == 2 and args[0] is str:
        return _Dict(_shape_of(args[1]))
    raise TypeError(
        f"unsupported field type {annotation!r}: use int, float, bool, str, "
        "T | None, list[T], dict[str, T], a dataclass or typing.Any"
    )


def _dataclass_shape(cls: type) -> _Dataclass:
    """The shape of a dataclass: its fields, their shapes and defaults."""
    hints = typing.get_type_hints(cls)
    fields = []
    for field in dataclasses.fields(cls):
        shape = _shape_of(hints[field.name])
        default = _default_of(field, shape)
        fields.append(_Field(field.name, shape, default is not None, default))
    return _Dataclass(cls, fields)


def _default_of(field: dataclasses.Field, shape: _Shape):
    """A function returning the field's default, or None for a required field."""
    if field.default is not dataclasses.MISSING:
        return lambda: field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory
    if isinstance(shape, _Optional):
        return lambda: None
    return None
