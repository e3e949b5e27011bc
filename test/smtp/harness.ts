import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { asFingerprint, type Fingerprint } from '../../common/ids.ts';
import type { Logger } from '../../common/logger.ts';
import { BlobStore } from '../../store/blobs.ts';
import { openDatabase, type Db } from '../../store/db.ts';
import { Authenticator, type MailAccount } from '../../gateway/auth.ts';
import { ensureSelfSignedCertificate, type TlsMaterial } from '../../gateway/tls.ts';
import {
  createSubmissionServer,
  type SubmissionServer,
  type SubmissionServerOptions,
} from '../../gateway/smtp/index.ts';
import { createSubmissionStore, type SubmissionStore } from '../../gateway/submissions.ts';
import { ContactsDelivery } from './contacts-delivery.ts';

export const ALICE_FPR = asFingerprint('A'.repeat(40));
export const BOB_FPR = asFingerprint('B0B0'.repeat(10));
export const CAROL_FPR = asFingerprint('C'.repeat(40));
export const STRANGER_FPR = asFingerprint('5'.repeat(40));

export const ALICE: MailAccount = {
  user: 'alice',
  password: 'correct horse battery staple',
  fingerprint: ALICE_FPR,
  addresses: ['alice@example.org', 'alice@home.example'],
};

export interface Harness {
  dir: string;
  db: Db;
  blobs: BlobStore;
  tls: TlsMaterial;
  certFile: string;
  delivery: ContactsDelivery;
  submissions: SubmissionStore;
  server: SubmissionServer;
  port: number;
  logs: Array<Record<string, unknown>>;
  stop(): Promise<void>;
}

/** A log that keeps its records, so tests can check what was (and was not) logged. */
export function capturingLogger(): { log: Logger; logs: Array<Record<string, unknown>> } {
  const logs: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n'))
        if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  const log = pino(
    { level: 'debug', redact: { paths: ['password', '*.password', 'pass', '*.pass'], censor: '[redacted]' } },
    sink,
  );
  return { log, logs };
}

let tlsOnce: Promise<TlsMaterial> | undefined;

/** One certificate per test file is enough; generating the RSA key is the slow part. */
function testTls(): Promise<TlsMaterial> {
  tlsOnce ??= (async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kith-smtp-tls-'));
    try {
      return await ensureSelfSignedCertificate(dir);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  })();
  return tlsOnce;
}

/** Everything the submission server needs, real: SQLite file, blob dir, TLS, authenticator. */
export async function startHarness(
  overrides: Partial<SubmissionServerOptions> & { authDelayMs?: number } = {},
): Promise<Harness> {
  const dir = await mkdtemp(join(tmpdir(), 'kith-smtp-'));
  const db = openDatabase(join(dir, 'kith.db'));
  const blobs = new BlobStore(join(dir, 'blobs'));
  await blobs.init();
  const tls = await testTls();
  const certFile = join(dir, 'cert.pem');
  await writeFile(certFile, tls.cert);
  const contacts = new Map<string, Fingerprint | Fingerprint[]>([
    ['bob@example.org', BOB_FPR],
    ['carol@example.net', CAROL_FPR],
    ['bob-alias@example.org', BOB_FPR],
    ['sam@example.com', [asFingerprint('1'.repeat(40)), asFingerprint('2'.repeat(40))]],
  ]);
  const delivery = new ContactsDelivery(db, contacts, new Set(['far@example.com']));
  const submissions = createSubmissionStore(db);
  const { log, logs } = capturingLogger();
  const auth = new Authenticator([ALICE], log, {
    delayPerFailureMs: overrides.authDelayMs ?? 50,
    maxDelayMs: 2000,
  });
  const server = createSubmissionServer({
    auth,
    tls,
    host: '127.0.0.1',
    port: 0,
    secure: false,
    allowInsecureAuth: false,
    maxMessageBytes: 1024 * 1024,
    maxRecipients: 5,
    delivery,
    submissions,
    blobs,
    log,
    ...overrides,
  });
  const { port } = await server.start();
  return {
    dir,
    db,
    blobs,
    tls,
    certFile,
    delivery,
    submissions,
    server,
    port,
    logs,
    async stop() {
      await server.stop();
      db.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A plain message from Alice, CRLF line endings. */
export function aliceMessage(
  options: { to?: string; subject?: string; body?: string; from?: string; extraHeaders?: string[] } = {},
): string {
  const lines = [
    `From: Alice <${options.from ?? 'alice@example.org'}>`,
    `To: ${options.to ?? 'bob@example.org'}`,
    `Subject: ${options.subject ?? 'Hello Bob'}`,
    'Message-ID: <hello-1@example.org>',
    'Date: Tue, 01 Jul 2025 10:00:00 +0000',
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    ...(options.extraHeaders ?? []),
    '',
    options.body ?? 'Hi Bob,\r\n\r\nsee you tomorrow.\r\n',
  ];
  return lines.join('\r\n');
}
