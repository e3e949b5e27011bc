import { describe, expect, it } from '@jest/globals';
import type { Fingerprint } from '../../common/ids.ts';
import { entitiesToRedial } from '../../agent/reachability/keeper.ts';

const fp = (c: string): Fingerprint => c.repeat(40) as Fingerprint;

describe('neighbour keeper decision', () => {
  it('redials unlinked trusted entities only while below the minimum', () => {
    const trusted = [fp('A'), fp('B'), fp('C')];
    const linked = (e: Fingerprint) => e === fp('B');
    expect(entitiesToRedial(trusted, linked, 1, 8)).toEqual([fp('A'), fp('C')]);
    expect(entitiesToRedial(trusted, linked, 7, 8)).toEqual([fp('A')]);
    expect(entitiesToRedial(trusted, linked, 8, 8)).toEqual([]);
  });
});
