import { KithError } from '../../common/errors.ts';
import type { AgentId, Fingerprint } from '../../common/ids.ts';
import { agentIdFromPublic, signWith, type AgentKeys, type SignatureVerifier } from '../onion/keys.ts';
import { MAX_HOPS } from '../onion/layers.ts';
import type { TrustView } from './trust.ts';

/**
 * Path records (docs/protocol.md, "Path record"): the answer to "who will relay to X?". A path is
 * the list of agents from a neighbour of the asker to an agent of X. Every relay entry is signed
 * by its agent ("I relay to `next` for X until `expiresAt`, my onion key is K"); the terminal entry
 * is the recipient agent's certificate, which the sender checks against X's entity key.
 */
export interface PathEntry {
  kind: 'relay' | 'terminal';
  agent: AgentId;
  /** Raw Ed25519 key of the agent (its id). */
  signPublic: Buffer;
  /** Raw X25519 key to wrap this hop's onion layer to. */
  onionKey: Buffer;
  /** Raw Ed25519 key of the next agent (zeros for the terminal). */
  next: Buffer;
  target: Fingerprint;
  /** Unix ms. */
  expiresAt: number;
  /** The agent's certificate (opaque; see TrustView). */
  certificate: Uint8Array;
  /** Relay entries: Ed25519 signature by `agent` over the entry. */
  signature?: Buffer;
}

const DOMAIN = Buffer.from('kith-path-v1');

/**
 * How far behind this agent's clock a path entry's "expires at" may be and still count as
 * unexpired (docs/protocol.md 7.6, "Clocks"). Why a tolerance: each entry's expiry is its signer's
 * clock, so agents whose clocks differ by a few minutes must still accept each other's fresh
 * entries; why this bound: it is the skew the rest of the core allows (packets, complaints, sync),
 * and a stale path accepted this much late costs at most one stalled try. This agent's own clock
 * stepping does not come into it: the core runs on a steady clock (common/clock.ts).
 */
export const PATH_CLOCK_SKEW_MS = 5 * 60_000;

/** Whether an entry's signed expiry has passed at `now`, allowing PATH_CLOCK_SKEW_MS of skew. */
export function entryExpired(entry: Pick<PathEntry, 'expiresAt'>, now: number): boolean {
  return entry.expiresAt + PATH_CLOCK_SKEW_MS <= now;
}
const FIXED = 1 + 32 + 32 + 32 + 20 + 8 + 2;
const MAX_CERT = 8192;

function encodeUnsigned(e: PathEntry): Buffer {
  const b = Buffer.alloc(FIXED);
  b[0] = e.kind === 'relay' ? 1 : 2;
  e.signPublic.copy(b, 1);
  e.onionKey.copy(b, 33);
  e.next.copy(b, 65);
  Buffer.from(e.target, 'hex').copy(b, 97);
  b.writeBigUInt64BE(BigInt(e.expiresAt), 117);
  b.writeUInt16BE(e.certificate.length, 125);
  return Buffer.concat([b, e.certificate]);
}

export function encodeEntry(e: PathEntry): Buffer {
  const unsigned = encodeUnsigned(e);
  return e.kind === 'relay' ? Buffer.concat([unsigned, e.signature ?? Buffer.alloc(64)]) : unsigned;
}

/** Parses one entry; returns it and the bytes used. Throws ERR_PATH_MALFORMED. */
export function decodeEntry(buf: Buffer, offset: number): { entry: PathEntry; used: number } {
  const malformed = () => new KithError('ERR_PATH_MALFORMED', 'malformed path entry');
  if (buf.length - offset < FIXED) throw malformed();
  const kind = buf[offset] === 1 ? 'relay' : buf[offset] === 2 ? 'terminal' : undefined;
  if (!kind) throw malformed();
  const certLen = buf.readUInt16BE(offset + 125);
  if (certLen > MAX_CERT) throw malformed();
  const sigLen = kind === 'relay' ? 64 : 0;
  const used = FIXED + certLen + sigLen;
  if (buf.length - offset < used) throw malformed();
  const signPublic = Buffer.from(buf.subarray(offset + 1, offset + 33));
  const entry: PathEntry = {
    kind,
    agent: agentIdFromPublic(signPublic),
    signPublic,
    onionKey: Buffer.from(buf.subarray(offset + 33, offset + 65)),
    next: Buffer.from(buf.subarray(offset + 65, offset + 97)),
    target: buf
      .subarray(offset + 97, offset + 117)
      .toString('hex')
      .toUpperCase() as Fingerprint,
    expiresAt: Number(buf.readBigUInt64BE(offset + 117)),
    certificate: Buffer.from(buf.subarray(offset + FIXED, offset + FIXED + certLen)),
    signature:
      kind === 'relay' ? Buffer.from(buf.subarray(offset + FIXED + certLen, offset + used)) : undefined,
  };
  return { entry, used };
}

export function encodePath(entries: PathEntry[]): Buffer {
  return Buffer.concat([Buffer.from([entries.length]), ...entries.map(encodeEntry)]);
}

export function decodePath(buf: Buffer, offset = 0): PathEntry[] {
  const { entries, end } = decodePathAt(buf, offset);
  if (end !== buf.length) throw new KithError('ERR_PATH_MALFORMED', 'trailing bytes after a path record');
  return entries;
}

/** Parses a path record that may be followed by more fields; returns where it ends. */
export function decodePathAt(buf: Buffer, offset = 0): { entries: PathEntry[]; end: number } {
  if (buf.length <= offset) throw new KithError('ERR_PATH_MALFORMED', 'empty path record');
  const count = buf[offset];
  if (count < 1 || count > MAX_HOPS) throw new KithError('ERR_PATH_MALFORMED', `a path has ${count} hops`);
  const entries: PathEntry[] = [];
  let at = offset + 1;
  for (let i = 0; i < count; i++) {
    const { entry, used } = decodeEntry(buf, at);
    entries.push(entry);
    at += used;
  }
  return { entries, end: at };
}

/** This agent's signed entry: "I relay to `next` for `target`". */
export function signRelayEntry(
  keys: AgentKeys,
  certificate: Uint8Array,
  next: Buffer,
  target: Fingerprint,
  expiresAt: number,
): PathEntry {
  const entry: PathEntry = {
    kind: 'relay',
    agent: keys.id,
    signPublic: keys.signPublic,
    onionKey: keys.onionPublic,
    next,
    target,
    expiresAt,
    certificate,
  };
  entry.signature = signWith(keys, Buffer.concat([DOMAIN, encodeUnsigned(entry)]));
  return entry;
}

export function terminalEntry(
  agent: { agent: AgentId; signPublic: Buffer; onionKey: Buffer; certificate: Uint8Array },
  target: Fingerprint,
  expiresAt: number,
): PathEntry {
  return {
    kind: 'terminal',
    agent: agent.agent,
    signPublic: agent.signPublic,
    onionKey: agent.onionKey,
    next: Buffer.alloc(32),
    target,
    expiresAt,
    certificate: agent.certificate,
  };
}

/**
 * Checks a path received from neighbour `from`: shape, signatures, chaining, expiry, loops and
 * revoked agents; with `requireCertified` (the sender) also that the terminal's certificate verifies.
 * Relays pass requireCertified=false: they may not hold the target's entity key.
 */
export async function verifyPath(
  entries: PathEntry[],
  opts: {
    target: Fingerprint;
    self: AgentId;
    from: AgentId;
    trust: TrustView;
    verifier: SignatureVerifier;
    now: number;
    requireCertified: boolean;
  },
): Promise<void> {
  if (entries.length < 1 || entries.length > MAX_HOPS) {
    throw new KithError('ERR_PATH_MALFORMED', `a path has ${entries.length} hops`);
  }
  if (entries[0].agent !== opts.from) {
    throw new KithError('ERR_PATH_MALFORMED', 'the path does not start at the neighbour that sent it');
  }
  const seen = new Set<AgentId>([opts.self]);
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i];
    const last = i === entries.length - 1;
    if (seen.has(e.agent)) throw new KithError('ERR_PATH_LOOP', 'the path visits an agent twice');
    seen.add(e.agent);
    if (e.target !== opts.target) throw new KithError('ERR_PATH_MALFORMED', 'the path leads elsewhere');
    if (entryExpired(e, opts.now)) throw new KithError('ERR_PATH_EXPIRED', 'a path entry has expired');
    if (opts.trust.isRevoked(e.agent))
      throw new KithError('ERR_PATH_REVOKED', 'the path goes through a revoked agent');
    if (last !== (e.kind === 'terminal')) {
      throw new KithError('ERR_PATH_MALFORMED', 'only the last entry of a path is its terminal');
    }
    if (!last) {
      if (!e.next.equals(entries[i + 1].signPublic)) {
        throw new KithError('ERR_PATH_MALFORMED', 'the path entries do not chain');
      }
      const signed = Buffer.concat([DOMAIN, encodeUnsigned(e)]);
      if (!e.signature || !opts.verifier.verify(e.signPublic, signed, e.signature)) {
        throw new KithError('ERR_PATH_SIGNATURE', 'a path entry carries a bad signature');
      }
    }
  }
  const t = entries[entries.length - 1];
  const certified = await opts.trust.verifyCertificate(opts.target, t.agent, t.onionKey, t.certificate);
  if (certified === false || (opts.requireCertified && certified !== true)) {
    throw new KithError('ERR_PATH_CERT', 'the last hop is not a certified agent of the recipient');
  }
}
