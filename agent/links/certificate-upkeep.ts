import type { AgentId } from '../../common/ids.ts';
import type { Logger } from '../../common/logger.ts';
import { renewAgentCertificate, renewCertificateOf, type Identity } from '../identity/identity.ts';
import { certificateRenewalDue } from '../trust/decisions.ts';
import type { TrustStore } from '../trust/store.ts';

/** What the upkeep acts on: the link manager's identity, trust store and links. */
export interface CertificateUpkeep {
  identity: Identity;
  trustStore: TrustStore;
  neighbours: AgentId[];
  /** Closes the link to a neighbour (no longer trusted). */
  close: (peer: AgentId) => void;
  /** Hands our agents' current certificates to every neighbour. */
  pushHello: () => Promise<void>;
  now: number;
  log: Logger;
}

/**
 * Our agent's certificate at start: the trust store keeps the newest certificate of every agent,
 * ours included, so a renewal made before a restart survives there (the identity's own row keeps
 * the first one); and a node that was off past its certificate's end renews before anything
 * checks it (only the device holding the entity key can; the others get theirs renewed by it).
 */
export async function ownCertificateAtStart(
  identity: Identity,
  trustStore: TrustStore,
  now: number,
): Promise<void> {
  const stored = trustStore.agent(identity.agentId);
  if (stored !== undefined && stored.notAfter > Date.parse(identity.certificate.body.notAfter)) {
    identity.certificate = { body: JSON.parse(stored.certificate.canonical), ...stored.certificate };
  }
  if (
    identity.entityKey !== undefined &&
    certificateRenewalDue(Date.parse(identity.certificate.body.notAfter), now)
  ) {
    identity.certificate = await renewAgentCertificate(identity, new Date(now));
  }
}

/**
 * Closes links to agents that are no longer trusted here without any trust change firing (their
 * certificate ran out mid-link), and renews certificates that are due (agent/trust/decisions.ts):
 * the entity key holder renews its own and every sibling's; a device without the entity key
 * takes the renewed certificate the holder's hello brought. Either hands it to every neighbour.
 */
export async function upkeepCertificates(u: CertificateUpkeep): Promise<void> {
  const { identity, trustStore, log } = u;
  for (const peer of u.neighbours) {
    if (trustStore.isTrustedAgent(peer)) continue;
    log.info({ peer }, 'closing a link: its certificate is no longer valid');
    u.close(peer);
  }
  if (identity.entityKey === undefined) {
    const stored = trustStore.agent(identity.agentId);
    if (stored !== undefined && stored.notAfter > Date.parse(identity.certificate.body.notAfter)) {
      identity.certificate = { body: JSON.parse(stored.certificate.canonical), ...stored.certificate };
      log.info({ notAfter: identity.certificate.body.notAfter }, "took this agent's renewed certificate");
      await u.pushHello();
    }
    return;
  }
  let renewedAny = false;
  // The key holder renews every sibling's certificate as well as its own (same keys, new validity).
  for (const sibling of trustStore.agentsOf(identity.fingerprint)) {
    if (sibling.revoked || !certificateRenewalDue(sibling.notAfter, u.now)) continue;
    const renewed =
      sibling.agentId === identity.agentId
        ? await renewAgentCertificate(identity, new Date(u.now))
        : await renewCertificateOf(
            identity,
            sibling.agentId,
            sibling.onionKey.toString('base64url'),
            new Date(u.now),
          );
    await trustStore.addAgentCertificate(renewed);
    if (sibling.agentId === identity.agentId) identity.certificate = renewed;
    log.info({ agent: sibling.agentId, notAfter: renewed.body.notAfter }, 'renewed an agent certificate');
    renewedAny = true;
  }
  if (renewedAny) await u.pushHello();
}
