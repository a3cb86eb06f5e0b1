// @tally/sdk: write a Tally aggregate plugin in JavaScript. See README.md.

export { INVALID_COMMAND, INVALID_STATE, Rejection, defineAggregate, event } from './aggregate.js';
export { bool, float, int, json, list, object, optional, string } from './schema.js';
export { MAX_UPCAST_STEPS, next, replace } from './upcast.js';
export { DEFAULT_MAX_DEPTH } from './json.js';
export { exportAggregate } from './component.js';
