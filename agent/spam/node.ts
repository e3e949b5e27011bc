import type { Logger } from '../../common/logger.ts';
import type { MessageId } from '../../common/ids.ts';
import type { RevocationAct, SpamControl } from './control.ts';

/** What the node's wiring needs of the mailbox store: its complaint candidates (gateway/mailbox). */
export interface JunkSource {
  onComplaint(
    listener: (event: { kind: 'recorded' | 'withdrawn'; candidate: { kithId: string | null } }) => void,
  ): () => void;
  complaintCandidates(): { kithId: string | null }[];
}

const MESSAGE_ID = /^[0-9a-f]{32}$/;

/**
 * Turns the mailbox's Junk moves into network complaints: recorded -> complain, withdrawn ->
 * withdraw. Candidates still standing that were never sent (recorded while the node was down
 * or before a restart lost the event) are sent at once. Returns the unsubscribe function.
 */
export function junkToComplaint(
  mail: JunkSource,
  spam: Pick<SpamControl, 'complain' | 'withdraw'>,
  log: Logger,
): () => void {
  const act = (kind: 'recorded' | 'withdrawn', kithId: string | null): void => {
    // Mail that did not come over Kith (appended by a client, bridged) has no path to complain along.
    if (!kithId || !MESSAGE_ID.test(kithId)) return;
    try {
      const result =
        kind === 'recorded' ? spam.complain(kithId as MessageId) : spam.withdraw(kithId as MessageId);
      log.info({ id: kithId, kind, result }, kind === 'recorded' ? 'complaint' : 'complaint withdrawn');
    } catch (err) {
      log.error({ err: (err as Error).message, id: kithId }, 'sending a complaint failed');
    }
  };
  const unsubscribe = mail.onComplaint((event) => act(event.kind, event.candidate.kithId));
  for (const candidate of mail.complaintCandidates()) act('recorded', candidate.kithId);
  return unsubscribe;
}

/** The node's side of a revocation for spam: close the links and refuse the entity from now on. */
export function revokeForSpam(
  act: RevocationAct,
  deps: { links: { revoke(fingerprint: string): unknown }; log: Logger },
): void {
  if (!act.entity) {
    deps.log.warn({ agent: act.agent }, 'spam revocation of an agent without a known entity');
    return;
  }
  deps.links.revoke(act.entity);
}
