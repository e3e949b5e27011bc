import * as openpgp from 'openpgp';
import { KithError } from '../../common/errors.ts';
import type { AgentId } from '../../common/ids.ts';
import type { Logger } from '../../common/logger.ts';
import { verifyAgentCertificate } from '../identity/certificate.ts';
import type { InvitationCode } from '../trust/invitation-code.ts';
import type { EntityRecord, TrustStore } from '../trust/store.ts';
import { acceptHello, certificateNames, type HelloMessage } from './hello.ts';

export const INVITE_PROTOCOL = '/kith/invite/1';

/** The invitee's request: the secret from the code, and its own hello. */
export interface InviteRequest {
  v: 1;
  /** base64url of the 16-byte secret; travels only inside Noise, to the peer id the code names. */
  secret: string;
  hello: HelloMessage;
}

/** The inviter's answer: its hello, or the error code of the refusal. */
export type InviteReply = { v: 1; hello: HelloMessage } | { v: 1; refused: string; message: string };

/**
 * Inviter side. Everything the invitee shows is checked before the invitation is spent, and the
 * invitation is spent (atomically) before anything is stored, so a code works exactly once and a
 * failed attempt leaves no trace. Returns the new trusted contact.
 */
export async function redeemInvitation(
  trust: TrustStore,
  remote: AgentId,
  request: InviteRequest,
  log: Logger,
): Promise<EntityRecord> {
  const hello = request?.hello;
  if (request?.v !== 1 || typeof request.secret !== 'string' || typeof hello?.entityKey !== 'string') {
    throw new KithError('ERR_PROTOCOL', 'malformed invitation request');
  }
  const { agent } = certificateNames(hello.certificate?.canonical ?? '');
  if (agent !== remote) {
    throw new KithError('ERR_CERT_WRONG_AGENT', `the certificate shown by ${remote} names agent ${agent}`);
  }
  let key: openpgp.PublicKey;
  try {
    key = await openpgp.readKey({ armoredKey: hello.entityKey });
  } catch {
    throw new KithError('ERR_BAD_KEY', 'the invitee sent no readable OpenPGP key');
  }
  await verifyAgentCertificate(key, hello.certificate.canonical, hello.certificate.signature);
  const spent = trust.redeemInvitation(Buffer.from(request.secret, 'base64url'), remote);
  try {
    await trust.addEntity(hello.entityKey, { trusted: true, contact: true, source: 'invitation' });
    return await acceptHello(trust, remote, hello, log);
  } catch (err) {
    trust.unredeemInvitation(spent.id);
    throw err;
  }
}

/**
 * The codes an inviter refuses with (redeemInvitation and the hello it checks), passed on to the
 * invitee's user as they are. Why a list: the code comes from the other side, and any other
 * string (found by test/fuzz: "ERR_INVIPATION_USED") would reach the user as a code no
 * documentation or test knows; those become ERR_INVITATION_REFUSED.
 */
const REFUSAL_CODES: ReadonlySet<string> = new Set([
  'ERR_INVITATION_UNKNOWN',
  'ERR_INVITATION_USED',
  'ERR_INVITATION_EXPIRED',
  'ERR_INVITATION_REFUSED',
  'ERR_PROTOCOL',
  'ERR_BAD_KEY',
  'ERR_CERT_MALFORMED',
  'ERR_CERT_WRONG_AGENT',
  'ERR_CERT_WRONG_ENTITY',
  'ERR_CERT_SIGNATURE',
  'ERR_CERT_EXPIRED',
  'ERR_NOT_TRUSTED',
  'ERR_AGENT_REVOKED',
  'ERR_FINGERPRINT_MISMATCH',
]);

/**
 * Invitee side: the inviter must be exactly the entity and agent the code names (Noise already
 * proved the agent's peer id); then it becomes a trusted contact here too.
 */
export async function acceptInviterReply(
  trust: TrustStore,
  code: InvitationCode,
  reply: InviteReply,
  log: Logger,
): Promise<EntityRecord> {
  if (typeof reply !== 'object' || reply === null) {
    throw new KithError('ERR_PROTOCOL', 'malformed invitation reply');
  }
  if ('refused' in reply) {
    throw new KithError(
      typeof reply.refused === 'string' && REFUSAL_CODES.has(reply.refused)
        ? reply.refused
        : 'ERR_INVITATION_REFUSED',
      `the inviter refused: ${reply.message ?? reply.refused}`,
    );
  }
  const { entity, agent } = certificateNames(reply.hello?.certificate?.canonical ?? '');
  if (entity !== code.entity || agent !== code.agent) {
    throw new KithError(
      'ERR_FINGERPRINT_MISMATCH',
      'the inviter is not the entity and agent named by the code',
    );
  }
  await trust.addEntity(reply.hello.entityKey, {
    trusted: true,
    contact: true,
    source: 'invitation',
    expect: code.entity,
  });
  return acceptHello(trust, code.agent, reply.hello, log);
}
