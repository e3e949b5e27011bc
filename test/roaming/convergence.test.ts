import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import {
  deliveredEntryId,
  liveFolders,
  newEntryId,
  newFolderId,
  STANDARD_FOLDERS,
  type Op,
} from '../../agent/sync/model.ts';
import { replicas, syncAll, view, type TestReplica } from './replicas.ts';

const FLAGS = ['\\Seen', '\\Answered', '\\Flagged', '\\Deleted', '$Junk'];
const NAMES = ['Work', 'Lists', 'Old', 'Work/2026'];

/** One step of a run: a device acts on what it sees now, or two devices exchange (part of) their changes. */
type Step =
  | { kind: 'act'; who: number; what: number; pick: number; pick2: number; on: boolean }
  | { kind: 'sync'; from: number; to: number; take: number; shuffle: number; twice: boolean };

const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({
    kind: fc.constant('act' as const),
    who: fc.nat(2),
    what: fc.nat(9),
    pick: fc.nat(1000),
    pick2: fc.nat(1000),
    on: fc.boolean(),
  }),
  fc.record({
    kind: fc.constant('sync' as const),
    from: fc.nat(2),
    to: fc.nat(2),
    take: fc.nat(40),
    shuffle: fc.nat(1000),
    twice: fc.boolean(),
  }),
);

/** The ops a device makes for one user action, from its own current view (as the mailbox bridge does). */
function action(r: TestReplica, s: Extract<Step, { kind: 'act' }>, serial: number): Op[] {
  const v = view(r);
  const folders = liveFolders(r.store);
  const custom = [...folders.keys()].filter((f) => !STANDARD_FOLDERS.includes(f)).sort();
  const fids = [...folders.keys()].sort();
  const e = v.entries.length ? v.entries[s.pick % v.entries.length] : undefined;
  const stamp = { w: serial, c: s.pick, a: r.id };
  switch (s.what) {
    case 0:
      return [
        {
          t: 'add',
          e: newEntryId(stamp, 0),
          h: 'a'.repeat(63) + (s.pick % 10),
          f: fids[s.pick2 % fids.length],
          d: 1,
          s: 1,
          fl: [],
        },
      ];
    case 1: // the same Kith message may reach any device
      return [
        {
          t: 'add',
          e: deliveredEntryId(`<m${s.pick % 4}>`),
          h: 'b'.repeat(64),
          f: 'INBOX',
          d: 1,
          s: 1,
          fl: [],
        },
      ];
    case 2:
    case 3:
      return e ? [{ t: 'flag', e: e.eid, fl: FLAGS[s.pick2 % FLAGS.length], on: s.on }] : [];
    case 4:
      return e ? [{ t: 'move', e: e.eid, f: fids[s.pick2 % fids.length] }] : [];
    case 5:
      return e ? [{ t: 'expunge', e: e.eid }] : [];
    case 6: {
      const name = NAMES[s.pick2 % NAMES.length];
      return [{ t: 'folder', f: newFolderId(stamp, name), n: name, live: true }];
    }
    case 7:
      return custom.length
        ? [{ t: 'folder', f: custom[s.pick % custom.length], n: NAMES[s.pick2 % NAMES.length] }]
        : [];
    case 8: {
      if (!custom.length) return [];
      // Deleting a folder expunges what this device sees in it (IMAP DELETE).
      const fid = custom[s.pick % custom.length];
      const inIt = v.entries
        .filter((x) => x.mailbox === folders.get(fid))
        .map((x): Op => ({ t: 'expunge', e: x.eid }));
      return [...inIt, { t: 'folder', f: fid, live: false }];
    }
    default:
      return [
        {
          t: 'contact',
          p: `fpr${s.pick % 3}`,
          v: { key: 'k', trusted: s.on, contact: true, revoked: false },
        },
      ];
  }
}

function shuffled<T>(items: T[], seed: number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    const j = seed % (i + 1);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

describe('sync convergence (property): three devices, random changes and partial exchanges', () => {
  it('after a final exchange all replicas show the same folders, messages and flags, whatever the interleaving', () => {
    fc.assert(
      fc.property(fc.array(step, { minLength: 1, maxLength: 60 }), (steps) => {
        let clock = 1_000;
        const all = replicas(3, () => clock);
        let serial = 0;
        for (const s of steps) {
          clock += 1 + (serial % 3); // clocks move, sometimes not at all between devices' changes
          serial++;
          if (s.kind === 'act') {
            const ops = action(all[s.who], s, serial);
            if (ops.length) all[s.who].do(ops);
          } else if (s.from !== s.to) {
            // A partial, reordered, possibly duplicated exchange: gaps are refused and sent again later.
            const to = all[s.to];
            const changes = all[s.from].replica.changesFor(to.replica.versionVector(), s.take);
            for (const c of shuffled(s.twice ? [...changes, ...changes] : changes, s.shuffle))
              to.replica.receive(c);
          }
        }
        syncAll(all);
        const [a, b, c] = all.map(view);
        expect(b).toEqual(a);
        expect(c).toEqual(a);
        const contacts = all.map((r) => JSON.stringify([...r.store.scan('c/')].sort()));
        expect(contacts[1]).toBe(contacts[0]);
        expect(contacts[2]).toBe(contacts[0]);
        // No message duplicated: an entry id shows once, in one mailbox.
        expect(new Set(a.entries.map((e) => e.eid)).size).toBe(a.entries.length);
      }),
      { numRuns: 150 },
    );
  });
});
