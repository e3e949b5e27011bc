import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import type { ImapFlow } from 'imapflow';
import type { KithNode } from '../../agent/node.ts';
import type { SpamEvent } from '../../agent/spam/control.ts';
import { closeAgents, mail, startAgents, until, type TestNetwork } from '../agents/network.ts';
import { imapOf, move, waitForSubject } from './imap.ts';

/** Every wait polls for the event it names; the bound is a hang detector under Jest's 5 minutes. */
const PATIENCE = 240_000;

/**
 * Evidence against a trusted agent (docs/protocol.md 15.5) on real nodes: a spammer's agent with two
 * attack edges, spammer -> r1 -> v1 and spammer -> r2 -> v2, and r1 - r2 linked. Five KithNodes on
 * loopback TCP (real SQLite, a real redis-server, mail over SMTP, Junk by a real IMAP client:
 * imapflow MOVE). The victims do not know the spammer. r1 revokes it after two complaints (a link
 * whose first contacts have no good record: probation) and sends its notice with the signed
 * complaints to r2; r2 then revokes it after one complaint of its own, where it needed two.
 */
describe('evidence against a trusted agent between real nodes', () => {
  let net: TestNetwork;
  let imap1: ImapFlow;
  let imap2: ImapFlow;
  const node = (name: string): KithNode => net.agent(name).node;
  const r2Events: SpamEvent[] = [];

  beforeAll(async () => {
    net = await startAgents(
      {
        names: ['spammer', 'r1', 'v1', 'r2', 'v2'],
        links: [
          ['r1', 'spammer'],
          ['r1', 'v1'],
          ['r2', 'spammer'],
          ['r2', 'v2'],
          ['r1', 'r2'],
        ],
      },
      { spam: { settleMs: 1000 } },
    );
    // The spammer holds its victims' keys (as after a discovery); they do not know it.
    for (const v of ['v1', 'v2'])
      await node('spammer').trust.addEntity(node(v).identity.entityPublicArmored, {
        trusted: false,
        contact: true,
        source: 'fingerprint',
      });
    node('r2').spam.onEvent((e) => r2Events.push(e));
    imap1 = await imapOf(node('v1'));
    imap2 = await imapOf(node('v2'));
  });

  afterAll(async () => {
    await imap1?.logout().catch(() => undefined);
    await imap2?.logout().catch(() => undefined);
    await closeAgents();
  });

  const metric = (who: string, name: string) => node(who).engine.metrics.get(name);
  const atLeast = (who: string, name: string, n: number) =>
    until(() => (metric(who, name) >= n ? true : undefined), `${name} >= ${n} at ${who}`, PATIENCE);
  const revokedBy = (who: string) =>
    until(
      () =>
        node(who).trust.entity(node('spammer').identity.fingerprint)?.revokedAt !== undefined
          ? true
          : undefined,
      `${who} to revoke the spammer`,
      PATIENCE,
    );
  /** One spam to a victim, delivered and moved to Junk; waits until the relay counted the complaint. */
  const spamJunked = async (victim: 'v1' | 'v2', imap: ImapFlow, subject: string, counted: number) => {
    await mail(node('spammer'), node(victim), { subject, text: 'cheap watches' });
    await waitForSubject(imap, 'INBOX', subject);
    await move(imap, subject, 'INBOX', 'Junk');
    await atLeast(victim === 'v1' ? 'r1' : 'r2', 'complaints_counted', counted);
  };

  test("r1's revocation carries its evidence to r2, which then cuts the spammer off after one complaint of its own instead of two", async () => {
    const spammer = node('spammer').identity.agentId;
    // Each spam waits for the last one's verdict (the credit), so each takes the shortest path.
    await spamJunked('v1', imap1, 'spam 1', 1);
    await spamJunked('v1', imap1, 'spam 2', 2);
    await revokedBy('r1');

    // r2 keeps r1's notice and its verified complaints (2, the most one revoker's word weighs),
    // but evidence alone moves nothing: the spammer is still r2's neighbour, not suspended.
    const reported = await until(
      () => r2Events.find((e) => e.kind === 'reported' && e.agent === spammer),
      "r1's notice at r2",
      PATIENCE,
    );
    expect(reported).toMatchObject({ verified: 2 });
    const before = node('r2').spam.facts(spammer);
    expect(before.evidence).toBeGreaterThan(1.9);
    expect(before.suspendedAt).toBeUndefined();
    expect(node('r2').trust.entity(node('spammer').identity.fingerprint)?.revokedAt).toBeUndefined();

    // One spam through r2, one complaint (probation alone needs two): suspended with the evidence
    // beside it, and revoked once the settle time passes without a cut-off from upstream.
    await spamJunked('v2', imap2, 'spam 3', 1);
    await revokedBy('r2');
    const suspended = r2Events.find((e) => e.kind === 'suspended' && e.agent === spammer);
    expect(suspended).toMatchObject({ reason: expect.stringMatching(/neighbours' evidence/) });
    expect(node('r2').spam.facts(spammer)).toMatchObject({ revoked: true });
    // r1 and r2 keep each other: neither was blamed for the other's revocation.
    expect(node('r2').trust.entity(node('r1').identity.fingerprint)?.revokedAt).toBeUndefined();
    expect(node('r1').trust.entity(node('r2').identity.fingerprint)?.revokedAt).toBeUndefined();
  });
});
