import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import * as openpgp from 'openpgp';
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import type { PrivateKey } from '@libp2p/interface';
import { KithError } from '../../common/errors.ts';
import { asAgentId, asFingerprint } from '../../common/ids.ts';
import type { Logger } from '../../common/logger.ts';
import type { Db } from '../../store/db.ts';
import type { TrustSource, TrustStore } from '../trust/store.ts';
import { certifyAgent, verifyAgentCertificate, type AgentCertificate } from './certificate.ts';
import {
  CERT_VALIDITY_DAYS,
  isWrongPassphrase,
  rawX25519Public,
  requireEntityKey,
  storeIdentity,
  type Identity,
} from './identity.ts';

/** A signed statement as stored and as it travels. */
export interface Signed {
  canonical: string;
  signature: string;
}

/** A contact handed to a new agent, so that it starts with the same friends as its entity's node. */
export interface BundleContact {
  publicKey: string;
  source: TrustSource;
  trusted: boolean;
  contact: boolean;
  certificates: Signed[];
  /** Last known addresses of its agents (they become address hints on the new agent). */
  addresses: string[];
}

/**
 * What `kith agent add` writes and `kith agent import` reads (docs/operations.md, "Several agents
 * for one entity"; the format is docs/protocol.md 2). Version 2 (since r37): the new agent's
 * private keys are encrypted under the passphrase (an OpenPGP password-encrypted message) and the
 * entity private key is in the file only when asked for (`--with-entity-key`), so the new device
 * never holds it otherwise. Version 1 (before r37, and `buildAgentBundle` without a passphrase):
 * the entity key locked under the passphrase and the agent's keys encrypted to it. Either way the
 * file is of no use without the passphrase; it is still best treated as a secret and deleted after
 * import.
 */
export interface AgentBundle {
  type: 'kith-agent-bundle';
  version: 1 | 2;
  entity: string;
  name: string;
  email: string;
  entityPublic: string;
  /**
   * The entity's private key exactly as stored: armored and locked under the passphrase. Always in
   * version 1 (import opens `secrets` with it; keeps it only with --keep-entity-key); in version 2
   * only when the new device is to keep it.
   */
  entitySealed?: string;
  certificate: Signed;
  /**
   * OpenPGP message (version 1: to the entity key; version 2: under the passphrase): JSON
   * `{agentKey, onionKey}` (libp2p protobuf, PKCS#8 DER; base64).
   */
  secrets: string;
  /** Certificates of the entity's other agents and where they were last seen. */
  siblings: Signed[];
  siblingAddresses: string[];
  revocations: Signed[];
  contacts: BundleContact[];
}

/** A new agent's keys and certificate, made and signed on the entity's node. */
export interface NewAgent {
  agentKey: PrivateKey;
  onionPrivate: ReturnType<typeof generateKeyPairSync>['privateKey'];
  certificate: AgentCertificate;
}

/** Makes another agent of this entity: fresh agent and onion keys, a certificate valid a year. */
export async function certifyNewAgent(identity: Identity, now = new Date()): Promise<NewAgent> {
  const agentKey = await generateKeyPair('Ed25519');
  const onion = generateKeyPairSync('x25519');
  const certificate = await certifyAgent(requireEntityKey(identity, 'certify a new agent'), {
    agent: asAgentId(peerIdFromPrivateKey(agentKey).toString()),
    onionKey: rawX25519Public(onion.publicKey).toString('base64url'),
    notBefore: now,
    notAfter: new Date(now.getTime() + CERT_VALIDITY_DAYS * 86_400_000),
  });
  return { agentKey, onionPrivate: onion.privateKey, certificate };
}

/**
 * Packs a new agent for its own data directory (on another machine). With `passphrase` (the
 * node's, checked against the stored entity key: ERR_WRONG_PASSPHRASE) the bundle is version 2,
 * holding the entity key only if `withEntityKey`; without it, version 1.
 */
export async function buildAgentBundle(
  identity: Identity,
  agent: NewAgent,
  known: Pick<AgentBundle, 'siblings' | 'siblingAddresses' | 'revocations' | 'contacts'>,
  options: { passphrase?: string; withEntityKey?: boolean } = {},
): Promise<AgentBundle> {
  const sealedEntity = identity.entitySealedArmored;
  if (sealedEntity === undefined) requireEntityKey(identity, 'add an agent');
  const secrets = JSON.stringify({
    agentKey: Buffer.from(privateKeyToProtobuf(agent.agentKey)).toString('base64'),
    onionKey: agent.onionPrivate.export({ format: 'der', type: 'pkcs8' }).toString('base64'),
  });
  const message = await openpgp.createMessage({ text: secrets });
  const head = {
    type: 'kith-agent-bundle' as const,
    entity: identity.fingerprint,
    name: identity.name,
    email: identity.email,
    entityPublic: identity.entityPublicArmored,
    certificate: { canonical: agent.certificate.canonical, signature: agent.certificate.signature },
  };
  if (options.passphrase === undefined) {
    const encrypted = await openpgp.encrypt({
      message,
      encryptionKeys: identity.entityPublic,
      format: 'armored',
    });
    return { ...head, version: 1, entitySealed: sealedEntity!, secrets: encrypted as string, ...known };
  }
  // The passphrase must be the one the new device will be asked for: the entity key's.
  try {
    await openpgp.decryptKey({
      privateKey: await openpgp.readPrivateKey({ armoredKey: sealedEntity! }),
      passphrase: options.passphrase,
    });
  } catch (err) {
    if (isWrongPassphrase(err)) throw new KithError('ERR_WRONG_PASSPHRASE', 'wrong passphrase', PASS_HINT);
    throw err;
  }
  const encrypted = await openpgp.encrypt({ message, passwords: [options.passphrase], format: 'armored' });
  return {
    ...head,
    version: 2,
    ...(options.withEntityKey ? { entitySealed: sealedEntity! } : {}),
    secrets: encrypted as string,
    ...known,
  };
}

/**
 * Unpacks a bundle into an empty data directory: unlocks the entity key with the passphrase,
 * decrypts the agent's keys, checks that they are the ones the certificate names and that the
 * entity signed it, and stores the identity. Trust (siblings, contacts) is the caller's to store.
 * The entity private key is not kept unless `keepEntityKey` (docs/protocol.md 7.8: an ordinary
 * device holds only its own agent keys and its certificate).
 * Throws ERR_BUNDLE_MALFORMED, ERR_WRONG_PASSPHRASE, ERR_CERT_*, ERR_IDENTITY_EXISTS.
 */
export async function importAgentBundle(
  db: Db,
  text: string,
  passphrase: string,
  options: { keepEntityKey?: boolean } = {},
): Promise<Identity> {
  let bundle: AgentBundle;
  try {
    bundle = JSON.parse(text) as AgentBundle;
    if (bundle.type !== 'kith-agent-bundle' || (bundle.version !== 1 && bundle.version !== 2))
      throw new Error('not a Kith agent bundle');
    asFingerprint(bundle.entity);
    if (bundle.version === 1 && typeof bundle.entitySealed !== 'string') throw new Error('no entity key');
  } catch (err) {
    throw new KithError('ERR_BUNDLE_MALFORMED', `unreadable agent bundle: ${(err as Error).message}`, HINT);
  }
  let entityPublic: openpgp.PublicKey;
  try {
    entityPublic = await openpgp.readKey({ armoredKey: bundle.entityPublic });
  } catch (err) {
    throw new KithError(
      'ERR_BUNDLE_MALFORMED',
      `the bundle's entity key is damaged: ${(err as Error).message}`,
    );
  }
  if (asFingerprint(entityPublic.getFingerprint()) !== bundle.entity) {
    throw new KithError('ERR_BUNDLE_MALFORMED', 'the bundle names another entity than its key');
  }
  // Version 1 always, version 2 only when the bundle carries it: the entity key, unlocked.
  const entityKey = bundle.entitySealed ? await unlockBundleEntityKey(bundle, passphrase) : undefined;
  let agentKey: PrivateKey;
  let onionPrivate: NewAgent['onionPrivate'];
  let data: string;
  try {
    const message = await openpgp.readMessage({ armoredMessage: bundle.secrets });
    data = (
      await openpgp.decrypt(
        bundle.version === 1 ? { message, decryptionKeys: entityKey! } : { message, passwords: [passphrase] },
      )
    ).data as string;
  } catch (err) {
    if (bundle.version === 2 && entityKey === undefined && isWrongPassword(err))
      throw new KithError('ERR_WRONG_PASSPHRASE', 'wrong passphrase', PASS_HINT);
    throw new KithError(
      'ERR_BUNDLE_MALFORMED',
      `the bundle's agent keys are damaged: ${(err as Error).message}`,
    );
  }
  try {
    const secrets = JSON.parse(data) as { agentKey: string; onionKey: string };
    agentKey = privateKeyFromProtobuf(Buffer.from(secrets.agentKey, 'base64'));
    onionPrivate = createPrivateKey({
      key: Buffer.from(secrets.onionKey, 'base64'),
      format: 'der',
      type: 'pkcs8',
    });
  } catch (err) {
    throw new KithError(
      'ERR_BUNDLE_MALFORMED',
      `the bundle's agent keys are damaged: ${(err as Error).message}`,
    );
  }
  const certificate = await verifyAgentCertificate(
    entityPublic,
    bundle.certificate.canonical,
    bundle.certificate.signature,
  );
  if (
    certificate.body.agent !== peerIdFromPrivateKey(agentKey).toString() ||
    certificate.body.onionKey !== rawX25519Public(createPublicKey(onionPrivate)).toString('base64url')
  ) {
    throw new KithError('ERR_BUNDLE_MALFORMED', 'the certificate does not name the agent keys in the bundle');
  }
  return storeIdentity(db, {
    name: bundle.name,
    email: bundle.email,
    passphrase,
    entityPublic,
    // Version 2 carries the entity key only when the user asked for it at `kith agent add`.
    ...(entityKey !== undefined && (bundle.version === 2 || options.keepEntityKey)
      ? { entityKey, entitySealedArmored: bundle.entitySealed }
      : {}),
    entityPublicArmored: bundle.entityPublic,
    agentKey,
    onionPrivate,
    certificate,
    createdAt: new Date(),
  });
}

/** The bundle's parts a new agent's trust store starts from (after `importAgentBundle`). */
export function bundleTrust(
  text: string,
): Pick<AgentBundle, 'siblings' | 'siblingAddresses' | 'revocations' | 'contacts'> {
  const bundle = JSON.parse(text) as AgentBundle;
  return {
    siblings: bundle.siblings ?? [],
    siblingAddresses: bundle.siblingAddresses ?? [],
    revocations: bundle.revocations ?? [],
    contacts: bundle.contacts ?? [],
  };
}

/**
 * Gives a freshly imported agent the trust of its entity's node: its own entity and siblings, the
 * revocations, and the contacts with their agents' certificates and last known addresses (as
 * address hints, so the new agent's redials find them). What does not verify is skipped.
 */
export async function adoptBundleTrust(
  trust: TrustStore,
  identity: Identity,
  known: ReturnType<typeof bundleTrust>,
  log: Logger,
): Promise<{ contacts: number }> {
  await trust.addEntity(identity.entityPublicArmored, { trusted: true, contact: true, source: 'self' });
  await trust.addAgentCertificate(identity.certificate);
  const skip = (err: unknown) => log.debug({ err }, 'skipped an entry of an agent bundle');
  for (const revocation of known.revocations) await trust.addAgentRevocation(revocation).catch(skip);
  for (const sibling of known.siblings) await trust.addAgentCertificate(sibling).catch(skip);
  trust.addAddressHints(identity.fingerprint, known.siblingAddresses);
  let contacts = 0;
  for (const contact of known.contacts) {
    try {
      const entity = await trust.addEntity(contact.publicKey, {
        trusted: contact.trusted,
        contact: contact.contact,
        source: contact.source,
      });
      for (const certificate of contact.certificates)
        await trust.addAgentCertificate(certificate).catch(skip);
      trust.addAddressHints(entity.fingerprint, contact.addresses);
      contacts++;
    } catch (err) {
      skip(err);
    }
  }
  return { contacts };
}

const HINT = 'give the file `kith agent add --out FILE` wrote on the node of your entity';
const PASS_HINT = "give the passphrase of the entity's node (the one given at its `kith init`)";

async function unlockBundleEntityKey(bundle: AgentBundle, passphrase: string): Promise<openpgp.PrivateKey> {
  let entityKey: openpgp.PrivateKey;
  try {
    entityKey = await openpgp.decryptKey({
      privateKey: await openpgp.readPrivateKey({ armoredKey: bundle.entitySealed! }),
      passphrase,
    });
  } catch (err) {
    if (isWrongPassphrase(err)) throw new KithError('ERR_WRONG_PASSPHRASE', 'wrong passphrase', PASS_HINT);
    throw new KithError(
      'ERR_BUNDLE_MALFORMED',
      `the bundle's entity key is damaged: ${(err as Error).message}`,
    );
  }
  if (asFingerprint(entityKey.getFingerprint()) !== bundle.entity) {
    throw new KithError('ERR_BUNDLE_MALFORMED', 'the bundle names another entity than its key');
  }
  return entityKey;
}

/** openpgp.js's words for a password-encrypted message opened with another password (no error code). */
function isWrongPassword(err: unknown): boolean {
  return /Session key decryption failed|Modification detected|Error decrypting message/i.test(
    (err as Error).message,
  );
}
