import {
  generateKeyPairSync,
  createPrivateKey,
  createPublicKey,
  randomBytes,
  type KeyObject,
} from 'node:crypto';
import * as openpgp from 'openpgp';
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import type { PrivateKey } from '@libp2p/interface';
import { KithError } from '../../common/errors.ts';
import { asAgentId, asFingerprint, type AgentId, type Fingerprint } from '../../common/ids.ts';
import { migrate, type Db } from '../../store/db.ts';
import { certifyAgent, type AgentCertificate } from './certificate.ts';
import { SecretBox } from './secretbox.ts';

/** Everything a running node knows about itself, private keys unlocked. */
export interface Identity {
  fingerprint: Fingerprint;
  name: string;
  email: string;
  /**
   * The entity's OpenPGP private key, decrypted, on the one device that keeps it (docs/protocol.md
   * 7.8, "No shared private key"): it certifies, renews and revokes agents. Undefined on every
   * other device, which reads and signs mail with its own agent keys only.
   */
  entityKey?: openpgp.PrivateKey;
  /** The entity's public key (what contacts verify against; every device has it). */
  entityPublic: openpgp.PublicKey;
  entityPublicArmored: string;
  /** The entity key as stored, armored and locked under the passphrase; undefined where it is not kept. */
  entitySealedArmored?: string;
  agentId: AgentId;
  /** The libp2p Ed25519 key of this agent. */
  agentKey: PrivateKey;
  /** X25519 key pair that peels onion layers addressed to this agent. */
  onion: { publicKey: Buffer; privateKey: KeyObject };
  certificate: AgentCertificate;
  /** Password of the SMTP/IMAP account (user = email), generated at init. */
  mailPassword: string;
}

const MIGRATIONS = [
  `CREATE TABLE identity_meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
   CREATE TABLE entity (
     fingerprint TEXT PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL,
     public_key TEXT NOT NULL, private_key TEXT NOT NULL, created_at INTEGER NOT NULL);
   CREATE TABLE agent (
     peer_id TEXT PRIMARY KEY, entity TEXT NOT NULL REFERENCES entity(fingerprint),
     private_key BLOB NOT NULL, onion_private BLOB NOT NULL, onion_public BLOB NOT NULL,
     cert_canonical TEXT NOT NULL, cert_signature TEXT NOT NULL);
   CREATE TABLE secret (name TEXT PRIMARY KEY, value BLOB NOT NULL);`,
];

/** How long an agent certificate is valid; renewed when less than a month is left. */
export const CERT_VALIDITY_DAYS = 365;

export function migrateIdentity(db: Db): void {
  migrate(db, 'identity', MIGRATIONS);
}

/**
 * The seal for the node's other secrets at rest (a bridge's IMAP/SMTP passwords): derived from the
 * passphrase and the salt of this data directory, as the agent keys and the mail password are.
 */
export function secretBoxOf(db: Db, passphrase: string): SecretBox {
  const row = db.prepare("SELECT value FROM identity_meta WHERE key = 'salt'").get() as
    { value: Buffer } | undefined;
  if (!row) {
    throw new KithError(
      'ERR_KEYS_CORRUPT',
      'the identity is incomplete: no key derivation salt (identity_meta)',
      'restore the data directory from a backup',
    );
  }
  return SecretBox.derive(passphrase, row.value);
}

export function hasIdentity(db: Db): boolean {
  migrateIdentity(db);
  return db.prepare('SELECT 1 FROM entity LIMIT 1').get() !== undefined;
}

const EMAIL = /^[^\s@<>()",;:]+@[^\s@<>()",;:]+\.[^\s@<>()",;:]+$/;

/** Creates the entity key, the agent key and its certificate, all sealed under the passphrase. */
export async function createIdentity(
  db: Db,
  options: { name: string; email: string; passphrase: string; now?: Date },
): Promise<Identity> {
  if (!EMAIL.test(options.email)) {
    throw new KithError(
      'ERR_BAD_EMAIL',
      `not an e-mail address: ${options.email}`,
      'give one like alice@example.org',
    );
  }
  if (options.passphrase.length < 8) {
    throw new KithError(
      'ERR_WEAK_PASSPHRASE',
      'the passphrase is shorter than 8 characters',
      'choose a longer one',
    );
  }
  if (hasIdentity(db)) {
    throw new KithError(
      'ERR_IDENTITY_EXISTS',
      'this data directory already has an identity',
      'use another --data-dir',
    );
  }
  const now = options.now ?? new Date();
  const { privateKey: armoredPrivate, publicKey: armoredPublic } = await openpgp.generateKey({
    type: 'ecc',
    curve: 'curve25519Legacy', // v4 EdDSA + ECDH/Curve25519: the form GnuPG 2.2 reads
    userIDs: [{ name: options.name, email: options.email }],
    passphrase: options.passphrase,
    format: 'armored',
    date: now,
  });
  const entityKey = await openpgp.decryptKey({
    privateKey: await openpgp.readPrivateKey({ armoredKey: armoredPrivate }),
    passphrase: options.passphrase,
  });
  const agentKey = await generateKeyPair('Ed25519');
  const agentId = asAgentId(peerIdFromPrivateKey(agentKey).toString());
  const onion = generateKeyPairSync('x25519');
  const certificate = await certifyAgent(entityKey, {
    agent: agentId,
    onionKey: rawX25519Public(onion.publicKey).toString('base64url'),
    notBefore: now,
    notAfter: new Date(now.getTime() + CERT_VALIDITY_DAYS * 86_400_000),
  });
  return storeIdentity(db, {
    name: options.name,
    email: options.email,
    passphrase: options.passphrase,
    entityKey,
    entityPublic: entityKey.toPublic(),
    entityPublicArmored: armoredPublic,
    entitySealedArmored: armoredPrivate,
    agentKey,
    onionPrivate: onion.privateKey,
    certificate,
    createdAt: now,
  });
}

/**
 * Writes an identity into an empty data directory's database, agent and onion keys and a new
 * mail password sealed under the passphrase: for `kith init` (a new entity) and for `kith agent
 * import` (another agent of an existing entity, its keys made by the entity's node).
 */
export function storeIdentity(
  db: Db,
  parts: {
    name: string;
    email: string;
    passphrase: string;
    /** Kept on this device only when given (with its sealed form). */
    entityKey?: openpgp.PrivateKey;
    entityPublic: openpgp.PublicKey;
    entityPublicArmored: string;
    entitySealedArmored?: string;
    agentKey: PrivateKey;
    onionPrivate: KeyObject;
    certificate: AgentCertificate;
    createdAt: Date;
  },
): Identity {
  if (hasIdentity(db)) {
    throw new KithError(
      'ERR_IDENTITY_EXISTS',
      'this data directory already has an identity',
      'use another --data-dir',
    );
  }
  const fingerprint = asFingerprint(parts.entityPublic.getFingerprint());
  const sealedEntity = parts.entityKey === undefined ? undefined : parts.entitySealedArmored;
  const salt = SecretBox.newSalt();
  const box = SecretBox.derive(parts.passphrase, salt);
  const agentId = asAgentId(peerIdFromPrivateKey(parts.agentKey).toString());
  const onionPublic = rawX25519Public(createPublicKey(parts.onionPrivate));
  const mailPassword = randomBytes(18).toString('base64url');
  db.transaction(() => {
    db.prepare('INSERT INTO identity_meta (key, value) VALUES (?, ?)').run('salt', salt);
    db.prepare(
      'INSERT INTO entity (fingerprint, name, email, public_key, private_key, created_at) VALUES (?, ?, ?, ?, ?, ?)',
    ).run(
      fingerprint,
      parts.name,
      parts.email,
      parts.entityPublicArmored,
      // '' = the entity private key is not kept on this device (the column predates that case).
      sealedEntity ?? '',
      parts.createdAt.getTime(),
    );
    db.prepare(
      `INSERT INTO agent (peer_id, entity, private_key, onion_private, onion_public, cert_canonical, cert_signature)
       VALUES (?, ?, ?, ?, ?, ?, ?)`,
    ).run(
      agentId,
      fingerprint,
      box.seal(privateKeyToProtobuf(parts.agentKey), 'agent-key'),
      box.seal(parts.onionPrivate.export({ format: 'der', type: 'pkcs8' }), 'onion-key'),
      onionPublic,
      parts.certificate.canonical,
      parts.certificate.signature,
    );
    db.prepare('INSERT INTO secret (name, value) VALUES (?, ?)').run(
      'mail-password',
      box.seal(Buffer.from(mailPassword), 'mail-password'),
    );
  })();
  return {
    fingerprint,
    name: parts.name,
    email: parts.email,
    ...(sealedEntity === undefined ? {} : { entityKey: parts.entityKey, entitySealedArmored: sealedEntity }),
    entityPublic: parts.entityPublic,
    entityPublicArmored: parts.entityPublicArmored,
    agentId,
    agentKey: parts.agentKey,
    onion: { publicKey: onionPublic, privateKey: parts.onionPrivate },
    certificate: parts.certificate,
    mailPassword,
  };
}

/**
 * A fresh certificate for this same agent (same agent and onion keys), valid CERT_VALIDITY_DAYS
 * from `now`, signed by the entity key. The link manager renews with it when the old one nears
 * its end (agent/trust/decisions.ts, `certificateRenewalDue`).
 */
export async function renewAgentCertificate(identity: Identity, now: Date): Promise<AgentCertificate> {
  return renewCertificateOf(
    identity,
    identity.certificate.body.agent,
    identity.onion.publicKey.toString('base64url'),
    now,
  );
}

/**
 * A fresh certificate for an agent of our entity (its same agent and onion keys), signed by the
 * entity key: the key holder renews its siblings' certificates too, since they cannot.
 * ERR_NO_ENTITY_KEY on a device without the entity key.
 */
export async function renewCertificateOf(
  identity: Identity,
  agent: AgentId,
  onionKey: string,
  now: Date,
): Promise<AgentCertificate> {
  return certifyAgent(requireEntityKey(identity, 'renew an agent certificate'), {
    agent,
    onionKey,
    notBefore: now,
    notAfter: new Date(now.getTime() + CERT_VALIDITY_DAYS * 86_400_000),
  });
}

/**
 * The entity private key, for the few acts that need it (certify, renew, revoke an agent). Throws
 * ERR_NO_ENTITY_KEY on a device that does not keep it: the act is the key holder's to do.
 */
export function requireEntityKey(identity: Identity, what: string): openpgp.PrivateKey {
  if (identity.entityKey === undefined) {
    throw new KithError(
      'ERR_NO_ENTITY_KEY',
      `this device does not hold the entity's private key, which is needed to ${what}`,
      'run the command on the device that holds it (the one where `kith init` ran, or one imported with --keep-entity-key)',
    );
  }
  return identity.entityKey;
}

/**
 * Removes the entity private key from this data directory (`kith agent forget-entity-key`): the
 * device goes on reading, syncing and sending mail with its own agent keys (docs/protocol.md 7.8).
 * Returns false when it held none. The caller checks that another device still holds it.
 */
export function forgetEntityKey(db: Db): boolean {
  if (!hasIdentity(db)) return false;
  return db.prepare("UPDATE entity SET private_key = '' WHERE private_key <> ''").run().changes > 0;
}

/** True if this data directory keeps the entity private key (readable without the passphrase). */
export function holdsEntityKey(db: Db): boolean {
  if (!hasIdentity(db)) return false;
  return db.prepare("SELECT 1 FROM entity WHERE private_key <> '' LIMIT 1").get() !== undefined;
}

/** Unlocks the stored identity. Wrong passphrase: ERR_WRONG_PASSPHRASE; damaged rows: ERR_KEYS_CORRUPT. */
export async function loadIdentity(db: Db, passphrase: string): Promise<Identity> {
  if (!hasIdentity(db)) {
    throw new KithError(
      'ERR_NO_IDENTITY',
      'this data directory has no identity yet',
      'run `kith init` first',
    );
  }
  const entity = db.prepare('SELECT * FROM entity LIMIT 1').get() as {
    fingerprint: string;
    name: string;
    email: string;
    public_key: string;
    private_key: string;
  };
  const agent = db.prepare('SELECT * FROM agent WHERE entity = ? LIMIT 1').get(entity.fingerprint) as
    | {
        peer_id: string;
        private_key: Buffer;
        onion_private: Buffer;
        onion_public: Buffer;
        cert_canonical: string;
        cert_signature: string;
      }
    | undefined;
  const saltRow = db.prepare("SELECT value FROM identity_meta WHERE key = 'salt'").get() as
    { value: Buffer } | undefined;
  const secret = db.prepare("SELECT value FROM secret WHERE name = 'mail-password'").get() as
    { value: Buffer } | undefined;
  if (!agent) throw incomplete('agent key');
  if (!saltRow) throw incomplete('key derivation salt (identity_meta)');
  if (!secret) throw incomplete('mail password (secret)');
  const salt = saltRow.value;
  let entityPublic: openpgp.PublicKey;
  try {
    entityPublic = await openpgp.readKey({ armoredKey: entity.public_key });
  } catch (err) {
    throw new KithError(
      'ERR_KEYS_CORRUPT',
      `the stored entity public key is damaged: ${(err as Error).message}`,
      RESTORE,
    );
  }
  // '' = a device that does not keep the entity private key: the agent key's seal checks the passphrase.
  const entityKey =
    entity.private_key === '' ? undefined : await unlockEntityKey(entity.private_key, passphrase);
  const box = SecretBox.derive(passphrase, salt);
  let agentKey: PrivateKey;
  let onionPrivate: KeyObject;
  try {
    const sealedAgent = box.open(agent.private_key, 'agent-key');
    agentKey = privateKeyFromProtobuf(sealedAgent);
    onionPrivate = createPrivateKey({
      key: box.open(agent.onion_private, 'onion-key'),
      format: 'der',
      type: 'pkcs8',
    });
  } catch (err) {
    // Without the entity key, the agent key's seal is the first to meet the passphrase.
    if (entityKey === undefined && err instanceof KithError && err.code === 'ERR_WRONG_PASSPHRASE') throw err;
    throw new KithError('ERR_KEYS_CORRUPT', `the stored agent key is damaged: ${whyDamaged(err)}`, RESTORE);
  }
  if (peerIdFromPrivateKey(agentKey).toString() !== agent.peer_id) {
    throw new KithError('ERR_KEYS_CORRUPT', 'the stored agent key does not match its peer id', RESTORE);
  }
  let mailPassword: string;
  try {
    mailPassword = box.open(secret.value, 'mail-password').toString();
  } catch (err) {
    throw new KithError(
      'ERR_KEYS_CORRUPT',
      `the stored mail password is damaged: ${whyDamaged(err)}`,
      RESTORE,
    );
  }
  return {
    fingerprint: asFingerprint(entity.fingerprint),
    name: entity.name,
    email: entity.email,
    ...(entityKey === undefined ? {} : { entityKey, entitySealedArmored: entity.private_key }),
    entityPublic,
    entityPublicArmored: entity.public_key,
    agentId: asAgentId(agent.peer_id),
    agentKey,
    onion: { publicKey: Buffer.from(agent.onion_public), privateKey: onionPrivate },
    certificate: {
      body: JSON.parse(agent.cert_canonical),
      canonical: agent.cert_canonical,
      signature: agent.cert_signature,
    },
    mailPassword,
  };
}

/** The stored entity private key, unlocked. ERR_WRONG_PASSPHRASE or ERR_KEYS_CORRUPT. */
async function unlockEntityKey(armored: string, passphrase: string): Promise<openpgp.PrivateKey> {
  let locked: openpgp.PrivateKey;
  try {
    locked = await openpgp.readPrivateKey({ armoredKey: armored });
  } catch (err) {
    throw new KithError(
      'ERR_KEYS_CORRUPT',
      `the stored entity key is damaged: ${(err as Error).message}`,
      RESTORE,
    );
  }
  try {
    return await openpgp.decryptKey({ privateKey: locked, passphrase });
  } catch (err) {
    if (isWrongPassphrase(err)) {
      throw new KithError(
        'ERR_WRONG_PASSPHRASE',
        'wrong passphrase',
        'try again with the passphrase given at `kith init` (KITH_PASSPHRASE for services)',
      );
    }
    throw new KithError(
      'ERR_KEYS_CORRUPT',
      `the stored entity key is damaged: ${(err as Error).message}`,
      RESTORE,
    );
  }
}

/** Public facts about the stored identity, readable without the passphrase (`kith id`). */
export function describeStoredIdentity(db: Db): {
  fingerprint: Fingerprint;
  name: string;
  email: string;
  agentId: AgentId;
  notBefore: string;
  notAfter: string;
  publicKey: string;
  certificate: { canonical: string; signature: string };
} {
  if (!hasIdentity(db)) {
    throw new KithError(
      'ERR_NO_IDENTITY',
      'this data directory has no identity yet',
      'run `kith init` first',
    );
  }
  const row = db
    .prepare(
      `SELECT e.fingerprint, e.name, e.email, e.public_key, a.peer_id, a.cert_canonical, a.cert_signature
       FROM entity e JOIN agent a ON a.entity = e.fingerprint LIMIT 1`,
    )
    .get() as Record<string, string> | undefined;
  if (!row) throw incomplete('agent key');
  // A renewed certificate lives in the trust store (agent/links renews it there): show the newest.
  const renewed = newestOwnCertificate(db, row.peer_id);
  if (renewed !== undefined) {
    row.cert_canonical = renewed.canonical;
    row.cert_signature = renewed.signature;
  }
  const body = JSON.parse(row.cert_canonical) as { notBefore: string; notAfter: string };
  return {
    fingerprint: asFingerprint(row.fingerprint),
    name: row.name,
    email: row.email,
    agentId: asAgentId(row.peer_id),
    notBefore: body.notBefore,
    notAfter: body.notAfter,
    publicKey: row.public_key,
    certificate: { canonical: row.cert_canonical, signature: row.cert_signature },
  };
}

function newestOwnCertificate(db: Db, agent: string): { canonical: string; signature: string } | undefined {
  try {
    const row = db
      .prepare('SELECT cert_canonical, cert_signature FROM trust_agent WHERE peer_id = ?')
      .get(agent) as { cert_canonical: string; cert_signature: string } | undefined;
    return row === undefined ? undefined : { canonical: row.cert_canonical, signature: row.cert_signature };
  } catch {
    return undefined; // no trust tables yet: the node never started
  }
}

export function rawX25519Public(key: KeyObject): Buffer {
  // The raw 32 bytes are the last 32 of the SPKI DER encoding.
  const der = key.export({ format: 'der', type: 'spki' });
  return der.subarray(der.length - 32);
}

export function x25519PublicFromRaw(raw: Uint8Array): KeyObject {
  const prefix = Buffer.from('302a300506032b656e032100', 'hex');
  return createPublicKey({ key: Buffer.concat([prefix, raw]), format: 'der', type: 'spki' });
}

/**
 * True if openpgp.decryptKey failed on the passphrase rather than on damaged key bytes. Why the
 * message text: openpgp.js throws plain Errors, with no class or code to tell the two apart.
 */
export function isWrongPassphrase(err: unknown): boolean {
  return /incorrect key passphrase|Error decrypting private key/i.test((err as Error).message);
}

const RESTORE = 'restore the data directory from a backup';

/** The passphrase unlocked the entity key (or an earlier seal), so a seal that does not open is damage. */
function whyDamaged(err: unknown): string {
  return err instanceof KithError
    ? 'its seal does not open with the passphrase that unlocked the entity key'
    : (err as Error).message;
}

/** A row of the identity is missing (deleted or never written). */
function incomplete(what: string): KithError {
  return new KithError('ERR_KEYS_CORRUPT', `the stored identity is damaged: its ${what} is missing`, RESTORE);
}
