// Keys and valid encodings the fuzz targets mutate: three agents S -> R -> D (sender, relay,
// recipient) with the simulator's Ed25519 certificates (agent/sim/trust.ts, the real code the
// simulator routes with), built once per process.
import { randomBytes } from 'node:crypto';
import type { Fingerprint } from '../../common/ids.ts';
import { generateAgentKeys, SignatureVerifier, signWith, type AgentKeys } from '../../agent/onion/keys.ts';
import { buildOnion, type HopSecret } from '../../agent/onion/layers.ts';
import { SimTrust, SimWorld } from '../../agent/sim/trust.ts';
import { encodeOnion, hopDigest } from '../../agent/delivery/frames.ts';
import { encodeUnit } from '../../agent/payload/unit.ts';

export interface CoreFixture {
  S: AgentKeys;
  R: AgentKeys;
  D: AgentKeys;
  world: SimWorld;
  entityOf: { S: Fingerprint; R: Fingerprint; D: Fingerprint };
  /** S's view of trust (it trusts R as a neighbour). */
  trustS: SimTrust;
  /** R's view (it trusts S and D). */
  trustR: SimTrust;
  verifier: SignatureVerifier;
  /** Onion frames S hands to R (path S -> R -> D), and what R and D learn peeling them. */
  onions: { frame: Buffer; header: Buffer; body: Buffer; signature: Buffer; secrets: HopSecret[] }[];
  now: number;
}

let cached: CoreFixture | undefined;

export function coreFixture(): CoreFixture {
  if (cached) return cached;
  const S = generateAgentKeys();
  const R = generateAgentKeys();
  const D = generateAgentKeys();
  const world = new SimWorld();
  const entityOf = { S: world.addEntity([S]), R: world.addEntity([R]), D: world.addEntity([D]) };
  const trustS = new SimTrust(world, entityOf.S, S);
  trustS.trust(R.id, entityOf.R);
  const trustR = new SimTrust(world, entityOf.R, R);
  trustR.trust(S.id, entityOf.S);
  trustR.trust(D.id, entityOf.D);
  const now = Date.now();
  const onions = [1000, 4000].map((size, i) => {
    const unit = encodeUnit({ kind: 'manifest', id: randomBytes(16), sealed: randomBytes(size - 40) });
    const built = buildOnion(
      [
        {
          onionPublic: R.onionPublic,
          instruction: { kind: 'forward', next: D.signPublic, report: i === 0, expiresAt: now + 3_600_000 },
        },
        {
          onionPublic: D.onionPublic,
          instruction: { kind: 'deliver', report: true, expiresAt: now + 3_600_000 },
        },
      ],
      unit,
    );
    const signature = signWith(S, hopDigest(R.signPublic, built.header, built.body));
    return {
      frame: encodeOnion(built.header, built.body, signature),
      header: built.header,
      body: built.body,
      signature,
      secrets: built.secrets,
    };
  });
  cached = { S, R, D, world, entityOf, trustS, trustR, verifier: new SignatureVerifier(), onions, now };
  return cached;
}
