// The strict JSON codec: what it accepts, what it refuses, exact integers and the
// nesting guard.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { DEFAULT_MAX_DEPTH, WireError, decodeUtf8, parseJson, stringifyJson } from '../src/json.js';

const refused = (text, pattern = /./) => assert.throws(() => parseJson(text), (e) => e instanceof WireError && pattern.test(e.message));

test('integers are BigInt and exact beyond 2^53', () => {
  assert.equal(parseJson('9007199254740993'), 9007199254740993n);
  assert.equal(parseJson('-9007199254740993'), -9007199254740993n);
  assert.equal(parseJson('9223372036854775807'), 2n ** 63n - 1n);
  assert.equal(parseJson('-9223372036854775808'), -(2n ** 63n));
});

test('numbers with a fraction or an exponent, and -0, are doubles', () => {
  assert.equal(parseJson('1.5'), 1.5);
  assert.equal(parseJson('5e0'), 5);
  assert.equal(typeof parseJson('5.0'), 'number');
  assert.ok(Object.is(parseJson('-0'), -0));
});

test('numbers JSON does not have are refused', () => {
  for (const text of ['05', '+5', '.5', '5.', '1e', '-', 'NaN', 'Infinity', '-Infinity', '0x10', '1_000']) {
    refused(text);
  }
});

test('a double out of range is refused, never Infinity', () => {
  refused('1e400', /out of range/);
  refused('-1e400', /out of range/);
});

test('whitespace around and between tokens is ignored; only JSON whitespace', () => {
  assert.deepEqual({ ...parseJson(' \n{ "a" :\t[ 1 , 2 ] }\r\n') }, { a: [1n, 2n] });
  refused('\u00a0{}');
  refused('{}\u000b');
});

test('anything after the value is refused', () => {
  refused('{"amount": 5} {}', /trailing/);
  refused('{"amount": 5}}', /trailing/);
  refused('1 2', /trailing/);
});

test('no extensions: comments, trailing commas, single quotes, unquoted keys', () => {
  for (const text of ['{"a": 5 /* c */}', '{"a": 5,}', '[1,]', "{'a': 5}", '{a: 5}', '// c\n{}', '[1 2]', '{"a" 1}']) {
    refused(text);
  }
});

test('a byte order mark is refused', () => {
  refused(decodeUtf8(new Uint8Array([0xef, 0xbb, 0xbf, 0x7b, 0x7d])));
});

test('bytes that are not UTF-8 are refused', () => {
  assert.throws(() => decodeUtf8(new Uint8Array([0x22, 0xff, 0x22])), WireError);
  assert.throws(() => decodeUtf8(new Uint8Array([0x22, 0xed, 0xa0, 0x80, 0x22])), WireError); // encoded surrogate
});

test('escapes are decoded, surrogate pairs joined, lone surrogates refused', () => {
  assert.equal(parseJson('"\\u0061\\n\\t\\"\\\\\\/\\b\\f\\r"'), 'a\n\t"\\/\b\f\r');
  assert.equal(parseJson('"\\ud83d\\ude00"'), '\u{1f600}');
  refused('"\\ud800"', /surrogate/);
  refused('"\\ud800x"', /surrogate/);
  refused('"\\ud800\\u0041"', /surrogate/);
  refused('"\\udc00"', /surrogate/);
  refused('"\\x41"', /escape/);
  refused('"\\u12"', /escape/);
});

test('raw control characters in strings are refused', () => {
  refused('"a\nb"', /control/);
  refused('"\u0000"', /control/);
});

test('duplicate keys are refused, also when spelt with an escape', () => {
  refused('{"amount": 1, "amount": 2}', /duplicate/);
  refused('{"amount": 1, "\\u0061mount": 2}', /duplicate/);
  refused('{"a": {"b": 1, "b": 1}}', /duplicate/);
});

test('__proto__ is an ordinary key', () => {
  const value = parseJson('{"__proto__": {"polluted": true}}');
  assert.equal(Object.keys(value).length, 1);
  assert.equal({}.polluted, undefined);
  assert.equal(stringifyJson(value), '{"__proto__":{"polluted":true}}');
});

test('nesting up to the limit is read; one level more is refused', () => {
  const nested = (depth) => '['.repeat(depth) + ']'.repeat(depth);
  assert.doesNotThrow(() => parseJson(nested(DEFAULT_MAX_DEPTH)));
  refused(nested(DEFAULT_MAX_DEPTH + 1), /nested deeper than 128/);
  refused(`{"amount": ${nested(5000)}}`, /nested deeper/);
});

test('the limit is configurable', () => {
  assert.doesNotThrow(() => parseJson('[[[]]]', { maxDepth: 3 }));
  assert.throws(() => parseJson('[[[[]]]]', { maxDepth: 3 }), /deeper than 3/);
  assert.doesNotThrow(() => parseJson('{"a":'.repeat(1000) + '1' + '}'.repeat(1000), { maxDepth: 1000 }));
});

test('deep input never recurses: a million levels is refused without a stack overflow', () => {
  refused('['.repeat(1_000_000), /nested deeper/);
  assert.doesNotThrow(() => parseJson('['.repeat(100_000) + ']'.repeat(100_000), { maxDepth: 100_000 }));
});

test('cut-short data is refused', () => {
  for (const text of ['', '{', '{"a"', '{"a":', '{"a":1', '[1,', '"abc', 'tru', 'nul']) {
    refused(text);
  }
});

test('the encoder writes compact JSON with exact integers', () => {
  const value = { a: 9007199254740993n, b: [true, null, 'x"y'], c: 1.5, d: 7, skipped: undefined };
  assert.equal(stringifyJson(value), '{"a":9007199254740993,"b":[true,null,"x\\"y"],"c":1.5,"d":7}');
  assert.equal(stringifyJson(-(2n ** 63n)), '-9223372036854775808');
});

test('the encoder refuses what JSON cannot hold', () => {
  for (const value of [NaN, Infinity, () => 1, new Map(), Symbol('s'), [undefined], new Date(0)]) {
    assert.throws(() => stringifyJson(value), TypeError);
  }
});

test('what the encoder writes reads back the same', () => {
  const text = '{"a":[1,-2,{"b":"\\u00e9\\ud83d\\ude00"}],"c":-9223372036854775808,"d":0.1}';
  assert.equal(stringifyJson(parseJson(text)), '{"a":[1,-2,{"b":"é😀"}],"c":-9223372036854775808,"d":0.1}');
});
