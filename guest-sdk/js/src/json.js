// Strict JSON, as wit/WIRE.md reads it: one RFC 8259 value, no extensions,
// integers exact over i64 (as BigInt), duplicate keys and lone surrogates refused,
// nesting bounded. The parser is iterative: depth costs heap, never guest stack.
//
// Parsed values: objects are null-prototype objects (so `__proto__` is an ordinary
// key), arrays are arrays, integers (no fraction, no exponent) are BigInt, other
// numbers are finite doubles, `-0` is the double -0 (JSON parsers read it as a
// float), strings, booleans and null are themselves.

/** Data that does not fit the wire rules: refused, never a crash. */
export class WireError extends Error {
  constructor(message) {
    super(message);
    this.name = 'WireError';
  }
}

/** How many levels of arrays and objects a value may nest, as the Rust SDK. */
export const DEFAULT_MAX_DEPTH = 128;

export const I64_MIN = -(2n ** 63n);
export const I64_MAX = 2n ** 63n - 1n;

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const utf8Encoder = new TextEncoder();

/** UTF-8 bytes as text; bytes that are not UTF-8 are refused. A BOM is kept. */
export function decodeUtf8(bytes) {
  try {
    return utf8.decode(bytes);
  } catch {
    throw new WireError('data is not UTF-8');
  }
}

/** Text as UTF-8 bytes. */
export function encodeUtf8(text) {
  return utf8Encoder.encode(text);
}

/** Whether wire data is "no data": empty or only whitespace. */
export function isBlank(text) {
  return /^[ \t\n\r]*$/.test(text);
}

/** Parses one JSON value from `text`; throws WireError for anything else. */
export function parseJson(text, { maxDepth = DEFAULT_MAX_DEPTH } = {}) {
  return new Parser(text, maxDepth).parseDocument();
}

const NUMBER = /-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/y;
const ESCAPES = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };

class Parser {
  constructor(text, maxDepth) {
    this.text = text;
    this.at = 0;
    this.maxDepth = maxDepth;
  }

  /** The whole text as one value, containers kept on an explicit stack. */
  parseDocument() {
    const open = []; // containers being filled: { container, key }
    for (;;) {
      let value = this.openOrScalar(open);
      if (value === undefined) continue; // a container was opened; read its first value
      for (;;) {
        if (open.length === 0) return this.finish(value);
        const frame = open[open.length - 1];
        store(frame, value);
        if (this.nextMember(frame)) break; // a comma: read the next value
        open.pop(); // the container closed: it is the completed value
        value = frame.container;
      }
    }
  }

  /** Opens a container (returns undefined, or it if empty) or reads a scalar. */
  openOrScalar(open) {
    this.skipWhitespace();
    const char = this.text[this.at];
    if (char !== '{' && char !== '[') return this.scalar();
    if (open.length >= this.maxDepth) {
      throw this.error(`nested deeper than ${this.maxDepth} levels`);
    }
    this.at += 1;
    const frame = char === '[' ? { container: [] } : { container: Object.create(null), key: null };
    this.skipWhitespace();
    if (this.text[this.at] === (char === '[' ? ']' : '}')) {
      this.at += 1;
      return frame.container;
    }
    if (char === '{') frame.key = this.memberKey(frame.container);
    open.push(frame);
    return undefined;
  }

  /** After a member: true at a comma (next key read), false at the closing bracket. */
  nextMember(frame) {
    this.skipWhitespace();
    const char = this.text[this.at];
    const isArray = Array.isArray(frame.container);
    if (char === ',') {
      this.at += 1;
      if (!isArray) frame.key = this.memberKey(frame.container);
      return true;
    }
    if (char === (isArray ? ']' : '}')) {
      this.at += 1;
      return false;
    }
    throw this.error(`expected "," or "${isArray ? ']' : '}'}"`);
  }

  /** An object key and its colon; a key already in the object is refused. */
  memberKey(object) {
    this.skipWhitespace();
    if (this.text[this.at] !== '"') throw this.error('expected a string key');
    const key = this.string();
    if (Object.hasOwn(object, key)) throw this.error(`duplicate key ${JSON.stringify(key)}`);
    this.skipWhitespace();
    if (this.text[this.at] !== ':') throw this.error('expected ":"');
    this.at += 1;
    return key;
  }

  finish(value) {
    this.skipWhitespace();
    if (this.at !== this.text.length) throw this.error('trailing characters after the value');
    return value;
  }

  scalar() {
    const char = this.text[this.at];
    if (char === '"') return this.string();
    if (char === '-' || (char >= '0' && char <= '9')) return this.number();
    for (const [word, value] of [['true', true], ['false', false], ['null', null]]) {
      if (this.text.startsWith(word, this.at)) {
        this.at += word.length;
        return value;
      }
    }
    throw this.error(char === undefined ? 'unexpected end of data' : 'expected a value');
  }

  number() {
    NUMBER.lastIndex = this.at;
    const match = NUMBER.exec(this.text);
    if (match === null) throw this.error('invalid number');
    this.at = NUMBER.lastIndex;
    const [text, fraction, exponent] = match;
    if (fraction === undefined && exponent === undefined && text !== '-0') return BigInt(text);
    const number = Number(text);
    if (!Number.isFinite(number)) throw this.error(`number ${text} out of range`);
    return number;
  }

  string() {
    let out = '';
    let from = this.at + 1; // after the opening quote
    for (let at = from; ; at += 1) {
      const code = this.text.charCodeAt(at);
      if (Number.isNaN(code)) throw this.error('unterminated string');
      if (code < 0x20) throw this.error('control character in a string');
      if (code === 0x22) {
        this.at = at + 1;
        return out + this.text.slice(from, at);
      }
      if (code === 0x5c) {
        out += this.text.slice(from, at);
        this.at = at;
        out += this.escape();
        at = this.at - 1;
        from = this.at;
      }
    }
  }

  /** One escape at `this.at` (the backslash); a surrogate must come in a pair. */
  escape() {
    const char = this.text[this.at + 1];
    if (char !== 'u') {
      if (!Object.hasOwn(ESCAPES, char)) throw this.error('invalid escape');
      this.at += 2;
      return ESCAPES[char];
    }
    const high = this.hex4(this.at + 2);
    this.at += 6;
    if (high >= 0xdc00 && high <= 0xdfff) throw this.error('lone surrogate escape');
    if (high < 0xd800 || high > 0xdbff) return String.fromCharCode(high);
    const low = this.text.startsWith('\\u', this.at) ? this.hex4(this.at + 2) : -1;
    if (low < 0xdc00 || low > 0xdfff) throw this.error('lone surrogate escape');
    this.at += 6;
    return String.fromCharCode(high, low);
  }

  hex4(at) {
    const digits = this.text.slice(at, at + 4);
    if (!/^[0-9a-fA-F]{4}$/.test(digits)) throw this.error('invalid \\u escape');
    return parseInt(digits, 16);
  }

  skipWhitespace() {
    for (;;) {
      const char = this.text[this.at];
      if (char !== ' ' && char !== '\t' && char !== '\n' && char !== '\r') return;
      this.at += 1;
    }
  }

  error(message) {
    return new WireError(`data is not JSON: ${message} at offset ${this.at}`);
  }
}

function store(frame, value) {
  if (Array.isArray(frame.container)) frame.container.push(value);
  else frame.container[frame.key] = value;
}

/**
 * Compact JSON text of a value built from the parsed kinds (BigInt or safe-integer
 * numbers for integers, finite numbers, strings, booleans, null, arrays, objects).
 * Object members whose value is undefined are left out, as JSON.stringify does.
 * Anything else (NaN, a function, a Map) is a bug: TypeError.
 */
export function stringifyJson(value) {
  switch (typeof value) {
    case 'bigint':
      return value.toString();
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError(`${value} cannot be written as JSON`);
      return JSON.stringify(value);
    case 'string':
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object':
      if (value === null) return 'null';
      if (Array.isArray(value)) return `[${value.map(stringifyJson).join(',')}]`;
      if (isPlainObject(value)) return stringifyObject(value);
  }
  throw new TypeError(`${describeValue(value)} cannot be written as JSON`);
}

function stringifyObject(object) {
  const members = [];
  for (const [key, member] of Object.entries(object)) {
    if (member !== undefined) members.push(`${JSON.stringify(key)}:${stringifyJson(member)}`);
  }
  return `{${members.join(',')}}`;
}

/** An object literal or a parsed object, not an array, class instance or Map. */
export function isPlainObject(value) {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const prototype = Object.getPrototypeOf(value);
  return prototype === null || prototype === Object.prototype;
}

/** A short description of a value's JSON kind, for messages. */
export function describeValue(value) {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  switch (typeof value) {
    case 'bigint':
      return `the integer ${value}`;
    case 'number':
      return Number.isFinite(value) ? `the number ${value}` : `${value}`;
    case 'string':
      return `the string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value)}`;
    case 'boolean':
      return `${value}`;
    case 'object':
      return isPlainObject(value) ? 'an object' : `a ${value.constructor?.name ?? 'object'}`;
    default:
      return `a ${typeof value}`;
  }
}
