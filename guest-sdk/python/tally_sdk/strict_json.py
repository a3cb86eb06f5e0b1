"""JSON text read and written as the wire rules say (wit/WIRE.md).

Reading is strict: one JSON value of UTF-8 text, with JSON whitespace around it and
nothing else; no byte order mark, comments, trailing commas, `NaN` or `Infinity`;
duplicate keys refused (also two spellings of one key, compared after their escapes
are decoded); no escaped lone surrogates; numbers beyond a double refused. Integers
are read exactly. `-0` is read as the float `-0.0`, as JSON parsers do, so that an
integer field refuses it.

Data nested deeper than a limit is refused before it reaches the recursive parser:
in a component the guest's stack is small, and thousands of levels would exhaust it.

Writing is compact, in the order of the fields, with non-ASCII as UTF-8 and no NaN
or infinity.
"""

import json
import math
import re

#: How many levels of arrays and objects the reader accepts, as the Rust SDK's.
DEFAULT_MAX_DEPTH = 128

#: The highest depth limit an aggregate may set. In a componentize-py 0.25.1
#: component the parser exhausts the stack somewhere between 1,000 and 1,500 levels
#: (measured on bank-account); at 1,000 it still answers without trapping.
HIGHEST_MAX_DEPTH = 1000

#: What may surround a value: JSON's whitespace, and the form feed that the Rust
#: SDK also trims from the ends.
_SURROUNDING_WHITESPACE = b" \t\n\r\x0c"

#: A JSON string literal, escapes included.
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)

#: The characters that open or close a level.
_BRACKET = re.compile(r"[\[\]{}]")


class JsonError(ValueError):
    """The text is not JSON as the wire rules read it."""


class DuplicateKey(JsonError):
    """An object has the same key twice."""

    def __init__(self, key: str):
        super().__init__(f"duplicate field {dumps(key)}")
        self.key = key


def is_blank(data: bytes) -> bool:
    """Whether the data is empty or only whitespace: "no data"."""
    return not data.strip(_SURROUNDING_WHITESPACE)


def loads(data: bytes, max_depth: int = DEFAULT_MAX_DEPTH):
    """Parses one JSON value from UTF-8 bytes, strictly (see the module docstring).

    Raises JsonError (DuplicateKey for a repeated key) when the data does not fit.
    """
    text = _utf8(data).strip(_SURROUNDING_WHITESPACE.decode())
    _check_depth(text, max_depth)
    try:
        value = json.loads(
            text,
            object_pairs_hook=_object_without_duplicates,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_refuse_constant,
        )
    except DuplicateKey:
        raise
    except (ValueError, RecursionError) as error:
        raise JsonError(f"not JSON: {error}") from None
    _check_no_lone_surrogates(value)
    return value


def dumps(value) -> str:
    """Compact JSON text of a value made of dicts, lists, str, int, float, bool, None."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def dump_bytes(value) -> bytes:
    """`dumps` as UTF-8 bytes; a lone surrogate in a string is an error."""
    return dumps(value).encode("utf-8")


def nesting_depth(text: str) -> int:
    """The deepest level of arrays and objects in JSON text, strings skipped.

    Where the text stops being JSON the count may be off, but only after the point
    where the parser would stop: both read the text from the left the same way.
    """
    depth = deepest = 0
    for bracket in _BRACKET.findall(_STRING.sub('""', text)):
        if bracket in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _check_depth(text: str, max_depth: int) -> None:
    """Refuses text nested deeper than `max_depth` levels."""
    opening = text.count("[") + text.count("{")
    if opening <= max_depth:
        return  # cannot be deeper than the brackets it has
    depth = nesting_depth(text)
    if depth > max_depth:
        raise JsonError(f"nested {depth} levels deep, more than the {max_depth} allowed")


def _utf8(data: bytes) -> str:
    """The data as text; bytes that are not UTF-8 are refused."""
    try:
        return bytes(data).decode("utf-8")
    except UnicodeDecodeError as error:
        raise JsonError(f"not UTF-8: {error}") from None


def _object_without_duplicates(pairs):
    """An object from its key/value pairs, refusing a key given twice."""
    result = {}
    for key, value in pairs:
        if key in result:
            raise DuplicateKey(key)
        result[key] = value
    return result


def _parse_int(literal: str):
    """An integer literal, exactly; `-0` is the float a JSON parser makes of it."""
    if literal == "-0":
        return -0.0
    return int(literal)


def _parse_float(literal: str) -> float:
    """A number with a fraction or an exponent; beyond a double it is refused."""
    number = float(literal)
    if math.isinf(number):
        raise JsonError(f"number {literal} is out of range")
    return number


def _refuse_constant(name: str):
    """`NaN`, `Infinity` and `-Infinity` are not JSON."""
    raise JsonError(f"{name} is not allowed")


def _check_no_lone_surrogates(value) -> None:
    """Refuses a string or key holding an escaped lone surrogate (`"\\ud800"`)."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            _check_string(item)
        elif isinstance(item, dict):
            for key, child in item.items():
                _check_string(key)
                pending.append(child)
        elif isinstance(item, list):
            pending.extend(item)


def _check_string(text: str) -> None:
    """Refuses a string that has no UTF-8 form: it holds a lone surrogate."""
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise JsonError("not JSON: a string holds an escaped lone surrogate") from None
