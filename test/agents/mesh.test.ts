import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { AgentId } from '../../common/ids.ts';
import {
  messagesContaining,
  progress,
  send,
  settle,
  startAgents,
  until,
  type TestNetwork,
  closeAgents,
  START_BOUND_MS,
  STOP_BOUND_MS,
} from './network.ts';

// Two disjoint paths a–b1–c1–d and a–b2–c2–d; a and d are contacts, not neighbours.
const MESH = {
  names: ['a', 'b1', 'c1', 'b2', 'c2', 'd'],
  links: [
    ['a', 'b1'],
    ['b1', 'c1'],
    ['c1', 'd'],
    ['a', 'b2'],
    ['b2', 'c2'],
    ['c2', 'd'],
  ] as [string, string][],
  contacts: [['a', 'd']] as [string, string][],
};

describe('real agents on a mesh with two disjoint paths', () => {
  let net: TestNetwork;
  beforeAll(async () => {
    // 24 MB (97 chunks) keeps the transfer in flight long enough to stop a relay in the middle of it.
    net = await startAgents(MESH, { delivery: { stallTimeoutMs: 2000 } });
  }, START_BOUND_MS);
  afterAll(closeAgents, STOP_BOUND_MS);

  it('the used path’s middle hop stops mid-transfer; the file arrives once, intact, over the other path', async () => {
    const a = net.agent('a').node;
    const d = net.agent('d').node;
    const payload = randomBytes(24 * 1024 * 1024);
    const file = join(net.dir, 'mesh.bin');
    await writeFile(file, payload);

    let stopped: string | undefined;
    let stopping: Promise<void> | undefined;
    let middle: AgentId | undefined;
    const unsubscribe = a.engine.onEvent((event) => {
      if (event.kind === 'progress' && event.hop === 2) middle = event.agent;
      if (event.kind === 'chunks' && event.acked >= 8 && middle && !stopped) {
        const relay = net.agents.find((x) => x.node.identity.agentId === middle)!;
        stopped = relay.name;
        stopping = relay.node.stop();
      }
    });
    const id = await send(a, d, { file });
    try {
      await until(() => (progress(a, id).state === 'delivered' ? true : undefined), 'delivered');
    } finally {
      unsubscribe();
      await stopping;
    }
    expect(['c1', 'c2']).toContain(stopped);
    const survivor = stopped === 'c1' ? 'c2' : 'c1';

    await settle();
    const notices = await messagesContaining(d, 'File received: mesh.bin');
    expect(notices).toHaveLength(1);
    const saved = (await readdir(join(d.paths.root, 'received'))).filter((f) => f.endsWith('mesh.bin'));
    expect(saved).toHaveLength(1);
    const got = await readFile(join(d.paths.root, 'received', saved[0]));
    expect(createHash('sha256').update(got).digest('hex')).toBe(
      createHash('sha256').update(payload).digest('hex'),
    );

    // Tracking shows the change: a stall, then the surviving relay as hop 2.
    const hops = progress(a, id).hops;
    expect(hops.some((h) => h.event === 'stalled: alternate path')).toBe(true);
    const survivorId = net.agent(survivor).node.identity.agentId;
    expect(hops.some((h) => h.hop === 2 && h.agent === survivorId)).toBe(true);
    // Resumed, not restarted: the surviving path carried fewer than all 97 chunks.
    expect(net.agent(survivor).node.engine.metrics.get('forwarded')).toBeLessThan(97);
  });
});
