import { describe, expect, it } from '@jest/globals';
import { HybridClock, compareStamps } from '../../agent/sync/hlc.ts';
import { deliveredEntryId, liveFolders } from '../../agent/sync/model.ts';
import { entriesIn, entry, exchange, replicas, syncAll, view } from './replicas.ts';
import type { AgentId } from '../../common/ids.ts';

const H = (n: number) => n.toString(16).padStart(64, '0');
const add = (e: string, f = 'INBOX', fl: string[] = []) => ({
  t: 'add' as const,
  e,
  h: H(1),
  f,
  d: 1,
  s: 10,
  fl,
});

describe('sync merge: what concurrent changes on two devices end in', () => {
  it('\\Seen set on one device and \\Answered on the other both survive', () => {
    const [a, b] = replicas(2);
    a.do([add('m1')]);
    syncAll([a, b]);
    a.do([{ t: 'flag', e: 'm1', fl: '\\Seen', on: true }]);
    b.do([{ t: 'flag', e: 'm1', fl: '\\Answered', on: true }]);
    syncAll([a, b]);
    expect(entry(a, 'm1')?.flags).toEqual(['\\Answered', '\\Seen']);
    expect(view(a)).toEqual(view(b));
  });

  it('one flag set on one device and cleared later on the other: the later one wins on both', () => {
    let t = 1000;
    const [a, b] = replicas(2, () => t);
    a.do([add('m1', 'INBOX', ['\\Flagged'])]);
    syncAll([a, b]);
    t = 2000;
    a.do([{ t: 'flag', e: 'm1', fl: '\\flagged', on: true }]);
    t = 3000;
    b.do([{ t: 'flag', e: 'm1', fl: '\\Flagged', on: false }]);
    syncAll([a, b]);
    expect(entry(a, 'm1')?.flags).toEqual([]);
    expect(view(a)).toEqual(view(b));
  });

  it('a message moved to two folders at once ends in one of them, once, on both', () => {
    const [a, b] = replicas(2);
    a.do([
      add('m1'),
      { t: 'folder', f: 'x', n: 'X', live: true },
      { t: 'folder', f: 'y', n: 'Y', live: true },
    ]);
    syncAll([a, b]);
    a.do([{ t: 'move', e: 'm1', f: 'x' }]);
    b.do([{ t: 'move', e: 'm1', f: 'y' }]);
    syncAll([a, b]);
    expect(view(a).entries).toHaveLength(1);
    expect(['X', 'Y']).toContain(entry(a, 'm1')?.mailbox);
    expect(view(a)).toEqual(view(b));
  });

  it('an expunge wins over a concurrent move or flag change (tombstone)', () => {
    let t = 1000;
    const [a, b] = replicas(2, () => t);
    a.do([add('m1'), { t: 'folder', f: 'x', n: 'X', live: true }]);
    syncAll([a, b]);
    a.do([{ t: 'expunge', e: 'm1' }]);
    t = 5000; // even a later move does not bring it back
    b.do([
      { t: 'move', e: 'm1', f: 'x' },
      { t: 'flag', e: 'm1', fl: '\\Seen', on: true },
    ]);
    syncAll([a, b]);
    expect(view(a).entries).toEqual([]);
    expect(view(a)).toEqual(view(b));
  });

  it('a message moved into a folder another device deleted meanwhile shows in INBOX, not lost', () => {
    const [a, b] = replicas(2);
    a.do([add('m1'), { t: 'folder', f: 'x', n: 'X', live: true }]);
    syncAll([a, b]);
    a.do([{ t: 'folder', f: 'x', live: false }]);
    b.do([{ t: 'move', e: 'm1', f: 'x' }]);
    syncAll([a, b]);
    expect(entriesIn(a, 'INBOX')).toEqual(['m1']);
    expect(view(a).folders).not.toContain('X');
    expect(view(a)).toEqual(view(b));
  });

  it('the same Kith message delivered to two agents of the entity is one entry', () => {
    const [a, b] = replicas(2);
    const eid = deliveredEntryId('<kith-id-1>');
    a.do([add(eid)]);
    b.do([add(eid, 'INBOX', ['\\Recent'])]);
    syncAll([a, b]);
    expect(view(a).entries).toHaveLength(1);
    expect(view(a)).toEqual(view(b));
  });

  it('folders created under one name on two devices show as one mailbox with both messages', () => {
    const [a, b] = replicas(2);
    a.do([{ t: 'folder', f: 'fa', n: 'Work', live: true }, add('m1', 'fa')]);
    b.do([{ t: 'folder', f: 'fb', n: 'Work', live: true }, add('m2', 'fb')]);
    syncAll([a, b]);
    expect(view(a).folders.filter((f) => f === 'Work')).toHaveLength(1);
    expect(entriesIn(a, 'Work').sort()).toEqual(['m1', 'm2']);
    expect(view(a)).toEqual(view(b));
  });

  it('a rename on one device and a move into the folder on the other: the message is in the renamed folder', () => {
    const [a, b] = replicas(2);
    a.do([add('m1'), { t: 'folder', f: 'x', n: 'Old', live: true }]);
    syncAll([a, b]);
    a.do([{ t: 'folder', f: 'x', n: 'New' }]);
    b.do([{ t: 'move', e: 'm1', f: 'x' }]);
    syncAll([a, b]);
    expect(entriesIn(b, 'New')).toEqual(['m1']);
    expect([...liveFolders(b.store).values()]).not.toContain('Old');
  });

  it('a change relayed by a third device applies (signed by its author, not the relay)', () => {
    const [a, b, c] = replicas(3);
    a.do([add('m1', 'INBOX', ['\\Seen'])]);
    exchange(a, b);
    exchange(b, c);
    expect(entry(c, 'm1')?.flags).toEqual(['\\Seen']);
  });
});

describe('hybrid logical clock', () => {
  it('orders a local change after a sibling change stamped ahead of our wall clock', () => {
    const clock = new HybridClock('b' as AgentId, () => 100);
    clock.observe({ w: 500, c: 3 });
    const next = clock.tick();
    expect(compareStamps(next, { w: 500, c: 3, a: 'a' as AgentId })).toBeGreaterThan(0);
    expect(next).toEqual({ w: 500, c: 4, a: 'b' });
  });

  it('never goes back when the wall clock does', () => {
    let now = 1000;
    const clock = new HybridClock('a' as AgentId, () => now);
    const first = clock.tick();
    now = 10;
    expect(compareStamps(clock.tick(), first)).toBeGreaterThan(0);
  });
});
