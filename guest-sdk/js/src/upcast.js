// Schema evolution: upcasters lift stored events of old schema versions to the
// current ones, as plain functions on parsed JSON data. `next(name, from, fn)` turns
// the data of `name` at version `from` into its data at `from + 1`;
// `replace(name, from, fn)` turns it into any number of events `{ name, version, data }`
// (possibly none, possibly renamed), which are upcast further if not current. An
// upcaster refuses an event by throwing; the message becomes `upcast`'s error.

/** Upcasting one stored event stops with an error after this many steps. */
export const MAX_UPCAST_STEPS = 64;

export function next(event, fromVersion, upcast) {
  return Object.freeze({ event, fromVersion, kind: 'next', upcast });
}

export function replace(event, fromVersion, upcast) {
  return Object.freeze({ event, fromVersion, kind: 'replace', upcast });
}

/**
 * Lifts `stored` (`{ name, version, data }`, data parsed) to current versions.
 * Returns the events, or throws an Error whose message is `upcast`'s error.
 */
export function upcastEvent(aggregate, stored) {
  const done = [];
  const pending = [stored]; // last one first, so that replacements keep their order
  for (let steps = 0; pending.length > 0; ) {
    const event = pending.pop();
    const current = currentVersion(aggregate, event.name);
    if (event.version === current) {
      done.push(event);
      continue;
    }
    if (current !== undefined && event.version > current) {
      throw new Error(`event ${event.name} v${event.version} is newer than this plugin, which writes v${current}`);
    }
    steps += 1;
    if (steps > MAX_UPCAST_STEPS) throw new Error(`upcasting did not finish within ${MAX_UPCAST_STEPS} steps`);
    pending.push(...runUpcaster(aggregate, event, current).reverse());
  }
  return done;
}

function runUpcaster(aggregate, event, current) {
  const upcaster = findUpcaster(aggregate.upcasters, event.name, event.version);
  if (upcaster === undefined) {
    throw new Error(
      current === undefined
        ? `unknown event ${event.name} v${event.version}`
        : `no upcaster for ${event.name} v${event.version} (current is v${current})`,
    );
  }
  let result;
  try {
    result = upcaster.upcast(event.data);
  } catch (error) {
    throw new Error(`upcasting ${event.name} v${event.version}: ${error?.message ?? error}`);
  }
  if (upcaster.kind === 'next') return [{ name: event.name, version: event.version + 1, data: result }];
  if (!Array.isArray(result)) throw new TypeError(`upcaster of ${event.name} v${event.version} must return an array of events`);
  return result;
}

function currentVersion(aggregate, name) {
  return Object.hasOwn(aggregate.events, name) ? aggregate.events[name].version : undefined;
}

function findUpcaster(upcasters, name, version) {
  return upcasters.find((u) => u.event === name && u.fromVersion === version);
}

/**
 * The upcaster table must fit the events: each a `next`/`replace` step, one per
 * event and version, below the version written, naming an event unless it is a
 * retired one replaced at the end of its chain, and every version 1 .. N-1 of an
 * event written at N has one. Throws TypeError naming the bad entry.
 */
export function checkUpcasters(aggregate) {
  const seen = new Set();
  for (const upcaster of aggregate.upcasters) {
    checkUpcaster(aggregate, upcaster, seen);
  }
  for (const [name, { version }] of Object.entries(aggregate.events)) {
    for (let from = 1; from < version; from += 1) {
      if (!seen.has(`${name} v${from}`)) {
        throw new TypeError(`defineAggregate: event ${name} is written at v${version} but has no upcaster from v${from}`);
      }
    }
  }
}

function checkUpcaster(aggregate, upcaster, seen) {
  const fail = (message) => {
    throw new TypeError(`defineAggregate: upcaster ${upcaster?.event} v${upcaster?.fromVersion}: ${message}`);
  };
  if (!['next', 'replace'].includes(upcaster?.kind) || typeof upcaster.upcast !== 'function') {
    fail('is not made by next(..) or replace(..)');
  }
  if (!Number.isInteger(upcaster.fromVersion) || upcaster.fromVersion < 1) fail('the version must be an integer from 1');
  const key = `${upcaster.event} v${upcaster.fromVersion}`;
  if (seen.has(key)) fail('is listed twice');
  seen.add(key);
  const current = currentVersion(aggregate, upcaster.event);
  if (current === undefined && upcaster.kind !== 'replace') {
    const known = Object.keys(aggregate.events).join(', ');
    fail(`names no event (events: ${known}); a retired event must end in replace(..)`);
  }
  if (current !== undefined && upcaster.fromVersion >= current) {
    fail(`would never run: the event is written at v${current}`);
  }
}
