import { describe, expect, it } from '@jest/globals';
import { generateAgentKeys } from '../../agent/onion/keys.ts';
import { signChange, type ChangeBody, type SignedChange } from '../../agent/sync/change.ts';
import { MemoryReplicaStore, Replica } from '../../agent/sync/replica.ts';
import type { AgentId } from '../../common/ids.ts';
import { ENTITY, entry, replicas, view } from './replicas.ts';

const H = 'c'.repeat(64);
const addOp = (e: string) => ({ t: 'add' as const, e, h: H, f: 'INBOX', d: 1, s: 1, fl: [] });

describe('sync: bad changes are refused with a reason and nothing is lost', () => {
  it('a forged change (body altered after signing) is refused as bad-signature', () => {
    const [a, b] = replicas(2);
    const { change } = a.replica.local([addOp('m1')]);
    const forged: SignedChange = { b: change.b.replace('"INBOX"', '"Junk"'), g: change.g };
    expect(b.replica.receive(forged)).toMatchObject({ result: 'refused', reason: 'bad-signature' });
    expect(b.replica.receive(change)).toMatchObject({ result: 'applied' });
    expect(entry(b, 'm1')?.mailbox).toBe('INBOX');
  });

  it('a change signed by an agent that is not ours, or by a revoked sibling, is refused', () => {
    const stranger = generateAgentKeys();
    const store = new MemoryReplicaStore();
    const revoked = generateAgentKeys();
    const b = new Replica({
      store,
      self: generateAgentKeys().id,
      entity: ENTITY,
      key: generateAgentKeys().signPrivate,
      authorStatus: (a) => (a === revoked.id ? 'revoked' : 'unknown'),
    });
    const body = (a: AgentId): ChangeBody => ({ v: 1, n: ENTITY, a, s: 1, w: 1, c: 0, ops: [addOp('m1')] });
    expect(b.receive(signChange(body(stranger.id), stranger.signPrivate))).toMatchObject({
      reason: 'not-sibling',
    });
    expect(b.receive(signChange(body(revoked.id), revoked.signPrivate))).toMatchObject({ reason: 'revoked' });
    const foreign = { ...body(stranger.id), n: 'B'.repeat(40) };
    expect(b.receive(signChange(foreign, stranger.signPrivate))).toMatchObject({ reason: 'other-entity' });
    expect([...store.scan('')]).toEqual([]);
  });

  it('a clock far in the future is refused, and the same change applies once the clock has caught up', () => {
    let now = 1_000_000;
    const [a, b] = replicas(2, () => now);
    const ahead = new Replica({
      store: a.store,
      self: a.id,
      entity: ENTITY,
      key: a.key,
      authorStatus: () => 'sibling',
      now: () => now + 3_600_000,
    });
    const { change } = ahead.local([addOp('m1')]);
    expect(b.replica.receive(change)).toMatchObject({ result: 'refused', reason: 'future-clock' });
    expect(view(b).entries).toEqual([]);
    now += 3_600_000;
    expect(b.replica.receive(change)).toMatchObject({ result: 'applied' });
  });

  it('a replayed change is a duplicate; a different change under the same number is refused', () => {
    const [a, b] = replicas(2);
    const { change, body } = a.replica.local([addOp('m1')]);
    expect(b.replica.receive(change).result).toBe('applied');
    expect(b.replica.receive(change).result).toBe('duplicate');
    const other = signChange({ ...body, ops: [{ t: 'expunge', e: 'm1' }] }, a.key);
    expect(b.replica.receive(other)).toMatchObject({ reason: 'conflicting-replay' });
    expect(entry(b, 'm1')).toBeDefined();
  });

  it('a change arriving before an earlier one of its author is refused as a gap until the earlier one came', () => {
    const [a, b] = replicas(2);
    const first = a.replica.local([addOp('m1')]).change;
    const second = a.replica.local([{ t: 'flag', e: 'm1', fl: '\\Seen', on: true }]).change;
    expect(b.replica.receive(second)).toMatchObject({ reason: 'gap' });
    expect(b.replica.receive(first).result).toBe('applied');
    expect(b.replica.receive(second).result).toBe('applied');
    expect(entry(b, 'm1')?.flags).toEqual(['\\Seen']);
  });

  it('malformed input is refused as malformed', () => {
    const [, b] = replicas(2);
    for (const junk of [null, 42, { b: 'not json', g: '' }, { b: '{"v":2}', g: 'x' }]) {
      expect(b.replica.receive(junk)).toMatchObject({ result: 'refused', reason: 'malformed' });
    }
  });
});
