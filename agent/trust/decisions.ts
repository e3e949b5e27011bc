/** How the connection gater treats a peer that completed the Noise handshake. */
export type Admission = 'trusted' | 'provisional' | 'refused';

/** What the trust store knows about one remote agent at the moment it connects. */
export interface AdmissionFacts {
  /** Its agent certificate, or its whole entity, has been revoked. */
  revoked: boolean;
  /** It holds a stored, currently valid certificate from an entity we trust. */
  certifiedByTrusted: boolean;
  /** We have issued an invitation that is neither redeemed nor expired. */
  openInvitation: boolean;
  /** We trust an entity by fingerprint whose key or agents we have not learned yet. */
  awaitingKey: boolean;
}

/**
 * Trust or refuse. A revoked agent is refused even while invitations are open, so revocation
 * cannot be undone by a replayed code. An unknown peer is let in only provisionally, and only
 * while someone could legitimately be unknown to us (an open invitation, a fingerprint trusted
 * before its key arrived); provisional peers may speak nothing but the hello and invitation
 * protocols and are cut off after a short deadline.
 */
export function admit(facts: AdmissionFacts): Admission {
  if (facts.revoked) return 'refused';
  if (facts.certifiedByTrusted) return 'trusted';
  if (facts.openInvitation || facts.awaitingKey) return 'provisional';
  return 'refused';
}

/** A certificate counts only inside its validity window (clock skew is the signer's problem). */
export function certificateValidAt(notBefore: number, notAfter: number, now: number): boolean {
  return now >= notBefore && now <= notAfter;
}
