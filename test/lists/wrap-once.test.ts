import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { callNode } from '../../agent/control/client.ts';
import { DELIVERY_MIGRATIONS, SqliteDeliveryStore } from '../../agent/delivery/sqlite-store.ts';
import type { OutboxRecord } from '../../agent/delivery/store.ts';
import type { KithNode } from '../../agent/node.ts';
import { openpgpCodec } from '../../agent/payload/codec.ts';
import { decodeAnyManifest, encodeManifest } from '../../agent/payload/manifest.ts';
import { rawX25519, recipientKeyIds, wrapKeyId } from '../../agent/payload/wrap.ts';
import { asFingerprint, asMessageId } from '../../common/ids.ts';
import { migrate, openDatabase } from '../../store/db.ts';
import { tempDir } from '../helpers/tmp.ts';
import { messagesContaining, startAgents, until, type TestNetwork } from '../agents/network.ts';
import { imapInbox, smtpPost, starAround } from './network.ts';
import { HANG_MS } from '../helpers/hang.ts';

/** The text after the header block: what a subscriber reads, byte for byte. */
function bodyOf(raw: string): string {
  const at = raw.indexOf('\r\n\r\n');
  return at === -1 ? raw : raw.slice(at + 4);
}

/** The codec a member's own node opens manifests with: its entity key and its agent's X25519 key. */
function codecOf(m: KithNode) {
  return openpgpCodec({
    entityKey: m.identity.entityKey,
    publicKey: (f) => m.trust.publicKey(f),
    ownAgent: {
      publicKey: m.identity.onion.publicKey,
      privateKey: rawX25519(m.identity.onion.privateKey, 'private'),
    },
  });
}

interface CopyRow {
  id: string;
  recipient: string;
  head: Buffer;
  shared_body: string | null;
}

describe('wrap-once: a list post signed and encrypted once, a key wrap per subscriber (3 members on loopback)', () => {
  let net: TestNetwork;
  let host: KithNode;
  let members: KithNode[];
  let listNode: KithNode;
  let list: { fingerprint: string; email: string; publicKey: string };
  const control = (method: string, params: Record<string, unknown>) =>
    callNode<Record<string, unknown>>(join(host.paths.root, 'control.sock'), method, params);
  const copies = (): CopyRow[] =>
    listNode.db
      .prepare(
        'SELECT id, recipient, sealed_manifest AS head, shared_body FROM delivery_outbox WHERE shared_body IS NOT NULL ORDER BY created_at',
      )
      .all() as CopyRow[];
  // Big enough that one body outweighs every copy's head together: "stored once" is then a size.
  // Short lines, so the body travels as 7bit and reads back as written.
  const text = (tag: string) =>
    Array.from({ length: 120 }, (_, i) => `${tag} ${tag} ${tag} line ${i}`).join('\n') + '\n';

  beforeAll(async () => {
    net = await startAgents({ names: ['host', 'm1', 'm2', 'm3'], links: [] });
    host = net.agent('host').node;
    members = ['m1', 'm2', 'm3'].map((n) => net.agent(n).node);
    await starAround(host, members);
    list = (await control('list.create', {
      name: 'dev',
      email: 'dev@lists.kith',
      policy: 'members',
    })) as typeof list;
    for (const m of members) {
      await control('list.add', { name: 'dev', who: m.identity.email });
      await m.trust.addEntity(list.publicKey, { trusted: false, contact: true, source: 'fingerprint' });
    }
    listNode = host.lists!.get('dev').node;
  });
  afterAll(async () => net?.close(), 120_000);

  it('every member reads the same body over IMAP; the host keeps one body and a small head per copy', async () => {
    const posted = text('once');
    await smtpPost(members[0], list.email, 'encrypted once', posted);
    const got = await until(
      async () => {
        const found: string[] = [];
        for (const m of members) {
          const mine = (await imapInbox(m)).filter((r) => r.includes('once once once'));
          if (mine.length === 0) return undefined;
          found.push(...mine);
        }
        return found;
      },
      'the post in every member’s INBOX',
      HANG_MS,
      250,
    );
    expect(got).toHaveLength(members.length);
    const bodies = new Set(got.map(bodyOf));
    expect(bodies.size).toBe(1); // byte-identical for everyone
    expect([...bodies][0].replace(/\r\n/g, '\n').trim()).toBe(posted.trim());
    for (const raw of got) {
      expect(raw).toMatch(/^List-Id: "dev" <dev\.lists\.kith>\r?$/m);
      // Signed once by the list, still verified by each member's gateway.
      expect(raw).toMatch(
        new RegExp(`kith=pass header\\.from=dev@lists\\.kith policy\\.entity=${list.fingerprint}`),
      );
    }
    const rows = copies();
    expect(rows).toHaveLength(members.length);
    expect(new Set(rows.map((r) => r.recipient))).toEqual(
      new Set(members.map((m) => m.identity.fingerprint)),
    );
    const bodyFiles = new Set(rows.map((r) => r.shared_body));
    expect(bodyFiles.size).toBe(1); // every copy names the one body
    const bodyPath = [...bodyFiles][0]!;
    const stored = (await readdir(dirname(bodyPath))).filter((f) => f.endsWith('.body'));
    expect(stored).toHaveLength(1);
    const body = await readFile(bodyPath);
    expect(body.length).toBeGreaterThan(posted.length);
    // A head is the list's fingerprint and its subscriber's PKESK packets, no body.
    const heads = rows.reduce((n, r) => n + r.head.length, 0);
    expect(heads).toBeLessThan(body.length);
    for (const r of rows) expect(r.head.length).toBeLessThan(1024);
  }, 300_000);

  it('a copy names only its own subscriber’s keys, and another subscriber cannot open it', async () => {
    const [m1, m2, m3] = members;
    const row = copies().find((r) => r.recipient === m2.identity.fingerprint)!;
    const sealed = Buffer.concat([row.head, await readFile(row.shared_body!)]);
    const keyIds = async (m: KithNode) => [
      await wrapKeyId(new Uint8Array(m.identity.onion.publicKey)),
      (await m.identity.entityPublic.getEncryptionKey()).getKeyID().toHex(),
    ];
    // Wrapped to m2's agent key when the list holds its certificate, and to its entity key.
    const ids = await recipientKeyIds(sealed.subarray(20));
    expect(ids.length).toBeGreaterThan(0);
    for (const id of ids) expect(await keyIds(m2)).toContain(id);
    for (const other of [m1, m3]) for (const id of await keyIds(other)) expect(ids).not.toContain(id);
    // m2 opens it: a version-2 manifest, signed by the list, the post inline.
    const opened = await codecOf(m2).open(sealed);
    expect(opened.sender).toBe(list.fingerprint);
    expect(opened.verified).toBe(true);
    const { manifest, inline } = decodeAnyManifest(opened.plaintext);
    expect(manifest.v).toBe(2);
    expect(inline.toString()).toContain('once once once');
    // m1 and m3 hold the same body, but no key that opens m2's head.
    for (const other of [m1, m3]) {
      await expect(codecOf(other).open(sealed)).rejects.toMatchObject({ code: 'ERR_PAYLOAD_UNDECRYPTABLE' });
    }
  });

  it('a removed member gets nothing of a later post; the others get it, under a new body', async () => {
    const [m1, m2, m3] = members;
    await control('list.remove', { name: 'dev', who: m3.identity.email });
    await smtpPost(m1, list.email, 'after removal', text('later'));
    await until(
      async () => {
        for (const m of [m1, m2])
          if ((await messagesContaining(m, 'later later')).length === 0) return undefined;
        const summary = (await messagesContaining(m1, 'Delivery of your post to dev')).filter((r) =>
          r.toString().includes('after removal'),
        );
        return summary.length > 0 ? summary : undefined;
      },
      'the second post at m1 and m2, and its summary',
      HANG_MS,
      250,
    ).then(([summary]) => expect(summary.toString()).toMatch(/2 delivered, 0 delayed, 0 failed/));
    // Every copy is final, none for m3: nothing more can arrive.
    expect(await messagesContaining(m3, 'later later')).toHaveLength(0);
    const rows = copies();
    expect(rows).toHaveLength(members.length + 2);
    expect(rows.slice(-2).map((r) => r.recipient)).not.toContain(m3.identity.fingerprint);
    expect(new Set(rows.map((r) => r.shared_body)).size).toBe(2); // one body per post
  }, 300_000);
});

describe('manifest versions', () => {
  const from = asFingerprint('A'.repeat(40));
  it('version 1 reads as before; version 2 is inline only and must state its size', () => {
    const v1 = {
      v: 1 as const,
      id: asMessageId('0'.repeat(32)),
      from,
      to: asFingerprint('B'.repeat(40)),
      size: 2,
      chunkSize: 0,
      chunks: 0,
      contentKey: Buffer.alloc(32).toString('base64url'),
      sha256: 'c'.repeat(64),
    };
    expect(decodeAnyManifest(encodeManifest(v1, Buffer.from('hi'))).manifest).toEqual(v1);
    const v2 = { v: 2 as const, body: 'd'.repeat(32), from, size: 2, sha256: 'c'.repeat(64) };
    expect(decodeAnyManifest(encodeManifest(v2, Buffer.from('hi'))).manifest).toEqual(v2);
    expect(() => decodeAnyManifest(encodeManifest(v2, Buffer.from('hello')))).toThrow(/wrong size/);
    expect(() => decodeAnyManifest(encodeManifest({ ...v2, size: 70_000 }, Buffer.alloc(70_000)))).toThrow(
      /bad size/,
    );
    expect(() => decodeAnyManifest(encodeManifest({ ...v2, body: 'x' }, Buffer.from('hi')))).toThrow(
      /body id/,
    );
  });
});

describe('the outbox row of a wrap-once copy', () => {
  it('keeps the shared body reference across a restart, also in a database made before the column', () => {
    const dir = tempDir();
    try {
      const path = join(dir.path, 'kith.db');
      const old = openDatabase(path);
      migrate(old, 'delivery', DELIVERY_MIGRATIONS.slice(0, 3)); // as an r31 node left it
      old.close();
      const rec = (id: string, sharedBody?: string): OutboxRecord => ({
        id: asMessageId(id.repeat(32)),
        to: asFingerprint('B'.repeat(40)),
        source: { kind: 'file', path: '/posts/p.eml' },
        size: 10,
        sealedManifest: Buffer.from('head'),
        contentKey: Buffer.alloc(32),
        chunks: 0,
        chunkSize: 0,
        acked: 0,
        state: 'pending',
        createdAt: 1,
        deadline: 2,
        ...(sharedBody ? { sharedBody } : {}),
      });
      let db = openDatabase(path);
      new SqliteDeliveryStore(db).putOutbox(rec('1', '/posts/p.1234.body'));
      new SqliteDeliveryStore(db).putOutbox(rec('2'));
      db.close();
      db = openDatabase(path); // a restart
      const pending = new SqliteDeliveryStore(db).pendingOutbox();
      expect(pending.find((r) => r.id.startsWith('1'))).toEqual(rec('1', '/posts/p.1234.body'));
      expect(pending.find((r) => r.id.startsWith('2'))).toEqual(rec('2')); // sealed whole: no reference
      db.close();
    } finally {
      dir.remove();
    }
  });
});
