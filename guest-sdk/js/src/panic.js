// Panics reach the host as one readable line on the guest's stderr. An error that
// escapes an exported call is a bug; before the instance traps, the SDK writes
//
//   tally-plugin-panic: <message> (at <file>:<line>:<column>)
//
// as one line (line breaks in the message escaped as \n, backslashes as \\), the
// line the host looks for (wit/WIRE.md, Panics).

export const PANIC_MARKER = 'tally-plugin-panic: ';

/** The panic line for `error`, with its trailing newline. */
export function panicLine(error) {
  const message = error instanceof Error ? `${error.name}: ${error.message}` : `uncaught ${String(error)}`;
  const location = error instanceof Error ? throwLocation(error.stack) : undefined;
  return `${PANIC_MARKER}${oneLine(message)}${location ? ` (at ${location})` : ''}\n`;
}

/** Escapes backslashes and line breaks so that the report stays one line. */
export function oneLine(message) {
  return message.replaceAll('\\', '\\\\').replaceAll('\n', '\\n').replaceAll('\r', '\\r');
}

/**
 * `file:line:column` of the innermost frame of a stack, in either engine's format:
 * SpiderMonkey's `fn@file:1:2` (the component) or V8's `at fn (file:1:2)` (tests).
 */
export function throwLocation(stack) {
  for (const frame of String(stack ?? '').split('\n')) {
    const match = /(?:@|\(|at )([^@()\s][^@()]*:\d+:\d+)\)?\s*$/.exec(frame);
    if (match) return match[1];
  }
  return undefined;
}

/**
 * Writes the panic line for `error` to stderr and returns the Error to throw. It is
 * a fresh Error, never the one thrown: componentize-js takes an exception from an
 * export returning `result` for its err value when it does not recognise it as an
 * Error (it comes from another realm), so a bug's own error with a string `code`
 * could pass for a rejection. A fresh Error has no `code` and is no string: as an
 * err value it fails to encode, and the instance traps in every export.
 */
export function reportPanic(error, write = (line) => console.error(line.trimEnd())) {
  const line = panicLine(error);
  write(line);
  return new Error(line.slice(PANIC_MARKER.length).trimEnd());
}
