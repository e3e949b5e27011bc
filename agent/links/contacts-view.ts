import type { AgentId } from '../../common/ids.ts';
import type { TrustStore } from '../trust/store.ts';
import type { AddressBook, ContactView } from './types.ts';

/**
 * Trusted entities and contacts (and revoked ones, so `kith contacts` says why), each with its
 * agents, their link state and last known addresses: what `kith contacts` and the control
 * channel show.
 */
export function contactsView(
  trustStore: TrustStore,
  isLinked: (agent: AgentId) => boolean,
  addressBook: AddressBook | undefined,
): ContactView[] {
  return trustStore
    .entities()
    .filter((e) => e.source !== 'self' && (e.trusted || e.contact || e.revokedAt !== undefined))
    .map((entity) => ({
      fingerprint: entity.fingerprint,
      name: entity.name,
      email: entity.email,
      trusted: entity.trusted,
      contact: entity.contact,
      revoked: entity.revokedAt !== undefined,
      source: entity.source,
      agents: trustStore.agentsOf(entity.fingerprint).map((agent) => ({
        agentId: agent.agentId,
        revoked: agent.revoked,
        notAfter: new Date(agent.notAfter).toISOString(),
        linked: isLinked(agent.agentId),
        addresses: addressBook?.addressesOf(agent.agentId) ?? [],
      })),
      addressHints: trustStore.addressHints(entity.fingerprint),
    }));
}
