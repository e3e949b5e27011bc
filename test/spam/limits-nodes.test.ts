import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { join } from 'node:path';
import { callNode } from '../../agent/control/client.ts';
import type { KithNode } from '../../agent/node.ts';
import {
  closeAgents,
  mail,
  messagesContaining,
  startAgents,
  until,
  type TestNetwork,
} from '../agents/network.ts';

/** Every wait polls for the event it names; the bound is a hang detector under Jest's 5 minutes. */
const PATIENCE = 240_000;
const FLOOR = 10;

/**
 * stranger -> relay -> carol: three real KithNodes on loopback TCP (real SQLite, a real
 * redis-server, mail submitted over SMTP). The stranger holds carol's key (as after a discovery);
 * carol does not know the stranger. Limits made small for the test: 2 first contacts a day, one
 * invitation for a new identity, FLOOR packets an hour from a neighbour without history.
 */
describe('spam limits between real nodes', () => {
  let net: TestNetwork;
  const node = (name: string): KithNode => net.agent(name).node;

  beforeAll(async () => {
    net = await startAgents(
      {
        names: ['stranger', 'relay', 'carol'],
        links: [
          ['relay', 'stranger'],
          ['relay', 'carol'],
        ],
      },
      // The first-contact credit (on by default) with room: this file tests the day's limit, and at
      // one unjudged first contact per link the relay would hold hello 2 until carol read hello 1
      // (that hold is test/spam/credit-nodes). The flag and its re-send still run here.
      {
        spam: {
          firstContactsPerDay: 2,
          invitationsAtStart: 1,
          forwardFloorPerHour: FLOOR,
          creditStart: 1000,
          creditMax: 1000,
        },
      },
    );
    await node('stranger').trust.addEntity(node('carol').identity.entityPublicArmored, {
      trusted: false,
      contact: true,
      source: 'fingerprint',
    });
  });

  afterAll(async () => {
    await closeAgents();
  });

  const inInbox = (who: string, needle: string) =>
    until(
      async () => (await messagesContaining(node(who), needle))[0],
      `"${needle}" in ${who}'s INBOX`,
      PATIENCE,
    );

  test('a stranger gets two first contacts a day through; the third is refused and its sender told why by a status email; once a contact, no limit', async () => {
    const stranger = node('stranger');
    const carol = node('carol');
    await mail(stranger, carol, { subject: 'hello 1', text: 'we met at the fair' });
    await mail(stranger, carol, { subject: 'hello 2', text: 'about the bicycle' });
    await inInbox('carol', 'hello 1');
    await inInbox('carol', 'hello 2');
    await mail(stranger, carol, { subject: 'hello 3', text: 'are you there?' });
    const status = (await inInbox('stranger', 'first_contact_limit')).toString();
    expect(status).toMatch(/could not be delivered/);
    expect(status).toMatch(/not the recipient's contact/);
    expect(carol.engine.metrics.get('rejected_first_contact_limit')).toBeGreaterThanOrEqual(1);
    // Refused for good (a final refusal): settled by the status email, so its absence holds now.
    expect(await messagesContaining(carol, 'hello 3')).toHaveLength(0);

    // Carol takes the stranger as a contact (what replying does): no limit for a contact.
    await carol.trust.addEntity(stranger.identity.entityPublicArmored, {
      trusted: false,
      contact: true,
      source: 'fingerprint',
    });
    await mail(stranger, carol, { subject: 'hello 4', text: 'thanks for replying' });
    await inInbox('carol', 'hello 4');
  });

  test("a new identity's invitations stop at its quota with ERR_INVITATION_QUOTA", async () => {
    const sock = join(node('stranger').paths.root, 'control.sock');
    const first = await callNode<{ code: string }>(sock, 'invite', { ttlMinutes: 5 });
    expect(first.code).toMatch(/^kith1/);
    await expect(callNode(sock, 'invite', { ttlMinutes: 5 })).rejects.toMatchObject({
      code: 'ERR_INVITATION_QUOTA',
      message: expect.stringMatching(/quota 1/),
    });
  });

  test('the relay hands on at most its allowance an hour from the stranger, tells the sender why (ERR_OVER_ALLOWANCE in a status email), and other neighbours keep theirs', async () => {
    const stranger = node('stranger');
    const relay = node('relay');
    const strangerAgent = stranger.identity.agentId;
    // More mails than the floor in one burst (the first test used a few packets of this hour).
    for (let i = 1; i <= FLOOR + 2; i++)
      await mail(stranger, node('carol'), { subject: `burst ${i}`, text: `${i}` });
    await until(
      () => (relay.engine.metrics.get('rejected_over_allowance') > 0 ? true : undefined),
      'the relay to refuse a packet over the allowance',
      PATIENCE,
    );
    expect(relay.spamLimits.forwardedThisHour(strangerAgent)).toBe(FLOOR);
    // The relay told the stranger's agent why (a sealed refused report), and its owner reads the
    // code and the reason in the "delayed" status email.
    // (Quoted-printable: soft line breaks undone.)
    const delayed = (await inInbox('stranger', 'ERR_OVER_ALLOWANCE')).toString().replace(/=\r?\n/g, '');
    expect(delayed).toMatch(/has not been delivered yet/);
    expect(delayed).toMatch(/a limit against spam/);
    expect(stranger.engine.metrics.get('refused_on_path')).toBeGreaterThanOrEqual(1);
    // Carol's own allowance at the relay is untouched: her mail to the stranger goes through.
    const carolAgent = node('carol').identity.agentId;
    expect(relay.spamLimits.forwardedThisHour(carolAgent)).toBe(0);
    await mail(node('carol'), stranger, { subject: 'see you', text: 'on Sunday' });
    await inInbox('stranger', 'see you');
    expect(relay.spamLimits.forwardedThisHour(carolAgent)).toBe(1);
  });
});
