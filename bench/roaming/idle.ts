// Roaming IDLE bench (issue 13: "a mail client connected to either device sees the other device's
// changes within 2 s while both are online (IDLE), through a relay as well as directly"): a client
// idling on one device, a flag set by a client of the other device, the time from sending that
// STORE to the idling client's untagged FETCH. Three ways, in the same run:
//   baseline  both clients on the same device (one gateway, no sync);
//   direct    two devices linked on loopback (in-process nodes, test/roaming/entity.ts);
//   relayed   two devices behind their own NATs, a friend's relay between them (`kith start`
//             processes in network namespaces kr-…, test/roaming/nat-entity.ts; needs root).
// Run: node --import tsx bench/roaming/idle.ts [--samples 20]
import '../../common/polyfill.ts';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ImapFlow } from 'imapflow';
import { startEntity } from '../../test/roaming/entity.ts';
import { imapOf, startNatEntity } from '../../test/roaming/nat-entity.ts';
import { netnsUnavailable } from '../../test/helpers/netns.ts';
import { until } from '../../test/helpers/kith-nodes.ts';

const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const SAMPLES = arg('samples', 20);
const SUBJECT = 'idle bench';
const RAW = Buffer.from(`Subject: ${SUBJECT}\r\n\r\nwatched\r\n`);

/** Times SAMPLES flag changes made by `actor` until `idler`, idling on INBOX, hears each. */
async function measure(idler: ImapFlow, actor: ImapFlow, tag: string): Promise<number[]> {
  await idler.mailboxOpen('INBOX');
  await actor.mailboxOpen('INBOX');
  const uids = (await actor.search({ subject: SUBJECT }, { uid: true })) || [];
  if (uids.length !== 1)
    throw new Error(`expected one "${SUBJECT}" on the acting device, found ${uids.length}`);
  void idler.idle().catch(() => undefined);
  const out: number[] = [];
  for (let k = 0; k < SAMPLES; k++) {
    const flag = `$${tag}${k}`; // a flag not set yet: setting one already set changes nothing
    const heard = new Promise<void>((resolve) => {
      const on = (e: { flags: Set<string> }) => {
        if (!e.flags.has(flag)) return;
        idler.off('flags', on);
        resolve();
      };
      idler.on('flags', on);
    });
    const t0 = performance.now();
    await actor.messageFlagsAdd(String(uids[0]), [flag], { uid: true });
    await heard;
    out.push(performance.now() - t0);
  }
  return out;
}

const pct = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];

async function main(): Promise<void> {
  const rows: { name: string; ms: number[] }[] = [];
  const alice = await startEntity(['home', 'laptop']);
  try {
    await alice.link('laptop', 'home');
    const home = await alice.imap('home');
    await home.append('INBOX', RAW, []);
    const laptop = await alice.imap('laptop');
    await until(
      async () =>
        ((await laptop.status('INBOX', { messages: true })) || { messages: 0 }).messages ? true : undefined,
      'the message on the laptop',
    );
    rows.push({
      name: 'baseline: both clients on one device',
      ms: await measure(await alice.imap('home'), home, 'Same'),
    });
    rows.push({ name: 'direct: devices linked on loopback', ms: await measure(laptop, home, 'Direct') });
  } finally {
    await alice.close();
  }
  const why = netnsUnavailable('kr-');
  if (why) console.log(`relayed case not run: ${why}`);
  else {
    process.stderr.write('idle bench: relayed case (namespaces)\n');
    const root = mkdtempSync(join(tmpdir(), 'kith-bench-idle-'));
    const net = await startNatEntity(root, 'kr-', async (c) => void (await c.append('INBOX', RAW, [])));
    try {
      await net.linkedToSibling(net.phone);
      const phone = await imapOf(await net.phone.settings());
      await until(
        async () =>
          ((await phone.status('INBOX', { messages: true })) || { messages: 0 }).messages ? true : undefined,
        'the message on the phone',
      );
      const laptop = await imapOf(await net.laptop.settings());
      rows.push({
        name: 'relayed: two NATs, a friend’s relay between',
        ms: await measure(phone, laptop, 'Relayed'),
      });
      await phone.logout();
      await laptop.logout();
    } finally {
      await net.stop();
      rmSync(root, { recursive: true, force: true });
    }
  }
  const base = pct(rows[0].ms, 50);
  console.log(
    `\nIDLE: STORE on one device → FETCH heard by a client idling on the other (${SAMPLES} samples, ms)`,
  );
  console.log(
    'case'.padEnd(48) + 'p50'.padStart(8) + 'p95'.padStart(8) + 'max'.padStart(8) + '  p50 / baseline',
  );
  for (const r of rows) {
    console.log(
      r.name.padEnd(48) +
        pct(r.ms, 50).toFixed(0).padStart(8) +
        pct(r.ms, 95).toFixed(0).padStart(8) +
        Math.max(...r.ms)
          .toFixed(0)
          .padStart(8) +
        `  ${(pct(r.ms, 50) / base).toFixed(1)}×`,
    );
  }
}

await main();
