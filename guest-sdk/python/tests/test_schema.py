"""Payload dataclasses read and write their fields strictly (tally_sdk.schema)."""

from dataclasses import dataclass, field
from typing import Any

import pytest

from tally_sdk.schema import I64_MAX, I64_MIN, SchemaError, check_payload_class, decode, encode


@dataclass
class Amount:
    amount: int


@dataclass
class Rate:
    rate: float


@dataclass
class Flags:
    on: bool
    label: str


@dataclass
class Inner:
    a: int


@dataclass
class Shapes:
    items: list[int]
    by_name: dict[str, Inner]
    inner: Inner
    maybe: int | None = None
    also_maybe: str | None = None
    tags: list[str] = field(default_factory=list)
    anything: Any = None


def test_an_int_takes_exact_integers_in_the_i64_range():
    assert decode(Amount, {"amount": I64_MAX}, strict=True) == Amount(I64_MAX)
    assert decode(Amount, {"amount": I64_MIN}, strict=True) == Amount(I64_MIN)
    for value in [I64_MAX + 1, I64_MIN - 1]:
        with pytest.raises(SchemaError, match="expected i64"):
            decode(Amount, {"amount": value}, strict=True)


@pytest.mark.parametrize("value", [True, False, 5.0, -0.0, 1.5, "5", None, [5], {"v": 5}])
def test_an_int_refuses_bools_floats_and_other_types(value):
    with pytest.raises(SchemaError, match='field "amount": invalid type'):
        decode(Amount, {"amount": value}, strict=True)


def test_a_float_takes_integers_and_floats_but_not_bools():
    assert decode(Rate, {"rate": 2}, strict=True) == Rate(2.0)
    assert decode(Rate, {"rate": 0.5}, strict=True) == Rate(0.5)
    for value in [True, "0.5", None]:
        with pytest.raises(SchemaError):
            decode(Rate, {"rate": value}, strict=True)
    with pytest.raises(SchemaError, match="out of range"):
        decode(Rate, {"rate": 10**400}, strict=True)


def test_bools_and_strings_take_only_their_own_type():
    assert decode(Flags, {"on": True, "label": "x"}, strict=True) == Flags(True, "x")
    with pytest.raises(SchemaError):
        decode(Flags, {"on": 1, "label": "x"}, strict=True)
    with pytest.raises(SchemaError):
        decode(Flags, {"on": True, "label": 1}, strict=True)


def test_a_missing_required_field_is_named():
    with pytest.raises(SchemaError, match='missing field "amount"'):
        decode(Amount, {}, strict=True)


def test_an_unknown_field_is_refused_when_strict_and_ignored_when_lenient():
    with pytest.raises(SchemaError, match=r'unknown field "extra" \(expected "amount"\)'):
        decode(Amount, {"amount": 1, "extra": 1}, strict=True)
    assert decode(Amount, {"amount": 1, "extra": 1}, strict=False) == Amount(1)


def test_a_misspelt_field_is_named_before_the_missing_one():
    with pytest.raises(SchemaError) as error:
        decode(Amount, {"amuont": 1}, strict=True)
    assert str(error.value) == 'unknown field "amuont" (expected "amount"); missing field "amount"'


def test_a_field_in_another_case_is_unknown():
    with pytest.raises(SchemaError, match='unknown field "Amount"'):
        decode(Amount, {"Amount": 1}, strict=True)


def test_containers_and_nested_dataclasses_are_read_field_by_field():
    data = {
        "items": [1, 2],
        "by_name": {"x": {"a": 3}},
        "inner": {"a": 4},
        "anything": {"k": [None]},
    }
    assert decode(Shapes, data, strict=True) == Shapes(
        [1, 2], {"x": Inner(3)}, Inner(4), anything={"k": [None]}
    )


def test_an_unknown_nested_field_is_named_by_its_path():
    data = {"items": [], "by_name": {"x": {"a": 3, "zip": 1}}, "inner": {"a": 4}}
    with pytest.raises(SchemaError, match='unknown field "by_name.x.zip"'):
        decode(Shapes, data, strict=True)
    data = {"items": [1, "2"], "by_name": {}, "inner": {"a": 4}}
    with pytest.raises(SchemaError, match='field "items.1": invalid type'):
        decode(Shapes, data, strict=True)


def test_an_optional_field_may_be_absent_or_null_meaning_its_default():
    base = {"items": [], "by_name": {}, "inner": {"a": 1}}
    for extra in [{}, {"maybe": None, "also_maybe": None, "tags": None}]:
        shapes = decode(Shapes, {**base, **extra}, strict=True)
        assert (shapes.maybe, shapes.also_maybe, shapes.tags) == (None, None, [])
    shapes = decode(Shapes, {**base, "maybe": 7, "also_maybe": "s", "tags": ["t"]}, strict=True)
    assert (shapes.maybe, shapes.also_maybe, shapes.tags) == (7, "s", ["t"])


def test_a_required_field_refuses_null():
    with pytest.raises(SchemaError, match="invalid type: null"):
        decode(Amount, {"amount": None}, strict=True)


def test_encoding_writes_fields_in_declaration_order():
    shapes = Shapes([1], {"x": Inner(2)}, Inner(3), maybe=None, tags=["t"])
    assert list(encode(shapes)) == [
        "items",
        "by_name",
        "inner",
        "maybe",
        "also_maybe",
        "tags",
        "anything",
    ]
    assert encode(shapes)["by_name"] == {"x": {"a": 2}}


def test_encoding_refuses_what_would_not_read_back():
    with pytest.raises(SchemaError, match="expected i64"):
        encode(Amount(I64_MAX + 1))
    with pytest.raises(SchemaError, match="invalid type"):
        encode(Amount(True))
    with pytest.raises(SchemaError, match="invalid type"):
        encode(Flags(True, None))


def test_an_unsupported_annotation_is_refused_up_front():
    @dataclass
    class Odd:
        when: complex

    with pytest.raises(TypeError, match="unsupported field type"):
        check_payload_class(Odd)
    with pytest.raises(TypeError, match="not a dataclass"):
        check_payload_class(int)
