/**
 * Spam-control decisions (docs/protocol.md 15.4): pure functions of counts, times and a policy,
 * each with the reason it is so. The node, the real-node tests and the 10,000-agent simulation
 * (bench/spam) all call these same functions.
 */

const DAY = 86_400_000;

/** The knobs of spam control; DEFAULT_SPAM_POLICY documents each value's reason. */
export interface SpamPolicy {
  /** Half-life of every decaying count (traffic, complaints, cut-offs). */
  halfLifeMs: number;
  /** Open complaints that revoke a neighbour that hands on little traffic (the floor). */
  minComplaints: number;
  /** Share of the (decayed) traffic a neighbour handed on that may be complained about. */
  complaintRatio: number;
  /** The threshold never rises above this, however much traffic: dilution cannot buy spam. */
  maxComplaints: number;
  /** How long a suspended neighbour has to show that it cut the source off before it is revoked. */
  settleMs: number;
  /** Cut-offs a neighbour may report per half-life before it is itself taken to admit spammers. */
  maxCuts: number;
  /** Open complaints ever (not decayed) that revoke a neighbour, unless its traffic ever was large. */
  lifetimeComplaints: number;
  /** Share of all traffic ever handed on that may have been complained about. */
  lifetimeRatio: number;
  /** First-contact messages per day from an entity the recipient has no contact with. */
  firstContactsPerDay: number;
  /** Invitations an entity may issue per 30 days, and how the quota grows with its age. */
  invitationsPer30Days: number;
  /** Days an entity must be trusted before its invitation quota is full. */
  invitationRampDays: number;
  /** Invitations a brand-new entity may have out in its first 30 days (the ramp starts here). */
  invitationsAtStart: number;
  /** Packets per hour a hop hands on from any neighbour, however little it sent before. */
  forwardFloorPerHour: number;
  /** How far above its usual hourly rate a neighbour may go. */
  forwardBurst: number;
  /** Packets of at least this many bytes (a full chunk of a large message) are not counted. */
  forwardUncountedBytes: number;
  /** First contacts from a neighbour awaiting their recipient's verdict, for a link without history. */
  creditStart: number;
  /** Good verdicts (read, no complaint) on a neighbour's first contacts that add one to its credit. */
  creditPerGood: number;
  /** The credit never rises above this: history cannot buy an unbounded burst. */
  creditMax: number;
  /** A first contact without a verdict after this long (never read) no longer holds credit. */
  creditVerdictMs: number;
  /** Open complaints that revoke a neighbour without a good first-contact record (15.7). */
  probationComplaints: number;
  /** Enforce the first-contact credit in the node (15.7): flag, hold, verdicts. */
  firstContactCredit: boolean;
}

export const DEFAULT_SPAM_POLICY: Readonly<SpamPolicy> = Object.freeze({
  // A week: a neighbour's record of the last few weeks matters, its record of last year little.
  // Short enough that an honest relay that once forwarded spam is not marked for months.
  halfLifeMs: 7 * DAY,
  // Three: one complaint can be a mistaken click, two a disagreement; three different messages
  // complained about from one neighbour within a half-life is a pattern. Small, because every
  // complaint below the threshold is a spam that got through (the bound per attack edge).
  minComplaints: 3,
  // 1%: honest mail gets complained about rarely (users' mistaken Junk clicks are well below 1%
  // of what they receive), so a relay that hands on a lot of honest mail may carry as many
  // mistaken complaints as 1% of it before it is suspended.
  complaintRatio: 0.01,
  // Five: the goal is at most 5 spam per attack edge; a spammer who first relays honest-looking
  // traffic to raise its threshold gains at most two more.
  maxComplaints: 5,
  // A minute: a cut notice from an honest upstream relay takes one round trip per hop; a minute
  // covers paths of 8 hops over slow links. Packets from the neighbour are refused meanwhile, so
  // the wait costs no spam.
  settleMs: 60_000,
  // Two cut-offs per half-life: an honest relay that invited a spammer cuts it off once; one
  // that keeps "cutting off" sources is either a spammer's front (forged cut notices) or invites
  // carelessly, and both are what revocation is for. Two goes with the first-contact credit (on by
  // default, 15.7): a front forging one cut per two complaints then gets ~4.4 spam per attack edge
  // through instead of ~5.8 (bench/spam, "+ credit"). Without the credit set it to 3: there 2 cost
  // honest relays more links under collusion.
  maxCuts: 2,
  // Decay alone lets a slow drip go on forever (one spam every few days never reaches the
  // decayed threshold; Ostra's credit regenerates the same way). So open complaints are also
  // counted without decay: ten ever, or 1% of everything it ever handed on if that is more.
  // A spammer can only stretch that by sending 100 packets of filler per spam.
  lifetimeComplaints: 10,
  lifetimeRatio: 0.01,
  // Ten a day: an honest person writes to a few new people a day at most; a spammer needs
  // thousands. The first reply turns the stranger into a contact and lifts the limit.
  firstContactsPerDay: 10,
  // Five invitations per 30 days once ramped up: a household or a small club grows at that pace;
  // a sybil farm needs hundreds. The quota bounds how many attack edges one trusted entity adds.
  invitationsPer30Days: 5,
  // The quota ramps up over 30 days: a new identity cannot multiply its entry points at once.
  invitationRampDays: 30,
  // Three at the start: a new user brings in a partner, a parent, a friend in their first week
  // (one would stop that); a careless or compromised new account adds at most three attack edges.
  invitationsAtStart: 3,
  // A node takes at least 120 small packets (about messages) an hour from any neighbour: a new
  // user's first burst of mail goes through at once, while a flood from a fresh link (thousands
  // an hour) waits. bench/spam counts messages and uses 1 (SIM_POLICY).
  forwardFloorPerHour: 120,
  // Three times its usual rate: an honest neighbour's busy hour is a few times its mean one.
  forwardBurst: 3,
  // 128 KiB: a full chunk is 256 KiB, a manifest (inline mail up to 60,000 bytes) and a last chunk
  // are smaller. Every message starts with one manifest, so counting the small packets counts the
  // messages, and a 1 GiB transfer (4,096 chunks) costs its sender two, not the hour's allowance.
  forwardUncountedBytes: 128 * 1024,
  // First-contact credit (15.7; in the node when firstContactCredit is on). One unjudged first contact per new link:
  // an attack edge then delivers the threshold's worth of spam plus at most what is unjudged when
  // the last complaint lands (the goal: 5 per attack edge).
  creditStart: 1,
  // One more for every 4 good verdicts (decayed): a link that carried honest first contacts which
  // were read and kept earns room for more at once.
  creditPerGood: 4,
  // Forty: an honest hub's link carries a few first contacts an hour, each unjudged for ~6 h
  // until read; a neighbour with a long good record may burst at most this much spam.
  creditMax: 40,
  // Three days: mail not read by then holds no credit (an absent recipient must not block a link).
  creditVerdictMs: 3 * DAY,
  // Two for a link whose first contacts earned fewer than creditPerGood good verdicts (its credit
  // is still creditStart): with 10% of spam read and kept, three complaints took up to 6–8 spam on
  // the unluckiest attack edges (bench/spam); two bound it at 5 but for one edge in about 2,000.
  // Honest first contacts are complained about 1 in 2,000, so two on one new link is a pattern.
  probationComplaints: 2,
  // On: without it an attack edge delivers at the attacker's rate until complaints come back (hours
  // later): 14-21 spam per edge at 10/h, 62-75 under a 100/h flood (bench/RESULTS.md 7); with it
  // 2.2-2.3, worst 5. The price: a stranger's next first contact through a link whose credit is in
  // use waits until the last one is read (or creditVerdictMs) — 6-25 of ~21,000 honest first
  // contacts in bench/spam, at most 5 h.
  firstContactCredit: true,
});

/**
 * A decayed counter: `value` as of `at`. Why exponential decay rather than a sliding window: one
 * number per neighbour survives a restart as two columns, never needs the individual events, and
 * has no cliff where a whole window of complaints vanishes at once (a spammer would time that).
 */
export interface Decayed {
  value: number;
  at: number;
}

/** The counter's value at `now` (no growth for times before `at`: clocks may step back). */
export function decayedValue(d: Decayed, now: number, halfLifeMs: number): number {
  const age = Math.max(0, now - d.at);
  return d.value * Math.pow(2, -age / halfLifeMs);
}

/** The counter after adding `by` at `now`. */
export function addDecayed(d: Decayed | undefined, by: number, now: number, halfLifeMs: number): Decayed {
  return { value: (d ? decayedValue(d, now, halfLifeMs) : 0) + by, at: Math.max(now, d?.at ?? 0) };
}

/** The weight of one complaint counted at `countedAt`, seen at `now`. */
export function complaintWeight(countedAt: number, now: number, halfLifeMs: number): number {
  return decayedValue({ value: 1, at: countedAt }, now, halfLifeMs);
}

/**
 * How many open complaints revoke a neighbour that handed on `traffic` (decayed packets). Why
 * traffic-dependent: a relay for hundreds of honest people hands on more mail and so collects
 * more mistaken complaints than a neighbour that only sends its own; a flat threshold would revoke
 * busy honest relays first. Why capped: otherwise a spammer buys spam with filler traffic.
 */
export function complaintThreshold(traffic: number, policy: SpamPolicy): number {
  const byTraffic = Math.ceil(traffic * policy.complaintRatio);
  return Math.min(policy.maxComplaints, Math.max(policy.minComplaints, byTraffic));
}

/**
 * Is a neighbour on probation: its first contacts have no good record yet (firstContactGood below
 * creditPerGood, so its credit is still creditStart)? Then probationComplaints open complaints about
 * first contacts suspend it. Why: spam arrives as first contacts on links that never carried one its
 * recipient kept, and every complaint under the threshold is a spam that got through; honest first
 * contacts are complained about 1 in 2,000, so two on one such link is a pattern. Complaints about
 * mail between contacts keep the ordinary threshold (a quarrel is not spam).
 */
export function onProbation(facts: Pick<NeighbourFacts, 'firstContactGood'>, policy: SpamPolicy): boolean {
  return facts.firstContactGood !== undefined && facts.firstContactGood < policy.creditPerGood;
}

/** What a hop knows about one neighbour when it decides. */
export interface NeighbourFacts {
  /** Decayed weight of its open complaints: counted, not withdrawn, not cleared by a cut notice. */
  openComplaints: number;
  /** Decayed packets it handed on to us. */
  traffic: number;
  /** Open complaints ever (not decayed); defaults to openComplaints. */
  lifetimeOpen?: number;
  /** Packets ever handed on (not decayed); defaults to traffic. */
  lifetimeTraffic?: number;
  /** Decayed number of distinct cut-offs it reported to us. */
  cuts: number;
  /** Decayed good verdicts on its first contacts (15.7); undefined where the credit is not kept. */
  firstContactGood?: number;
  /** Decayed weight of its open complaints about first contacts (part of openComplaints). */
  openFirstContact?: number;
  /**
   * Decayed weight of the evidence other neighbours sent with their revocations of it (15.5), each
   * revoker's already capped by evidenceWeight; counted only beside a complaint of our own
   * (evidenceCounted).
   */
  evidence?: number;
  /** When we suspended it (refusing its packets), if we did. */
  suspendedAt?: number;
  /** True once revoked (nothing more to decide). */
  revoked: boolean;
}

/**
 * How far below a whole number a sum of decayed weights (complaints, cut-offs) still counts as it.
 * Why a half: the first-contact credit lets an attack edge carry one spam per verdict, so its
 * complaints come a few hours apart over a day or two, and at a week's half-life three of them
 * weighed 2.8 and a fourth was needed (bench/spam: 6–8 spam on the worst edges). A half counts
 * complaints within about a week whole, and still lets one that old weigh less than a new one.
 */
export const OPEN_TOLERANCE = 0.5;

/** A decision about one neighbour, with the reason to show the user. */
export type NeighbourVerdict =
  | { action: 'none' }
  | { action: 'suspend'; reason: string }
  | { action: 'lift'; reason: string }
  | { action: 'wait'; until: number }
  | { action: 'revoke'; reason: 'complaints' | 'cuts'; detail: string };

/**
 * Suspend, wait, revoke or lift. Why suspend first and revoke only after `settleMs`: a hop cannot
 * tell whether its neighbour sent the spam or only relayed it (onion routing hides the source), so
 * an honest relay gets one round trip to say it cut the source off (its cut notices clear the
 * complaints here); meanwhile its packets are refused, so waiting costs no spam. The neighbour
 * that sent the spam itself has nobody upstream to cut, so its complaints stay open and it is
 * revoked when the wait ends. Why revoke on too many cut-offs: a neighbour's cut notices are only
 * its word, and a front for a spammer could send them forever.
 */
export function judgeNeighbour(facts: NeighbourFacts, now: number, policy: SpamPolicy): NeighbourVerdict {
  if (facts.revoked) return { action: 'none' };
  if (facts.cuts + OPEN_TOLERANCE >= policy.maxCuts) {
    return {
      action: 'revoke',
      reason: 'cuts',
      detail: `${facts.cuts.toFixed(1)} cut-offs within a half-life (limit ${policy.maxCuts}): it keeps letting spammers in`,
    };
  }
  const lifetimeLimit = Math.max(
    policy.lifetimeComplaints,
    Math.ceil((facts.lifetimeTraffic ?? facts.traffic) * policy.lifetimeRatio),
  );
  if ((facts.lifetimeOpen ?? facts.openComplaints) >= lifetimeLimit) {
    return {
      action: 'revoke',
      reason: 'complaints',
      detail: `${facts.lifetimeOpen} open complaints in all (limit ${lifetimeLimit}): a slow drip of spam`,
    };
  }
  const threshold = complaintThreshold(facts.traffic, policy);
  // Decayed weights are never whole: complaints within a few days count whole (see OPEN_TOLERANCE).
  const probation =
    onProbation(facts, policy) &&
    (facts.openFirstContact ?? 0) + OPEN_TOLERANCE >= policy.probationComplaints;
  const evidence = evidenceCounted(facts);
  const open = facts.openComplaints + evidence;
  const withEvidence = evidence > 0 ? ` (${evidence.toFixed(1)} of them neighbours' evidence)` : '';
  const over = probation || open + OPEN_TOLERANCE >= threshold;
  if (!over) {
    return facts.suspendedAt !== undefined
      ? { action: 'lift', reason: 'its complaints were cleared or withdrawn' }
      : { action: 'none' };
  }
  if (facts.suspendedAt === undefined) {
    return {
      action: 'suspend',
      reason: probation
        ? `${(facts.openFirstContact ?? 0).toFixed(1)} open complaints about first contacts, threshold ${policy.probationComplaints} for a link whose first contacts have no good record`
        : `${open.toFixed(1)} open complaints${withEvidence}, threshold ${threshold}`,
    };
  }
  const until = facts.suspendedAt + policy.settleMs;
  if (now < until) return { action: 'wait', until };
  return {
    action: 'revoke',
    reason: 'complaints',
    detail: probation
      ? `${(facts.openFirstContact ?? 0).toFixed(1)} open complaints about first contacts (threshold ${policy.probationComplaints} while its first contacts have no good record), none cleared by a cut-off upstream`
      : `${open.toFixed(1)} open complaints${withEvidence} against ${facts.traffic.toFixed(0)} packets handed on (threshold ${threshold}), none cleared by a cut-off upstream`,
  };
}

/**
 * Does a complaint that reaches a hop about a packet from `predecessor` clear at once? Yes when
 * this hop has already cut that neighbour off: the source is cut, so the hops downstream must
 * not count it against the honest relays in between (the clearing rule).
 */
export function clearsAtOnce(predecessorCutOff: boolean): boolean {
  return predecessorCutOff;
}

/**
 * The epoch of a relayed cut act: a hop hands every cut notice that came through one predecessor
 * on under one cut id of its own per half-life (and revoking that predecessor is the same act).
 * Why: a hop counts the distinct cut acts of each neighbour (maxCuts), and a relay that only
 * passed on an upstream front's forged acts one by one would be revoked for them by its own
 * successor at the same moment it revokes the front itself (bench/spam 'collude': 11 honest links
 * lost on BA). Per predecessor, so a relay behind which two different sources were cut within a
 * half-life still shows two acts.
 */
export function relayCutEpoch(now: number, policy: SpamPolicy): number {
  return Math.floor(Math.max(0, now) / policy.halfLifeMs);
}

/**
 * Does the recipient itself count a complaint against the neighbour that handed it the message?
 * When that neighbour is the sender's own agent (direct mail from a neighbour), and for a flagged
 * first contact (15.7) whoever handed it over. Why not always: the neighbour may only have relayed
 * mail between contacts, and that is judged by the relays upstream. Why first contacts: else a
 * front for a spammer (bench/spam 'collude') that drops the complaints got its spam to the
 * recipients next to it for free; an honest relay in between clears itself here with the cut
 * notice it sends when it suspends the source (15.3), as every hop does.
 */
export function recipientCounts(
  neighbourEntity: string | undefined,
  senderEntity: string,
  firstContact = false,
): boolean {
  return firstContact || (neighbourEntity !== undefined && neighbourEntity === senderEntity);
}

/**
 * May a first-contact message from `sender` (no contact of the recipient) be accepted now?
 * `sentToday` counts its first contacts accepted in the last 24 h across the recipient's whole
 * view (at a relay: handed on). Why per entity and per day: a stranger may write, but only as
 * often as a person introduces themselves; a flood from one new identity stops at the limit, and
 * new identities each need an invitation (quota below).
 */
export function firstContactAllowed(sentToday: number, policy: SpamPolicy): boolean {
  return sentToday < policy.firstContactsPerDay;
}

/**
 * How many invitations an entity trusted for `ageMs` may have issued in the last 30 days. Why a
 * ramp: a freshly invited identity (maybe a sybil) cannot invite a crowd of further identities at
 * once; why a quota at all: every invitation is a potential attack edge, and limiting them per
 * entity bounds how fast one trusted spammer multiplies its entry points.
 */
export function invitationQuota(ageMs: number, policy: SpamPolicy): number {
  const ramp = Math.min(1, Math.max(0, ageMs) / (policy.invitationRampDays * DAY));
  const start = Math.min(policy.invitationsAtStart, policy.invitationsPer30Days);
  return Math.max(start, Math.floor(policy.invitationsPer30Days * ramp));
}

/** May one more invitation be issued, given those issued in the last 30 days? */
export function invitationAllowed(issuedLast30Days: number, ageMs: number, policy: SpamPolicy): boolean {
  return issuedLast30Days < invitationQuota(ageMs, policy);
}

/**
 * Packets per hour a hop hands on from a neighbour that handed on `traffic` (decayed) so far; the
 * rest is refused until the next hour (`rejected_over_allowance`; the sender's stall timer sends it
 * again, by another path or later). Why: complaints come back hours after the spam was read, so
 * without a rate a fresh attack edge delivers rate × that delay before any threshold can act; a
 * neighbour's own history sets its rate, so an honest relay for hundreds keeps its pace while a
 * new or quiet one starts at the floor. Decayed traffic is about rate × (half-life / ln 2).
 */
export function forwardAllowance(traffic: number, policy: SpamPolicy): number {
  const meanLifeHours = policy.halfLifeMs / Math.LN2 / 3_600_000;
  return Math.max(policy.forwardFloorPerHour, Math.ceil((policy.forwardBurst * traffic) / meanLifeHours));
}

/**
 * First-contact credit (docs/protocol.md 15.7): how many first contacts a hop hands on from a
 * neighbour before their recipients' verdicts come back. Why: complaints come back only when mail is
 * read (hours), and until then a fresh attack edge delivers at the attacker's rate; a bound on the
 * *unjudged* first contacts per link makes the spam per attack edge the complaint threshold plus
 * that bound, whatever the rate (Ostra's credit on links, bounded at the first honest hop, but
 * released by a verdict rather than regenerating with time). Why grow with good verdicts: an honest
 * relay for many people carries many unjudged first contacts at once; a new link has no record.
 */
export function firstContactCredit(goodVerdicts: number, policy: SpamPolicy): number {
  return Math.min(
    policy.creditMax,
    policy.creditStart + Math.floor(Math.max(0, goodVerdicts) / policy.creditPerGood),
  );
}

/** Is one more first contact from this neighbour held (its credit all in unjudged first contacts)? */
export function firstContactHeld(unjudged: number, goodVerdicts: number, policy: SpamPolicy): boolean {
  return unjudged >= firstContactCredit(goodVerdicts, policy);
}

/**
 * Does a complaint count against the neighbour that handed the message on, given whether the
 * message was a first contact (hops know: first contacts are flagged for the credit) and how many
 * open complaints about mail between contacts this recipient already has against that neighbour?
 * First contacts always. Mail between contacts once per recipient: spam is first contacts (its
 * recipients are nobody the spammer knows), while a contact who complains about all the mail it
 * gets is a quarrel, or a framer trying to get an honest sender's link cut (bench/spam 'frame').
 */
export function complaintCounts(firstContact: boolean, openContactComplaintsFromRecipient: number): boolean {
  return firstContact || openContactComplaintsFromRecipient === 0;
}

/** A refusal with its stable code (counted `rejected_<code>`) and a sentence for the people involved. */
export interface Refusal {
  code: 'first_contact_limit' | 'first_contact_unflagged' | 'over_allowance' | 'invitation_quota';
  reason: string;
}

/**
 * Does a packet of `bytes` count against the allowance? Only small ones (manifests, inline mail,
 * last chunks): see forwardUncountedBytes. What this leaves open: a sender that pads each spam's
 * manifest to a chunk's size is not counted (it pays 256 KiB per spam in bandwidth instead).
 */
export function countsAgainstAllowance(bytes: number, policy: SpamPolicy): boolean {
  return bytes < policy.forwardUncountedBytes;
}

/**
 * May one more packet from a neighbour that already handed on `usedThisHour` packets in its
 * current hour be handed on? (forwardAllowance gives the reason for the rate.)
 */
export function forwardDecision(
  traffic: number,
  usedThisHour: number,
  policy: SpamPolicy,
): Refusal | undefined {
  const allowance = forwardAllowance(traffic, policy);
  if (usedThisHour < allowance) return undefined;
  return {
    code: 'over_allowance',
    reason: `${usedThisHour} packets this hour from this neighbour (allowance ${allowance}, from its usual rate)`,
  };
}

/** What a recipient knows about the sender of a message when it decides to take it. */
export interface SenderFacts {
  /** The claimed sender entity is a contact or a trusted neighbour here (and not revoked). */
  known: boolean;
  /** The manifest's signature verified against that entity's key. */
  verified: boolean;
  /** This very message was taken before (a re-sent copy): never refused the second time. */
  takenBefore: boolean;
  /** First-contact messages from that entity taken in the last 24 h. */
  firstContactsToday: number;
  /** Whether the hops saw it flagged as a first contact (15.7); undefined without the credit. */
  flagged?: boolean;
}

/**
 * Does the recipient take a message? Mail from a contact always (verified: a stranger could
 * claim a contact's fingerprint, and then the signature fails); a first contact only while
 * `firstContactAllowed`. Why at the recipient: only it knows who its contacts are (relays see no
 * sender). What it does not stop: a sender with a new identity per message (claims are free for
 * strangers); the per-link limits upstream are the bound for that.
 */
export function admitMessage(facts: SenderFacts, policy: SpamPolicy): { firstContact: boolean } | Refusal {
  if (facts.known && facts.verified) return { firstContact: false };
  // An unflagged first contact went past every hop's credit: refused, and its sender's agent sends
  // it again flagged at once (not final). Why refuse: else a spammer leaves the flag off.
  if (facts.flagged === false)
    return {
      code: 'first_contact_unflagged',
      reason:
        'a first message to someone who does not know you must be flagged as one for the relays; it is sent again flagged',
    };
  if (facts.takenBefore || firstContactAllowed(facts.firstContactsToday, policy))
    return { firstContact: true };
  return {
    code: 'first_contact_limit',
    reason: `you are not the recipient's contact, and it takes at most ${policy.firstContactsPerDay} first messages a day from one sender; send it again tomorrow, or once they have replied`,
  };
}

/**
 * May our user issue one more invitation, with `issuedLast30Days` issued (redeemed, or still open)
 * and our entity `ageMs` old? invitationQuota gives the reason for the quota.
 */
export function invitationDecision(
  issuedLast30Days: number,
  ageMs: number,
  policy: SpamPolicy,
): Refusal | undefined {
  if (invitationAllowed(issuedLast30Days, ageMs, policy)) return undefined;
  return {
    code: 'invitation_quota',
    reason: `${issuedLast30Days} invitations in the last 30 days (quota ${invitationQuota(ageMs, policy)} for an identity of ${Math.floor(Math.max(0, ageMs) / DAY)} days): wait until an older one expires or falls out of the 30 days`,
  };
}

/**
 * The weight of the evidence one neighbour sent with its revocation of an agent we also trust (15.5,
 * "Evidence against a trusted agent"): its verified complaints, at most minComplaints - 1 (2). Why
 * count it: a spammer with several attack edges delivers up to a threshold's worth through each;
 * once one edge revoked it, the others need one complaint of their own instead of three. Why
 * capped below the floor, per revoker: the evidence proves complaints were made at the revoker, not
 * that the recipients were honest (a revoker may be a framer signing for its own sybils), so one
 * neighbour's word never suspends an agent here by itself. Distinct revokers add up (each once).
 */
export function evidenceWeight(verifiedItems: number, policy: SpamPolicy): number {
  return Math.max(0, Math.min(verifiedItems, policy.minComplaints - 1));
}

/**
 * How much of the neighbours' evidence (facts.evidence) counts now: all of it beside at least one
 * open complaint of our own (about a first contact, where hops know them: 15.7), none otherwise.
 * Why a complaint of our own: the evidence is a second witness, not a verdict; a framer's notices
 * alone never move a link. Why about a first contact: spam is first contacts, and a contact's
 * mistaken Junk click (1 in 2,000) beside a framer's notice must not cost an honest sender its
 * link. When our own complaints are cleared (the agent cut a source off) the evidence stops
 * counting, and the suspension lifts.
 */
export function evidenceCounted(facts: NeighbourFacts): number {
  const own = facts.openFirstContact ?? facts.openComplaints;
  return own + OPEN_TOLERANCE >= 1 ? (facts.evidence ?? 0) : 0;
}
