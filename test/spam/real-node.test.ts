import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import type { ImapFlow } from 'imapflow';
import type { AgentId } from '../../common/ids.ts';
import { agentKeysFromIdentity } from '../../agent/onion/keys.ts';
import { SpamStore } from '../../agent/spam/store.ts';
import {
  decodeComplaintFrame,
  encodeComplaintFrame,
  makeStatement,
  StatementKind,
} from '../../agent/spam/wire.ts';
import type { SpamEvent } from '../../agent/spam/control.ts';
import {
  closeAgents,
  mail,
  messagesContaining,
  startAgents,
  until,
  type TestNetwork,
} from '../agents/network.ts';
import { callNode } from '../../agent/control/client.ts';
import type { SpamRevocationView } from '../../agent/spam/control.ts';
import { join } from 'node:path';
import { copyAndExpunge, imapOf, move, waitForSubject } from './imap.ts';

/**
 * spammer -> relay -> victim, and other -> relay -> victim: real KithNodes on loopback TCP, real
 * SQLite, a real redis-server; mail submitted over SMTP (nodemailer) and judged by a real IMAP
 * client (imapflow) on the victim's gateway. The relay is the only path, so every complaint the
 * victim makes travels victim -> relay -> spammer.
 */
describe('spam control between real nodes', () => {
  let net: TestNetwork;
  let imap: ImapFlow;
  let spammerAgent: AgentId;
  const relayEvents: SpamEvent[] = [];

  beforeAll(async () => {
    net = await startAgents(
      {
        names: ['spammer', 'relay', 'victim', 'other'],
        links: [
          ['relay', 'spammer'],
          ['relay', 'victim'],
          ['relay', 'other'],
        ],
        contacts: [
          ['spammer', 'victim'],
          ['other', 'victim'],
        ],
      },
      // Without the first-contact credit (on by default): the spammer here is the victim's contact,
      // and with the credit a contact's complaints count once per recipient (complaintCounts, 15.7:
      // a contact who complains about all its mail is a quarrel or a framer), so one victim's three
      // Junk moves would never reach the threshold. What this file tests (complaints, withdrawal,
      // replay, forgery, threshold, notice) is the same with it; the credit's own path, a stranger's
      // first contacts, is test/spam/credit-nodes and evidence-nodes.
      { spam: { minComplaints: 3, settleMs: 1000, firstContactCredit: false, maxCuts: 3 } },
    );
    spammerAgent = net.agent('spammer').node.identity.agentId;
    net.agent('relay').node.spam.onEvent((e) => relayEvents.push(e));
    imap = await imapOf(net.agent('victim').node);
    // Four real nodes (keys, libp2p, a redis-server): the same set-up allowance as test/agents/mesh.
  });

  afterAll(async () => {
    await imap?.logout().catch(() => undefined);
    // Also the network whose start outlived beforeAll (net still undefined then).
    await closeAgents();
  });

  const relay = () => net.agent('relay').node;
  const victim = () => net.agent('victim').node;
  const open = () => relay().spam.facts(spammerAgent).openComplaints;
  /**
   * Every wait below polls for the event it names; the bound only names what never happened (a
   * hang detector under Jest's 5 minutes), never how long a step may take on a loaded machine.
   */
  const PATIENCE = 240_000;

  test('Junk moves complain, a move back withdraws, forged and replayed complaints are refused, and past the threshold the relay revokes the spammer while other mail still flows', async () => {
    const spammer = net.agent('spammer').node;
    for (let i = 1; i <= 3; i++) {
      await mail(spammer, victim(), { subject: `cheap pills ${i}`, text: `buy now ${i}` });
    }
    for (let i = 1; i <= 3; i++) await waitForSubject(imap, 'INBOX', `cheap pills ${i}`);

    // One complaint (IMAP MOVE to Junk): counted once at the relay, against the spammer.
    await move(imap, 'cheap pills 1', 'INBOX', 'Junk');
    await until(() => (open() > 0.99 ? true : undefined), 'the complaint to reach the relay', PATIENCE);
    expect(relay().engine.metrics.get('complaints_counted')).toBe(1);
    // The sender's own agent hears of it too (the end of the reverse path).
    await until(
      () => (spammer.engine.metrics.get('complaints_received') > 0 ? true : undefined),
      'the complaint to reach the spammer',
      PATIENCE,
    );

    // Moving it back out of Junk withdraws the complaint along the same path: un-counted.
    await move(imap, 'cheap pills 1', 'Junk', 'INBOX');
    await until(() => (open() < 0.01 ? true : undefined), 'the withdrawal to reach the relay', PATIENCE);
    expect(relay().engine.metrics.get('withdrawals_relayed')).toBe(1);

    // A replay of the victim's complaint frame, sent again by the victim's agent over its real link.
    const rows = new SpamStore(relay().db).allAgainst(spammerAgent);
    expect(rows).toHaveLength(1);
    const stored = rows[0].frame!;
    const relayAgent = relay().identity.agentId;
    await victim().links.transport.send(relayAgent, stored);
    await until(
      () => (relay().engine.metrics.get('rejected_complaint_replay') === 1 ? true : undefined),
      'the replay to be refused',
      PATIENCE,
    );
    // A forged complaint: the recipient's signature altered (the hop signature made anew over it).
    const keys = agentKeysFromIdentity(victim().identity);
    const parsed = decodeComplaintFrame(stored);
    const forgedStatement = { ...parsed.statement, at: parsed.statement.at + 10 }; // signature no longer fits
    const relayPublic = agentKeysFromIdentity(relay().identity).signPublic;
    await victim().links.transport.send(
      relayAgent,
      encodeComplaintFrame(keys, relayPublic, parsed.link, forgedStatement),
    );
    // A complaint correctly signed by the victim about a packet the relay never handed it.
    const unknown = makeStatement(keys, StatementKind.complaint, 'ab'.repeat(16), Date.now());
    await victim().links.transport.send(
      relayAgent,
      encodeComplaintFrame(keys, relayPublic, 'cd'.repeat(16), unknown),
    );
    await until(
      () =>
        relay().engine.metrics.get('rejected_complaint_forged') === 1 &&
        relay().engine.metrics.get('rejected_complaint_unknown') === 1
          ? true
          : undefined,
      'the forged and unknown complaints to be refused',
      PATIENCE,
    );
    expect(relayEvents.filter((e) => e.kind === 'refused').map((e) => (e as { code: string }).code)).toEqual([
      'complaint_replay',
      'complaint_forged',
      'complaint_unknown',
    ]);
    expect(open()).toBeLessThan(0.01); // none of them counted

    // Three complaints (one by COPY + EXPUNGE, as clients without MOVE do; one complained again
    // after its withdrawal): the relay suspends the spammer, and revokes it once nobody upstream
    // showed a cut-off within the settle time.
    await move(imap, 'cheap pills 1', 'INBOX', 'Junk');
    await move(imap, 'cheap pills 2', 'INBOX', 'Junk');
    await copyAndExpunge(imap, 'cheap pills 3', 'INBOX', 'Junk');
    const spammerEntity = spammer.identity.fingerprint;
    await until(() => (open() > 2.9 ? true : undefined), 'three open complaints', PATIENCE);
    await until(
      () => (relay().trust.entity(spammerEntity)?.revokedAt !== undefined ? true : undefined),
      'the relay to revoke the spammer',
      PATIENCE,
    );
    expect(relayEvents.map((e) => e.kind)).toEqual(expect.arrayContaining(['suspended', 'revoked']));
    expect(relay().engine.metrics.get('complaints_counted')).toBe(3); // the re-complaint counted again, once
    await until(
      () => (relay().links.isLinked(spammerAgent) ? undefined : true),
      'the link to close',
      PATIENCE,
    );

    // The relay's cut notices reach the victim: its complaints are cleared (the source is cut off).
    await until(
      () => (victim().engine.metrics.get('cuts_received') === 3 ? true : undefined),
      'the cut notices to reach the victim',
      PATIENCE,
    );
    // The victim did not lose its relay, and mail from the relay's other neighbour still flows.
    expect(victim().trust.entity(relay().identity.fingerprint)?.revokedAt).toBeUndefined();
    await mail(net.agent('other').node, victim(), { subject: 'lunch tomorrow?', text: 'at noon' });
    await waitForSubject(imap, 'INBOX', 'lunch tomorrow?');

    // The spammer's owner is told by a status email, and its agent verified the evidence it got.
    const notice = await until(
      async () => (await messagesContaining(spammer, 'cut off for spam'))[0],
      "the status email in the spammer's INBOX",
      PATIENCE,
    );
    expect(notice.toString()).toContain('3 signed complaint(s)');
    expect(spammer.spam.revocationsOf(spammerEntity)).toEqual([
      expect.objectContaining({ byUs: false, by: relayAgent, reason: 'complaints', verified: 3 }),
    ]);

    // `kith contacts` on the relay says why and when; `kith trust` again is what reinstates it.
    const sock = join(relay().paths.root, 'control.sock');
    const contacts = await callNode<{ fingerprint: string; revoked: boolean; spam: SpamRevocationView[] }[]>(
      sock,
      'contacts',
    );
    const listed = contacts.find((c) => c.fingerprint === spammerEntity)!;
    expect(listed.revoked).toBe(true);
    expect(listed.spam).toEqual([expect.objectContaining({ byUs: true, reason: 'complaints', verified: 3 })]);
    expect(listed.spam[0].detail).toMatch(/open complaints/);
    const trusted = await callNode<{ reinstatedFromSpam?: SpamRevocationView }>(sock, 'trust', {
      fingerprint: spammerEntity,
      addresses: [],
    });
    expect(trusted.reinstatedFromSpam).toMatchObject({ byUs: true });
    expect(relay().trust.entity(spammerEntity)?.revokedAt).toBeUndefined();
    expect(relay().spam.facts(spammerAgent)).toMatchObject({ revoked: false, openComplaints: 0 });
  });
});
