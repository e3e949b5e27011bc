// A small onion packet as a sender makes it, for the relay benches (relay-store, relay-cpu).
import { randomBytes } from 'node:crypto';
import { encodeOnion, hopDigest } from '../../agent/delivery/frames.ts';
import { signWith, type AgentKeys } from '../../agent/onion/keys.ts';
import { buildOnion, type HopInstruction } from '../../agent/onion/layers.ts';
import { encodeUnit } from '../../agent/payload/unit.ts';
import type { PathEntry } from '../../agent/routing/path.ts';

/** About a 1 KB mail's sealed manifest. */
export const SEALED_MANIFEST_BYTES = 700;

/** A manifest packet along `entries` (each hop forwards and reports; the last delivers), signed by `sender`. */
export function manifestPacket(sender: AgentKeys, entries: PathEntry[]): Buffer {
  const unit = encodeUnit({
    kind: 'manifest',
    id: randomBytes(16),
    sealed: randomBytes(SEALED_MANIFEST_BYTES),
  });
  const hops = entries.map((e, k) => {
    const instruction: HopInstruction =
      k < entries.length - 1
        ? { kind: 'forward', next: entries[k + 1]!.signPublic, report: true, expiresAt: Date.now() + 600_000 }
        : { kind: 'deliver', report: true, expiresAt: Date.now() + 600_000 };
    return { onionPublic: e.onionKey, instruction };
  });
  const { header: h, body } = buildOnion(hops, unit);
  return encodeOnion(h, body, signWith(sender, hopDigest(entries[0]!.signPublic, h, body)));
}
