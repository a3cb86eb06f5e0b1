#!/usr/bin/env node
// tally-js-build: builds the plugin in the current directory into a WebAssembly
// component exporting tally:aggregate@1.1.0, in two steps:
//
//   esbuild ENTRY --bundle --format=esm --platform=neutral --outfile=dist/bundle.js
//   componentize-js --wit WIT --world-name plugin \
//       -d http -d fetch-event -d clocks -d random -o OUT dist/bundle.js
//
// ENTRY is the package's `main` (default src/index.js), which must export
// `aggregate = exportAggregate(..)`; OUT defaults to dist/<name>.wasm (the package
// name without scope, `-` as `_`); WIT is this repository's wit/aggregate.wit. The
// features are disabled so that the component imports only what the host gives
// (stdio stays, for the panic line). The bundle is kept: a panic's location
// (`dist/bundle.js:LINE:COLUMN`) points into it. esbuild and componentize-js are
// the plugin's devDependencies: `npm run build` puts them on PATH. Usage:
//
//   tally-js-build [--entry FILE] [--out FILE.wasm]

import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const WIT = fileURLToPath(new URL('../../../wit/aggregate.wit', import.meta.url));
const DISABLED_FEATURES = ['http', 'fetch-event', 'clocks', 'random'];
const BUNDLE = join('dist', 'bundle.js');

function main(argv) {
  const manifest = JSON.parse(readFileSync('package.json', 'utf8'));
  const options = parseArguments(argv, defaults(manifest));
  run('esbuild', [options.entry, '--bundle', '--format=esm', '--platform=neutral', `--outfile=${BUNDLE}`, '--log-level=warning']);
  mkdirSync(dirname(options.out), { recursive: true });
  const disabled = DISABLED_FEATURES.flatMap((feature) => ['-d', feature]);
  run('componentize-js', ['--wit', WIT, '--world-name', 'plugin', ...disabled, '-o', options.out, BUNDLE]);
  const kib = Math.round(statSync(options.out).size / 1024);
  console.log(`tally-js-build: ${options.out} (${kib} KiB)`);
}

function defaults(manifest) {
  const stem = String(manifest.name ?? 'plugin').replace(/^@[^/]+\//, '').replaceAll('-', '_');
  return { entry: manifest.main ?? 'src/index.js', out: join('dist', `${stem}.wasm`) };
}

function parseArguments(argv, options) {
  for (let at = 0; at < argv.length; at += 2) {
    const [flag, value] = [argv[at], argv[at + 1]];
    if ((flag !== '--entry' && flag !== '--out') || value === undefined) usage(`unexpected argument ${flag}`);
    options[flag.slice(2)] = value;
  }
  return { entry: options.entry, out: resolve(options.out) };
}

function usage(problem) {
  console.error(`tally-js-build: ${problem}\nusage: tally-js-build [--entry FILE] [--out FILE.wasm]`);
  process.exit(2);
}

/** Runs a tool from PATH; its failure is the build's. */
function run(tool, args) {
  console.log(`> ${tool} ${args.join(' ')}`);
  const result = spawnSync(tool, args, { stdio: 'inherit' });
  if (result.error) throw new Error(`${tool}: ${result.error.message} (is it installed? run npm ci)`);
  if (result.status !== 0) process.exit(result.status ?? 1);
}

main(process.argv.slice(2));
