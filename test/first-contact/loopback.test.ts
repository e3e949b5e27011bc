import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import type { KithNode } from '../../agent/node.ts';
import { fingerprintAddress } from '../../gateway/smtp/addresses.ts';
import { tempDir } from '../helpers/tmp.ts';
import { headerOf, smtpOf, startNet, waitForMail, type Net } from './network.ts';

/**
 * First contact between real agents: alice and bob each trust only carol (invitations), and
 * neither holds the other's key. alice writes to bob's fingerprint address through her SMTP
 * server; her agent learns bob's key from carol's discovery answer. bob replies to alice's
 * fingerprint address the same way, and alice's agent shows the reply as verified.
 */
describe('first contact by fingerprint, through SMTP and IMAP, between real agents', () => {
  const tmp = tempDir('kith-first-contact-');
  let net: Net;
  let alice: KithNode;
  let bob: KithNode;
  const DISCOVERY_TIMEOUT_MS = 1_500;

  beforeAll(async () => {
    net = await startNet(
      tmp.path,
      ['alice', 'carol', 'bob'],
      [
        ['carol', 'alice'],
        ['carol', 'bob'],
      ],
      DISCOVERY_TIMEOUT_MS,
    );
    alice = net.nodes.get('alice')!;
    bob = net.nodes.get('bob')!;
  });

  afterAll(async () => {
    await net?.stop();
    tmp.remove();
  });

  test('alice → <bob-fpr>@kith without bob’s key; bob sees it unverified; bob’s reply reaches alice verified', async () => {
    const aliceFpr = alice.identity.fingerprint;
    const bobFpr = bob.identity.fingerprint;
    expect(alice.trust.entity(bobFpr)).toBeUndefined();
    expect(bob.trust.entity(aliceFpr)).toBeUndefined();

    // One message to bob and to a fingerprint nobody in the network answers for.
    const nobody = 'C0FFEE'.padEnd(40, '7');
    const aliceSmtp = smtpOf(alice);
    const sent = await aliceSmtp.sendMail({
      from: 'Alice <alice@demo.kith>',
      to: [fingerprintAddress(bobFpr), `${nobody.toLowerCase()}@kith`],
      subject: 'hello stranger',
      text: 'Hi Bob, carol gave me your fingerprint.',
      messageId: '<first-contact-1@demo.kith>',
    });
    aliceSmtp.close();
    expect(sent.accepted).toEqual([fingerprintAddress(bobFpr)]);
    expect(sent.rejected).toEqual([`${nobody.toLowerCase()}@kith`]);
    const refusal = (sent.rejectedErrors ?? [])[0] as Error & { responseCode?: number; response?: string };
    expect(refusal.responseCode).toBe(450);
    expect(refusal.response).toMatch(/^450 4\.4\.4 .*try again later/);

    // alice learned bob's key from carol's answer; writing to him made him a contact, not a neighbour.
    expect(alice.trust.entity(bobFpr)).toMatchObject({
      email: 'bob@demo.kith',
      contact: true,
      trusted: false,
      source: 'discovery',
    });
    expect(alice.trust.entity(bobFpr)?.publicKey).toBeDefined();
    expect(alice.trust.entity(nobody as never)).toBeUndefined();

    // bob gets it, but does not hold alice's key: the header says the sender is unchecked.
    const received = await waitForMail(bob, 'hello stranger');
    expect(received).toContain('Hi Bob, carol gave me your fingerprint.');
    expect(headerOf(received, 'Authentication-Results')).toMatch(/^kith; kith=neutral /);
    expect(headerOf(received, 'Authentication-Results')).not.toContain('pass');
    const shown = headerOf(received, 'X-Kith-Sender')!;
    expect(shown.startsWith('UNVERIFIED: claims to be key ' + aliceFpr)).toBe(true);
    expect(shown).toContain(fingerprintAddress(aliceFpr));
    expect(bob.trust.entity(aliceFpr)).toBeUndefined();

    // bob answers alice's fingerprint address (as X-Kith-Sender suggests).
    const bobSmtp = smtpOf(bob);
    const reply = await bobSmtp.sendMail({
      from: 'Bob <bob@demo.kith>',
      to: fingerprintAddress(aliceFpr),
      subject: 'Re: hello stranger',
      text: 'Hi Alice, got it.',
      inReplyTo: '<first-contact-1@demo.kith>',
      references: ['<first-contact-1@demo.kith>'],
    });
    bobSmtp.close();
    expect(reply.accepted).toEqual([fingerprintAddress(aliceFpr)]);
    expect(bob.trust.entity(aliceFpr)).toMatchObject({ contact: true, trusted: false });

    // alice holds bob's key (discovered): the reply is shown verified as bob's.
    const answer = await waitForMail(alice, 'Re: hello stranger');
    expect(answer).toContain('Hi Alice, got it.');
    expect(headerOf(answer, 'Authentication-Results')).toBe(
      `kith; kith=pass header.from=bob@demo.kith policy.entity=${bobFpr}`,
    );
    expect(headerOf(answer, 'X-Kith-Sender')).toBe(`Bob <bob@demo.kith> verified key ${bobFpr}`);

    // Neither became the other's link neighbour: contacts only.
    expect(alice.trust.isTrustedEntity(bobFpr)).toBe(false);
    expect(bob.trust.isTrustedEntity(aliceFpr)).toBe(false);
  });
});
