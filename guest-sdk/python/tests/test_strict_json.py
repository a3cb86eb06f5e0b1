"""The JSON reader and writer follow the wire rules (wit/WIRE.md, JSON)."""

import pytest

from tally_sdk.strict_json import (
    DEFAULT_MAX_DEPTH,
    DuplicateKey,
    JsonError,
    dump_bytes,
    dumps,
    loads,
    nesting_depth,
)


def test_whitespace_around_and_inside_is_ignored():
    assert loads(b' \n\t{ "a" :\r\n 1 } \r\n') == {"a": 1}
    assert loads(b"\x0c[1]\x0c") == [1]


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 5} {}',
        '{"a": 5}}',
        '{"a": 5,}',
        "[1,]",
        '{"a": 5 /* cents */}',
        '{"a": 5} // cents',
        "{'a': 5}",
        "{a: 5}",
        '{"a": 05}',
        '{"a": +5}',
        '{"a": .5}',
        '{"a": 5.}',
        '{"a": NaN}',
        '{"a": Infinity}',
        '{"a": -Infinity}',
        '{"a": 1e400}',
        '{"a": -1e400}',
        "\ufeff{}",
        '"tab\there"',
        "",
        "nul",
        '{"a": 1',
    ],
)
def test_what_is_not_strict_json_is_refused(text):
    with pytest.raises(JsonError):
        loads(text.encode("utf-8"))


def test_bytes_that_are_not_utf8_are_refused():
    for data in [b'"\xff"', b'"\xed\xa0\x80"', b'"\xc3"']:
        with pytest.raises(JsonError, match="UTF-8"):
            loads(data)


@pytest.mark.parametrize("text", ['"\\ud800"', '"a\\udfffb"', '{"\\ud800": 1}', '[["\\udc00"]]'])
def test_an_escaped_lone_surrogate_is_refused(text):
    with pytest.raises(JsonError, match="surrogate"):
        loads(text.encode())


def test_an_escaped_surrogate_pair_is_one_character():
    assert loads(b'"\\ud83d\\ude00"') == "\U0001f600"


def test_strings_are_compared_after_their_escapes():
    assert loads(b'{"\\u0061mount": 1}') == {"amount": 1}


def test_a_duplicate_key_is_refused_even_spelt_with_an_escape():
    for text in [
        b'{"a": 1, "a": 2}',
        b'{"amount": 1, "\\u0061mount": 2}',
        b'[{"x": {"b": 1, "b": 1}}]',
    ]:
        with pytest.raises(DuplicateKey):
            loads(text)


def test_integers_are_exact_over_the_i64_range_and_beyond():
    assert loads(b"9223372036854775807") == 2**63 - 1
    assert loads(b"-9223372036854775808") == -(2**63)
    assert loads(b"9007199254740993") == 9007199254740993
    assert loads(b"9223372036854775808") == 2**63  # a schema refuses it, not the reader


def test_a_number_with_a_fraction_or_exponent_is_a_float():
    for text in [b"5.0", b"5e0", b"5E+0"]:
        value = loads(text)
        assert isinstance(value, float) and value == 5.0


def test_negative_zero_is_read_as_a_float():
    value = loads(b"-0")
    assert isinstance(value, float)
    assert str(value) == "-0.0"
    assert loads(b"0") == 0 and isinstance(loads(b"0"), int)


def test_nesting_up_to_the_limit_is_read_and_beyond_it_refused():
    assert loads(b"[" * DEFAULT_MAX_DEPTH + b"]" * DEFAULT_MAX_DEPTH) is not None
    too_deep = b"[" * (DEFAULT_MAX_DEPTH + 1) + b"]" * (DEFAULT_MAX_DEPTH + 1)
    with pytest.raises(JsonError, match="129 levels deep"):
        loads(too_deep)


def test_five_thousand_levels_are_refused_before_the_parser_recurses(monkeypatch):
    import json

    def parser_must_not_run(*args, **kwargs):
        raise AssertionError("the recursive parser ran")

    monkeypatch.setattr(json, "loads", parser_must_not_run)
    for opening, closing in ["[]", "{}"]:
        deep = '{"a":' * 2 + opening * 5000 + closing * 5000 + "}" * 2
        with pytest.raises(JsonError, match="levels deep"):
            loads(deep.encode())


def test_objects_and_arrays_count_as_levels_alike():
    text = '{"a": [{"b": [1]}]}'
    assert nesting_depth(text) == 4
    assert loads(text.encode(), max_depth=4) == {"a": [{"b": [1]}]}
    with pytest.raises(JsonError):
        loads(text.encode(), max_depth=3)


def test_brackets_inside_strings_do_not_count():
    text = '["[[[[[[", "\\"]]]]]{{{{", {"k[": "{"}]'
    assert nesting_depth(text) == 2
    assert loads(text.encode(), max_depth=2)[0] == "[[[[[["


def test_the_depth_limit_is_configurable():
    data = b"[[[1]]]"
    assert loads(data, max_depth=3) == [[[1]]]
    with pytest.raises(JsonError):
        loads(data, max_depth=2)


def test_a_deep_value_under_a_long_flat_one_is_still_found():
    flat = "[" + ",".join(["[]"] * 300) + "]"  # many brackets, depth 2
    assert loads(flat.encode()) is not None
    deep = "[" + flat + "," + "[" * 200 + "]" * 200 + "]"
    with pytest.raises(JsonError, match="levels deep"):
        loads(deep.encode())


def test_writing_is_compact_in_order_and_utf8():
    assert dumps({"b": 1, "a": [True, None, "é"]}) == '{"b":1,"a":[true,null,"é"]}'
    assert dump_bytes({"x": "é"}) == '{"x":"é"}'.encode()


def test_writing_refuses_nan_and_lone_surrogates():
    with pytest.raises(ValueError):
        dumps({"x": float("nan")})
    with pytest.raises(UnicodeEncodeError):
        dump_bytes({"x": "\ud800"})
