import { describe, expect, test } from '@jest/globals';
import {
  addDecayed,
  complaintCounts,
  complaintThreshold,
  complaintWeight,
  decayedValue,
  DEFAULT_SPAM_POLICY,
  evidenceCounted,
  evidenceWeight,
  admitMessage,
  firstContactAllowed,
  forwardAllowance,
  forwardDecision,
  firstContactCredit,
  firstContactHeld,
  invitationDecision,
  invitationAllowed,
  invitationQuota,
  judgeNeighbour,
  recipientCounts,
  relayCutEpoch,
  type NeighbourFacts,
} from '../../agent/spam/decisions.ts';

const DAY = 86_400_000;
const P = DEFAULT_SPAM_POLICY;
const facts = (f: Partial<NeighbourFacts>): NeighbourFacts => ({
  openComplaints: 0,
  traffic: 0,
  cuts: 0,
  revoked: false,
  ...f,
});

describe('decaying counts', () => {
  test('halve every half-life, never grow for a clock that stepped back, and add on top of the decayed value', () => {
    const d = { value: 8, at: 0 };
    expect(decayedValue(d, P.halfLifeMs, P.halfLifeMs)).toBeCloseTo(4);
    expect(decayedValue(d, 3 * P.halfLifeMs, P.halfLifeMs)).toBeCloseTo(1);
    expect(decayedValue({ value: 8, at: 1000 }, 0, P.halfLifeMs)).toBe(8);
    const added = addDecayed(d, 1, P.halfLifeMs, P.halfLifeMs);
    expect(added.value).toBeCloseTo(5);
    expect(added.at).toBe(P.halfLifeMs);
    expect(complaintWeight(0, 2 * P.halfLifeMs, P.halfLifeMs)).toBeCloseTo(0.25);
  });
});

describe('threshold per neighbour', () => {
  test('is the floor for a quiet neighbour, grows with the traffic it hands on, and stops at the cap', () => {
    expect(complaintThreshold(0, P)).toBe(3);
    expect(complaintThreshold(100, P)).toBe(3);
    expect(complaintThreshold(400, P)).toBe(4);
    expect(complaintThreshold(1_000_000, P)).toBe(5); // filler traffic buys at most two more spam
  });
});

describe('judging a neighbour', () => {
  test('below the threshold nothing happens; at it the neighbour is suspended, not yet revoked', () => {
    expect(judgeNeighbour(facts({ openComplaints: 2 }), 0, P)).toEqual({ action: 'none' });
    // Three complaints made today, a day ago and three days ago: their decayed sum is under 3, still three.
    const v = judgeNeighbour(facts({ openComplaints: 1 + Math.pow(2, -1 / 7) + Math.pow(2, -3 / 7) }), 0, P);
    expect(v.action).toBe('suspend');
    // Three whose older two are weeks old weigh as two.
    expect(judgeNeighbour(facts({ openComplaints: 1 + 2 * Math.pow(2, -2) }), 0, P)).toEqual({
      action: 'none',
    });
  });

  test('a suspended neighbour waits out the settle time, then is revoked if nothing cleared its complaints', () => {
    const suspended = facts({ openComplaints: 3, suspendedAt: 1000 });
    expect(judgeNeighbour(suspended, 1000 + P.settleMs - 1, P)).toEqual({
      action: 'wait',
      until: 1000 + P.settleMs,
    });
    const v = judgeNeighbour(suspended, 1000 + P.settleMs, P);
    expect(v).toMatchObject({ action: 'revoke', reason: 'complaints' });
  });

  test('an honest relay whose upstream cut the source off is lifted, not revoked (the clearing rule)', () => {
    // Its complaints were cleared by cut notices: the open weight fell under the threshold.
    expect(
      judgeNeighbour(facts({ openComplaints: 0, suspendedAt: 1000, cuts: 1 }), 1000 + P.settleMs, P),
    ).toEqual({ action: 'lift', reason: expect.any(String) });
  });

  test('a neighbour that keeps cutting sources off is revoked itself; a revoked one is left alone', () => {
    expect(judgeNeighbour(facts({ cuts: P.maxCuts }), 0, P)).toMatchObject({
      action: 'revoke',
      reason: 'cuts',
    });
    // Cut-offs within about a half-life count whole, older ones less.
    expect(judgeNeighbour(facts({ cuts: P.maxCuts - 0.4 }), 0, P)).toMatchObject({ action: 'revoke' });
    expect(judgeNeighbour(facts({ cuts: P.maxCuts - 0.6 }), 0, P)).toEqual({ action: 'none' });
    expect(judgeNeighbour(facts({ openComplaints: 100, revoked: true }), 0, P)).toEqual({ action: 'none' });
  });

  test('a slow drip that never reaches the decayed threshold is revoked by the count that does not decay', () => {
    // One spam every few days: the decayed weight stays near 1, but ten stand open in all.
    const drip = facts({ openComplaints: 1.2, traffic: 2, lifetimeOpen: 10, lifetimeTraffic: 12 });
    expect(judgeNeighbour(drip, 0, P)).toMatchObject({ action: 'revoke', reason: 'complaints' });
    expect(judgeNeighbour({ ...drip, lifetimeOpen: 9 }, 0, P)).toEqual({ action: 'none' });
    // A relay that handed on 5,000 packets over the years may have 50 mistaken complaints.
    expect(
      judgeNeighbour(
        facts({ openComplaints: 1, traffic: 200, lifetimeOpen: 40, lifetimeTraffic: 5000 }),
        0,
        P,
      ),
    ).toEqual({
      action: 'none',
    });
  });

  test('a link whose first contacts have no good record is suspended at two complaints about first contacts', () => {
    const fresh = { firstContactGood: 0, openFirstContact: 2, openComplaints: 2 };
    expect(judgeNeighbour(facts(fresh), 0, P)).toMatchObject({
      action: 'suspend',
      reason: expect.stringMatching(/first contacts/),
    });
    // Once its first contacts earned creditPerGood good verdicts, the ordinary threshold (3).
    expect(judgeNeighbour(facts({ ...fresh, firstContactGood: P.creditPerGood }), 0, P)).toEqual({
      action: 'none',
    });
    // Complaints about mail between contacts keep the ordinary threshold on probation too.
    expect(judgeNeighbour(facts({ ...fresh, openFirstContact: 0 }), 0, P)).toEqual({ action: 'none' });
    // Where the credit is not kept (firstContactGood undefined), no probation.
    expect(judgeNeighbour(facts({ openFirstContact: 2, openComplaints: 2 }), 0, P)).toEqual({
      action: 'none',
    });
  });

  test('a relay hands on cut notices under one act per predecessor and half-life', () => {
    expect(relayCutEpoch(P.halfLifeMs - 1, P)).toBe(relayCutEpoch(0, P));
    expect(relayCutEpoch(P.halfLifeMs, P)).toBe(relayCutEpoch(0, P) + 1);
  });

  test('a busy relay carries more mistaken complaints before it is suspended', () => {
    expect(judgeNeighbour(facts({ openComplaints: 3, traffic: 450 }), 0, P)).toEqual({ action: 'none' });
    expect(judgeNeighbour(facts({ openComplaints: 3, traffic: 50 }), 0, P).action).toBe('suspend');
  });
});

describe('the recipient, first contacts, invitations, evidence', () => {
  test('the recipient counts against a neighbour that is the sender itself, or for a flagged first contact', () => {
    expect(recipientCounts('A'.repeat(40), 'A'.repeat(40))).toBe(true);
    expect(recipientCounts('B'.repeat(40), 'A'.repeat(40))).toBe(false);
    expect(recipientCounts(undefined, 'A'.repeat(40))).toBe(false);
    expect(recipientCounts('B'.repeat(40), 'A'.repeat(40), true)).toBe(true);
  });

  test('first contacts are limited per entity per day', () => {
    expect(firstContactAllowed(0, P)).toBe(true);
    expect(firstContactAllowed(P.firstContactsPerDay - 1, P)).toBe(true);
    expect(firstContactAllowed(P.firstContactsPerDay, P)).toBe(false);
  });

  test('a new entity may have three invitations out; the quota ramps up to the full one over its first month', () => {
    expect(invitationQuota(0, P)).toBe(3);
    expect(invitationQuota(15 * DAY, P)).toBe(3);
    expect(invitationQuota(24 * DAY, P)).toBe(4);
    expect(invitationQuota(30 * DAY, P)).toBe(5);
    expect(invitationQuota(3000 * DAY, P)).toBe(5);
    expect(invitationAllowed(2, 0, P)).toBe(true);
    expect(invitationAllowed(3, 0, P)).toBe(false);
    expect(invitationAllowed(4, 60 * DAY, P)).toBe(true);
    expect(invitationAllowed(5, 60 * DAY, P)).toBe(false);
    expect(invitationDecision(3, 0, P)).toMatchObject({ code: 'invitation_quota' });
    expect(invitationDecision(2, 0, P)).toBeUndefined();
  });

  test('a first contact is taken while its sender has written fewer than the limit today; a contact always', () => {
    const stranger = { known: false, verified: false, takenBefore: false };
    expect(admitMessage({ ...stranger, firstContactsToday: P.firstContactsPerDay - 1 }, P)).toEqual({
      firstContact: true,
    });
    expect(admitMessage({ ...stranger, firstContactsToday: P.firstContactsPerDay }, P)).toMatchObject({
      code: 'first_contact_limit',
    });
    // A re-sent copy of a message already taken is never refused.
    expect(
      admitMessage({ ...stranger, takenBefore: true, firstContactsToday: P.firstContactsPerDay }, P),
    ).toEqual({ firstContact: true });
    // A contact, verified: no limit. A stranger claiming a contact's fingerprint fails the signature.
    const contact = { known: true, verified: true, takenBefore: false, firstContactsToday: 99 };
    expect(admitMessage(contact, P)).toEqual({ firstContact: false });
    expect(admitMessage({ ...contact, verified: false }, P)).toMatchObject({ code: 'first_contact_limit' });
  });

  test('the forwarding allowance: the floor for a new neighbour, a multiple of its usual rate for a busy one', () => {
    expect(forwardAllowance(0, P)).toBe(P.forwardFloorPerHour);
    const meanLifeHours = P.halfLifeMs / Math.LN2 / 3_600_000;
    // A relay that hands on 100 packets an hour has decayed traffic ~100 × mean life.
    expect(Math.abs(forwardAllowance(100 * meanLifeHours, P) - 300)).toBeLessThanOrEqual(1);
    expect(forwardDecision(0, P.forwardFloorPerHour - 1, P)).toBeUndefined();
    expect(forwardDecision(0, P.forwardFloorPerHour, P)).toMatchObject({ code: 'over_allowance' });
  });

  test("one neighbour's evidence weighs less than the floor: it never suspends an agent by itself", () => {
    expect(evidenceWeight(1, P)).toBe(1);
    expect(evidenceWeight(50, P)).toBe(P.minComplaints - 1);
    const base = { traffic: 0, cuts: 0, revoked: false, firstContactGood: 0 };
    // Evidence alone (the most one revoker can send, or two revokers'): nothing.
    expect(judgeNeighbour({ ...base, openComplaints: 0, openFirstContact: 0, evidence: 2 }, 0, P)).toEqual({
      action: 'none',
    });
    expect(judgeNeighbour({ ...base, openComplaints: 0, openFirstContact: 0, evidence: 4 }, 0, P)).toEqual({
      action: 'none',
    });
    // One complaint of our own about a first contact, without evidence: under probation's 2.
    expect(judgeNeighbour({ ...base, openComplaints: 1, openFirstContact: 1 }, 0, P)).toEqual({
      action: 'none',
    });
    // The same complaint beside a revoker's evidence: suspended, and the reason says so.
    const v = judgeNeighbour({ ...base, openComplaints: 1, openFirstContact: 1, evidence: 2 }, 0, P);
    expect(v).toMatchObject({
      action: 'suspend',
      reason: expect.stringMatching(/2\.0 of them neighbours' evidence/),
    });
    // A complaint about mail between contacts does not bring the evidence in.
    expect(judgeNeighbour({ ...base, openComplaints: 1, openFirstContact: 0, evidence: 2 }, 0, P)).toEqual({
      action: 'none',
    });
    // Our complaint cleared (the agent cut its source off): the evidence stops counting, lifted.
    expect(
      judgeNeighbour({ ...base, openComplaints: 0, openFirstContact: 0, evidence: 2, suspendedAt: 0 }, 10, P),
    ).toMatchObject({ action: 'lift' });
    expect(evidenceCounted({ ...base, openComplaints: 1, openFirstContact: 1, evidence: 2 })).toBe(2);
  });
});

describe('first-contact credit', () => {
  test('a new link holds one unjudged first contact; good verdicts earn more, up to the cap', () => {
    expect(firstContactCredit(0, P)).toBe(P.creditStart);
    expect(firstContactHeld(0, 0, P)).toBe(false);
    expect(firstContactHeld(P.creditStart, 0, P)).toBe(true);
    expect(firstContactCredit(P.creditPerGood * 3, P)).toBe(P.creditStart + 3);
    expect(firstContactCredit(1e9, P)).toBe(P.creditMax);
  });

  test('complaints about first contacts always count; about mail between contacts once per recipient', () => {
    expect(complaintCounts(true, 5)).toBe(true);
    expect(complaintCounts(false, 0)).toBe(true);
    expect(complaintCounts(false, 1)).toBe(false);
  });
});
