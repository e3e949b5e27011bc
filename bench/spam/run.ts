// Spam control on 10,000-agent trust graphs (Barabási–Albert and Kleinberg small world, degree
// capped at 150) under six attacks, with honest traffic (2 messages per person per day, 5% first
// contacts). The decisions are the node's own pure functions (agent/spam/decisions.ts) applied
// over the graph abstractly (bench/spam/model.ts says what is and is not modelled).
// Run: node --import tsx bench/spam/run.ts [--agents 10000] [--weeks 3] [--attackers 10] [--rate 10]
//        [--graphs ba,kleinberg] [--variants node,credit,evidence,allowance] [--attacks sybil,frame,…]
// Variants: 'node' = the rules without the credit, as the node ran them before r34 (maxCuts 3; its
// forwarding floor of 120 small packets/h does not bite at these rates); 'credit' = + first-contact
// credit and the once-per-recipient rule for complaints about mail between contacts, maxCuts 2 (as
// the node runs since r34: spam.firstContactCredit on by default); 'evidence' = 'credit' + evidence
// against a trusted agent (docs/protocol.md 15.5, the node since r35);
// 'allowance' = + the forwarding allowance at 1 message/h (SIM_POLICY).
import { barabasiAlbert, kleinberg } from './graphs.ts';
import { SIM_POLICY, simulate, type Attack } from './model.ts';
import { seededRandom } from '../../agent/sim/graphs.ts';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

const agents = Number(arg('agents', '10000'));
const weeks = Number(arg('weeks', '3'));
const only = arg('graphs', 'ba,kleinberg').split(',');
const variants = arg('variants', 'node,credit').split(',') as (
  'node' | 'credit' | 'evidence' | 'allowance'
)[];
const onlyAttacks = arg('attacks', '').split(',').filter(Boolean);
const attackers = Number(arg('attackers', '10'));
const rate = Number(arg('rate', '10'));
const side = Math.round(Math.sqrt(agents));

const graphs: [string, () => number[][]][] = (
  [
    ['ba', 'Barabasi-Albert m=3', () => barabasiAlbert(agents, 3, 150, seededRandom(1))],
    ['kleinberg', 'Kleinberg r=2 q=1', () => kleinberg(side, 1, 150, seededRandom(2))],
  ] as [string, string, () => number[][]][]
)
  .filter(([key]) => only.includes(key))
  .map(([, name, make]) => [name, make]);
const attacks: [Attack, string, number][] = [
  ['none', 'no attack (honest traffic only)', 0],
  ['sybil', `unlimited identities behind each attacker, ${rate} spam/h`, rate],
  ['sleeper', `honest for ${weeks / 2} weeks, then ${rate} spam/h`, rate],
  ['drip', 'slow drip: 1 spam per attacker every 48 h', 1],
  ['collude', `colluding relay drops complaints, forges cut notices, ${rate} spam/h`, rate],
  ['frame', 'framers complain about all honest mail they get', 0],
  ['flood', `discovery flood: ${rate * 10} first-contact spam/h`, rate * 10],
];

const pct = (x: number) => `${(x * 100).toFixed(2)}%`;
for (const [name, make] of graphs) {
  const adj = make();
  const degrees = adj.map((a) => a.length);
  const maxDegree = degrees.reduce((m, d) => Math.max(m, d), 0);
  const meanDegree = degrees.reduce((s, d) => s + d, 0) / agents;
  console.log(
    `\n${name}: ${agents} agents, mean degree ${meanDegree.toFixed(1)}, max ${maxDegree}, ${weeks} weeks, ${attackers} attackers`,
  );
  for (const [attack, what, spamPerHour] of attacks.filter(
    ([a]) => onlyAttacks.length === 0 || onlyAttacks.includes(a),
  )) {
    for (const variant of variants) {
      const t0 = Date.now();
      const r = simulate({
        adj,
        attack,
        random: seededRandom(7),
        weeks,
        attackers,
        spamPerHour,
        allowance: variant === 'allowance',
        credit: variant === 'credit' || variant === 'evidence',
        evidence: variant === 'evidence',
        // The credit goes with maxCuts 2, the default (docs/protocol.md 15.7); without it, 3.
        policy: variant === 'credit' || variant === 'evidence' ? SIM_POLICY : { ...SIM_POLICY, maxCuts: 3 },
      });
      const cut = r.cutoffHours;
      const label = {
        node: ' | without credit (the node before r34)',
        credit: ' | + first-contact credit (15.7)',
        evidence: ' | + credit + evidence against a trusted agent (15.5, as the node runs since r35)',
        allowance: ' | + forwarding allowance 1 message/h',
      }[variant];
      console.log(
        [
          `  ${attack.padEnd(8)} ${what}${label}`,
          `    spam per attack edge ${r.spamPerAttackEdge.toFixed(2)} (${r.spamDelivered} over ${r.attackEdges} edges, worst edge ${r.worstEdge})`,
          `edges by spam delivered (0, 1, 2, ...): ${r.edgeHistogram.join(' ')}${
            r.overFive.length
              ? `; over 5: ${r.overFive
                  .slice(0, 5)
                  .map((e) => `${e.spam} (credit ${e.creditAtStart} at the start, ${e.kept} kept)`)
                  .join(', ')}${r.overFive.length > 5 ? ', …' : ''}`
              : ''
          }`,
          `spam per honest user per week ${r.spamPerUserWeek.toFixed(4)}`,
          `cut-off ${cut.cut}/${cut.used} used edges, median ${Number.isNaN(cut.median) ? '-' : cut.median.toFixed(0)} h, max ${Number.isNaN(cut.max) ? '-' : cut.max.toFixed(0)} h`,
          `legit first contacts delivered ${pct(r.firstContacts.delivered / Math.max(1, r.firstContacts.tried))} of ${r.firstContacts.tried} (${r.firstDelayed.count} after waiting, median ${r.firstDelayed.median} h, max ${r.firstDelayed.max} h)`,
          `honest agents keeping every link ${pct(r.honestAgentsKeepingAllLinks)} (${r.honestLinksLost} honest links lost)`,
          `honest messages ${r.honestMessages}, ${r.honestDelayed} waited an hour or more`,
          `(${((Date.now() - t0) / 1000).toFixed(1)} s)`,
        ].join('\n    '),
      );
    }
  }
}
