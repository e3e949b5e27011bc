// The fuzz harness shared by the seeded CI runs (test/fuzz/*.test.ts) and the long run
// (test/fuzz/run.ts, `npm run fuzz`). A target is one decoder of bytes from the network or a
// client; every input must end in one of: decoded, a KithError with a documented code, or a
// typed rejection the target names. Anything else is a crash; an input that takes longer than
// HANG_MS is a hang; a target with a `forged` check also fails when a signed structure that was
// altered is accepted.
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { KithError } from '../../common/errors.ts';

/** Longest an input may take (the decoders answer in micro- to milliseconds; this is far above). */
export const HANG_MS = 5_000;

export interface Target<T = unknown> {
  name: string;
  /** What inputs look like: arbitrary bytes and mutations of valid encodings, mixed. */
  input: fc.Arbitrary<T>;
  /** Decodes one input; returns the decoded value, or REJECTED for a typed (non-throwing) rejection. */
  run(input: T): unknown;
  /** For signed structures: a reason when `decoded` (accepted from `input`) is a forgery. */
  forged?(input: T, decoded: unknown): string | undefined;
}

/** What a target returns for a typed rejection (undefined from a parser, false from a check...). */
export const REJECTED = Symbol('rejected');

/** What a target returns when it gave up waiting itself (a server that never answered). */
export const HANG = Symbol('hang');

export type Outcome =
  | { kind: 'decoded' }
  | { kind: 'rejected'; code: string }
  | { kind: 'crash'; why: string }
  | { kind: 'hang'; ms: number }
  | { kind: 'forged'; why: string };

/** Every code docs/errors.md lists: "a stable code" is one a user and a test can look up. */
export const DOCUMENTED_CODES: ReadonlySet<string> = new Set(
  readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8')
    .match(/`ERR_[A-Z0-9_]+`/g)!
    .map((c) => c.slice(1, -1)),
);

function describe(err: unknown): string {
  if (err instanceof KithError) return `KithError ${err.code} (undocumented code): ${err.message}`;
  if (err instanceof Error)
    return `${err.constructor.name}: ${err.message}\n${err.stack?.split('\n').slice(1, 6).join('\n')}`;
  return `non-error thrown: ${String(err)}`;
}

/** Runs one input through a target and says how it ended (never throws). */
export async function outcomeOf<T>(target: Target<T>, input: T): Promise<Outcome & { ms: number }> {
  const start = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'hang'>((resolve) => {
    timer = setTimeout(() => resolve('hang'), HANG_MS);
  });
  try {
    const value = await Promise.race([Promise.resolve().then(() => target.run(input)), timeout]);
    const ms = performance.now() - start;
    if (value === 'hang' || value === HANG || ms > HANG_MS) return { kind: 'hang', ms };
    if (value === REJECTED) return { kind: 'rejected', code: 'typed', ms };
    const why = target.forged?.(input, value);
    if (why) return { kind: 'forged', why, ms };
    return { kind: 'decoded', ms };
  } catch (err) {
    const ms = performance.now() - start;
    if (ms > HANG_MS) return { kind: 'hang', ms };
    if (err instanceof KithError && DOCUMENTED_CODES.has(err.code))
      return { kind: 'rejected', code: err.code, ms };
    return { kind: 'crash', why: describe(err), ms };
  } finally {
    clearTimeout(timer);
  }
}

/** The property a target must hold, for fc.assert (CI) — fails on a crash, hang or forgery. */
export function propertyOf<T>(target: Target<T>): fc.IAsyncProperty<[T]> {
  return fc.asyncProperty(target.input, async (input) => {
    const outcome = await outcomeOf(target, input);
    if (outcome.kind === 'crash' || outcome.kind === 'forged')
      throw new Error(`${target.name}: ${outcome.why}`);
    if (outcome.kind === 'hang') throw new Error(`${target.name}: took ${outcome.ms.toFixed(0)} ms`);
  });
}

// ---- mutations of valid encodings ----

type Op =
  | { op: 'flip'; at: number; bit: number }
  | { op: 'set'; at: number; value: number }
  | { op: 'word'; at: number; value: number }
  | { op: 'truncate'; at: number }
  | { op: 'extend'; bytes: Uint8Array }
  | { op: 'insert'; at: number; bytes: Uint8Array }
  | { op: 'delete'; at: number; n: number }
  | { op: 'copy'; from: number; at: number; n: number };

/** Lengths and boundary values: what a length field or a counter most likely trips over. */
const INTERESTING = [0, 1, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff];

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ op: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ op: fc.constant('set' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ op: fc.constant('word' as const), at: fc.nat(), value: fc.constantFrom(...INTERESTING) }),
  fc.record({ op: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ op: fc.constant('extend' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 64 }) }),
  fc.record({
    op: fc.constant('insert' as const),
    at: fc.nat(),
    bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }),
  }),
  fc.record({ op: fc.constant('delete' as const), at: fc.nat(), n: fc.integer({ min: 1, max: 16 }) }),
  fc.record({
    op: fc.constant('copy' as const),
    from: fc.nat(),
    at: fc.nat(),
    n: fc.integer({ min: 1, max: 64 }),
  }),
);

function apply(bytes: Buffer, op: Op): Buffer {
  const len = bytes.length;
  const pos = (at: number): number => (len === 0 ? 0 : at % len);
  switch (op.op) {
    case 'flip': {
      if (len === 0) return bytes;
      const out = Buffer.from(bytes);
      out[pos(op.at)] ^= 1 << op.bit;
      return out;
    }
    case 'set': {
      if (len === 0) return bytes;
      const out = Buffer.from(bytes);
      out[pos(op.at)] = op.value;
      return out;
    }
    case 'word': {
      if (len < 4) return bytes;
      const out = Buffer.from(bytes);
      out.writeUInt32BE(op.value >>> 0, op.at % (len - 3));
      return out;
    }
    case 'truncate':
      return bytes.subarray(0, pos(op.at));
    case 'extend':
      return Buffer.concat([bytes, op.bytes]);
    case 'insert': {
      const at = len === 0 ? 0 : op.at % (len + 1);
      return Buffer.concat([bytes.subarray(0, at), op.bytes, bytes.subarray(at)]);
    }
    case 'delete': {
      const at = pos(op.at);
      return Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + op.n)]);
    }
    case 'copy': {
      const from = pos(op.from);
      const at = pos(op.at);
      const piece = Buffer.from(bytes.subarray(from, from + op.n));
      const out = Buffer.from(bytes);
      piece.copy(out, at);
      return out;
    }
  }
}

/** A valid encoding with 1 to 4 mutations applied (possibly none in effect: then it is still valid). */
export function mutated(seeds: readonly Buffer[]): fc.Arbitrary<Buffer> {
  return fc
    .tuple(fc.nat({ max: seeds.length - 1 }), fc.array(opArb, { minLength: 1, maxLength: 4 }))
    .map(([i, ops]) => ops.reduce(apply, seeds[i]));
}

/** Arbitrary bytes, short ones most often. */
export function anyBytes(maxLength = 2048): fc.Arbitrary<Buffer> {
  return fc
    .oneof(
      { weight: 3, arbitrary: fc.uint8Array({ maxLength: 64 }) },
      { weight: 1, arbitrary: fc.uint8Array({ maxLength }) },
    )
    .map((a) => Buffer.from(a));
}

/** The usual input of a byte decoder: one part arbitrary bytes, three parts mutated valid encodings. */
export function bytesInput(seeds: readonly Buffer[], maxLength = 2048): fc.Arbitrary<Buffer> {
  return fc.oneof({ weight: 1, arbitrary: anyBytes(maxLength) }, { weight: 3, arbitrary: mutated(seeds) });
}

/** Arbitrary text, mostly ASCII (where parsers branch), some full Unicode and lone surrogates. */
export function anyText(maxLength = 512): fc.Arbitrary<string> {
  return fc.oneof(
    fc.string({ unit: 'binary-ascii', maxLength }),
    fc.string({ unit: 'binary', maxLength }),
    fc.string({ unit: fc.constantFrom(...'\r\n\t :;,<>"()[]{}=\\/@.*%+-_ ?=0aZ'), maxLength }),
  );
}

/** Text inputs: arbitrary text and byte-mutations of valid texts (decoded as latin1, so any byte shows). */
export function textInput(seeds: readonly string[], maxLength = 512): fc.Arbitrary<string> {
  const asBytes = seeds.map((s) => Buffer.from(s, 'utf8'));
  return fc.oneof(
    { weight: 1, arbitrary: anyText(maxLength) },
    { weight: 2, arbitrary: mutated(asBytes).map((b) => b.toString('utf8')) },
    { weight: 1, arbitrary: mutated(asBytes).map((b) => b.toString('latin1')) },
  );
}

/**
 * JSON messages (hello, invitation messages, address records): byte mutations of the valid
 * JSON text (parsed as readJson would), valid objects with one field replaced by anything, and
 * arbitrary JSON values.
 */
export function jsonInput(seeds: readonly unknown[]): fc.Arbitrary<unknown> {
  const texts = seeds.map((s) => Buffer.from(JSON.stringify(s)));
  const parsed = mutated(texts).map((b) => {
    try {
      return JSON.parse(b.toString('utf8')) as unknown;
    } catch {
      return undefined;
    }
  });
  const replaced = fc
    .tuple(fc.nat({ max: seeds.length - 1 }), fc.nat(), fc.anything({ maxDepth: 2 }))
    .map(([i, pick, value]) => replaceOne(structuredClone(seeds[i]), pick, value));
  return fc.oneof(
    { weight: 3, arbitrary: parsed.filter((v) => v !== undefined) },
    { weight: 2, arbitrary: replaced },
    { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  );
}

/** Replaces the pick-th node (depth first) of a JSON tree with value. */
function replaceOne(tree: unknown, pick: number, value: unknown): unknown {
  const slots: { parent: Record<string, unknown>; key: string }[] = [];
  const walk = (node: unknown): void => {
    if (node === null || typeof node !== 'object') return;
    for (const key of Object.keys(node)) {
      slots.push({ parent: node as Record<string, unknown>, key });
      walk((node as Record<string, unknown>)[key]);
    }
  };
  walk(tree);
  if (slots.length === 0) return value;
  const slot = slots[pick % slots.length];
  slot.parent[slot.key] = value;
  return tree;
}
