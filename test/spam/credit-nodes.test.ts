import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import type { ImapFlow } from 'imapflow';
import type { KithNode } from '../../agent/node.ts';
import type { SpamEvent } from '../../agent/spam/control.ts';
import {
  closeAgents,
  mail,
  messagesContaining,
  startAgents,
  until,
  type TestNetwork,
} from '../agents/network.ts';
import { imapOf, markSeen, move, waitForSubject } from './imap.ts';

/** Every wait polls for the event it names; the bound is a hang detector under Jest's 5 minutes. */
const PATIENCE = 240_000;

/**
 * The first-contact credit (docs/protocol.md 15.7) on real nodes: stranger -> relay -> carol, three
 * KithNodes on loopback TCP (real SQLite, a real redis-server, mail over SMTP, carol's verdicts by a
 * real IMAP client: imapflow STORE \Seen, MOVE to Junk). Carol does not know the stranger. The credit
 * is on (`spam.firstContactCredit`, the default), with its default sizes: one unjudged first contact
 * per link.
 */
describe('first-contact credit between real nodes', () => {
  let net: TestNetwork;
  let imap: ImapFlow;
  const node = (name: string): KithNode => net.agent(name).node;
  const carolEvents: SpamEvent[] = [];

  beforeAll(async () => {
    net = await startAgents(
      {
        names: ['stranger', 'relay', 'carol'],
        links: [
          ['relay', 'stranger'],
          ['relay', 'carol'],
        ],
      },
      { spam: { firstContactCredit: true, settleMs: 1000 } },
    );
    // The stranger holds carol's key (as after a discovery); carol does not know the stranger.
    await node('stranger').trust.addEntity(node('carol').identity.entityPublicArmored, {
      trusted: false,
      contact: true,
      source: 'fingerprint',
    });
    node('carol').spam.onEvent((e) => carolEvents.push(e));
    imap = await imapOf(node('carol'));
  });

  afterAll(async () => {
    await imap?.logout().catch(() => undefined);
    await closeAgents();
  });

  const metric = (who: string, name: string) => node(who).engine.metrics.get(name);
  const atLeast = (who: string, name: string, n: number) =>
    until(() => (metric(who, name) >= n ? true : undefined), `${name} >= ${n} at ${who}`, PATIENCE);

  test('one unjudged first contact per link: the next waits for a verdict; read-and-kept and Junk release it; two complaints revoke a link without a good record, and the honest relay is cleared', async () => {
    const stranger = node('stranger');
    const relay = node('relay');
    const carol = node('carol');
    const strangerAgent = stranger.identity.agentId;

    // The stranger's agent sent it unflagged (carol is its contact); carol's agent refused that
    // (she does not know the stranger) and it went again flagged, through the relay's credit.
    await mail(stranger, carol, { subject: 'hello 1', text: 'we met at the fair' });
    await waitForSubject(imap, 'INBOX', 'hello 1');
    expect(metric('carol', 'rejected_first_contact_unflagged')).toBeGreaterThanOrEqual(1);
    expect(metric('stranger', 'first_contact_reflagged')).toBeGreaterThanOrEqual(1);

    // The second first contact is held at the relay: hello 1 has no verdict yet. The stranger's
    // owner reads why in the "delayed" status email.
    await mail(stranger, carol, { subject: 'hello 2', text: 'about the bicycle' });
    await atLeast('relay', 'rejected_first_contact_held', 1);
    const delayed = (
      await until(
        async () => (await messagesContaining(stranger, 'ERR_FIRST_CONTACT_HELD'))[0],
        'the delayed status email',
        PATIENCE,
      )
    )
      .toString()
      .replace(/=\r?\n/g, '');
    expect(delayed).toMatch(/has not been delivered yet/);
    expect(await messagesContaining(carol, 'about the bicycle')).toHaveLength(0);

    // Carol reads hello 1 and keeps it: the signed *seen* verdict travels back and releases the
    // credit at the relay; the stranger's agent sends hello 2 again and it goes through.
    await markSeen(imap, 'INBOX', 'hello 1');
    await atLeast('relay', 'verdicts_relayed', 1);
    await atLeast('stranger', 'verdicts_received', 1);
    await waitForSubject(imap, 'INBOX', 'hello 2');

    // Two first contacts moved to Junk: the stranger's link has one good verdict (under
    // creditPerGood), so two complaints about first contacts suspend it, and it is revoked.
    await move(imap, 'hello 2', 'INBOX', 'Junk');
    await atLeast('relay', 'complaints_counted', 1);
    await mail(stranger, carol, { subject: 'hello 3', text: 'buy now' });
    await waitForSubject(imap, 'INBOX', 'hello 3');
    await move(imap, 'hello 3', 'INBOX', 'Junk');
    await until(
      () => (relay.trust.entity(stranger.identity.fingerprint)?.revokedAt !== undefined ? true : undefined),
      'the relay to revoke the stranger',
      PATIENCE,
    );
    expect(relay.spam.facts(strangerAgent)).toMatchObject({ revoked: true });

    // Carol counted those complaints against the relay too (first contacts count at the
    // recipient) and suspended it; the relay's cut notices, sent when it suspended the stranger,
    // cleared it: carol keeps her relay.
    expect(carolEvents.map((e) => e.kind)).toEqual(
      expect.arrayContaining(['suspended', 'cleared', 'lifted']),
    );
    await until(
      () => (carol.spam.facts(relay.identity.agentId).openComplaints < 0.01 ? true : undefined),
      "carol's complaints against the relay to clear",
      PATIENCE,
    );
    expect(carol.trust.entity(relay.identity.fingerprint)?.revokedAt).toBeUndefined();
    expect(carol.spam.facts(relay.identity.agentId).suspendedAt).toBeUndefined();
  });
});
