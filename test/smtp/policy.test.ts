import { afterAll, beforeAll, describe, expect, jest, test } from '@jest/globals';
import { AgentDeliveryService } from '../../agent/outbound.ts';
import { asFingerprint } from '../../common/ids.ts';
import {
  ALICE,
  ALICE_FPR,
  BOB_FPR,
  CAROL_FPR,
  STRANGER_FPR,
  aliceMessage,
  capturingLogger,
  startHarness,
  type Harness,
} from './harness.ts';
import { RawSmtp } from './raw-client.ts';

describe('who may send what to whom', () => {
  let h: Harness;
  const clients: RawSmtp[] = [];
  beforeAll(async () => {
    h = await startHarness({ authDelayMs: 150 });
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await h.stop();
  });

  async function session(): Promise<RawSmtp> {
    const { client, greeting } = await RawSmtp.connect(h.port);
    expect(greeting.code).toBe(220);
    clients.push(client);
    return client;
  }

  async function loggedIn(): Promise<RawSmtp> {
    const c = await session();
    expect((await c.login(ALICE.user, ALICE.password)).code).toBe(235);
    return c;
  }

  test('the greeting comes at once (smtp-server would wait 100 ms), with no enhanced code on it', async () => {
    // smtp-server arms a 100 ms timer before each greeting. With timers frozen, that greeting
    // would never come; Kith's must still arrive, since nothing but the socket stands before it.
    // (A stopwatch here failed under load: 144 ms on a busy CI machine.)
    jest.useFakeTimers({ doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask'] });
    try {
      const { client, greeting } = await RawSmtp.connect(h.port);
      clients.push(client);
      expect(greeting.code).toBe(220);
      expect(greeting.enhanced).toBeUndefined();
    } finally {
      jest.useRealTimers();
    }
  });

  test('EHLO advertises the extensions, AUTH only after STARTTLS; AUTH before it is refused', async () => {
    const c = await session();
    const plain = await c.command('EHLO client.test');
    for (const ext of [
      'PIPELINING',
      '8BITMIME',
      'SMTPUTF8',
      'ENHANCEDSTATUSCODES',
      'DSN',
      'STARTTLS',
      'SIZE 1048576',
    ]) {
      expect(plain.lines.some((l) => l.slice(4) === ext)).toBe(true);
    }
    // a client that finds no AUTH in cleartext has no reason to send its password there
    expect(plain.lines.filter((l) => /^AUTH\b/.test(l.slice(4)))).toEqual([]);
    const early = await c.command(
      `AUTH PLAIN ${Buffer.from(`\0alice\0${ALICE.password}`).toString('base64')}`,
    );
    expect([early.code, early.enhanced]).toEqual([538, '5.7.0']);
    expect(early.text).toContain('STARTTLS');
    // and the rule "log in first" still holds in cleartext
    const mail = await c.command('MAIL FROM:<alice@example.org>');
    expect([mail.code, mail.enhanced]).toEqual([530, '5.7.0']);
    await c.startTls();
    const secure = await c.command('EHLO client.test');
    expect(secure.lines.some((l) => l.slice(4) === 'AUTH PLAIN LOGIN')).toBe(true);
    expect(secure.lines.some((l) => l.slice(4) === 'STARTTLS')).toBe(false);
  });

  test('with allowInsecureAuth, AUTH is advertised and taken in cleartext', async () => {
    const insecure = await startHarness({ allowInsecureAuth: true });
    try {
      const { client } = await RawSmtp.connect(insecure.port);
      clients.push(client);
      const ehlo = await client.command('EHLO client.test');
      expect(ehlo.lines.some((l) => l.slice(4) === 'AUTH PLAIN LOGIN')).toBe(true);
      const auth = await client.command(
        `AUTH PLAIN ${Buffer.from(`\0alice\0${ALICE.password}`).toString('base64')}`,
      );
      expect(auth.code).toBe(235);
      client.close();
    } finally {
      await insecure.stop();
    }
  });

  test('unauthenticated MAIL FROM gets 530 5.7.0', async () => {
    const c = await session();
    await c.command('EHLO client.test');
    await c.startTls();
    await c.command('EHLO client.test');
    const r = await c.command('MAIL FROM:<alice@example.org>');
    expect([r.code, r.enhanced]).toEqual([530, '5.7.0']);
  });

  test('MAIL FROM must be one of the account addresses: 553 5.7.1 naming the allowed ones', async () => {
    const c = await loggedIn();
    const r = await c.command('MAIL FROM:<mallory@example.org>');
    expect([r.code, r.enhanced]).toEqual([553, '5.7.1']);
    expect(r.text).toContain('alice@example.org');
    expect((await c.command('MAIL FROM:<Alice@Home.Example>')).code).toBe(250);
  });

  test('a spoofed From: header is refused at the end of DATA and nothing goes out', async () => {
    const before = (await h.delivery.outbox()).length;
    const c = await loggedIn();
    expect((await c.command('MAIL FROM:<alice@example.org>')).code).toBe(250);
    expect((await c.command('RCPT TO:<bob@example.org>')).code).toBe(250);
    const r = await c.data(aliceMessage({ from: 'ceo@bank.example', subject: 'spoof' }));
    expect([r.code, r.enhanced]).toEqual([553, '5.7.1']);
    expect(r.text).toContain('ceo@bank.example');
    // Sender: is checked the same way
    await c.command('MAIL FROM:<alice@example.org>');
    await c.command('RCPT TO:<bob@example.org>');
    const sender = await c.data(aliceMessage({ extraHeaders: ['Sender: ceo@bank.example'] }));
    expect([sender.code, sender.enhanced]).toEqual([553, '5.7.1']);
    // so are Resent-From: and Resent-Sender: (clients show them as who forwarded the message)
    for (const field of ['Resent-From: ceo@bank.example', 'Resent-Sender: Bank <ceo@bank.example>']) {
      await c.command('MAIL FROM:<alice@example.org>');
      await c.command('RCPT TO:<bob@example.org>');
      const resent = await c.data(aliceMessage({ extraHeaders: [field] }));
      expect([resent.code, resent.enhanced]).toEqual([553, '5.7.1']);
      expect(resent.text).toContain(
        `${field.split(':')[0]}: ceo@bank.example is not an address of this account`,
      );
    }
    expect((await h.delivery.outbox()).length).toBe(before);
  });

  test('each recipient is refused on its own, with a code and a sentence saying what to do; the rest go', async () => {
    const c = await loggedIn();
    await c.command('MAIL FROM:<alice@example.org>');
    const unknown = await c.command('RCPT TO:<stranger@example.org>');
    expect([unknown.code, unknown.enhanced]).toEqual([550, '5.1.1']);
    expect(unknown.text).toContain('accept an invitation from this person first');
    const ambiguous = await c.command('RCPT TO:<sam@example.com>');
    expect([ambiguous.code, ambiguous.enhanced]).toEqual([550, '5.1.4']);
    expect(ambiguous.text).toContain('fingerprint address');
    const unreachable = await c.command('RCPT TO:<far@example.com>');
    expect([unreachable.code, unreachable.enhanced]).toEqual([550, '5.4.4']);
    h.delivery.failing.add('flaky@example.org');
    const flaky = await c.command('RCPT TO:<flaky@example.org>');
    expect([flaky.code, flaky.enhanced]).toEqual([451, '4.4.3']);
    const bob = await c.command('RCPT TO:<bob@example.org>');
    expect([bob.code, bob.enhanced]).toEqual([250, '2.1.5']);
    // first contact: the fingerprint address needs no contact entry
    const stranger = await c.command(`RCPT TO:<${STRANGER_FPR.toLowerCase()}@kith>`);
    expect(stranger.code).toBe(250);
    const r = await c.data(aliceMessage({ subject: 'partial' }));
    expect(r.code).toBe(250);
    const copies = (await h.delivery.outbox()).filter((m) => m.raw.includes('Subject: partial'));
    expect(copies.map((m) => m.to).sort()).toEqual([BOB_FPR, STRANGER_FPR].sort());
  });

  test("a resent message from one's own address goes", async () => {
    const c = await loggedIn();
    await c.command('MAIL FROM:<alice@example.org>');
    await c.command('RCPT TO:<bob@example.org>');
    const r = await c.data(
      aliceMessage({ from: 'alice@home.example', extraHeaders: ['Resent-From: alice@example.org'] }),
    );
    expect(r.code).toBe(250);
  });

  // The refusal texts the agent really gives (agent/outbound.ts), not the stand-in's.
  test("unknown and ambiguous recipients: the agent's own sentence, with the enhanced code", async () => {
    const { log } = capturingLogger();
    const entity = (fingerprint: string, email: string) => ({
      fingerprint: asFingerprint(fingerprint),
      email,
      contact: true,
      publicKey: 'key',
    });
    const agent = new AgentDeliveryService({
      self: ALICE_FPR,
      trust: {
        entities: () => [
          entity(BOB_FPR, 'bob@example.org'),
          entity('1'.repeat(40), 'sam@example.com'),
          entity('2'.repeat(40), 'sam@example.com'),
        ],
      } as never,
      engine: {} as never,
      outbox: {} as never,
      log,
    });
    const real = await startHarness({ delivery: agent });
    try {
      const { client } = await RawSmtp.connect(real.port);
      clients.push(client);
      expect((await client.login(ALICE.user, ALICE.password)).code).toBe(235);
      await client.command('MAIL FROM:<alice@example.org>');
      const unknown = await client.command('RCPT TO:<stranger@example.org>');
      expect([unknown.code, unknown.enhanced]).toEqual([550, '5.1.1']);
      expect(unknown.text).toBe(
        '5.1.1 stranger@example.org: no contact has this address: accept an invitation from this person first, or write to <fingerprint>@kith',
      );
      const ambiguous = await client.command('RCPT TO:<Sam@Example.com>');
      expect([ambiguous.code, ambiguous.enhanced]).toEqual([550, '5.1.4']);
      expect(ambiguous.text).toBe(
        '5.1.4 Sam@Example.com: several contacts claim this address: write to <fingerprint>@kith of the one you mean',
      );
      const self = await client.command(`RCPT TO:<${ALICE_FPR.toLowerCase()}@kith>`);
      expect([self.code, self.enhanced]).toEqual([550, '5.1.1']);
      expect(self.text).toContain('that is your own fingerprint');
      expect((await client.command('RCPT TO:<bob@example.org>')).code).toBe(250);
      client.close();
    } finally {
      await real.stop();
    }
  });

  test('two addresses of the same entity get one copy', async () => {
    const c = await loggedIn();
    await c.command('MAIL FROM:<alice@example.org>');
    await c.command('RCPT TO:<bob@example.org>');
    await c.command('RCPT TO:<bob-alias@example.org>');
    expect((await c.data(aliceMessage({ subject: 'twice' }))).code).toBe(250);
    const copies = (await h.delivery.outbox()).filter((m) => m.raw.includes('Subject: twice'));
    expect(copies).toHaveLength(1);
  });

  test('too many recipients: 452 for each one past the limit', async () => {
    const c = await loggedIn();
    await c.command('MAIL FROM:<alice@example.org>');
    const addresses = [
      'bob@example.org',
      'carol@example.net',
      ...[1, 2, 3, 4].map((i) => `${String(i).repeat(40)}@kith`),
    ];
    const codes = [];
    for (const a of addresses) codes.push((await c.command(`RCPT TO:<${a}>`)).code);
    expect(codes).toEqual([250, 250, 250, 250, 250, 452]);
  });

  test('when the agent cannot take the message: 451 4.3.0 (try later), recorded as never accepted', async () => {
    const c = await loggedIn();
    await c.command('MAIL FROM:<alice@example.org>');
    await c.command('RCPT TO:<bob@example.org>');
    h.delivery.failSubmit = true;
    try {
      const r = await c.data(aliceMessage({ subject: 'agent down' }));
      expect([r.code, r.enhanced]).toEqual([451, '4.3.0']);
      expect(r.text).toContain('try again later');
    } finally {
      h.delivery.failSubmit = false;
    }
    expect(h.submissions.list(1)[0]).toMatchObject({ subject: 'agent down', state: 'abandoned' });
  });

  test('451 after the agent took some copies: the client retry sends only the missing ones', async () => {
    const c = await loggedIn();
    const message = aliceMessage({ subject: 'half taken', to: 'bob@example.org, carol@example.net' });
    const copies = async () =>
      (await h.delivery.outbox()).filter((m) => m.raw.includes('Subject: half taken'));
    await c.command('MAIL FROM:<alice@example.org>');
    await c.command('RCPT TO:<bob@example.org>');
    await c.command('RCPT TO:<carol@example.net>');
    h.delivery.failSubmitTo.add(CAROL_FPR);
    try {
      const r = await c.data(message);
      expect([r.code, r.enhanced]).toEqual([451, '4.3.0']);
    } finally {
      h.delivery.failSubmitTo.clear();
    }
    // Bob's copy is on its way; the client only knows the message was not accepted
    expect((await copies()).map((m) => m.to)).toEqual([BOB_FPR]);
    const bobCopy = (await copies())[0].id;

    // the client retries the same message, as RFC 5321 tells it to after a 4xx
    await c.command('MAIL FROM:<alice@example.org>');
    await c.command('RCPT TO:<bob@example.org>');
    await c.command('RCPT TO:<carol@example.net>');
    expect((await c.data(message)).code).toBe(250);
    const after = await copies();
    expect(after.map((m) => m.to).sort()).toEqual([BOB_FPR, CAROL_FPR].sort());
    // the accepted submission holds both copies, Bob's being the one already sent (status emails find it)
    const [accepted] = h.submissions.list(1);
    expect(accepted.state).toBe('accepted');
    expect(accepted.recipients.map((r) => r.messageId).sort()).toEqual(after.map((m) => m.id).sort());
    expect(h.submissions.findByMessage(bobCopy)?.submission.id).toBe(accepted.id);

    // a third, deliberate send of the same bytes is a new message: nothing abandoned to adopt
    await c.command('MAIL FROM:<alice@example.org>');
    await c.command('RCPT TO:<bob@example.org>');
    expect((await c.data(message)).code).toBe(250);
    expect((await copies()).filter((m) => m.to === BOB_FPR)).toHaveLength(2);
  });

  test('AUTH guessing is slowed down and logged without the password', async () => {
    const c = await session();
    await c.command('EHLO client.test');
    await c.startTls();
    await c.command('EHLO client.test');
    const times: number[] = [];
    for (let i = 0; i < 3; i++) {
      const started = Date.now();
      const r = await c.command(`AUTH PLAIN ${Buffer.from(`\0alice\0guess-${i}`).toString('base64')}`);
      times.push(Date.now() - started);
      expect([r.code, r.enhanced]).toEqual([535, '5.7.8']);
    }
    // 150 ms more per recent failure from this address, as logged; the third guess waited at least
    // its 450 ms (a lower bound only: a loaded machine makes answers later, never earlier)
    const warnings = h.logs.filter((l) => l.msg === 'authentication failed');
    expect(warnings.slice(-3).map((w) => w.delayMs)).toEqual([150, 300, 450]);
    expect(times[2]).toBeGreaterThanOrEqual(440);
    expect(JSON.stringify(h.logs)).not.toContain('guess-');
    expect(
      (await c.command(`AUTH PLAIN ${Buffer.from(`\0alice\0${ALICE.password}`).toString('base64')}`)).code,
    ).toBe(235);
  });
});
