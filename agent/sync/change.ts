import { createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import type { AgentId } from '../../common/ids.ts';
import { publicFromAgentId } from '../onion/keys.ts';
import type { Stamp } from './hlc.ts';
import type { Op } from './model.ts';

/**
 * One entry of an agent's change log (docs/protocol.md, "Sync"). The author signs the exact
 * body bytes; siblings pass the pair on untouched, so a change relayed by a third device is
 * still checked against its author's key.
 */
export interface SignedChange {
  /** The body: canonical JSON of ChangeBody, as signed. */
  b: string;
  /** Ed25519 signature (base64url) over SIGN_DOMAIN | body. */
  g: string;
}

/** What a change says. */
export interface ChangeBody {
  v: 1;
  /** The entity fingerprint: a change of another entity's agent is never applied here. */
  n: string;
  /** Author agent and its log sequence number (1, 2, 3 … without gaps). */
  a: AgentId;
  s: number;
  /** Hybrid clock stamp (wall ms, counter); the author is `a`. */
  w: number;
  c: number;
  ops: Op[];
}

const SIGN_DOMAIN = Buffer.from('kith-sync-change-v1\0');

export function stampOf(body: ChangeBody): Stamp {
  return { w: body.w, c: body.c, a: body.a };
}

/** Signs a change body with the author agent's Ed25519 key. */
export function signChange(body: ChangeBody, key: KeyObject): SignedChange {
  const b = JSON.stringify({
    v: body.v,
    n: body.n,
    a: body.a,
    s: body.s,
    w: body.w,
    c: body.c,
    ops: body.ops,
  });
  const g = sign(null, Buffer.concat([SIGN_DOMAIN, Buffer.from(b)]), key).toString('base64url');
  return { b, g };
}

/** True when the signature is the author's (the author's public key is its agent id). */
export function verifyChange(change: SignedChange, author: AgentId): boolean {
  try {
    const raw = publicFromAgentId(author);
    const key = createPublicKey({
      key: Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), raw]),
      format: 'der',
      type: 'spki',
    });
    return verify(
      null,
      Buffer.concat([SIGN_DOMAIN, Buffer.from(change.b)]),
      key,
      Buffer.from(change.g, 'base64url'),
    );
  } catch {
    return false;
  }
}

const OP_TYPES = new Set(['add', 'flag', 'move', 'expunge', 'folder', 'contact', 'revocation']);

/** Parses a body; undefined when it is not a well-formed change (ERR_SYNC_MALFORMED). */
export function parseBody(change: unknown): ChangeBody | undefined {
  try {
    const c = change as SignedChange;
    if (typeof c?.b !== 'string' || typeof c.g !== 'string' || c.b.length > 256 * 1024) return undefined;
    const body = JSON.parse(c.b) as ChangeBody;
    const int = (x: unknown): boolean => Number.isSafeInteger(x) && (x as number) >= 0;
    if (body.v !== 1 || typeof body.n !== 'string' || typeof body.a !== 'string') return undefined;
    if (!int(body.s) || body.s < 1 || !int(body.w) || !int(body.c) || !Array.isArray(body.ops))
      return undefined;
    for (const op of body.ops) if (!wellFormedOp(op)) return undefined;
    return body;
  } catch {
    return undefined;
  }
}

function wellFormedOp(op: unknown): boolean {
  const o = op as Record<string, unknown>;
  if (typeof o !== 'object' || o === null || !OP_TYPES.has(o.t as string)) return false;
  const str = (x: unknown): boolean => typeof x === 'string' && x.length > 0 && x.length <= 1024;
  switch (o.t) {
    case 'add':
      return (
        str(o.e) &&
        typeof o.h === 'string' &&
        /^[0-9a-f]{64}$/.test(o.h) &&
        str(o.f) &&
        Number.isSafeInteger(o.d) &&
        Number.isSafeInteger(o.s) &&
        Array.isArray(o.fl) &&
        o.fl.every(str)
      );
    case 'flag':
      return str(o.e) && str(o.fl) && typeof o.on === 'boolean';
    case 'move':
      return str(o.e) && str(o.f);
    case 'expunge':
      return str(o.e);
    case 'folder':
      return (
        str(o.f) && (o.n === undefined || str(o.n)) && (o.live === undefined || typeof o.live === 'boolean')
      );
    case 'contact':
      return str(o.p) && typeof o.v === 'object' && o.v !== null;
    case 'revocation':
      return (
        str(o.g) &&
        typeof o.r === 'string' &&
        o.r.length <= 64 * 1024 &&
        Number.isSafeInteger(o.k) &&
        (o.k as number) >= 0
      );
  }
  return false;
}

/** Why a change was not applied (docs/protocol.md "Sync", refusal reasons). */
export type Refusal =
  | 'malformed'
  | 'other-entity'
  | 'not-sibling'
  | 'revoked'
  | 'bad-signature'
  | 'future-clock'
  | 'gap'
  | 'conflicting-replay';

/** What admitChange decides. */
export type Admission =
  { apply: true } | { apply: false; duplicate: true } | { apply: false; refused: Refusal };

/** What admitChange needs to know about the change's author and this replica. */
export interface AdmissionFacts {
  entity: string;
  /** The author's standing: a certified agent of our entity, revoked, or unknown here. */
  author: 'sibling' | 'revoked' | 'unknown';
  signatureValid: boolean;
  /** Highest sequence number of the author applied here (0: none). */
  known: number;
  /** The body stored under the same author and sequence number, if any. */
  storedBody?: string;
  now: number;
  maxSkewMs: number;
}

/**
 * Whether to apply a received change, and why not. Order matters: a forged or foreign change is
 * refused before anything about it is believed; a replay of a change already applied is a
 * harmless duplicate (the merge is idempotent) unless its bytes differ, which only a forger or a
 * broken author makes. A clock far ahead is refused rather than applied, so that one device with
 * a wrong clock cannot win every register for hours; the author keeps the change in its log and
 * offers it again at the next exchange, so nothing is lost. A gap (an earlier change of the same
 * author missing) is refused so that the version vector stays a plain per-author counter: the
 * next exchange sends what is missing, in order.
 */
export function admitChange(body: ChangeBody, change: SignedChange, facts: AdmissionFacts): Admission {
  if (body.n !== facts.entity) return { apply: false, refused: 'other-entity' };
  if (facts.author === 'unknown') return { apply: false, refused: 'not-sibling' };
  if (facts.author === 'revoked') return { apply: false, refused: 'revoked' };
  if (!facts.signatureValid) return { apply: false, refused: 'bad-signature' };
  if (body.s <= facts.known) {
    if (facts.storedBody !== undefined && facts.storedBody !== change.b)
      return { apply: false, refused: 'conflicting-replay' };
    return { apply: false, duplicate: true };
  }
  if (body.w > facts.now + facts.maxSkewMs) return { apply: false, refused: 'future-clock' };
  if (body.s !== facts.known + 1) return { apply: false, refused: 'gap' };
  return { apply: true };
}

/**
 * An author's standing for one of its changes, once a revocation op bounds it (`upTo`, the
 * highest bound recorded). Why a bound and not "revoked means refused": devices hear of a
 * revocation at different moments, and one that had applied more of the agent's log than another
 * must not hold changes the other refuses for ever. Every device that holds more than the bound
 * when it hears raises it (SyncEngine), so all end with the same changes of the revoked agent:
 * those some device accepted before it knew, and none made after every device knew.
 */
export function standingOf(
  status: AdmissionFacts['author'],
  upTo: number | undefined,
  seq: number,
): AdmissionFacts['author'] {
  if (upTo === undefined) return status;
  // Also when the agent is unknown here: a device added after the revocation holds no certificate
  // of it (bundles carry unrevoked siblings only), and the op, naming it under the entity's
  // signature, vouches for what it wrote before.
  return seq <= upTo ? 'sibling' : 'revoked';
}

/** A version vector: per author agent, the highest sequence number applied (contiguous). */
export type VersionVector = Record<string, number>;

/** Which authors' changes a sibling lacks: per author, the first sequence number to send. */
export function missingFor(mine: VersionVector, theirs: VersionVector): [string, number][] {
  const out: [string, number][] = [];
  for (const [author, seq] of Object.entries(mine)) {
    const have = theirs[author] ?? 0;
    if (seq > have) out.push([author, have + 1]);
  }
  return out.sort((x, y) => (x[0] < y[0] ? -1 : 1));
}
