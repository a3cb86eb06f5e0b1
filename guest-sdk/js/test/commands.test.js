// Commands as WIRE.md reads them: names exact, fields strict, each misfit the
// rejection invalid-command with the state unchanged, and before any rule.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { defineAggregate } from '../src/index.js';
import { given } from '../src/testing.js';
import { ledger, ledgerSpec } from './fixtures.js';

const I64_MAX = '9223372036854775807';
const I64_MIN = '-9223372036854775808';

function invalid(text, name = 'Enter', aggregate = ledger) {
  return given(aggregate, []).whenRaw(name, text).thenRejects('invalid-command');
}

function accepted(text, name = 'Enter', aggregate = ledger) {
  return given(aggregate, []).whenRaw(name, text).accepted();
}

test('a name the plugin does not describe is refused, compared exactly', () => {
  for (const name of ['enter', ' Enter', 'Enter ', '', 'Transfer', 'constructor', '__proto__', 'toString']) {
    const rejection = invalid('{"amount": 1}', name);
    assert.match(rejection.message, /unknown command/);
  }
});

test('integers are exact over i64, and refused beyond it', () => {
  for (const amount of [I64_MAX, I64_MIN, '9007199254740993']) {
    const events = accepted(`{"amount": ${amount}}`).events;
    assert.equal(new TextDecoder().decode(events[0].data), `{"amount":${amount},"memo":"none","tags":[]}`);
  }
  for (const amount of ['9223372036854775808', '-9223372036854775809', '1e400', '5.0', '5e0', '-0', '1.5']) {
    invalid(`{"amount": ${amount}}`);
  }
});

test('a field of the wrong type is refused', () => {
  for (const amount of ['"5"', 'true', 'null', '{"value": 5}', '[5]']) {
    invalid(`{"amount": ${amount}}`);
  }
  invalid('{"amount": 1, "memo": 5}');
  invalid('{"amount": 1, "tags": ["a", 1]}');
  invalid('{"amount": 1, "source": {"system": 1}}');
});

test('a missing, unknown, misspelt or differently cased field is refused', () => {
  assert.match(invalid('{}').message, /Enter: missing field "amount"/);
  assert.match(invalid('{"amount": 1, "extra!": 1}').message, /Enter: unknown field "extra!" \(expected "amount", /);
  invalid('{"amuont": 1}');
  invalid('{"Amount": 1}');
});

test('unknown fields in nested objects are refused too', () => {
  const rejection = invalid('{"amount": 1, "source": {"system": "x", "sistem": "y"}}');
  assert.match(rejection.message, /unknown field "sistem"/);
});

test('a duplicate field is refused, the last one does not win', () => {
  invalid('{"amount": 1, "amount": 2}');
  invalid('{"amount": 1, "\\u0061mount": 2}');
});

test('a command with fields takes an object and nothing else', () => {
  for (const text of ['', '  ', 'null', '[1]', '1', '"x"', 'true', 'not json', '{"amount": 1']) {
    invalid(text);
  }
});

test('an optional field may be absent or null, both meaning its default', () => {
  for (const text of ['{"amount": 1}', '{"amount": 1, "memo": null, "tags": null}']) {
    const [written] = accepted(text).events;
    assert.equal(new TextDecoder().decode(written.data), '{"amount":1,"memo":"none","tags":[]}');
  }
});

test('a json field takes any JSON value, still within the nesting limit', () => {
  accepted('{"amount": 1, "extra": {"anything": [1, "two", null]}}');
  invalid(`{"amount": 1, "extra": ${'['.repeat(200)}${']'.repeat(200)}}`);
});

test('a command without fields takes no data, null or {} and nothing else', () => {
  for (const text of ['', ' ', 'null', '{}', ' { } ']) {
    accepted(text, 'Freeze');
  }
  for (const text of ['{"now": true}', '[]', '0', '""', 'false', '{} {}']) {
    invalid(text, 'Freeze');
  }
});

test('a command nested 5,000 levels deep is invalid-command, not a crash', () => {
  const deep = `{"amount": ${'['.repeat(5000)}${']'.repeat(5000)}}`;
  assert.match(invalid(deep).message, /nested deeper than 128 levels/);
  const deepObject = `{"amount": 1, "source": ${'{"a":'.repeat(5000)}1${'}'.repeat(5000)}}`;
  invalid(deepObject);
});

test('the nesting limit is the aggregate\'s maxDepth', () => {
  const shallow = defineAggregate({ ...ledgerSpec, maxDepth: 2 });
  given(shallow, []).whenRaw('Enter', '{"amount": 1, "tags": ["a"]}').accepted();
  assert.match(invalid('{"amount": 1, "extra": [[]]}', 'Enter', shallow).message, /deeper than 2/);
});

test('allowUnknownFields takes fields the command does not declare', () => {
  const lenient = defineAggregate({ ...ledgerSpec, allowUnknownFields: true });
  accepted('{"amount": 1, "later": true}', 'Enter', lenient);
  invalid('{"amount": "1", "later": true}', 'Enter', lenient);
});

test('a malformed command is invalid-command whatever the state, before any rule', () => {
  given(ledger, [{ name: 'Frozen' }]).whenRaw('Enter', '{"amount": "1"}').thenRejects('invalid-command');
  given(ledger, [{ name: 'Frozen' }]).when('Enter', { amount: 1n }).thenRejects('ledger-frozen');
});
