import { afterEach, describe, expect, test } from '@jest/globals';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../config/load.ts';
import { Gateway } from '../../gateway/index.ts';
import { BlobStore } from '../../store/blobs.ts';
import { openDatabase } from '../../store/db.ts';
import { ContactsDelivery } from './contacts-delivery.ts';
import { ALICE, BOB_FPR, aliceMessage, capturingLogger } from './harness.ts';
import { RawSmtp } from './raw-client.ts';

// The gateway as gateway/index.ts wires it: SMTP and the mailbox must not share blob files,
// or expunging a mailbox copy of the same bytes deletes the file the agent still sends from.
describe('a submission keeps its file', () => {
  const cleanup: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const f of cleanup.splice(0).reverse()) await f();
  });

  test('an identical message stored in INBOX and expunged does not take the submitted file along', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kith-blobs-'));
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    const db = openDatabase(join(dir, 'kith.db'));
    cleanup.push(() => void db.close());
    const blobs = new BlobStore(join(dir, 'blobs'));
    await blobs.init();
    await mkdir(join(dir, 'tls'));
    const config = loadConfig({
      env: {},
      overrides: { dataDir: dir, smtp: { port: 0 }, imap: { port: 0 }, http: { port: 0 } },
    });
    const delivery = new ContactsDelivery(db, new Map([['bob@example.org', BOB_FPR]]));
    const gateway = new Gateway({
      config,
      db,
      blobs,
      submissionBlobs: new BlobStore(join(dir, 'blobs', 'submissions')),
      account: ALICE,
      delivery,
      tlsDir: join(dir, 'tls'),
      log: capturingLogger().log,
    });
    const settings = await gateway.start();
    let stopped = false;
    cleanup.push(async () => {
      if (!stopped) await gateway.stop();
    });

    // over 256 KiB, so the mailbox too keeps the body as a blob file (the same hash)
    const message = aliceMessage({ subject: 'kept', body: `${'k'.repeat(998)}\r\n`.repeat(400) });
    const { client } = await RawSmtp.connect(settings.smtp.port);
    cleanup.push(() => client.close());
    expect((await client.login(ALICE.user, ALICE.password)).code).toBe(235);
    expect((await client.command('MAIL FROM:<alice@example.org>')).code).toBe(250);
    expect((await client.command('RCPT TO:<bob@example.org>')).code).toBe(250);
    expect((await client.data(message)).code).toBe(250);

    // e.g. the client's own copy in Sent, or the message sent to oneself, then deleted
    const inbox = gateway.store.mailbox('INBOX');
    const { uid } = await gateway.store.deliver({ mailbox: 'INBOX', raw: Buffer.from(message) });
    gateway.store.setFlags(inbox.id, [uid], 'add', ['\\Deleted']);
    expect(gateway.store.expunge(inbox.id, [uid])).toEqual([uid]);
    // stop() waits for the mailbox's blob removals in flight
    await gateway.stop();
    stopped = true;

    const [copy] = await delivery.outbox();
    expect(copy.raw.equals(Buffer.from(message))).toBe(true);
    const [row] = db.prepare('SELECT raw_path FROM test_outbox').all() as Array<{ raw_path: string }>;
    expect(row.raw_path.startsWith(join(dir, 'blobs', 'submissions'))).toBe(true);
    expect((await readFile(row.raw_path)).length).toBe(Buffer.byteLength(message));
  });
});
