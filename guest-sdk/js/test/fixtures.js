// Aggregates the SDK's tests run against: a ledger with every field type, an
// optional field, nested objects and an upcast history.

import {
  Rejection,
  bool,
  defineAggregate,
  event,
  float,
  int,
  json,
  list,
  next,
  object,
  optional,
  replace,
  string,
} from '../src/index.js';

/** A ledger of entries; `Entered` is at v3 (v1 had no `memo`, v2 no `tags`). */
export const ledgerSpec = {
  type: 'ledger',
  version: '2.1.0',
  description: 'Entries with amounts, memos and tags.',
  state: { total: int, entries: int, last_memo: optional(string), frozen: bool },
  initialState: { total: 0n, entries: 0n, last_memo: null, frozen: false },
  commands: {
    Enter: {
      fields: {
        amount: int,
        memo: optional(string, 'none'),
        tags: optional(list(string), []),
        source: optional(object({ system: string, rate: optional(float) })),
        extra: optional(json),
      },
      handle(state, { amount, memo, tags }) {
        if (state.frozen) throw new Rejection('ledger-frozen', 'the ledger is frozen');
        if (amount === 0n) return [];
        return [event('Entered', { amount, memo, tags })];
      },
    },
    Freeze: { handle: () => [event('Frozen')] },
    Explode: { handle: () => { throw new RangeError('line one\nline two'); } },
    WriteUndeclared: { handle: () => [event('Nope', {})] },
  },
  events: {
    Entered: {
      version: 3,
      fields: { amount: int, memo: string, tags: list(string) },
      apply: (state, { amount, memo }) => ({
        ...state,
        total: state.total + amount,
        entries: state.entries + 1n,
        last_memo: memo,
      }),
    },
    Frozen: { apply: (state) => ({ ...state, frozen: true }) },
  },
  upcasters: [
    next('Entered', 1, (data) => ({ ...data, memo: 'from v1' })),
    next('Entered', 2, (data) => ({ ...data, tags: [] })),
    replace('Imported', 1, (data) => [
      { name: 'Entered', version: 1, data: { amount: data.first } },
      { name: 'Entered', version: 3, data: { amount: data.second, memo: 'second', tags: ['imported'] } },
    ]),
    replace('Dropped', 1, () => []),
    replace('Broken', 1, () => {
      throw new Error('cannot read this one');
    }),
  ],
};

export const ledger = defineAggregate(ledgerSpec);
