// A submission server in its own process, for the kill -9 test: `node --import tsx durable-child.ts DIR`.
// Prints one JSON line {port, outbox} once listening; outbox is what the agent stand-in finds on start.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { BlobStore } from '../../store/blobs.ts';
import { openDatabase } from '../../store/db.ts';
import { Authenticator } from '../../gateway/auth.ts';
import { ensureSelfSignedCertificate } from '../../gateway/tls.ts';
import { createSubmissionServer } from '../../gateway/smtp/index.ts';
import { createSubmissionStore } from '../../gateway/submissions.ts';
import { ContactsDelivery, readOutbox } from './contacts-delivery.ts';
import { ALICE, BOB_FPR } from './harness.ts';

const dir = process.argv[2];
await mkdir(join(dir, 'tls'), { recursive: true });
const db = openDatabase(join(dir, 'kith.db'));
const blobs = new BlobStore(join(dir, 'blobs'));
await blobs.init();
const log = pino({ level: 'silent' });
const delivery = new ContactsDelivery(db, new Map([['bob@example.org', BOB_FPR]]));
const submissions = createSubmissionStore(db);
const server = createSubmissionServer({
  auth: new Authenticator([ALICE], log),
  tls: await ensureSelfSignedCertificate(join(dir, 'tls')),
  host: '127.0.0.1',
  port: 0,
  secure: false,
  allowInsecureAuth: false,
  maxMessageBytes: 64 * 1024 * 1024,
  maxRecipients: 10,
  delivery,
  submissions,
  blobs,
  log,
});
const { port } = await server.start();
const outbox = (await readOutbox(db)).map((m) => ({
  id: m.id,
  to: m.to,
  size: m.size,
  raw: m.raw.toString('base64'),
}));
process.stdout.write(`${JSON.stringify({ port, outbox, submissions: submissions.list() })}\n`);
process.on('SIGTERM', () => {
  void server.stop().then(() => {
    db.close();
    process.exit(0);
  });
});
