// Field types: what a command's, an event's or the state's fields hold, checked
// strictly both ways. `decode` takes a parsed JSON value and returns the author's
// value or throws WireError (the data is refused); `encode` takes the author's value
// and returns a JSON value or throws TypeError (the plugin has a bug).
//
//   int           i64 as BigInt (a safe-integer number is accepted when encoding)
//   float         a finite number (an integer is accepted and becomes a number)
//   string, bool
//   json          any JSON value, unchecked
//   optional(t, default)   absent or null means `default` (undefined if not given)
//   list(t)       an array of t
//   object({..})  nested fields, checked as the fields of a command or event

import { I64_MAX, I64_MIN, WireError, describeValue, isPlainObject } from './json.js';

/** How object fields are read: commands refuse unknown fields, events ignore them. */
export const REFUSE_UNKNOWN = 'refuse';
export const IGNORE_UNKNOWN = 'ignore';

function fieldType(name, decode, encode) {
  return Object.freeze({ name, decode, encode });
}

function refuse(path, expected, value) {
  return new WireError(`${path}: expected ${expected}, got ${describeValue(value)}`);
}

function bug(path, expected, value) {
  return new TypeError(`${path}: expected ${expected}, got ${describeValue(value)}`);
}

function inI64(value) {
  return value >= I64_MIN && value <= I64_MAX;
}

export const int = fieldType(
  'int',
  (value, path) => {
    if (typeof value !== 'bigint') throw refuse(path, 'an integer', value);
    if (!inI64(value)) throw new WireError(`${path}: ${value} is outside the i64 range`);
    return value;
  },
  (value, path) => {
    if (typeof value === 'number' && Number.isSafeInteger(value)) return BigInt(value);
    if (typeof value !== 'bigint' || !inI64(value)) throw bug(path, 'an i64 BigInt', value);
    return value;
  },
);

export const float = fieldType(
  'float',
  (value, path) => {
    if (typeof value === 'number') return value;
    if (typeof value === 'bigint') return Number(value);
    throw refuse(path, 'a number', value);
  },
  (value, path) => {
    if (typeof value !== 'number' || !Number.isFinite(value)) throw bug(path, 'a finite number', value);
    return value;
  },
);

function exactly(name, kind, expected) {
  const check = (error) => (value, path) => {
    if (typeof value !== kind) throw error(path, expected, value);
    return value;
  };
  return fieldType(name, check(refuse), check(bug));
}

export const string = exactly('string', 'string', 'a string');
export const bool = exactly('bool', 'boolean', 'a boolean');

export const json = fieldType(
  'json',
  (value) => value,
  (value) => value,
);

export function optional(type, fallback = undefined) {
  return Object.freeze({
    ...fieldType(
      `optional(${type.name})`,
      (value, path, unknown) => (value === null ? fallback : type.decode(value, path, unknown)),
      (value, path) => (value === undefined || value === null ? null : type.encode(value, path)),
    ),
    optional: true,
    fallback,
  });
}

export function list(type) {
  return fieldType(
    `list(${type.name})`,
    (value, path, unknown) => {
      if (!Array.isArray(value)) throw refuse(path, 'an array', value);
      return value.map((item, index) => type.decode(item, `${path}[${index}]`, unknown));
    },
    (value, path) => {
      if (!Array.isArray(value)) throw bug(path, 'an array', value);
      return value.map((item, index) => type.encode(item, `${path}[${index}]`));
    },
  );
}

export function object(fields) {
  const shape = checkFields(fields, 'object');
  return fieldType(
    'object',
    (value, path, unknown) => decodeFields(shape, value, path, unknown),
    (value, path) => encodeFields(shape, value, path),
  );
}

/** Checks a `{ name: type }` table when a plugin is defined; returns it frozen. */
export function checkFields(fields = {}, owner) {
  if (!isPlainObject(fields)) throw new TypeError(`${owner}: fields must be an object of field types`);
  for (const [name, type] of Object.entries(fields)) {
    if (typeof type?.decode !== 'function' || typeof type?.encode !== 'function') {
      throw new TypeError(`${owner}: field "${name}" is not a field type (int, string, optional(..), ...)`);
    }
  }
  return Object.freeze({ ...fields });
}

/** Reads the fields of `shape` from a parsed JSON object. */
export function decodeFields(shape, value, path, unknown) {
  if (!isPlainObject(value)) throw refuse(path, 'an object', value);
  if (unknown === REFUSE_UNKNOWN) refuseUnknownFields(shape, value, path);
  const decoded = {};
  for (const [name, type] of Object.entries(shape)) {
    if (Object.hasOwn(value, name)) {
      decoded[name] = type.decode(value[name], `${path}: field "${name}"`, unknown);
    } else if (type.optional) {
      decoded[name] = type.fallback;
    } else {
      throw new WireError(`${path}: missing field "${name}"`);
    }
  }
  return decoded;
}

function refuseUnknownFields(shape, value, path) {
  for (const name of Object.keys(value)) {
    if (!Object.hasOwn(shape, name)) {
      const expected = Object.keys(shape).map((known) => `"${known}"`).join(', ');
      throw new WireError(
        `${path}: unknown field ${JSON.stringify(name)} (expected ${expected || 'no fields'})`,
      );
    }
  }
}

/** Writes the author's value as a JSON object, fields in declaration order. */
export function encodeFields(shape, value, path) {
  if (!isPlainObject(value)) throw bug(path, 'an object', value);
  for (const name of Object.keys(value)) {
    if (!Object.hasOwn(shape, name)) throw new TypeError(`${path}: "${name}" is not a declared field`);
  }
  const encoded = {};
  for (const [name, type] of Object.entries(shape)) {
    const member = value[name];
    if (member === undefined && !type.optional) throw new TypeError(`${path}: missing field "${name}"`);
    encoded[name] = type.encode(member, `${path}: field "${name}"`);
  }
  return encoded;
}
