import MailComposer from 'nodemailer/lib/mail-composer';
import type { Logger } from '../../common/logger.ts';
import type { AgentId, MessageId } from '../../common/ids.ts';
import type { Transport } from '../transport.ts';
import type { TrustStore } from '../trust/store.ts';
import type { NoticeFacts, RevocationAct, SpamControl } from './control.ts';

/** What the node's wiring needs of the mailbox store: its complaint candidates (gateway/mailbox). */
export interface JunkSource {
  onComplaint(
    listener: (event: {
      kind: 'recorded' | 'withdrawn' | 'seen';
      candidate: { kithId: string | null };
    }) => void,
  ): () => void;
  complaintCandidates(): { kithId: string | null }[];
}

const MESSAGE_ID = /^[0-9a-f]{32}$/;
/**
 * How long the revoked agent's link is kept open for the notice to reach it: a bound for a link
 * that is stuck, not for one that is slow. Its packets are refused meanwhile, so waiting costs no
 * spam. (It was 2 s: on a loaded machine the send could outlive it, the link closed, and the
 * revoked side's owner never got the status email.)
 */
const NOTICE_TIMEOUT_MS = 30_000;

/**
 * Turns the mailbox's Junk moves into network complaints: recorded -> complain, withdrawn ->
 * withdraw. Candidates still standing that were never sent (recorded while the node was down
 * or before a restart lost the event) are sent at once. Returns the unsubscribe function.
 */
export function junkToComplaint(
  mail: JunkSource,
  spam: Pick<SpamControl, 'complain' | 'withdraw'> & Partial<Pick<SpamControl, 'seen'>>,
  log: Logger,
): () => void {
  const act = (kind: 'recorded' | 'withdrawn' | 'seen', kithId: string | null): void => {
    // Mail that did not come over Kith (appended by a client, bridged) has no path to complain along.
    if (!kithId || !MESSAGE_ID.test(kithId)) return;
    if (kind === 'seen') {
      // Read and kept: the good verdict on a first contact (15.7); nothing for other mail.
      const result = spam.seen?.(kithId as MessageId);
      if (result === 'sent') log.info({ id: kithId }, 'first contact read and kept: verdict sent');
      return;
    }
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

/**
 * The node's side of a revocation for spam: the revoked agent is sent the notice with its
 * evidence while its link is still up (so its owner learns why), then its entity's trust is
 * revoked (links close, refused from now on), then the notice goes to every other neighbour
 * (those that trust it too can weigh the evidence; the rest drop it).
 */
export async function revokeForSpam(
  act: RevocationAct,
  deps: { links: { revoke(fingerprint: string): unknown }; transport: Transport; log: Logger },
): Promise<void> {
  const { transport, log } = deps;
  await within(transport.send(act.agent, act.notice), NOTICE_TIMEOUT_MS).catch((err: Error) =>
    log.info({ agent: act.agent, err: err.message }, 'the revocation notice did not reach the revoked agent'),
  );
  if (act.entity) deps.links.revoke(act.entity);
  else log.warn({ agent: act.agent }, 'spam revocation of an agent without a known entity');
  for (const neighbour of transport.neighbours()) {
    if (neighbour === act.agent) continue;
    transport.send(neighbour, act.notice).catch(() => undefined);
  }
}

function within<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/**
 * The status email that tells an owner a neighbour cut their agent off for spam: who, when, why,
 * how many complaints, and what to do. Plain text; delivered into the owner's INBOX.
 */
export async function spamRevocationMail(facts: {
  to: string;
  by: { name?: string; email?: string; agent: AgentId };
  notice: NoticeFacts;
  fingerprint: string;
}): Promise<Buffer> {
  const who = facts.by.email ? `${facts.by.name ?? ''} <${facts.by.email}>`.trim() : facts.by.agent;
  const when = new Date(facts.notice.at).toISOString();
  const text = [
    `${who} stopped trusting your agent on ${when} because of spam complaints.`,
    '',
    `Why: ${facts.notice.detail}`,
    `Evidence: ${facts.notice.items} signed complaint(s) from recipients of mail that came from your agent.`,
    '',
    'Your agent can no longer link with theirs, and mail that went through them takes other paths',
    'or fails. If your agent or your account sent mail you did not write, it may be compromised:',
    'check it first. Only they can trust you again, by running `kith trust` with your fingerprint:',
    `  ${facts.fingerprint}`,
    '',
  ].join('\r\n');
  const composer = new MailComposer({
    from: 'Kith <postmaster@kith>',
    to: facts.to,
    subject: `Your agent was cut off for spam by ${who}`,
    text,
    headers: { 'Auto-Submitted': 'auto-generated', 'X-Kith-Spam-Revocation': facts.by.agent },
  });
  return composer.compile().build();
}

/**
 * Ties spam control to the node's mailbox, as parts the node stops: Junk moves in any mail client
 * become signed complaints (moving back, withdrawals); a neighbour that cut this agent off for
 * spam is told to the owner by a status email saying who, when and why; `kith trust` of an entity
 * revoked for spam is the human act that reinstates its agents.
 */
export function wireSpamToMailbox(w: {
  spam: SpamControl;
  trust: Pick<TrustStore, 'entityOfAgent' | 'entity' | 'onChange' | 'agentsOf'>;
  mail: JunkSource & { deliver(message: { raw: Buffer }): Promise<unknown> };
  owner: { email: string; fingerprint: string };
  log: Logger;
}): { name: string; stop: () => void }[] {
  const { spam, trust, mail, log } = w;
  const unhookJunk = junkToComplaint(mail, spam, log);
  const unhookNotice = spam.onEvent((event) => {
    if (event.kind !== 'revoked-by') return;
    const fingerprint = trust.entityOfAgent(event.by);
    const by = fingerprint ? trust.entity(fingerprint) : undefined;
    void spamRevocationMail({
      to: w.owner.email,
      by: { name: by?.name, email: by?.email, agent: event.by },
      notice: event,
      fingerprint: w.owner.fingerprint,
    })
      .then((raw) => mail.deliver({ raw }))
      .catch((err: Error) => log.warn({ err: err.message }, 'the spam revocation email failed'));
  });
  const unhookTrust = trust.onChange((change) => {
    if (change.kind !== 'entity-trusted') return;
    for (const agent of trust.agentsOf(change.fingerprint)) spam.reinstate(agent.agentId);
  });
  return [
    { name: 'junk hook', stop: unhookJunk },
    { name: 'spam notices', stop: unhookNotice },
    { name: 'spam reinstatement', stop: unhookTrust },
  ];
}
