import { randomBytes } from 'node:crypto';
import type { Logger } from '../../common/logger.ts';
import type { AgentId, Fingerprint } from '../../common/ids.ts';
import type { Transport } from '../transport.ts';
import { publicFromAgentId, type AgentKeys, type SignatureVerifier } from '../onion/keys.ts';
import { MAX_HOPS } from '../onion/layers.ts';
import { FrameType, WIRE_VERSION, type Count } from '../onion/wire.ts';
import { KithError, isKithError } from '../../common/errors.ts';
import {
  decodePathAt,
  encodePath,
  signRelayEntry,
  terminalEntry,
  verifyPath,
  type PathEntry,
} from './path.ts';
import { PathCache, type CachedPath } from './path-cache.ts';
import { RateLimiter } from './rate-limit.ts';
import type { TrustView } from './trust.ts';

export interface DiscoveryOptions {
  /** Largest hop limit of a question (expanding rings stop here). */
  maxHops: number;
  /** Questions accepted per neighbour per minute (burst: the same number). */
  perNeighbourPerMinute: number;
  /** How long a learned path stays usable. */
  cacheMs: number;
  /** How long one ring waits for an answer. */
  timeoutMs: number;
  /** After the first answer, how long to wait for more (alternate paths). */
  graceMs?: number;
  /** Hop limits tried in turn, nearest first (default [2, 4, maxHops]). */
  rings?: number[];
  /** Simulator: resolves when the network is idle; ends a ring instead of the timeout. */
  quiesce?: () => Promise<void>;
  /** Tests: the source of the "keep at the top" choices (default Math.random). */
  random?: () => number;
}

/** One copy of a request as a node hands it on. */
export interface Onward {
  to: AgentId;
  ttl: number;
  travelled: number;
}

/**
 * Who gets a request, with which hop limit and hops-travelled count: the same rule for the asker
 * (which treats its own question as one received with hop limit ring + 1 and travelled 0) and for
 * every relay. Why, in the spirit of Freenet's HTL: were the asker to send travelled 0 and relays
 * always add 1, a neighbour seeing 0 would know it came from the asker. Here a request "at the top"
 * (travelled 0) stays at the top, hop limit unchanged, for at most one neighbour chosen at random
 * (with probability 1/2), and goes to every other neighbour with hop limit − 1 and travelled 1; below
 * the top it is hop limit − 1 and travelled + 1 for all. So what the asker sends is exactly what a
 * relay sends for a request that reached it at the top, and a neighbour cannot tell them apart. The
 * top is kept for one neighbour at most, so the extra reach is a walk that stops with probability
 * 1/2 at each hop (one hop on average) rather than a second flood; below the top the hop limit
 * always falls, and duplicate suppression and rate limits work on the query id as before.
 */
export function onward(
  ttl: number,
  travelled: number,
  neighbours: readonly AgentId[],
  random: () => number = Math.random,
): Onward[] {
  const out: Onward[] = [];
  const keeper =
    travelled === 0 && ttl > 1 && neighbours.length > 0 && random() < 0.5
      ? neighbours[Math.floor(random() * neighbours.length)]
      : undefined;
  for (const to of neighbours) {
    if (to === keeper) out.push({ to, ttl, travelled: 0 });
    else if (ttl > 1) out.push({ to, ttl: ttl - 1, travelled: Math.min(travelled + 1, 255) });
  }
  return out;
}

interface Query {
  /** Neighbour that asked; null when we asked. */
  from: AgentId | null;
  target: Fingerprint;
  expiresAt: number;
  responses: number;
  /** The asker lacks the target's key: answers carry it (request flag bit 0). */
  wantKey: boolean;
  /** Our own questions: paths received so far and a wake-up. */
  found?: CachedPath[];
  wake?: () => void;
}

const REQUEST_BYTES = 2 + 16 + 20 + 1 + 1;
/** Request flag bit 0: "send the target's public key with the path" (an optional trailing byte). */
const FLAG_WANT_KEY = 1;
/** Largest entity key a response may carry (an Ed25519/Curve25519 key with a few user ids is < 2 KiB). */
const MAX_KEY_BYTES = 16_384;
/** Answers relayed back per question: enough for alternate paths, few enough to bound traffic. */
const MAX_RESPONSES = 4;
const MAX_QUERIES = 50_000;

/**
 * Route discovery (docs/protocol.md, "Discovery"): "who will relay to X?" flooded with a hop
 * limit, duplicate suppression, a per-neighbour rate limit and answers from the path cache; each
 * relay on the way back checks the path, caches it and prepends its own signed entry.
 */
export class Discovery {
  readonly cache: PathCache;
  private readonly queries = new Map<string, Query>();
  private readonly limiter: RateLimiter<AgentId>;
  private readonly timers = new Set<NodeJS.Timeout>();
  private stopped = false;

  constructor(
    private readonly deps: {
      transport: Transport;
      keys: AgentKeys;
      trust: TrustView;
      verifier: SignatureVerifier;
      count: Count;
      logger: Logger;
      now: () => number;
      options: DiscoveryOptions;
    },
  ) {
    const o = deps.options;
    this.cache = new PathCache(o.cacheMs, deps.now);
    this.limiter = new RateLimiter(o.perNeighbourPerMinute / 60_000, o.perNeighbourPerMinute, deps.now);
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const q of this.queries.values()) q.wake?.();
  }

  /** Paths usable right now without asking anyone: a trusted neighbour that is an agent of X. */
  localPaths(target: Fingerprint): CachedPath[] {
    const { trust, transport, now } = this.deps;
    const up = new Set(transport.neighbours());
    const expires = now() + this.deps.options.cacheMs;
    return trust
      .relayTargets(target)
      .filter((t) => up.has(t.agent) && !trust.isRevoked(t.agent))
      .map((t) => {
        const entry = terminalEntry({ ...t, signPublic: publicOf(t.agent) }, target, expires);
        return { entries: [entry], agents: [t.agent], learnedAt: now(), failures: 0 };
      });
  }

  /** Asks in expanding rings until some path to X is found; [] if none. */
  async find(target: Fingerprint): Promise<CachedPath[]> {
    const local = this.localPaths(target);
    if (local.length > 0) return local;
    const o = this.deps.options;
    const rings = o.rings ?? [...new Set([Math.min(2, o.maxHops), Math.min(4, o.maxHops), o.maxHops])];
    for (const ttl of rings) {
      if (this.stopped) return [];
      const found = await this.ask(target, ttl);
      if (found.length > 0) return found;
    }
    return [];
  }

  private async ask(target: Fingerprint, ttl: number): Promise<CachedPath[]> {
    const { transport, now, count, options, trust } = this.deps;
    const id = randomBytes(16);
    // Without the target's key we could neither check the terminal's certificate nor encrypt to it.
    const wantKey = trust.hasEntityKey !== undefined && !trust.hasEntityKey(target);
    const query: Query = {
      from: null,
      target,
      expiresAt: now() + options.timeoutMs * 2,
      responses: 0,
      wantKey,
      found: [],
    };
    const answered = new Promise<void>((resolve) => (query.wake = resolve));
    this.remember(id.toString('hex'), query);
    count('discovery_asked');
    // As if received at the top with one more hop: neighbours get hop limit `ttl` (one may get the top).
    const copies = onward(Math.min(ttl + 1, MAX_HOPS), 0, transport.neighbours(), options.random);
    let sent = 0;
    await Promise.all(
      copies.map((c) =>
        transport.send(c.to, requestFrame(id, target, c.ttl, c.travelled, wantKey ? FLAG_WANT_KEY : 0)).then(
          () => {
            sent++;
            count('discovery_frames_sent');
          },
          () => undefined,
        ),
      ),
    );
    // Nobody was asked (no neighbour linked, or every link failed): no answer can come, so do not
    // wait out the timeout for it (it was 10 s per ring: a sender without links sat 30 s here
    // before it even noticed it had no path, issue 10).
    if (sent === 0) {
      count('discovery_nobody_to_ask');
      query.wake = undefined;
      return [];
    }
    if (options.quiesce) await options.quiesce();
    else {
      await Promise.race([
        answered.then(() => this.sleep(options.graceMs ?? 200)),
        this.sleep(options.timeoutMs),
      ]);
    }
    query.wake = undefined;
    return query.found ?? [];
  }

  /** Handles a discovery frame from a neighbour (never throws: bad input is counted). */
  async handle(from: AgentId, frame: Uint8Array): Promise<void> {
    const buf = Buffer.from(frame.buffer, frame.byteOffset, frame.length);
    try {
      if (buf[1] === FrameType.discoverRequest) await this.onRequest(from, buf);
      else await this.onResponse(from, buf);
    } catch (err) {
      if (isKithError(err)) {
        this.deps.count(`rejected_${err.code.replace(/^ERR_/, '').toLowerCase()}`);
        this.deps.logger.debug({ from, code: err.code }, 'discovery frame rejected');
      } else throw err;
    }
  }

  private async onRequest(from: AgentId, buf: Buffer): Promise<void> {
    const { count, trust, transport, keys, now } = this.deps;
    if (buf.length !== REQUEST_BYTES && buf.length !== REQUEST_BYTES + 1) {
      return count('rejected_discovery_malformed');
    }
    if (trust.isRevoked(from)) return count('rejected_revoked');
    if (!this.limiter.take(from)) return count('rejected_discovery_rate_limited');
    const idHex = buf.subarray(2, 18).toString('hex');
    if (this.queries.has(idHex)) return count('discovery_duplicate');
    const target = buf.subarray(18, 38).toString('hex').toUpperCase() as Fingerprint;
    const ttl = Math.min(buf[38], MAX_HOPS);
    const travelled = buf[39];
    const flags = buf.length > REQUEST_BYTES ? buf[40] : 0;
    const wantKey = (flags & FLAG_WANT_KEY) !== 0;
    this.remember(idHex, {
      from,
      target,
      expiresAt: now() + this.deps.options.timeoutMs * 2,
      responses: 0,
      wantKey,
    });
    const answers = this.answers(target, from, travelled);
    if (answers.length > 0) {
      count('discovery_answered');
      const held = wantKey ? await this.deps.trust.entityKey?.(target) : undefined;
      for (const answer of answers) {
        const key = wantKey ? (held ?? answer.entityKey) : undefined;
        await this.respond(from, buf.subarray(2, 18), answer.entries, key);
      }
      return;
    }
    const others = transport.neighbours().filter((n) => n !== from && n !== keys.id);
    for (const c of onward(ttl, travelled, others, this.deps.options.random)) {
      const frame = requestFrame(buf.subarray(2, 18), target, c.ttl, c.travelled, flags & FLAG_WANT_KEY);
      await transport.send(c.to, frame).then(
        () => count('discovery_frames_sent'),
        () => undefined,
      );
    }
  }

  /** Paths we can offer for X, as they leave this agent (our own entry first when we relay). */
  private answers(
    target: Fingerprint,
    asker: AgentId,
    travelled: number,
  ): { entries: PathEntry[]; entityKey?: Uint8Array }[] {
    const { trust, keys, now, transport } = this.deps;
    const expires = now() + this.deps.options.cacheMs;
    const targets = trust.relayTargets(target).filter((t) => !trust.isRevoked(t.agent) && t.agent !== asker);
    const me = targets.find((t) => t.agent === keys.id);
    if (me) return [{ entries: [terminalEntry({ ...me, signPublic: keys.signPublic }, target, expires)] }];
    const up = new Set(transport.neighbours());
    // An offline trusted target still gets an answer: we hold packets for it until it is back.
    const direct = [...targets]
      .sort((x, y) => Number(up.has(y.agent)) - Number(up.has(x.agent)))
      .slice(0, 2)
      .map((t) => {
        const signPublic = publicOf(t.agent);
        return {
          entries: [
            signRelayEntry(keys, trust.ownCertificate(), signPublic, target, expires),
            terminalEntry({ ...t, signPublic }, target, expires),
          ],
        };
      });
    if (direct.length > 0) return direct;
    const cached = this.cache
      .get(target)
      .filter(
        (p) =>
          // The asker's path is: relays so far, us, the cached path; it must fit an onion header.
          p.failures === 0 &&
          travelled + 1 + p.entries.length <= MAX_HOPS &&
          !p.agents.includes(asker) &&
          up.has(p.agents[0]),
      )
      .slice(0, 2);
    if (cached.length > 0) this.deps.count('discovery_cache_answer');
    return cached.map((p) => ({
      entries: [
        signRelayEntry(
          keys,
          trust.ownCertificate(),
          p.entries[0].signPublic,
          target,
          Math.min(expires, ...p.entries.map((e) => e.expiresAt)),
        ),
        ...p.entries,
      ],
      entityKey: p.entityKey,
    }));
  }

  private async respond(to: AgentId, queryId: Buffer, entries: PathEntry[], key?: Uint8Array): Promise<void> {
    const parts = [Buffer.from([WIRE_VERSION, FrameType.discoverResponse]), queryId, encodePath(entries)];
    if (key && key.length <= MAX_KEY_BYTES) parts.push(keyField(key));
    const frame = Buffer.concat(parts);
    await this.deps.transport.send(to, frame).then(
      () => this.deps.count('discovery_frames_sent'),
      () => undefined,
    );
  }

  private async onResponse(from: AgentId, buf: Buffer): Promise<void> {
    const { count, now, keys, trust } = this.deps;
    if (buf.length < 19) return count('rejected_discovery_malformed');
    const query = this.queries.get(buf.subarray(2, 18).toString('hex'));
    if (!query || query.expiresAt < now()) return count('rejected_discovery_unsolicited');
    if (++query.responses > MAX_RESPONSES) return count('discovery_response_dropped');
    const { entries, end } = decodePathAt(buf, 18);
    const key = decodeKeyField(buf, end);
    if (query.from === null && query.wantKey && key && !trust.hasEntityKey?.(query.target)) {
      // Stored before the path is checked: the terminal's certificate can only be checked with it.
      // A wrong key is refused here (its fingerprint must be the target), so nothing false is kept.
      await trust.learnEntityKey?.(query.target, key).catch((err: unknown) => {
        throw new KithError(
          'ERR_DISCOVERY_KEY',
          "the key in a discovery answer is not the target's",
          undefined,
          {
            cause: err,
          },
        );
      });
      count('discovery_key_learned');
    }
    await verifyPath(entries, {
      target: query.target,
      self: keys.id,
      from,
      trust,
      verifier: this.deps.verifier,
      now: now(),
      requireCertified: query.from === null,
    });
    const path = this.cache.add(query.target, entries, key);
    if (query.from === null) {
      query.found?.push(path);
      count('discovery_path_found');
      query.wake?.();
      return;
    }
    if (entries.length >= MAX_HOPS || entries.some((e) => e.agent === query.from)) return;
    const expires = Math.min(...entries.map((e) => e.expiresAt));
    const mine = signRelayEntry(keys, trust.ownCertificate(), entries[0].signPublic, query.target, expires);
    await this.respond(query.from, buf.subarray(2, 18), [mine, ...entries], query.wantKey ? key : undefined);
  }

  private remember(id: string, query: Query): void {
    if (this.queries.size >= MAX_QUERIES) {
      const now = this.deps.now();
      for (const [k, q] of this.queries) if (q.expiresAt < now) this.queries.delete(k);
      if (this.queries.size >= MAX_QUERIES) this.queries.delete(this.queries.keys().next().value as string);
    }
    this.queries.set(id, query);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      if (this.stopped) return resolve();
      const t = setTimeout(() => {
        this.timers.delete(t);
        resolve();
      }, ms);
      this.timers.add(t);
    });
  }
}

/** The flags byte is sent only when some flag is set, so a plain request stays 40 bytes (revision 1). */
function requestFrame(id: Uint8Array, target: Fingerprint, ttl: number, travelled = 0, flags = 0): Buffer {
  return Buffer.concat([
    Buffer.from([WIRE_VERSION, FrameType.discoverRequest]),
    id,
    Buffer.from(target, 'hex'),
    Buffer.from(flags === 0 ? [ttl, travelled] : [ttl, travelled, flags]),
  ]);
}

function keyField(key: Uint8Array): Buffer {
  const length = Buffer.alloc(2);
  length.writeUInt16BE(key.length);
  return Buffer.concat([length, key]);
}

/** The optional entity key after a response's path record; throws ERR_PATH_MALFORMED on a bad length. */
export function decodeKeyField(buf: Buffer, at: number): Buffer | undefined {
  if (at === buf.length) return undefined;
  const malformed = new KithError('ERR_PATH_MALFORMED', 'bad entity key field after a path record');
  if (buf.length - at < 2) throw malformed;
  const length = buf.readUInt16BE(at);
  if (length === 0 || length > MAX_KEY_BYTES || at + 2 + length !== buf.length) throw malformed;
  return Buffer.from(buf.subarray(at + 2));
}

function publicOf(agent: AgentId): Buffer {
  return publicFromAgentId(agent);
}
