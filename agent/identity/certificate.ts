import * as openpgp from 'openpgp';
import { KithError } from '../../common/errors.ts';
import { asAgentId, asFingerprint, type AgentId, type Fingerprint } from '../../common/ids.ts';

/**
 * The statement an entity key signs to certify one of its agents. Canonical form: the JSON
 * below with keys in this order and no spaces (docs/protocol.md, "Agent certificate").
 */
export interface AgentCertificateBody {
  type: 'kith-agent-cert';
  version: 1;
  entity: Fingerprint;
  agent: AgentId;
  /** The agent's X25519 onion public key, base64url of its 32 raw bytes. */
  onionKey: string;
  /** ISO 8601 UTC. */
  notBefore: string;
  notAfter: string;
}

/** A certificate as it travels: canonical body bytes and an armored detached OpenPGP signature. */
export interface AgentCertificate {
  body: AgentCertificateBody;
  canonical: string;
  signature: string;
}

export function canonicalCertificate(body: AgentCertificateBody): string {
  const ordered = {
    type: body.type,
    version: body.version,
    entity: body.entity,
    agent: body.agent,
    onionKey: body.onionKey,
    notBefore: body.notBefore,
    notAfter: body.notAfter,
  };
  return JSON.stringify(ordered) + '\n';
}

/** Signs a certificate for an agent. The signature is a binary-document signature GnuPG verifies. */
export async function certifyAgent(
  entityKey: openpgp.PrivateKey,
  fields: { agent: AgentId; onionKey: string; notBefore: Date; notAfter: Date },
): Promise<AgentCertificate> {
  const body: AgentCertificateBody = {
    type: 'kith-agent-cert',
    version: 1,
    entity: asFingerprint(entityKey.getFingerprint()),
    agent: fields.agent,
    onionKey: fields.onionKey,
    notBefore: fields.notBefore.toISOString(),
    notAfter: fields.notAfter.toISOString(),
  };
  const canonical = canonicalCertificate(body);
  const signature = await signDetached(entityKey, canonical);
  return { body, canonical, signature };
}

export async function signDetached(key: openpgp.PrivateKey, text: string): Promise<string> {
  const message = await openpgp.createMessage({ binary: Buffer.from(text, 'utf8') });
  return (await openpgp.sign({ message, signingKeys: key, detached: true, format: 'armored' })) as string;
}

export async function verifyDetached(
  key: openpgp.PublicKey,
  text: string,
  signature: string,
): Promise<boolean> {
  try {
    const message = await openpgp.createMessage({ binary: Buffer.from(text, 'utf8') });
    const sig = await openpgp.readSignature({ armoredSignature: signature });
    const result = await openpgp.verify({
      message,
      signature: sig,
      verificationKeys: key,
      expectSigned: false,
    });
    await result.signatures[0].verified;
    return true;
  } catch {
    return false;
  }
}

/** Parses and checks a received certificate against its entity's public key. Throws ERR_CERT_*. */
export async function verifyAgentCertificate(
  entityKey: openpgp.PublicKey,
  canonical: string,
  signature: string,
  now = new Date(),
): Promise<AgentCertificate> {
  let body: AgentCertificateBody;
  try {
    body = JSON.parse(canonical) as AgentCertificateBody;
    if (body.type !== 'kith-agent-cert' || body.version !== 1) throw new Error('wrong type or version');
    asFingerprint(body.entity);
    asAgentId(body.agent);
    if (canonicalCertificate(body) !== canonical) throw new Error('not in canonical form');
  } catch (err) {
    throw new KithError('ERR_CERT_MALFORMED', `malformed agent certificate: ${(err as Error).message}`);
  }
  if (body.entity !== entityKey.getFingerprint().toUpperCase()) {
    throw new KithError('ERR_CERT_WRONG_ENTITY', 'the agent certificate names another entity');
  }
  if (!(await verifyDetached(entityKey, canonical, signature))) {
    throw new KithError('ERR_CERT_SIGNATURE', 'the agent certificate signature does not verify');
  }
  if (now < new Date(body.notBefore) || now > new Date(body.notAfter)) {
    throw new KithError(
      'ERR_CERT_EXPIRED',
      `the agent certificate is not valid now (until ${body.notAfter})`,
    );
  }
  return { body, canonical, signature };
}
