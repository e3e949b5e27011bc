import { agentIdFromPublic, SignatureVerifier } from '../onion/keys.ts';
import type { HopProof, HopRecord } from './store.ts';

const DIGEST_BYTES = 32;
const SIGNATURE_BYTES = 64;

/** The proof to keep for a packet whose hop signature verified: copies, so no frame stays alive. */
export function hopProof(digest: Uint8Array, signature: Uint8Array): HopProof {
  return { digest: Buffer.from(digest), signature: Buffer.from(signature) };
}

/**
 * True only if the record holds a proof and it is a valid signature, by the key given, over the
 * digest kept, and that key is the record's neighbour (its agent id). Pure: what a complaint, an
 * operator or a third party re-checks from the record alone. Why the agent id check: a valid
 * signature by some other key proves nothing about the neighbour the record names.
 */
export function verifyHopProof(
  record: Pick<HopRecord, 'from' | 'proof'>,
  neighbourPublic: Uint8Array,
): boolean {
  const { proof } = record;
  if (!proof || proof.digest.length !== DIGEST_BYTES || proof.signature.length !== SIGNATURE_BYTES) {
    return false;
  }
  if (neighbourPublic.length !== 32 || agentIdFromPublic(neighbourPublic) !== record.from) return false;
  // A fresh verifier: no cache shared between calls, so the result depends on the arguments only.
  return new SignatureVerifier().verify(neighbourPublic, proof.digest, proof.signature);
}
