import { createHash } from 'node:crypto';
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr';
import { KithError } from '../../common/errors.ts';
import { asAgentId, asFingerprint, type AgentId, type Fingerprint } from '../../common/ids.ts';

/** What an invitation code carries: who to dial, how to recognise them, and the one-time secret. */
export interface InvitationCode {
  entity: Fingerprint;
  agent: AgentId;
  addresses: Multiaddr[];
  /** 16 random bytes; the inviter keeps only their SHA-256. */
  secret: Uint8Array;
}

const PREFIX = 'kith1';
const VERSION = 1;
const SECRET_BYTES = 16;

/**
 * Compact, copy-pastable: "kith1" + base64url(version | fingerprint(20) | secret(16) |
 * len+peer id | count + (len+multiaddr bytes)* | sha256 checksum(4)). The checksum turns a
 * truncated paste into a clear error instead of a dial to nowhere (docs/protocol.md).
 */
export function encodeInvitation(code: InvitationCode): string {
  const parts: Buffer[] = [Buffer.from([VERSION]), Buffer.from(code.entity, 'hex'), Buffer.from(code.secret)];
  const agent = Buffer.from(code.agent, 'utf8');
  parts.push(Buffer.from([agent.length]), agent, Buffer.from([code.addresses.length]));
  for (const address of code.addresses) {
    const bytes = Buffer.from(address.bytes);
    parts.push(Buffer.from([bytes.length]), bytes);
  }
  const body = Buffer.concat(parts);
  const checksum = createHash('sha256').update(body).digest().subarray(0, 4);
  return PREFIX + Buffer.concat([body, checksum]).toString('base64url');
}

/** Parses a pasted code (whitespace tolerated). Throws ERR_INVITATION_MALFORMED. */
export function decodeInvitation(text: string): InvitationCode {
  const compact = text.replace(/\s+/g, '');
  const bad = (why: string): KithError =>
    new KithError('ERR_INVITATION_MALFORMED', `not a Kith invitation code: ${why}`, 'paste the whole code');
  if (!compact.startsWith(PREFIX)) throw bad(`it does not start with ${PREFIX}`);
  const raw = Buffer.from(compact.slice(PREFIX.length), 'base64url');
  if (raw.length < 1 + 20 + SECRET_BYTES + 2 + 4) throw bad('too short');
  const body = raw.subarray(0, raw.length - 4);
  const expected = createHash('sha256').update(body).digest().subarray(0, 4);
  if (!expected.equals(raw.subarray(raw.length - 4))) throw bad('checksum mismatch (truncated or mistyped)');
  if (body[0] !== VERSION) throw bad(`unknown version ${body[0]}`);
  try {
    let at = 1;
    const take = (n: number): Buffer => {
      if (at + n > body.length) throw new Error('truncated');
      const slice = body.subarray(at, at + n);
      at += n;
      return slice;
    };
    const entity = asFingerprint(take(20).toString('hex'));
    const secret = new Uint8Array(take(SECRET_BYTES));
    const agent = asAgentId(take(take(1)[0]).toString('utf8'));
    const count = take(1)[0];
    const addresses: Multiaddr[] = [];
    for (let i = 0; i < count; i++) addresses.push(multiaddr(new Uint8Array(take(take(1)[0]))));
    if (at !== body.length) throw new Error('trailing bytes');
    return { entity, agent, addresses, secret };
  } catch (err) {
    throw bad((err as Error).message);
  }
}

export function invitationSecretBytes(): number {
  return SECRET_BYTES;
}
