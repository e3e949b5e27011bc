// Fan-out encryption for a list post: what it costs to sign and encrypt one post for N
// subscribers with openpgp.js, two ways, in the same run:
//   per-copy   one openpgp.encrypt (sign + encrypt) per subscriber: what Kith does today (each
//              copy's manifest is sealed to its subscriber; small posts travel inline in it)
//   wrap-once  sign and encrypt the post once under one session key (one SEIPD packet), then one
//              PKESK per subscriber (openpgp.encryptSessionKey); a subscriber's message is its
//              PKESK followed by the shared SEIPD: valid OpenPGP, checked by decrypting a sample
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
  'size      per-copy ms (cpu)   wrap-once ms (cpu)   ratio  bytes per copy (per-copy / wrap-once)',
);
for (const size of sizes) {
  const body = new Uint8Array(size).map((_, i) => (i * 31) & 0xff);
  await perCopy(body.subarray(0, 64)); // warm-up
  const a = await measure(() => perCopy(body));
  const b = await measure(() => wrapOnce(body));
  await check(a.copies, body);
  await check(b.copies, body);
  console.log(
    `${String(size).padEnd(9)} ${a.ms.toFixed(0).padStart(8)} (${a.cpuMs.toFixed(0)})`.padEnd(30) +
      `${b.ms.toFixed(0).padStart(8)} (${b.cpuMs.toFixed(0)})`.padEnd(21) +
      `${(a.ms / b.ms).toFixed(1).padStart(5)}x  ${a.copies[0].length} / ${b.copies[0].length}`,
  );
}
