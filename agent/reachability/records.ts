import type { PrivateKey } from '@libp2p/interface';
import { peerIdFromString } from '@libp2p/peer-id';
import { multiaddr } from '@multiformats/multiaddr';
import { KithError } from '../../common/errors.ts';
import { asAgentId, asFingerprint, type AgentId, type Fingerprint } from '../../common/ids.ts';

/** The statement an agent signs about where it can be reached (docs/protocol.md, "Address record"). */
export interface AddressRecordBody {
  type: 'kith-addresses';
  version: 1;
  agent: AgentId;
  entity: Fingerprint;
  /** Multiaddrs without /p2p/ suffix; /dns4 names are valid (DynDNS). */
  addresses: string[];
  /** Milliseconds since the epoch when signed; newer replaces older. */
  seq: number;
}

/** A record as it travels and is cached: canonical text, and the agent's Ed25519 signature (base64url). */
export interface SignedAddressRecord {
  canonical: string;
  signature: string;
}

export const MAX_RECORD_ADDRESSES = 16;

function canonical(body: AddressRecordBody): string {
  return (
    JSON.stringify({
      type: body.type,
      version: body.version,
      agent: body.agent,
      entity: body.entity,
      addresses: body.addresses,
      seq: body.seq,
    }) + '\n'
  );
}

/** Signs our current addresses with the agent key: fast (Ed25519), and tied to the certified peer id. */
export async function signAddressRecord(
  key: PrivateKey,
  fields: { agent: AgentId; entity: Fingerprint; addresses: string[]; seq: number },
): Promise<SignedAddressRecord> {
  const text = canonical({ type: 'kith-addresses', version: 1, ...fields });
  const signature = await key.sign(new TextEncoder().encode(text));
  return { canonical: text, signature: Buffer.from(signature).toString('base64url') };
}

/**
 * Checks a record: well-formed, signed by the agent it names, and not older than maxAgeMs.
 * Unsigned or stale records are refused (ERR_RECORD_*): a directory must never hand out
 * addresses an agent did not vouch for recently.
 */
export async function verifyAddressRecord(
  record: SignedAddressRecord,
  options: { now: number; maxAgeMs: number },
): Promise<AddressRecordBody> {
  let body: AddressRecordBody;
  let key: ReturnType<typeof peerIdFromString>['publicKey'];
  try {
    body = JSON.parse(record.canonical) as AddressRecordBody;
    if (body.type !== 'kith-addresses' || body.version !== 1) throw new Error('wrong type or version');
    asAgentId(body.agent);
    asFingerprint(body.entity);
    if (!Array.isArray(body.addresses) || body.addresses.length > MAX_RECORD_ADDRESSES) {
      throw new Error('bad address list');
    }
    for (const address of body.addresses) multiaddr(address);
    if (!Number.isSafeInteger(body.seq)) throw new Error('bad seq');
    if (canonical(body) !== record.canonical) throw new Error('not in canonical form');
    // An agent id that passes the base58 check but is no peer id is malformed too (found by
    // test/fuzz: peerIdFromString throws plain Errors and TypeErrors).
    key = peerIdFromString(body.agent).publicKey;
  } catch (err) {
    throw new KithError('ERR_RECORD_MALFORMED', `malformed address record: ${(err as Error).message}`);
  }
  if (typeof record.signature !== 'string' || record.signature.length === 0) {
    throw new KithError('ERR_RECORD_UNSIGNED', `the address record of ${body.agent} is not signed`);
  }
  // libp2p throws a TypeError for a signature that is not 64 bytes (found by test/fuzz): that is
  // a bad signature like any other.
  const valid =
    key !== undefined &&
    (await Promise.resolve()
      .then(() =>
        key.verify(new TextEncoder().encode(record.canonical), Buffer.from(record.signature, 'base64url')),
      )
      .catch(() => false));
  if (!valid) {
    throw new KithError('ERR_RECORD_SIGNATURE', `the address record of ${body.agent} has a bad signature`);
  }
  if (options.now - body.seq > options.maxAgeMs) {
    throw new KithError('ERR_RECORD_STALE', `the address record of ${body.agent} is older than allowed`);
  }
  if (body.seq - options.now > 10 * 60_000) {
    throw new KithError('ERR_RECORD_STALE', `the address record of ${body.agent} is dated in the future`);
  }
  return body;
}
