// The author's API: an aggregate is one object saying what it accepts (commands),
// what it records (events), how it decides (`handle` per command) and how it evolves
// (`apply` per event). `defineAggregate` checks it once, when the module loads (at
// build time for a component), so a misspelt table fails the build, not a call.

import { DEFAULT_MAX_DEPTH } from './json.js';
import { checkFields } from './schema.js';
import { checkUpcasters } from './upcast.js';

const KEBAB_CASE = /^[a-z0-9]+(-[a-z0-9]+)*$/;
const SEMVER = /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$/;

/** The rejection codes the SDK answers with itself. */
export const INVALID_COMMAND = 'invalid-command';
export const INVALID_STATE = 'invalid-state';

/**
 * Why a command was refused: throw it from a command's `handle`. The code is stable
 * and kebab-case (`insufficient-funds`); the message is for people.
 */
export class Rejection extends Error {
  constructor(code, message) {
    super(message);
    if (typeof code !== 'string' || !KEBAB_CASE.test(code)) {
      throw new TypeError(`rejection code ${JSON.stringify(code)} is not kebab-case`);
    }
    this.name = 'Rejection';
    this.code = code;
  }
}

/** An event for `handle` to return: its name and its fields. */
export function event(name, data = {}) {
  return { name, data };
}

/**
 * Defines an aggregate plugin.
 *
 * @param {object} spec
 * @param {string} spec.type         aggregate type, kebab-case (`bank-account`)
 * @param {string} spec.version      plugin version, semver (`1.0.0`)
 * @param {string} spec.description  one sentence
 * @param {object} spec.state        the state's fields (`{ balance: int }`): its
 *                                   stored encoding and, by default, its state JSON
 * @param {object|Function} spec.initialState  the state before any event
 * @param {object} spec.commands     `{ Name: { fields, handle(state, data, ctx) } }`;
 *                                   `handle` returns events or throws a Rejection
 * @param {object} spec.events       `{ Name: { version = 1, fields, apply(state, data) } }`;
 *                                   `apply` returns the new state
 * @param {Array}  [spec.upcasters]  `next(..)` and `replace(..)` steps for old events
 * @param {Function} [spec.stateJson]  renders a state as a JSON object for queries
 * @param {boolean} [spec.allowUnknownFields=false]  take command fields it does not declare
 * @param {number} [spec.maxDepth=128]  nesting refused in command and event data
 */
export function defineAggregate(spec) {
  const aggregate = {
    type: checkType(spec.type),
    version: checkVersion(spec.version),
    description: checkDescription(spec.description),
    state: checkFields(spec.state, 'state'),
    initialState: checkInitialState(spec.initialState),
    commands: checkTable(spec.commands, 'commands', checkCommand),
    events: checkTable(spec.events, 'events', checkEvent),
    upcasters: Object.freeze([...(spec.upcasters ?? [])]),
    stateJson: checkOptionalFunction(spec.stateJson, 'stateJson'),
    allowUnknownFields: spec.allowUnknownFields === true,
    maxDepth: checkMaxDepth(spec.maxDepth ?? DEFAULT_MAX_DEPTH),
  };
  checkUpcasters(aggregate);
  return Object.freeze(aggregate);
}

function fail(message) {
  throw new TypeError(`defineAggregate: ${message}`);
}

function checkType(type) {
  if (typeof type !== 'string' || !KEBAB_CASE.test(type)) fail(`type ${JSON.stringify(type)} is not kebab-case`);
  return type;
}

function checkVersion(version) {
  if (typeof version !== 'string' || !SEMVER.test(version)) fail(`version ${JSON.stringify(version)} is not semver`);
  return version;
}

function checkDescription(description) {
  if (typeof description !== 'string' || description === '') fail('description must be a sentence');
  return description;
}

function checkInitialState(initialState) {
  if (typeof initialState === 'function') return initialState;
  if (typeof initialState !== 'object' || initialState === null) fail('initialState must be an object or a function');
  return () => initialState; // only ever encoded, never handed to apply
}

function checkOptionalFunction(fn, name) {
  if (fn !== undefined && typeof fn !== 'function') fail(`${name} must be a function`);
  return fn;
}

function checkMaxDepth(maxDepth) {
  if (!Number.isSafeInteger(maxDepth) || maxDepth < 1) fail(`maxDepth must be a positive integer, got ${maxDepth}`);
  return maxDepth;
}

/** A `{ Name: entry }` table, each name non-empty, each entry checked. */
function checkTable(table, what, checkEntry) {
  if (typeof table !== 'object' || table === null || Object.keys(table).length === 0) {
    fail(`${what} must name at least one`);
  }
  const checked = {};
  for (const [name, entry] of Object.entries(table)) {
    if (name === '') fail(`${what}: a name is empty`);
    checked[name] = Object.freeze(checkEntry(name, entry ?? {}));
  }
  return Object.freeze(checked);
}

function checkCommand(name, { fields, handle }) {
  if (typeof handle !== 'function') fail(`command ${name} has no handle(state, data, ctx) function`);
  return { fields: checkFields(fields, `command ${name}`), handle };
}

function checkEvent(name, { version = 1, fields, apply }) {
  if (!Number.isInteger(version) || version < 1 || version > 0xffffffff) {
    fail(`event ${name}: version must be an integer from 1, got ${version}`);
  }
  if (typeof apply !== 'function') fail(`event ${name} has no apply(state, data) function`);
  return { version, fields: checkFields(fields, `event ${name}`), apply };
}
