import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from '@jest/globals';
import {
  adoptBundleTrust,
  buildAgentBundle,
  bundleTrust,
  certifyNewAgent,
  importAgentBundle,
} from '../../agent/identity/bundle.ts';
import { createIdentity, holdsEntityKey, type Identity } from '../../agent/identity/identity.ts';
import { createTrustStore } from '../../agent/trust/index.ts';
import { isKithError } from '../../common/errors.ts';
import { silentLogger } from '../../common/logger.ts';
import { openDatabase, type Db } from '../../store/db.ts';

const dir = mkdtempSync(join(tmpdir(), 'kith-bundle-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const db = (): Db => openDatabase(join(dir, `b${n++}.db`));
const identity = (name: string): Promise<Identity> =>
  createIdentity(db(), { name, email: `${name}@example.org`, passphrase: 'correct horse' });

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    if (isKithError(err)) return err.code;
    throw err;
  }
  return 'no error';
}

describe('agent bundle (`kith agent add` / `kith agent import`)', () => {
  it('carries a new agent of the entity and its contacts; needs the passphrase; refuses tampering', async () => {
    const alice = await identity('alice');
    const bob = await identity('bob');
    const laptop = await certifyNewAgent(alice);
    const bundle = await buildAgentBundle(alice, laptop, {
      siblings: [alice.certificate],
      siblingAddresses: ['/ip4/192.0.2.1/tcp/4410'],
      revocations: [],
      contacts: [
        {
          publicKey: bob.entityPublicArmored,
          source: 'invitation',
          trusted: true,
          contact: true,
          certificates: [bob.certificate],
          addresses: ['/dns4/bob.example.org/tcp/4410'],
        },
      ],
    });
    const text = JSON.stringify(bundle);
    // The file holds no private key in the clear.
    expect(text).not.toContain(Buffer.from(laptop.agentKey.raw).toString('base64'));

    expect(await codeOf(importAgentBundle(db(), text, 'wrong passphrase'))).toBe('ERR_WRONG_PASSPHRASE');
    expect(await codeOf(importAgentBundle(db(), '{"type":"something else"}', 'correct horse'))).toBe(
      'ERR_BUNDLE_MALFORMED',
    );
    // A certificate that does not name the keys in the file (here: alice's first agent).
    const swapped = JSON.stringify({ ...bundle, certificate: alice.certificate });
    expect(await codeOf(importAgentBundle(db(), swapped, 'correct horse'))).toBe('ERR_BUNDLE_MALFORMED');

    const target = db();
    const imported = await importAgentBundle(target, text, 'correct horse');
    expect(imported.fingerprint).toBe(alice.fingerprint);
    expect(imported.agentId).toBe(laptop.certificate.body.agent);
    expect(imported.agentId).not.toBe(alice.agentId);
    expect(await codeOf(importAgentBundle(target, text, 'correct horse'))).toBe('ERR_IDENTITY_EXISTS');

    const trust = createTrustStore({ db: target, log: silentLogger() });
    expect(await adoptBundleTrust(trust, imported, bundleTrust(text), silentLogger())).toEqual({
      contacts: 1,
    });
    expect(trust.isTrustedAgent(alice.agentId)).toBe(true);
    expect(trust.isTrustedAgent(bob.agentId)).toBe(true);
    expect(trust.entity(bob.fingerprint)).toMatchObject({
      trusted: true,
      contact: true,
      source: 'invitation',
    });
    expect(trust.addressHints(bob.fingerprint)).toEqual(['/dns4/bob.example.org/tcp/4410']);
    expect(trust.addressHints(alice.fingerprint)).toEqual(['/ip4/192.0.2.1/tcp/4410']);
  });

  it('version 2 (`kith agent add` since r37): agent keys under the passphrase, no entity private key unless asked for', async () => {
    const alice = await identity('carol');
    const known = { siblings: [alice.certificate], siblingAddresses: [], revocations: [], contacts: [] };
    // The node checks the passphrase first: a bundle nobody could open is never written.
    expect(
      await codeOf(buildAgentBundle(alice, await certifyNewAgent(alice), known, { passphrase: 'not it' })),
    ).toBe('ERR_WRONG_PASSPHRASE');
    const laptop = await certifyNewAgent(alice);
    const bundle = await buildAgentBundle(alice, laptop, known, { passphrase: 'correct horse' });
    const text = JSON.stringify(bundle);
    expect(bundle.version).toBe(2);
    expect(text).not.toContain('PRIVATE KEY BLOCK');
    expect(await codeOf(importAgentBundle(db(), text, 'wrong passphrase'))).toBe('ERR_WRONG_PASSPHRASE');
    const target = db();
    const imported = await importAgentBundle(target, text, 'correct horse', { keepEntityKey: true });
    expect(imported.agentId).toBe(laptop.certificate.body.agent);
    expect(imported.fingerprint).toBe(alice.fingerprint);
    expect(imported.entityKey).toBeUndefined(); // nothing to keep: the file never had it
    expect(holdsEntityKey(target)).toBe(false);
    // Asked for at add time: the new device keeps it.
    const keeper = await buildAgentBundle(alice, await certifyNewAgent(alice), known, {
      passphrase: 'correct horse',
      withEntityKey: true,
    });
    const keeperDb = db();
    expect(
      (await importAgentBundle(keeperDb, JSON.stringify(keeper), 'correct horse')).entityKey,
    ).toBeDefined();
    expect(holdsEntityKey(keeperDb)).toBe(true);
    // A version 1 bundle (before r37) still imports, and leaves the entity key behind by default.
    const old = await buildAgentBundle(alice, await certifyNewAgent(alice), known);
    expect(old.version).toBe(1);
    const oldDb = db();
    expect((await importAgentBundle(oldDb, JSON.stringify(old), 'correct horse')).entityKey).toBeUndefined();
    expect(holdsEntityKey(oldDb)).toBe(false);
  });
});
