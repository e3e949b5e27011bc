// Fan-out encryption for a list post: what it costs to sign and encrypt one post for N
// subscribers with openpgp.js, two ways, in the same run:
//   per-copy   one openpgp.encrypt (sign + encrypt) per subscriber: what Kith does today (each
//              copy's manifest is sealed to its subscriber; small posts travel inline in it)
//   wrap-once  sign and encrypt the post once under one session key (one SEIPD packet), then one
//              PKESK per subscriber (openpgp.encryptSessionKey); a subscriber's message is its
//              PKESK followed by the shared SEIPD: valid OpenPGP, checked by decrypting a sample
//   one-for-all one message for everyone (one SEIPD, every subscriber's PKESK in it) with
//              wildcard (anonymous, all-zero) key ids, as a BCC-style encryption to many would be:
//              measured for the list's CPU, the bytes each subscriber receives, and what opening it
//              costs the last subscriber (it tries the PKESKs until one opens)
// Usage: node --import tsx bench/lists/encrypt.ts [--subscribers 200] [--sizes 1024,65536,1048576]
import '../../common/polyfill.ts';
import { cpus } from 'node:os';
import * as openpgp from 'openpgp';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
}

const subscribers = Number(arg('subscribers', '200'));
const sizes = arg('sizes', '1024,65536,1048576').split(',').map(Number);

async function key(name: string) {
  const { privateKey } = await openpgp.generateKey({
    type: 'ecc',
    curve: 'curve25519Legacy',
    userIDs: [{ name, email: `${name}@bench.kith` }],
    format: 'object',
  });
  return privateKey;
}

const list = await key('list');
const subs = await Promise.all(Array.from({ length: subscribers }, (_, i) => key(`s${i}`)));
const subPublic = subs.map((k) => k.toPublic());

async function perCopy(body: Uint8Array): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for (const pub of subPublic) {
    const message = await openpgp.createMessage({ binary: body });
    out.push(
      (await openpgp.encrypt({
        message,
        encryptionKeys: pub,
        signingKeys: list,
        format: 'binary',
      })) as Uint8Array,
    );
  }
  return out;
}

async function wrapOnce(body: Uint8Array): Promise<Uint8Array[]> {
  // The session key's algorithm must suit every subscriber's key preferences; all here are alike.
  const sessionKey = await openpgp.generateSessionKey({ encryptionKeys: subPublic[0] });
  const message = await openpgp.createMessage({ binary: body });
  const seipd = (await openpgp.encrypt({
    message,
    sessionKey,
    signingKeys: list,
    format: 'binary',
  })) as Uint8Array;
  const out: Uint8Array[] = [];
  for (const pub of subPublic) {
    const pkesk = (await openpgp.encryptSessionKey({
      ...sessionKey,
      encryptionKeys: pub,
      format: 'binary',
    })) as Uint8Array;
    const copy = new Uint8Array(pkesk.length + seipd.length);
    copy.set(pkesk);
    copy.set(seipd, pkesk.length);
    out.push(copy);
  }
  return out;
}

async function oneForAll(body: Uint8Array): Promise<Uint8Array[]> {
  const message = await openpgp.createMessage({ binary: body });
  const all = (await openpgp.encrypt({
    message,
    encryptionKeys: subPublic,
    signingKeys: list,
    wildcard: true,
    format: 'binary',
  })) as Uint8Array;
  return subPublic.map(() => all); // every subscriber gets the same bytes
}

/** CPU of one subscriber opening its copy (decrypt + verify), the mean of `times` runs. */
async function openCost(copy: Uint8Array, who: number, times = 3): Promise<number> {
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < times; i++) {
    await openpgp.decrypt({
      message: await openpgp.readMessage({ binaryMessage: copy }),
      decryptionKeys: subs[who],
      verificationKeys: list.toPublic(),
      format: 'binary',
      expectSigned: true,
    });
  }
  const cpu = process.cpuUsage(cpu0);
  return (cpu.user + cpu.system) / 1000 / times;
}

async function check(copies: Uint8Array[], body: Uint8Array): Promise<void> {
  for (const i of [0, copies.length - 1]) {
    const result = await openpgp.decrypt({
      message: await openpgp.readMessage({ binaryMessage: copies[i] }),
      decryptionKeys: subs[i],
      verificationKeys: list.toPublic(),
      format: 'binary',
      expectSigned: true,
    });
    const data = result.data as Uint8Array;
    if (data.length !== body.length || Buffer.compare(Buffer.from(data), Buffer.from(body)) !== 0) {
      throw new Error('a copy did not decrypt to the post');
    }
  }
}

async function measure(
  fn: () => Promise<Uint8Array[]>,
): Promise<{ ms: number; cpuMs: number; copies: Uint8Array[] }> {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const copies = await fn();
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  return { ms, cpuMs: (cpu.user + cpu.system) / 1000, copies };
}

console.log(
  `# list fan-out encryption, openpgp.js ${openpgp.config.versionString}, ${subscribers} subscribers, ${cpus().length} cores`,
);
console.log(
  'size      way          list wall ms  list CPU ms  CPU ratio  bytes per copy  open CPU ms (last subscriber)',
);
const last = subscribers - 1;
for (const size of sizes) {
  const body = new Uint8Array(size).map((_, i) => (i * 31) & 0xff);
  await perCopy(body.subarray(0, 64)); // warm-up
  const ways: [string, () => Promise<Uint8Array[]>][] = [
    ['per-copy', () => perCopy(body)],
    ['wrap-once', () => wrapOnce(body)],
    ['one-for-all', () => oneForAll(body)],
  ];
  let baseCpu = 0;
  for (const [name, fn] of ways) {
    const m = await measure(fn);
    await check(m.copies, body);
    if (name === 'per-copy') baseCpu = m.cpuMs;
    const open = await openCost(m.copies[last], last);
    console.log(
      `${String(size).padEnd(9)} ${name.padEnd(12)} ${m.ms.toFixed(0).padStart(12)} ${m.cpuMs.toFixed(0).padStart(12)}` +
        ` ${(baseCpu / m.cpuMs).toFixed(2).padStart(9)}x ${String(m.copies[last].length).padStart(15)}` +
        ` ${open.toFixed(1).padStart(12)}`,
    );
  }
}
