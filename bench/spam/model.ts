/**
 * The spam simulation (bench/spam): 10,000 agents on a trust graph, hour by hour. It models the
 * decisions abstractly over the graph: messages are paths (random walks over live trust links),
 * complaints travel back along them, and every honest hop judges its predecessor with the same
 * pure functions the node uses (agent/spam/decisions.ts: complaintThreshold, judgeNeighbour,
 * recipientCounts, firstContactAllowed). No crypto per message and no frames: signatures are
 * taken to hold (what test/spam checks on real nodes), so a forged complaint is not modelled, and
 * the settle time (a minute) is shorter than a step (an hour): a suspended hop's verdict is
 * settled within the step, upstream hops first, as cut notices would arrive. With `credit` it also
 * applies the first-contact credit of docs/protocol.md 15.7 (firstContactHeld, complaintCounts),
 * which the node enforces when spam.firstContactCredit is on: every recipient gives a verdict when it reads a first
 * contact (1–12 h after delivery), Junk or kept, and that verdict releases the credit at every hop.
 */
import {
  addDecayed,
  complaintCounts,
  complaintWeight,
  decayedValue,
  DEFAULT_SPAM_POLICY,
  evidenceWeight,
  firstContactAllowed,
  firstContactCredit,
  firstContactHeld,
  forwardAllowance,
  judgeNeighbour,
  recipientCounts,
  relayCutEpoch,
  type Decayed,
  type SpamPolicy,
} from '../../agent/spam/decisions.ts';

const HOUR = 3_600_000;

/**
 * The node's policy, with the forwarding floor in messages: the simulation's unit is a message
 * (one packet for a small mail), the node's floor of 120 packets/h leaves room for attachments.
 */
export const SIM_POLICY: Readonly<SpamPolicy> = Object.freeze({
  ...DEFAULT_SPAM_POLICY,
  forwardFloorPerHour: 1,
});
const DAY = 24 * HOUR;

export type Attack = 'sybil' | 'sleeper' | 'drip' | 'collude' | 'frame' | 'flood' | 'none';

export interface SimOptions {
  adj: number[][];
  attack: Attack;
  random: () => number;
  weeks: number;
  /** Attacking agents (taken over at random; their trust links are the attack edges). */
  attackers: number;
  /** Spam per attacker per hour while it spams. */
  spamPerHour: number;
  /** Apply forwardAllowance (in messages, floor 1/h) at every hop. */
  allowance: boolean;
  /** Apply first-contact credit at every hop (firstContactHeld; the node with spam.firstContactCredit). */
  credit?: boolean;
  /**
   * Evidence against a trusted agent (docs/protocol.md 15.5): a hop that revokes a neighbour tells
   * its other neighbours; those that also link with it count the evidence (evidenceWeight, beside a
   * complaint of their own: evidenceCounted in judgeNeighbour). Framers send it against every honest
   * neighbour they complained about.
   */
  evidence?: boolean;
  policy?: SpamPolicy;
}

export interface SimResult {
  attackEdges: number;
  spamDelivered: number;
  spamPerAttackEdge: number;
  spamPerUserWeek: number;
  /** Hours from an attack edge's first spam to its cut-off (median, max; cut-off edges only). */
  cutoffHours: { median: number; max: number; cut: number; used: number };
  firstContacts: { tried: number; delivered: number };
  honestLinksLost: number;
  honestAgentsKeepingAllLinks: number;
  honestMessages: number;
  /** Honest messages that waited at least an hour for a hop's allowance or credit. */
  honestDelayed: number;
  /** Legitimate first contacts delivered after waiting: how many, median and max hours. */
  firstDelayed: { count: number; median: number; max: number };
  /** Spam delivered through the worst attack edge. */
  worstEdge: number;
  /** How many attack edges delivered 0, 1, 2, ... spam (index = spam). */
  edgeHistogram: number[];
  /** Per attack edge that delivered more than 5: spam, its credit when the attack began, spam kept. */
  overFive: { spam: number; creditAtStart: number; kept: number }[];
}

interface Row {
  c: Complaint;
  /** Index in the complaint's path of the hop that keeps this row. */
  i: number;
  at: number;
  cleared: boolean;
  cutId?: number;
}

interface Complaint {
  path: number[];
  recipient: number;
  /** The message was a first contact (flagged to the hops for the credit). */
  first: boolean;
  /** When the message was sent (a cut clears only complaints about packets before it). */
  sentAt: number;
}

interface Pair {
  traffic: Decayed;
  total: number;
  rows: Row[];
  cuts: Decayed;
  cutIds: Set<number>;
  suspendedAt?: number;
  /** Hour and packets handed on in it (the allowance). */
  hour: number;
  used: number;
  /** First contacts handed on from this neighbour whose verdict has not come back (the credit). */
  unjudged: number;
  /** Decayed good verdicts (read, no complaint) on its first contacts. */
  good: Decayed;
  /** Decayed evidence weight from neighbours' revocations of it (each revoker once). */
  evidence: Decayed;
  evidenceFrom?: Set<number>;
}

export function simulate(o: SimOptions): SimResult {
  const policy = o.policy ?? SIM_POLICY;
  const { adj, random } = o;
  const n = adj.length;
  const hours = o.weeks * 7 * 24;
  const key = (h: number, p: number) => h * n + p;
  const pairs = new Map<number, Pair>();
  const dead = new Set<number>(); // undirected: min * n + max
  const deadAt = new Map<number, number>();
  /** The cut id of the revocation of a link, reused for complaints that arrive after it (as the node does). */
  const deadCut = new Map<number, number>();
  // A week of honest traffic before any attack: links have a history, as real ones do.
  const warmup = 7 * 24;
  const deadKey = (a: number, b: number) => (a < b ? a * n + b : b * n + a);
  const pair = (h: number, p: number): Pair => {
    let x = pairs.get(key(h, p));
    if (!x) {
      x = {
        traffic: { value: 0, at: 0 },
        total: 0,
        rows: [],
        cuts: { value: 0, at: 0 },
        cutIds: new Set(),
        hour: -1,
        used: 0,
        unjudged: 0,
        good: { value: 0, at: 0 },
        evidence: { value: 0, at: 0 },
      };
      pairs.set(key(h, p), x);
    }
    return x;
  };

  // Attackers and their roles.
  const attacker = new Uint8Array(n);
  const attackers: number[] = [];
  while (attackers.length < o.attackers) {
    const a = Math.floor(random() * n);
    if (!attacker[a] && adj[a].length > 0) {
      attacker[a] = 1;
      attackers.push(a);
    }
  }
  const honest = (a: number) => attacker[a] === 0;
  const attackEdges: [number, number][] = [];
  for (const a of attackers) for (const h of adj[a]) if (honest(h)) attackEdges.push([a, h]);
  const firstSpam = new Map<number, number>();
  const cutAt = new Map<number, number>();

  // Honest contacts of the framers (attackers that receive honest mail and complain about all of it).
  const framedBy = new Map<number, number[]>();
  if (o.attack === 'frame') {
    for (const f of attackers) {
      const senders: number[] = [];
      for (let k = 0; k < 40 && senders.length < 20; k++) {
        const p = walk(f, 1 + Math.floor(random() * 3), undefined);
        const s = p?.[p.length - 1];
        if (s !== undefined && honest(s) && !senders.includes(s)) senders.push(s);
      }
      framedBy.set(f, senders);
    }
  }

  function alive(a: number, b: number): boolean {
    return !dead.has(deadKey(a, b));
  }

  /** A random walk of `len` hops over live links without revisits; null if stuck. */
  function walk(from: number, len: number, first: number | undefined): number[] | null {
    const path = [from];
    const seen = new Set(path);
    let at = from;
    for (let step = 0; step < len; step++) {
      const choices = (step === 0 && first !== undefined ? [first] : adj[at]).filter(
        (b) => !seen.has(b) && alive(at, b),
      );
      if (choices.length === 0) return null;
      at = choices[Math.floor(random() * choices.length)];
      path.push(at);
      seen.add(at);
    }
    return path;
  }

  /**
   * Hands a message along the path: refused where a hop suspended its predecessor, (with the
   * allowance) is full this hour, or (with the credit, for a first contact) has its predecessor's
   * credit all in unjudged first contacts.
   */
  function carry(path: number[], now: number, first = false): boolean {
    const hour = Math.floor(now / HOUR);
    const credit = o.credit === true && first;
    for (let i = 1; i < path.length; i++) {
      const h = path[i];
      if (!honest(h)) continue;
      const p = pair(h, path[i - 1]);
      if (p.suspendedAt !== undefined) return false;
      if (credit && firstContactHeld(p.unjudged, decayedValue(p.good, now, policy.halfLifeMs), policy))
        return false;
      if (o.allowance && hour >= warmup) {
        if (p.hour !== hour) {
          p.hour = hour;
          p.used = 0;
        }
        if (p.used >= forwardAllowance(decayedValue(p.traffic, now, policy.halfLifeMs), policy)) return false;
      }
    }
    if (o.allowance)
      for (let i = 1; i < path.length; i++) if (honest(path[i])) pair(path[i], path[i - 1]).used++;
    if (credit)
      for (let i = 1; i < path.length; i++) if (honest(path[i])) pair(path[i], path[i - 1]).unjudged++;
    for (let i = 1; i < path.length; i++) {
      if (!honest(path[i])) continue;
      const p = pair(path[i], path[i - 1]);
      p.traffic = addDecayed(p.traffic, 1, now, policy.halfLifeMs);
      p.total++;
    }
    return true;
  }

  // Complaints due per hour.
  const due: Complaint[][] = Array.from({ length: hours + 48 }, () => []);
  // Verdicts on first contacts due per hour (the recipient read it: complaint or not), for the credit.
  const verdicts: { path: number[]; good: boolean }[][] = Array.from({ length: hours + 48 }, () => []);
  const verdict = (path: number[], good: boolean, hour: number) => {
    if (o.credit) verdicts[Math.min(verdicts.length - 1, hour)].push({ path, good });
  };
  /** A verdict came back along the path: each honest hop's unjudged count falls; a good one earns credit. */
  function onVerdict(v: { path: number[]; good: boolean }, now: number): void {
    for (let i = 1; i < v.path.length; i++) {
      if (!honest(v.path[i])) continue;
      const p = pairs.get(key(v.path[i], v.path[i - 1]));
      if (!p) continue;
      p.unjudged = Math.max(0, p.unjudged - 1);
      if (v.good) p.good = addDecayed(p.good, 1, now, policy.halfLifeMs);
    }
  }
  const schedule = (c: Complaint, hour: number) => due[Math.min(due.length - 1, hour)].push(c);
  // First contacts per (sender, recipient day).
  const firstToday = new Map<number, number>();

  const touched = new Set<number>();
  function countRow(h: number, pred: number, c: Complaint, i: number, now: number): void {
    const p = pair(h, pred);
    if (o.credit) {
      // With the credit, hops know first contacts: a contact's complaints count once (complaintCounts).
      const fromRecipient = p.rows.filter(
        (r) => !r.cleared && !r.c.first && r.c.recipient === c.recipient,
      ).length;
      if (!complaintCounts(c.first, fromRecipient)) return;
    }
    p.rows.push({ c, i, at: now, cleared: false });
    touched.add(key(h, pred));
  }

  /** Clears the rows downstream of hop index i of a complaint (cut notices), honest hops only. */
  function cutForward(c: Complaint, i: number, cutId: number, now: number, cutTime: number): void {
    // A cut clears only complaints about packets handed on before it (rejected_cut_before_packet).
    if (c.sentAt > cutTime) return;
    let id = cutId;
    for (let j = i + 1; j < c.path.length; j++) {
      const h = c.path[j];
      if (!honest(h)) return;
      const p = pairs.get(key(h, c.path[j - 1]));
      const row = p?.rows.find((r) => r.c === c && !r.cleared);
      if (p && row) {
        row.cleared = true;
        row.cutId = id;
        if (!p.cutIds.has(id)) {
          p.cutIds.add(id);
          p.cuts = addDecayed(p.cuts, 1, now, policy.halfLifeMs);
        }
        touched.add(key(h, c.path[j - 1]));
      }
      // An honest hop hands the notice on under its own act for that predecessor (relayCutId).
      id = relayCut(h, c.path[j - 1], now);
    }
  }

  /** The node's relayCutId: one cut act per (hop, predecessor) and half-life, however many upstream. */
  const relayCuts = new Map<string, number>();
  function relayCut(h: number, pred: number, now: number): number {
    const k = `${h}:${pred}:${relayCutEpoch(now, policy)}`;
    let id = relayCuts.get(k);
    if (id === undefined) relayCuts.set(k, (id = nextCut++));
    return id;
  }

  let nextCut = 1;
  const forgedCut = new Map<number, { id: number; used: number }>();

  function onComplaint(c: Complaint, now: number): void {
    const { path } = c;
    const last = path.length - 1;
    // The recipient counts against the neighbour that handed it the message when that neighbour is
    // the sender (a direct message), or (with the credit) for any first contact.
    if (recipientCounts(last === 1 ? 'sender' : 'relay', 'sender', o.credit === true && c.first))
      countRow(path[last], path[last - 1], c, last, now);
    for (let i = last - 1; i >= 1; i--) {
      const h = path[i];
      const pred = path[i - 1];
      if (!honest(h)) {
        // A colluding relay drops the complaint and forges a cut notice for it downstream.
        if (o.attack === 'collude') {
          // Its best play: one made-up act per threshold's worth of complaints (each act clears
          // what came before it; every act counts against it as a cut-off).
          let f = forgedCut.get(h);
          if (!f || f.used >= policy.minComplaints - 1) forgedCut.set(h, (f = { id: nextCut++, used: 0 }));
          f.used++;
          cutForward(c, i, f.id, now, now);
        }
        return;
      }
      if (!alive(h, pred)) {
        // The source is cut off here already: clear downstream at once.
        cutForward(c, i, deadCut.get(deadKey(h, pred)) ?? -h - 1, now, deadAt.get(deadKey(h, pred)) ?? now);
        return;
      }
      countRow(h, pred, c, i, now);
    }
  }

  function facts(p: Pair, now: number) {
    let open = 0;
    let openFirst = 0;
    let lifetime = 0;
    for (const r of p.rows) {
      if (r.cleared) continue;
      lifetime++;
      const w = complaintWeight(r.at, now, policy.halfLifeMs);
      open += w;
      if (r.c.first) openFirst += w;
    }
    return {
      openComplaints: open,
      traffic: decayedValue(p.traffic, now, policy.halfLifeMs),
      cuts: decayedValue(p.cuts, now, policy.halfLifeMs),
      firstContactGood: o.credit ? decayedValue(p.good, now, policy.halfLifeMs) : undefined,
      evidence: decayedValue(p.evidence, now, policy.halfLifeMs),
      openFirstContact: openFirst,
      lifetimeOpen: lifetime,
      lifetimeTraffic: p.total,
      suspendedAt: p.suspendedAt,
      revoked: false,
    };
  }

  function revoke(h: number, pred: number, now: number): void {
    dead.add(deadKey(h, pred));
    deadAt.set(deadKey(h, pred), now);
    const p = pair(h, pred);
    p.suspendedAt = undefined;
    if (!honest(pred)) {
      const k = deadKey(h, pred);
      if (!cutAt.has(k)) cutAt.set(k, now);
    }
    const id = relayCut(h, pred, now);
    deadCut.set(deadKey(h, pred), id);
    if (o.evidence) tellNeighbours(h, pred, p.rows.filter((r) => !r.cleared).length, now);
    for (const r of p.rows) if (!r.cleared) cutForward(r.c, r.i, id, now, now);
  }

  /** The revocation notice of h about pred, with `items` signed complaints, to h's other neighbours. */
  function tellNeighbours(h: number, pred: number, items: number, now: number): void {
    const weight = evidenceWeight(Math.min(items, 32), policy);
    if (weight <= 0) return;
    for (const x of adj[h]) {
      if (x === pred || !honest(x) || !alive(h, x) || !alive(x, pred) || !adj[x].includes(pred)) continue;
      const q = pair(x, pred);
      q.evidenceFrom ??= new Set();
      if (q.evidenceFrom.has(h)) continue;
      q.evidenceFrom.add(h);
      q.evidence = addDecayed(q.evidence, weight, now, policy.halfLifeMs);
      touched.add(key(x, pred));
    }
  }

  /** Settles the verdicts of this step, hops whose predecessor waits on nobody first. */
  function judge(now: number): void {
    const pending = new Set<number>();
    const visit = (k: number) => {
      const h = Math.floor(k / n);
      const pred = k % n;
      if (!alive(h, pred)) return;
      const p = pair(h, pred);
      const v = judgeNeighbour(facts(p, now), now, policy);
      if (v.action === 'suspend') {
        p.suspendedAt = now;
        pending.add(k);
      } else if (v.action === 'revoke') revoke(h, pred, now);
      else if (v.action === 'lift') p.suspendedAt = undefined;
      else if (v.action === 'wait') pending.add(k);
    };
    while (touched.size > 0) {
      const batch = [...touched];
      touched.clear();
      for (const k of batch) visit(k);
      // The settle time passes: an upstream verdict first (its cut notices clear downstream).
      let progress = true;
      while (progress && pending.size > 0) {
        progress = false;
        for (const k of [...pending]) {
          const pred = k % n;
          const waitsUpstream = [...pending].some((o2) => Math.floor(o2 / n) === pred);
          if (waitsUpstream) continue;
          pending.delete(k);
          settle(k, now);
          progress = true;
        }
      }
      for (const k of [...pending]) {
        pending.delete(k);
        settle(k, now);
      }
    }
  }

  function settle(k: number, now: number): void {
    const h = Math.floor(k / n);
    const pred = k % n;
    if (!alive(h, pred)) return;
    const p = pair(h, pred);
    const later = (p.suspendedAt ?? now) + policy.settleMs;
    const v = judgeNeighbour(facts(p, later), later, policy);
    if (v.action === 'revoke') revoke(h, pred, now);
    else if (v.action === 'lift' || v.action === 'none') p.suspendedAt = undefined;
  }

  let spamDelivered = 0;
  let honestMessages = 0;
  const fc = { tried: 0, delivered: 0 };
  const honestAgents = [...Array(n).keys()].filter(honest);
  const spamStart = o.attack === 'sleeper' ? Math.floor(hours / 2) + warmup : warmup;
  let honestDelayed = 0;
  const firstDelayedHours: number[] = [];
  const perEdge = new Map<number, number>();
  const keptPerEdge = new Map<number, number>();
  const creditAtStart = new Map<number, number>();
  let backlog: { from: number; first: boolean; tries: number }[] = [];

  for (let hour = 0; hour < hours; hour++) {
    const now = hour * HOUR;
    if (hour % 24 === 0) firstToday.clear();
    // Honest traffic: 2 messages per person per day, 5% of them first contacts.
    const sends = Math.round((honestAgents.length * 2) / 24);
    const todo = backlog;
    backlog = [];
    for (let s = 0; s < sends; s++) {
      todo.push({
        from: honestAgents[Math.floor(random() * honestAgents.length)],
        first: random() < 0.05,
        tries: 0,
      });
    }
    for (const m of todo) {
      const { from, first } = m;
      let path: number[] | null = null;
      let walked = false;
      for (let tries = 0; tries < 4 && !path; tries++) {
        const p = walk(from, first ? 3 + Math.floor(random() * 3) : 1 + Math.floor(random() * 3), undefined);
        if (p && honest(p[p.length - 1])) {
          walked = true;
          if (carry(p, now, first)) path = p;
        }
      }
      // Waiting for an allowance or credit: tried again next hour (up to a day), as a re-send is.
      if (!path && walked && (o.allowance || o.credit) && m.tries < 24) {
        if (m.tries === 0) honestDelayed++;
        backlog.push({ ...m, tries: m.tries + 1 });
        continue;
      }
      if (first) fc.tried++;
      if (!path) continue;
      honestMessages++;
      if (first) {
        const rk = path[path.length - 1] * n + from;
        const sent = firstToday.get(rk) ?? 0;
        if (!firstContactAllowed(sent, policy)) continue;
        firstToday.set(rk, sent + 1);
        fc.delivered++;
        if (m.tries > 0) firstDelayedHours.push(m.tries);
      }
      // Read within 1 to 12 hours; a mistaken Junk click on honest mail: 1 in 2,000.
      const readAt = hour + 1 + Math.floor(random() * 12);
      const mistaken = random() < 0.0005;
      if (mistaken) schedule({ path, recipient: path[path.length - 1], sentAt: now, first }, readAt);
      if (first) verdict(path, !mistaken, readAt);
    }
    // Framers receive honest mail from their contacts and complain about all of it.
    for (const [f, senders] of framedBy) {
      for (const s of senders) {
        if (random() > 2 / 24) continue;
        const p = walkTo(s, f);
        if (p && carry(p, now)) schedule({ path: p, recipient: f, sentAt: now, first: false }, hour + 1);
      }
    }
    // Sleepers send honest-looking mail before they spam (their traffic raises their thresholds).
    if (o.attack === 'sleeper' && hour < spamStart) {
      for (const a of attackers) {
        for (let s = 0; s < 1; s++) {
          const p = walk(a, 1 + Math.floor(random() * 3), undefined);
          if (p && carry(p, now)) honestMessages++;
        }
      }
    }
    // Framers with evidence: the worst they can send, a notice with the most one revoker's word
    // weighs against every honest neighbour (its hop proofs are real: those neighbours handed it
    // mail), to every honest agent linked with both.
    if (o.evidence && o.attack === 'frame' && hour === spamStart)
      for (const f of attackers) for (const s of adj[f]) if (honest(s)) tellNeighbours(f, s, 32, now);
    if (hour === spamStart)
      for (const [a, h] of attackEdges)
        creditAtStart.set(
          deadKey(a, h),
          firstContactCredit(decayedValue(pair(h, a).good, now, policy.halfLifeMs), policy),
        );
    // Spam.
    if (o.attack !== 'none' && o.attack !== 'frame' && hour >= spamStart) {
      const rate = o.attack === 'drip' ? (hour % 48 === 0 ? 1 : 0) : o.spamPerHour;
      for (const a of attackers) {
        const spammer = o.attack === 'collude' ? colludingSource(a) : a;
        for (let s = 0; s < rate; s++) {
          const edges = adj[a].filter((h) => honest(h) && alive(a, h));
          if (edges.length === 0) break;
          const first = edges[Math.floor(random() * edges.length)];
          const p = walk(a, 1 + Math.floor(random() * 4), first);
          if (!p || !honest(p[p.length - 1])) continue;
          const full = spammer === a ? p : [spammer, ...p];
          // Spam is a first contact: its recipients are nobody the spammer knows.
          if (!carry(full, now, true)) continue;
          spamDelivered++;
          const k = deadKey(a, first);
          if (!firstSpam.has(k)) firstSpam.set(k, hour);
          perEdge.set(k, (perEdge.get(k) ?? 0) + 1);
          // 90% of recipients mark spam as Junk, within 1 to 12 hours; the rest read it and keep it.
          const readAt = hour + 1 + Math.floor(random() * 12);
          const junk = random() < 0.9;
          if (!junk) keptPerEdge.set(k, (keptPerEdge.get(k) ?? 0) + 1);
          if (junk) schedule({ path: full, recipient: p[p.length - 1], sentAt: now, first: true }, readAt);
          verdict(full, !junk, readAt);
        }
      }
    }
    for (const c of due[hour]) onComplaint(c, now);
    for (const v of verdicts[hour]) onVerdict(v, now);
    judge(now);
  }

  /** A colluding relay's spamming partner: a node only it links with (a made-up index beyond n). */
  function colludingSource(a: number): number {
    return -1 - a;
  }
  /** A path from s to f by random walk from f reversed (f's contacts are near it). */
  function walkTo(s: number, f: number): number[] | null {
    for (let tries = 0; tries < 4; tries++) {
      const p = walk(s, 1 + Math.floor(random() * 3), undefined);
      if (p && p[p.length - 1] === f) return p;
    }
    // Near: a direct walk from f back to s.
    const back = walk(f, 2, undefined);
    if (back && back[back.length - 1] === s) return back.reverse();
    return adj[s].includes(f) ? [s, f] : null;
  }

  const lost = new Set<number>();
  let honestLinksLost = 0;
  for (const k of dead) {
    const a = Math.floor(k / n);
    const b = k % n;
    if (honest(a) && honest(b)) {
      honestLinksLost++;
      lost.add(a);
      lost.add(b);
    }
  }
  const times: number[] = [];
  for (const [k, first] of firstSpam) {
    const cut = cutAt.get(k);
    if (cut !== undefined) times.push(cut / HOUR - first);
  }
  times.sort((x, y) => x - y);
  return {
    attackEdges: attackEdges.length,
    spamDelivered,
    spamPerAttackEdge: spamDelivered / Math.max(1, attackEdges.length),
    spamPerUserWeek: spamDelivered / honestAgents.length / o.weeks,
    cutoffHours: {
      median: times.length ? times[Math.floor(times.length / 2)] : NaN,
      max: times.length ? times[times.length - 1] : NaN,
      cut: cutAt.size,
      used: firstSpam.size,
    },
    firstContacts: fc,
    honestLinksLost,
    honestAgentsKeepingAllLinks: 1 - lost.size / honestAgents.length,
    honestMessages,
    honestDelayed,
    firstDelayed: {
      count: firstDelayedHours.length,
      median: firstDelayedHours.length
        ? firstDelayedHours.sort((x, y) => x - y)[firstDelayedHours.length >> 1]
        : 0,
      max: firstDelayedHours.reduce((m, x) => Math.max(m, x), 0),
    },
    worstEdge: [...perEdge.values()].reduce((m, x) => Math.max(m, x), 0),
    edgeHistogram: attackEdges.reduce<number[]>((hist, [a, h]) => {
      const x = perEdge.get(deadKey(a, h)) ?? 0;
      while (hist.length <= x) hist.push(0);
      hist[x]++;
      return hist;
    }, []),
    overFive: [...perEdge]
      .filter(([, x]) => x > 5)
      .map(([k, x]) => ({
        spam: x,
        creditAtStart: creditAtStart.get(k) ?? 0,
        kept: keptPerEdge.get(k) ?? 0,
      })),
  };
}

export { DAY };
