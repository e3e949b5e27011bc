import { afterEach, describe, expect, test } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { hopDigest } from '../../agent/delivery/frames.ts';
import type { HopRecord } from '../../agent/delivery/store.ts';
import { generateAgentKeys, signWith, SignatureVerifier, type AgentKeys } from '../../agent/onion/keys.ts';
import { DEFAULT_SPAM_POLICY } from '../../agent/spam/decisions.ts';
import { SpamControl, type RevocationAct, type SpamEvent } from '../../agent/spam/control.ts';
import { decodeNotice, encodeNotice, verifiedItems } from '../../agent/spam/notice.ts';
import { SpamStore } from '../../agent/spam/store.ts';
import {
  decodeCutFrame,
  encodeComplaintFrame,
  encodeCutFrame,
  makeStatement,
  StatementKind,
} from '../../agent/spam/wire.ts';
import type { Transport } from '../../agent/transport.ts';
import type { AgentId } from '../../common/ids.ts';
import { silentLogger } from '../../common/logger.ts';
import { openDatabase, type Db } from '../../store/db.ts';
import { tempDir } from '../helpers/tmp.ts';

/**
 * Spam control of one relay R on a real SQLite file, between a source S (predecessor) and a
 * neighbour M towards the recipient V. The transport only records what R sends; the hop memory is
 * what R would have recorded when S handed it packets.
 */
class Relay {
  readonly keys = generateAgentKeys();
  readonly sent: { to: AgentId; frame: Buffer }[] = [];
  readonly revoked: RevocationAct[] = [];
  readonly events: SpamEvent[] = [];
  readonly hops = new Map<string, HopRecord>();
  db!: Db;
  control!: SpamControl;
  readonly metrics = new Map<string, number>();
  now = 1_000_000;

  constructor(private readonly file: string) {}

  open(): this {
    this.db = openDatabase(this.file);
    const transport: Transport = {
      self: this.keys.id,
      neighbours: () => [],
      send: async (to, frame) => void this.sent.push({ to, frame: Buffer.from(frame) }),
      onFrame: () => undefined,
      onLinkChange: () => undefined,
    };
    this.control = new SpamControl({
      transport,
      keys: this.keys,
      store: new SpamStore(this.db),
      policy: { ...DEFAULT_SPAM_POLICY, settleMs: 1000 },
      logger: silentLogger(),
      entityOf: () => 'F'.repeat(40) as never,
      isRevoked: () => false,
      revoke: (act) => void this.revoked.push(act),
      hopMemoryMs: 7 * 86_400_000,
      now: () => this.now,
    });
    this.control.bind({
      hopByOut: (link) => this.hops.get(link),
      ownComplaint: () => false,
      count: (name) => void this.metrics.set(name, (this.metrics.get(name) ?? 0) + 1),
    });
    this.control.onEvent((e) => this.events.push(e));
    this.control.start();
    return this;
  }

  close(): void {
    this.control.stop();
    this.db.close();
  }

  /** S handed R a packet (signed proof) that R handed on to M under `link`. */
  packetFrom(source: AgentKeys, to: AgentKeys): string {
    const link = randomBytes(16).toString('hex');
    const digest = hopDigest(this.keys.signPublic, randomBytes(768), randomBytes(1024));
    this.hops.set(link, {
      inId: randomBytes(16).toString('hex'),
      from: source.id,
      proof: { digest, signature: signWith(source, digest) },
      outId: link,
      to: to.id,
      expiresAt: Number.MAX_SAFE_INTEGER,
    });
    this.control.onPacket(source.id);
    return link;
  }
}

describe('evidence and durable counts', () => {
  const dirs: { remove(): void }[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) d.remove();
  });

  test('counts, traffic and the evidence survive a restart; the revocation notice carries verifiable complaints', async () => {
    const dir = tempDir('kith-spam-');
    dirs.push(dir);
    const source = generateAgentKeys();
    const next = generateAgentKeys();
    const recipient = generateAgentKeys();
    let relay = new Relay(join(dir.path, 'kith.db')).open();
    const complain = async (r: Relay, link: string, at: number) => {
      const st = makeStatement(recipient, StatementKind.complaint, randomBytes(16).toString('hex'), at);
      await r.control.onFrame(next.id, encodeComplaintFrame(next, r.keys.signPublic, link, st));
    };
    const links = [
      relay.packetFrom(source, next),
      relay.packetFrom(source, next),
      relay.packetFrom(source, next),
    ];
    await complain(relay, links[0], relay.now);
    await complain(relay, links[1], relay.now);
    expect(relay.control.facts(source.id).openComplaints).toBeCloseTo(2);
    // Handed on to the source, re-signed for it.
    expect(relay.sent.filter((s) => s.to === source.id)).toHaveLength(2);

    // Restart: a new process on the same database file.
    relay.close();
    const keys = relay.keys;
    const hops = relay.hops;
    relay = new Relay(join(dir.path, 'kith.db'));
    Object.assign(relay, { keys });
    for (const [k, v] of hops) relay.hops.set(k, v);
    relay.open();
    expect(relay.control.facts(source.id)).toMatchObject({ traffic: expect.closeTo(3, 2), lifetimeOpen: 2 });
    expect(relay.control.facts(source.id).openComplaints).toBeCloseTo(2);

    // The third complaint suspends S; after the settle time (no cut notice came) it is revoked.
    await complain(relay, links[2], relay.now);
    expect(relay.events.map((e) => e.kind)).toContain('suspended');
    relay.now += 1001;
    relay.control.evaluate(source.id);
    expect(relay.revoked).toHaveLength(1);
    const act = relay.revoked[0];
    expect(act.agent).toBe(source.id);

    // A neighbour of the relay verifies the notice it is sent: three distinct signed complaints.
    const verifier = new SignatureVerifier();
    const notice = decodeNotice(verifier, keys.id, act.notice);
    expect(notice.items).toHaveLength(3);
    expect(verifiedItems(verifier, keys.signPublic, notice)).toBe(3);
    // Tampered evidence does not verify: an altered proof, an altered complaint, an item twice.
    const tampered = {
      ...notice,
      items: [
        { ...notice.items[0], proof: { ...notice.items[0].proof, signature: randomBytes(64) } },
        {
          ...notice.items[1],
          frame: Buffer.concat([notice.items[1].frame.subarray(0, 40), randomBytes(163)]),
        },
        notice.items[2],
        notice.items[2],
      ],
    };
    const reSigned = decodeNotice(verifier, keys.id, encodeNotice(keys, tampered));
    expect(verifiedItems(verifier, keys.signPublic, reSigned)).toBe(1);
    // A notice that the neighbour sending it did not sign is refused.
    expect(() => decodeNotice(verifier, next.id, act.notice)).toThrow(
      expect.objectContaining({ code: 'ERR_NOTICE_SIGNATURE' }),
    );

    // The revocation and its evidence are durable too.
    relay.close();
    const db = openDatabase(join(dir.path, 'kith.db'));
    try {
      const store = new SpamStore(db);
      const [row] = store.revocations();
      expect(row).toMatchObject({ agent: source.id, reason: 'complaints', verified: 3 });
      expect(row.evidence!.equals(act.notice)).toBe(true);
      expect(store.neighbour(source.id)?.revokedAt).not.toBeNull();
    } finally {
      db.close();
    }
  });

  test('a cut notice from upstream clears a relay that only relayed the spam (the clearing rule)', async () => {
    const dir = tempDir('kith-spam-');
    dirs.push(dir);
    const upstream = generateAgentKeys(); // an honest relay between the source and us
    const next = generateAgentKeys();
    const recipient = generateAgentKeys();
    const relay = new Relay(join(dir.path, 'kith.db')).open();
    const statements = [];
    for (let i = 0; i < 3; i++) {
      const link = relay.packetFrom(upstream, next);
      const st = makeStatement(
        recipient,
        StatementKind.complaint,
        randomBytes(16).toString('hex'),
        relay.now,
      );
      statements.push(st);
      await relay.control.onFrame(next.id, encodeComplaintFrame(next, relay.keys.signPublic, link, st));
    }
    expect(relay.events.map((e) => e.kind)).toContain('suspended');
    // Suspending the upstream neighbour cuts the source off here: the hop downstream is told at
    // once (else its settle time, begun a moment before ours, ends before our cut reaches it).
    const cutsTo = () =>
      relay.sent.filter((s) => s.to === next.id && s.frame[1] === 7).map((s) => decodeCutFrame(s.frame));
    expect(cutsTo()).toHaveLength(3);
    // A cut dated before the packets cannot clear them: nothing handed on after a cut came from
    // the source it cut off.
    const early = encodeCutFrame(upstream, relay.keys.signPublic, {
      recipient: statements[0].recipient,
      complaintId: statements[0].complaintId,
      cutId: randomBytes(16).toString('hex'),
      at: relay.now - 10 * 60_000,
    });
    await relay.control.onFrame(upstream.id, early);
    expect(relay.metrics.get('rejected_cut_before_packet')).toBe(1);
    // The upstream relay cut its source off: one act (cut id), one notice per complaint.
    const cutId = randomBytes(16).toString('hex');
    for (const st of statements) {
      const frame = encodeCutFrame(upstream, relay.keys.signPublic, {
        recipient: st.recipient,
        complaintId: st.complaintId,
        cutId,
        at: relay.now,
      });
      await relay.control.onFrame(upstream.id, frame);
    }
    expect(relay.control.facts(upstream.id)).toMatchObject({ openComplaints: 0, cuts: 1 });
    expect(relay.events.map((e) => e.kind)).toContain('lifted');
    relay.now += 5000;
    relay.control.evaluate(upstream.id);
    expect(relay.revoked).toHaveLength(0);
    // The notices went on towards the recipient, re-signed by us, as our one act for that
    // predecessor (not the upstream's act id): the suspension's notices and these share it.
    expect(cutsTo()).toHaveLength(6);
    expect(new Set(cutsTo().map((c) => c.cutId)).size).toBe(1);
    expect(cutsTo()[0].cutId).not.toBe(cutId);
    // A cut notice for a complaint we never had against that neighbour is refused.
    const stray = encodeCutFrame(next, relay.keys.signPublic, {
      recipient: recipient.signPublic,
      complaintId: statements[0].complaintId,
      cutId,
      at: relay.now,
    });
    await relay.control.onFrame(next.id, stray);
    expect(relay.metrics.get('rejected_cut_unknown')).toBe(1);
    relay.close();
  });
});
