// Distinct types for distinct ids, so a fingerprint can never be passed where a peer id is expected.
declare const brand: unique symbol;
export type Brand<T, B extends string> = T & { readonly [brand]: B };

/** An entity's OpenPGP v4 fingerprint: 40 upper-case hex digits. Its network address. */
export type Fingerprint = Brand<string, 'Fingerprint'>;
/** A libp2p peer id (base58btc) of an agent. */
export type AgentId = Brand<string, 'AgentId'>;
/** A Kith message id: 32 lower-case hex digits, chosen by the sender. */
export type MessageId = Brand<string, 'MessageId'>;

const FINGERPRINT = /^[0-9A-F]{40}$/;
const MESSAGE_ID = /^[0-9a-f]{32}$/;

export function asFingerprint(value: string): Fingerprint {
  const upper = value.replace(/\s+/g, '').toUpperCase();
  if (!FINGERPRINT.test(upper)) throw new TypeError(`not an entity fingerprint (40 hex digits): ${value}`);
  return upper as Fingerprint;
}

export function isFingerprint(value: string): boolean {
  return FINGERPRINT.test(value.replace(/\s+/g, '').toUpperCase());
}

export function asAgentId(value: string): AgentId {
  if (!/^[1-9A-HJ-NP-Za-km-z]{40,60}$/.test(value)) throw new TypeError(`not an agent peer id: ${value}`);
  return value as AgentId;
}

export function asMessageId(value: string): MessageId {
  if (!MESSAGE_ID.test(value)) throw new TypeError(`not a Kith message id (32 hex digits): ${value}`);
  return value as MessageId;
}
