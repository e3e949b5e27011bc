import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import * as openpgp from 'openpgp';
import {
  createIdentity,
  describeStoredIdentity,
  forgetEntityKey,
  holdsEntityKey,
  loadIdentity,
  requireEntityKey,
} from '../../agent/identity/identity.ts';
import { verifyAgentCertificate } from '../../agent/identity/certificate.ts';
import { ensureSelfSignedCertificate, loadTls } from '../../gateway/tls.ts';
import { openDatabase, type Db } from '../../store/db.ts';
import { codeOf } from '../helpers/errors.ts';
import { tempDir } from '../helpers/tmp.ts';

const PASS = 'correct horse battery staple';

describe('identity', () => {
  let dir: ReturnType<typeof tempDir>;
  let db: Db;
  beforeEach(() => {
    dir = tempDir();
    db = openDatabase(join(dir.path, 'kith.db'));
  });
  afterEach(() => {
    db.close();
    dir.remove();
  });

  it('creates an entity with a certified agent and reloads it after reopening the store', async () => {
    const created = await createIdentity(db, { name: 'Alice', email: 'alice@example.org', passphrase: PASS });
    expect(created.fingerprint).toMatch(/^[0-9A-F]{40}$/);
    expect(created.entityKey!.keyPacket.version).toBe(4);
    expect(created.entityKey!.getAlgorithmInfo().algorithm).toBe('eddsaLegacy');
    db.close();
    db = openDatabase(join(dir.path, 'kith.db'));
    const loaded = await loadIdentity(db, PASS);
    expect(loaded.fingerprint).toBe(created.fingerprint);
    expect(loaded.agentId).toBe(created.agentId);
    expect(loaded.email).toBe('alice@example.org');
    expect(loaded.onion.publicKey.equals(created.onion.publicKey)).toBe(true);
    expect(loaded.mailPassword).toBe(created.mailPassword);
    const publicKey = await openpgp.readKey({ armoredKey: loaded.entityPublicArmored });
    const cert = await verifyAgentCertificate(
      publicKey,
      loaded.certificate.canonical,
      loaded.certificate.signature,
    );
    expect(cert.body.agent).toBe(loaded.agentId);
    expect(cert.body.onionKey).toBe(loaded.onion.publicKey.toString('base64url'));
  });

  it('without the entity private key the identity loads (agent keys, certificate, public key), and still refuses a wrong passphrase', async () => {
    const created = await createIdentity(db, { name: 'Alice', email: 'alice@example.org', passphrase: PASS });
    expect(forgetEntityKey(db)).toBe(true);
    expect(holdsEntityKey(db)).toBe(false);
    expect(forgetEntityKey(db)).toBe(false);
    expect(await codeOf(loadIdentity(db, 'not the passphrase'))).toBe('ERR_WRONG_PASSPHRASE');
    const loaded = await loadIdentity(db, PASS);
    expect(loaded.entityKey).toBeUndefined();
    expect(loaded.entitySealedArmored).toBeUndefined();
    expect(loaded.agentId).toBe(created.agentId);
    expect(loaded.entityPublic.getFingerprint().toUpperCase()).toBe(created.fingerprint);
    expect(loaded.mailPassword).toBe(created.mailPassword);
    expect(() => requireEntityKey(loaded, 'revoke an agent')).toThrow(
      expect.objectContaining({ code: 'ERR_NO_ENTITY_KEY' }),
    );
  });

  it('refuses a wrong passphrase and leaves the keys usable', async () => {
    await createIdentity(db, { name: 'Alice', email: 'alice@example.org', passphrase: PASS });
    expect(await codeOf(loadIdentity(db, 'not the passphrase'))).toBe('ERR_WRONG_PASSPHRASE');
    expect((await loadIdentity(db, PASS)).email).toBe('alice@example.org');
  });

  it('says the keys are damaged when a stored key is corrupt', async () => {
    await createIdentity(db, { name: 'Alice', email: 'alice@example.org', passphrase: PASS });
    db.prepare("UPDATE entity SET private_key = '-----BEGIN PGP PRIVATE KEY BLOCK-----\ngarbage'").run();
    expect(await codeOf(loadIdentity(db, PASS))).toBe('ERR_KEYS_CORRUPT');
  });

  it.each([
    ['the agent row', 'DELETE FROM agent'],
    ['the salt', "DELETE FROM identity_meta WHERE key = 'salt'"],
    ['the mail password', 'DELETE FROM secret'],
  ])('a missing row (%s) is ERR_KEYS_CORRUPT, not a TypeError', async (_what, sql) => {
    await createIdentity(db, { name: 'Alice', email: 'alice@example.org', passphrase: PASS });
    db.prepare(sql).run();
    expect(await codeOf(loadIdentity(db, PASS))).toBe('ERR_KEYS_CORRUPT');
  });

  it('a damaged sealed key with the right passphrase is ERR_KEYS_CORRUPT, not a wrong passphrase', async () => {
    await createIdentity(db, { name: 'Alice', email: 'alice@example.org', passphrase: PASS });
    const flip = (table: string, column: string): void => {
      const { value } = db.prepare(`SELECT ${column} AS value FROM ${table}`).get() as { value: Buffer };
      const damaged = Buffer.from(value);
      damaged[damaged.length - 1] ^= 0xff;
      db.prepare(`UPDATE ${table} SET ${column} = ?`).run(damaged);
    };
    flip('agent', 'private_key');
    expect(await codeOf(loadIdentity(db, PASS))).toBe('ERR_KEYS_CORRUPT');
    expect(await codeOf(loadIdentity(db, 'not the passphrase'))).toBe('ERR_WRONG_PASSPHRASE');
  });

  it('a damaged sealed mail password is ERR_KEYS_CORRUPT', async () => {
    await createIdentity(db, { name: 'Alice', email: 'alice@example.org', passphrase: PASS });
    db.prepare("UPDATE secret SET value = zeroblob(40) WHERE name = 'mail-password'").run();
    expect(await codeOf(loadIdentity(db, PASS))).toBe('ERR_KEYS_CORRUPT');
  });

  it('a damaged TLS file is ERR_TLS_FILES naming the file', async () => {
    const tls = join(dir.path, 'tls');
    mkdirSync(tls);
    await ensureSelfSignedCertificate(tls);
    const good = readFileSync(join(tls, 'key.pem'), 'utf8');
    writeFileSync(join(tls, 'key.pem'), 'not a key\n');
    await expect(ensureSelfSignedCertificate(tls)).rejects.toMatchObject({
      code: 'ERR_TLS_FILES',
      message: expect.stringContaining(join(tls, 'key.pem')),
    });
    writeFileSync(join(tls, 'key.pem'), good);
    writeFileSync(join(tls, 'cert.pem'), '-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n');
    await expect(ensureSelfSignedCertificate(tls)).rejects.toMatchObject({
      code: 'ERR_TLS_FILES',
      message: expect.stringContaining(join(tls, 'cert.pem')),
    });
    const other = join(dir.path, 'other');
    mkdirSync(other);
    await ensureSelfSignedCertificate(other);
    expect(() => loadTls(join(other, 'cert.pem'), join(tls, 'key.pem'))).toThrow(
      /is not the key of the certificate/,
    );
  });

  it('refuses a second identity and a bad address', async () => {
    expect(await codeOf(createIdentity(db, { name: 'A', email: 'not-an-address', passphrase: PASS }))).toBe(
      'ERR_BAD_EMAIL',
    );
    await createIdentity(db, { name: 'Alice', email: 'alice@example.org', passphrase: PASS });
    expect(await codeOf(createIdentity(db, { name: 'B', email: 'b@example.org', passphrase: PASS }))).toBe(
      'ERR_IDENTITY_EXISTS',
    );
  });

  it('a certificate altered after signing does not verify', async () => {
    const id = await createIdentity(db, { name: 'Alice', email: 'alice@example.org', passphrase: PASS });
    const publicKey = await openpgp.readKey({ armoredKey: id.entityPublicArmored });
    const forged = id.certificate.canonical.replace(
      /"notAfter":"[^"]+"/,
      '"notAfter":"2999-01-01T00:00:00.000Z"',
    );
    expect(await codeOf(verifyAgentCertificate(publicKey, forged, id.certificate.signature))).toBe(
      'ERR_CERT_SIGNATURE',
    );
    expect(
      await codeOf(
        verifyAgentCertificate(
          publicKey,
          id.certificate.canonical,
          id.certificate.signature,
          new Date('2100-01-01'),
        ),
      ),
    ).toBe('ERR_CERT_EXPIRED');
  });

  it('GnuPG imports the public key and verifies the agent certificate', async () => {
    await createIdentity(db, { name: 'Alice', email: 'alice@example.org', passphrase: PASS });
    const stored = describeStoredIdentity(db);
    const home = join(dir.path, 'gnupg');
    execFileSync('mkdir', ['-m', '700', home]);
    const env = { ...process.env, GNUPGHOME: home };
    writeFileSync(join(dir.path, 'key.asc'), stored.publicKey);
    writeFileSync(join(dir.path, 'cert.json'), stored.certificate.canonical);
    writeFileSync(join(dir.path, 'cert.json.asc'), stored.certificate.signature);
    execFileSync('gpg', ['--batch', '--import', join(dir.path, 'key.asc')], { env, stdio: 'pipe' });
    const listed = execFileSync('gpg', ['--batch', '--with-colons', '--list-keys'], { env }).toString();
    expect(listed).toContain(stored.fingerprint);
    expect(listed).toContain('alice@example.org');
    const verify = execFileSync(
      'gpg',
      [
        '--batch',
        '--status-fd',
        '1',
        '--verify',
        join(dir.path, 'cert.json.asc'),
        join(dir.path, 'cert.json'),
      ],
      { env, stdio: ['ignore', 'pipe', 'pipe'] },
    ).toString();
    expect(verify).toMatch(new RegExp(`VALIDSIG ${stored.fingerprint}`));
    writeFileSync(
      join(dir.path, 'cert.json'),
      stored.certificate.canonical.replace('kith-agent-cert', 'kith-agent-crt'),
    );
    expect(() =>
      execFileSync(
        'gpg',
        ['--batch', '--verify', join(dir.path, 'cert.json.asc'), join(dir.path, 'cert.json')],
        {
          env,
          stdio: 'pipe',
        },
      ),
    ).toThrow();
  });
});
