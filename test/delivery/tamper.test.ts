import { afterEach, describe, expect, test } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import { decodeOnion, encodeOnion, hopDigest } from '../../agent/delivery/frames.ts';
import { afterRejection, MAX_REJECTING_PATHS } from '../../agent/delivery/decide.ts';
import { publicFromAgentId, signWith } from '../../agent/onion/keys.ts';
import { FrameType } from '../../agent/onion/wire.ts';
import { plainCodec, type PayloadCodec } from '../../agent/payload/codec.ts';
import { RejectReason } from '../../agent/reports/report.ts';
import { Simulation, type SimAgent } from '../../agent/sim/sim.ts';
import { KithError } from '../../common/errors.ts';
import type { AgentId, Fingerprint } from '../../common/ids.ts';
import { newMessageId, recordEvents } from './helpers.ts';

/** plainCodec plus a SHA-256 check, as OpenPGP's integrity protection: altered bytes do not open. */
function checkedCodec(self: Fingerprint): PayloadCodec {
  const base = plainCodec(self);
  return {
    async seal(plain, to) {
      const sealed = await base.seal(plain, to);
      return Buffer.concat([createHash('sha256').update(sealed).digest(), sealed]);
    },
    async open(sealed) {
      const inner = sealed.subarray(32);
      if (!createHash('sha256').update(inner).digest().equals(sealed.subarray(0, 32)))
        throw new KithError('ERR_PAYLOAD_UNDECRYPTABLE', 'integrity check failed');
      return base.open(inner);
    },
  };
}

/** Makes a relay flip a byte of every onion body it hands on, re-signing it so hop checks pass. */
function tamperWith(relay: SimAgent, when: () => boolean, at = 100): void {
  const send = relay.transport.send.bind(relay.transport);
  relay.transport.send = async (to: AgentId, frame: Uint8Array) => {
    if (frame[1] === FrameType.onion && when()) {
      const { header, body } = decodeOnion(Buffer.from(frame));
      const h = Buffer.from(header);
      const b = Buffer.from(body);
      b[at] ^= 0xff;
      return send(to, encodeOnion(h, b, signWith(relay.keys, hopDigest(publicFromAgentId(to), h, b))));
    }
    return send(to, frame);
  };
}

// No stall timer fires while a case runs (it asserts the re-route came from the rejection): at
// 2 s one could, beside a CPU hog, before the recipient's answer came back.
const NEVER_STALLS = 3_600_000;

describe('a relay that tampers with a message', () => {
  let sim: Simulation | undefined;
  afterEach(async () => {
    await sim?.stop();
    sim = undefined;
  });

  test('damage is a path failure; only "not for me" and "too large" are final', () => {
    expect(afterRejection(RejectReason.notForMe, 0)).toBe('final');
    expect(afterRejection(RejectReason.tooLarge, 0)).toBe('final');
    for (const reason of [RejectReason.undecryptable, RejectReason.corrupt, RejectReason.sinkFailed]) {
      expect(afterRejection(reason, 0)).toBe('alternate path');
      expect(afterRejection(reason, MAX_REJECTING_PATHS - 2)).toBe('alternate path');
      expect(afterRejection(reason, MAX_REJECTING_PATHS - 1)).toBe('final');
    }
  });

  test('two disjoint paths, the first one used has a tampering relay: the message arrives once via the other', async () => {
    const fingerprints: Fingerprint[] = [];
    sim = new Simulation({
      delivery: { stallTimeoutMs: NEVER_STALLS },
      customize: (i) => {
        const fingerprint = randomBytes(20).toString('hex').toUpperCase() as Fingerprint;
        fingerprints[i] = fingerprint;
        return { fingerprint, codec: checkedCodec(fingerprint) };
      },
    });
    const [a, b1, c1, b2, c2, d] = sim.addAgents(6);
    sim.connect(a, b1);
    sim.connect(b1, c1);
    sim.connect(c1, d);
    sim.connect(a, b2);
    sim.connect(b2, c2);
    sim.connect(c2, d);
    await sim.start();
    // Whichever first hop the sender picks first becomes the tamperer, for every packet it relays.
    let tamperer: SimAgent | undefined;
    for (const relay of [b1, b2]) {
      tamperWith(relay, () => {
        tamperer ??= relay;
        return tamperer === relay;
      });
    }
    const rec = recordEvents(a.engine);
    const id = newMessageId();
    await a.engine.send({ id, to: d.entity, source: { kind: 'bytes', data: Buffer.from('intact, please') } });
    const end = await rec.waitFor((e) => (e.kind === 'delivered' || e.kind === 'failed') && e.id === id);
    await sim.network.idle();

    expect(end.kind).toBe('delivered');
    // Re-routed on the rejection, not after a stall timeout (an event, not a stopwatch: the
    // stopwatch failed on a loaded machine).
    expect(a.engine.metrics.get('stalled')).toBe(0);
    expect(tamperer).toBeDefined();
    expect(d.engine.metrics.get('rejected_payload_undecryptable')).toBe(1);
    expect(a.engine.metrics.get('rejected_on_path')).toBe(1);
    expect(d.inbox).toHaveLength(1);
    expect(d.inbox[0].data?.toString()).toBe('intact, please');
    const honest = tamperer === b1 ? b2 : b1;
    expect(honest.engine.metrics.get('forwarded')).toBeGreaterThan(0);
  });

  test('a manifest damaged into something that does not parse is answered "corrupt": re-routed at once', async () => {
    sim = new Simulation({ delivery: { stallTimeoutMs: NEVER_STALLS } }); // plain codec: no integrity check
    const [a, b1, c1, b2, c2, d] = sim.addAgents(6);
    sim.connect(a, b1);
    sim.connect(b1, c1);
    sim.connect(c1, d);
    sim.connect(a, b2);
    sim.connect(b2, c2);
    sim.connect(c2, d);
    await sim.start();
    let tamperer: SimAgent | undefined;
    for (const relay of [b1, b2]) {
      tamperWith(
        relay,
        () => {
          tamperer ??= relay;
          return tamperer === relay;
        },
        60,
      );
    }
    const rec = recordEvents(a.engine);
    const id = newMessageId();
    await a.engine.send({ id, to: d.entity, source: { kind: 'bytes', data: Buffer.from('hello') } });
    await rec.waitFor((e) => e.kind === 'delivered' && e.id === id);
    // Re-routed on the rejection, not after a stall timeout.
    expect(a.engine.metrics.get('stalled')).toBe(0);
    expect(d.engine.metrics.get('rejected_manifest_malformed')).toBe(1);
    expect(a.engine.metrics.get('rejected_on_path')).toBe(1);
    expect(d.inbox).toHaveLength(1);
  });
});
