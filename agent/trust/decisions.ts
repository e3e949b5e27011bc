/** How the connection gater treats a peer that completed the Noise handshake. */
export type Admission = 'trusted' | 'provisional' | 'refused';

/** Bounds on peers let in before they proved who certified them (docs/protocol.md, "Admission"). */
export interface ProvisionalLimits {
  /** Unknown peers provisionally connected at once, over all addresses. */
  maxOpen: number;
  /** Unknown peers let in from one IP address per `windowMs`. */
  perAddress: number;
  windowMs: number;
}

export const DEFAULT_PROVISIONAL_LIMITS: Readonly<ProvisionalLimits> = Object.freeze({
  maxOpen: 32,
  perAddress: 10,
  windowMs: 60_000,
});

/** What the trust store and the link manager know about one remote agent at the moment it connects. */
export interface AdmissionFacts {
  /** Its agent certificate, or its whole entity, has been revoked. */
  revoked: boolean;
  /** It holds a stored, currently valid certificate from an entity we trust. */
  certifiedByTrusted: boolean;
  /** Unknown peers provisionally connected right now. */
  provisionalOpen: number;
  /** Unknown peers let in from this peer's IP address within the limits' window. */
  recentFromAddress: number;
  limits: ProvisionalLimits;
}

/**
 * Trust or refuse. A revoked agent is refused always, so revocation cannot be undone by a replayed
 * code or a fresh hello. Any other unknown peer may be a trusted entity's new agent (a laptop whose
 * certificate no neighbour has seen yet), an invitee, or the agent of an entity trusted by
 * fingerprint: the peer id alone cannot tell these from a stranger, only the certificate it
 * shows in its hello can. So it is let in provisionally, and that is safe only because it is
 * bounded: the link manager lets it open nothing but the hello protocol (and the invitation
 * protocol while an invitation is open, see `provisionalMayOpen`), cuts it off after a short
 * deadline, and past the count and per-address limits the gater refuses outright.
 */
export function admit(facts: AdmissionFacts): Admission {
  if (facts.revoked) return 'refused';
  if (facts.certifiedByTrusted) return 'trusted';
  if (facts.provisionalOpen >= facts.limits.maxOpen) return 'refused';
  if (facts.recentFromAddress >= facts.limits.perAddress) return 'refused';
  return 'provisional';
}

/** The protocols the admission rules know about; every other protocol is 'other'. */
export type AdmissionProtocol = 'hello' | 'invite' | 'other';

/** What becomes of a peer's new inbound stream: handled now, held until the peer is decided, or refused. */
export type StreamVerdict = 'open' | 'wait' | 'refuse';

/**
 * May a peer open a stream of this protocol? Trusted agents may open any. A provisional peer may
 * show its certificate (hello), or redeem an invitation while one is open; any other stream of it
 * waits, unread, until the peer is decided: promoted, it is handled as a trusted agent's; cut off,
 * it is refused with the connection. So a stranger's stream never reaches frames, reachability,
 * identify or relay handlers, while a peer that is about to prove itself loses nothing it opened
 * early. Why not refuse those streams: libp2p's connection monitor pings every connection every
 * 10 s, whatever its age, and aborts the connection when the ping stream is refused — that cut
 * invitations off mid-exchange ("the inviter refused the connection: Cannot write to a stream that
 * is closed"), and an inviter's first frames were lost the same way.
 */
export function provisionalMayOpen(facts: {
  trusted: boolean;
  provisional: boolean;
  protocol: AdmissionProtocol;
  openInvitation: boolean;
}): StreamVerdict {
  if (facts.trusted) return 'open';
  if (!facts.provisional) return 'refuse';
  if (facts.protocol === 'hello') return 'open';
  if (facts.protocol === 'invite') return facts.openInvitation ? 'open' : 'refuse';
  return 'wait';
}

/** Why a provisional peer stopped being provisional (the link manager reports each end). */
export type ProvisionalEnd = 'promoted' | 'refused' | 'deadline' | 'disconnected';

/**
 * After a provisional peer's hello (or its reply to ours) failed to admit it, does its
 * connection end now? Yes, unless it is trusted anyway (a certificate of it arrived by another
 * way meanwhile): the hello is the only thing a provisional peer may do, so once it has shown
 * that it is no certified agent of a trusted entity (or could not show anything readable), every
 * further moment only costs us a connection slot. Waiting for the deadline would also keep the
 * peer visible as connected for up to that long (issue 10: a relay listing a refused stranger).
 */
export function endsAfterFailedHello(facts: { trustedNow: boolean }): boolean {
  return !facts.trustedNow;
}

/** A certificate counts only inside its validity window (clock skew is the signer's problem). */
export function certificateValidAt(notBefore: number, notAfter: number, now: number): boolean {
  return now >= notBefore && now <= notAfter;
}

/** Renew our own certificate when less than this is left (a month: time for every neighbour to hear it). */
export const RENEW_BEFORE_MS = 30 * 86_400_000;

/**
 * Is it time to renew a certificate that is valid until `notAfter`? Within the last month, and
 * after expiry too: a node that was off past its certificate's end renews at start, since the
 * entity key that signs it is at hand. Early enough that neighbours offline for weeks still get
 * the renewed one in a hello before the old one ends.
 */
export function certificateRenewalDue(notAfter: number, now: number, before = RENEW_BEFORE_MS): boolean {
  return notAfter - now < before;
}
