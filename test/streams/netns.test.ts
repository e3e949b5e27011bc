// A transfer through 3 real `kith start` processes, each in its own network namespace
// (a — b — c, one veth per link), whose b–c link is cut mid-transfer and restored.
// Skips (with the reason) where namespaces cannot be created.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash, createHmac } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { CHUNK_BYTES } from '../../agent/payload/chunks.ts';
import { link, stopAll, until } from '../helpers/kith-nodes.ts';
import { NamespacedNode, NetnsLine, netnsUnavailable } from '../helpers/netns.ts';
import { writePayload } from '../helpers/rss.ts';
import { tempDir } from '../helpers/tmp.ts';

const PREFIX = 'ks-';
const unavailable = netnsUnavailable(PREFIX);
if (unavailable) console.warn(`skipping the streams namespace test: ${unavailable}`);
const suite = unavailable ? describe.skip : describe;

const MiB = 1024 * 1024;
const SIZE = 16 * MiB;
const PORT = 4420;
const STREAMS_PORT = 2081;

interface Entry {
  id: string;
  state: string;
  chunks?: { acked: number; total: number };
}

suite('a link cut in network namespaces mid-transfer, and restored', () => {
  let line: NetnsLine;
  const dir = tempDir('kith-streams-netns-');
  let a: NamespacedNode;
  let b: NamespacedNode;
  let c: NamespacedNode;

  beforeAll(async () => {
    line = new NetnsLine(PREFIX, 3);
    const [ha, hb, hc] = line.hosts;
    const node = (name: string, i: number, listen: string[]) =>
      new NamespacedNode(
        {
          root: dir.path,
          name,
          email: `${name}@example.org`,
          env: {
            KITH_P2P_LISTEN: JSON.stringify(listen.map((ip) => `/ip4/${ip}/tcp/${PORT}`)),
            // Its own namespace: a fixed port collides with nobody, and the test knows the link's URL.
            KITH_STREAMS_PORT: String(STREAMS_PORT),
          },
        },
        line.hosts[i].ns,
        listen[0],
      );
    a = node('a', 0, ha.addresses);
    b = node('b', 1, hb.addresses);
    c = node('c', 2, hc.addresses);
    await Promise.all([a, b, c].map((n) => n.start()));
    await link(b, a);
    await link(b, c);
    // ~4 MB/s on b–c: the transfer outlasts the few hundred ms the test takes to see it started.
    line.limit(1, '32mbit');
  });

  afterAll(async () => {
    await stopAll([a, b, c].filter(Boolean));
    line?.destroy();
    dir.remove();
  });

  it('resumes when the link is back: each chunk stored once, at most 1 MiB sent again, the link serves it all', async () => {
    const cFpr = (await c.call<{ fingerprint: string }>('status')).fingerprint;
    // First contact through b (discovery), as a user's first message to a new address.
    const hello = await a.call<{ id: string }>('send', { to: cFpr, text: 'hello c' });
    const state = async (id: string) =>
      (await a.call<Entry[]>('outbox', { limit: 5 })).find((e) => e.id === id);
    await until(
      async () => ((await state(hello.id))?.state === 'delivered' ? true : undefined),
      'first contact',
    );

    const file = join(dir.path, 'data.bin');
    const digest = await writePayload(file, SIZE);
    const { id } = await a.call<{ id: string }>('send', { to: cFpr, file });
    // Cut b–c once c acknowledged a few chunks.
    const before = await until(async () => {
      const e = await state(id);
      return e?.chunks && e.chunks.acked >= 4 ? e.chunks : undefined;
    }, 'the transfer under way');
    line.cut(1);
    const stalledBefore = (await a.call<Record<string, number>>('metrics')).stalled ?? 0;
    // The sender notices (a stall: no report within its timeout) while the link is down.
    await until(
      async () =>
        ((await a.call<Record<string, number>>('metrics')).stalled ?? 0) > stalledBefore || undefined,
      'the sender to see the transfer stall',
    );
    const cut = (await state(id))!;
    expect(cut.state).not.toBe('delivered');
    expect(cut.chunks!.acked).toBeLessThan(cut.chunks!.total);

    // What c stored before the cut plays from its link meanwhile (curl inside c's namespace).
    const key = await readFile(join(c.dataDir, 'streams', 'link.key'));
    const token = createHmac('sha256', key).update(`kith-link:${id}`).digest('base64url').slice(0, 32);
    const url = `http://127.0.0.1:${STREAMS_PORT}/t/${token}/data.bin`;
    const head = line.exec(2, [
      'curl',
      '-sS',
      '-r',
      '0-99999',
      '-o',
      '/dev/null',
      '-w',
      '%{http_code} %{size_download}',
      url,
    ]);
    expect(head).toBe('206 100000');

    line.restore(1);
    await until(async () => ((await state(id))?.state === 'delivered' ? true : undefined), 'delivered');
    const chunks = Math.ceil(
      (SIZE + Buffer.byteLength(`KITH-FILE/1 ${JSON.stringify({ name: 'data.bin', size: SIZE })}\n`)) /
        CHUNK_BYTES,
    );
    const sent = await a.call<Record<string, number>>('metrics');
    const got = await c.call<Record<string, number>>('metrics');
    process.stdout.write(
      `netns cut: acked ${before.acked}/${chunks} when cut, ${sent.chunks_resent ?? 0} chunks (${sent.chunk_bytes_resent ?? 0} bytes) sent again, ${got.chunks_received} stored\n`,
    );
    expect(got.chunks_received).toBe(chunks);
    expect(sent.chunk_bytes_resent ?? 0).toBeLessThanOrEqual(MiB);

    const saved = (await readdir(join(c.dataDir, 'received'))).filter((f) => f.endsWith('data.bin'));
    expect(saved).toHaveLength(1);
    const hash = createHash('sha256').update(await readFile(join(c.dataDir, 'received', saved[0])));
    expect(hash.digest('hex')).toBe(digest);
    const whole = line.exec(2, ['sh', '-c', `curl -sS "${url}" | sha256sum`]);
    expect(whole.split(' ')[0]).toBe(digest);
  });
});
