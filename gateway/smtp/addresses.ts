import { asFingerprint, type Fingerprint } from '../../common/ids.ts';

/**
 * The fingerprint address form (docs/protocol.md, "Addresses"): `<40 hex digits>@kith`, any
 * case. It names an entity by its key alone, so it reaches someone not yet in the contacts.
 */
const FINGERPRINT_ADDRESS = /^([0-9a-f]{40})@kith$/i;

/** The entity a fingerprint address names, or undefined for any other address. */
export function parseFingerprintAddress(address: string): Fingerprint | undefined {
  const match = FINGERPRINT_ADDRESS.exec(address.trim());
  return match ? asFingerprint(match[1]) : undefined;
}

/** The fingerprint address of an entity, e.g. for a reply to someone not yet a contact. */
export function fingerprintAddress(fingerprint: Fingerprint): string {
  return `${fingerprint.toLowerCase()}@kith`;
}

/**
 * Whether an account may use this address as sender. Compared case-insensitively as a whole:
 * local parts are case-sensitive in theory, but no mail client the user points at us relies
 * on that, and refusing "Alice@" for "alice@" would only confuse.
 */
export function isOwnAddress(addresses: readonly string[], address: string): boolean {
  const wanted = address.trim().toLowerCase();
  return addresses.some((a) => a.toLowerCase() === wanted);
}
