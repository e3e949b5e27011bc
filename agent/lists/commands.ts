import { randomBytes } from 'node:crypto';
import type { Fingerprint } from '../../common/ids.ts';
import type { Logger } from '../../common/logger.ts';
import type { TrustStore } from '../trust/store.ts';
import { headerValues } from './headers.ts';
import { helpNotice, type Notice } from './notices.ts';
import type { PostFacts } from './policy.ts';
import { CONFIRM_WINDOW_MS, decideConfirm, decideSubscribe } from './rules.ts';
import type { ListSettings, ListStore } from './store.ts';

/** Subjects that are commands to the list rather than posts. */
export const COMMANDS = new Set(['help', 'subscribe', 'unsubscribe']);
/** A confirmation reply names its token in the subject ("Re: Confirm: <token> …"). */
export const CONFIRM = /\bconfirm:\s*([0-9a-f]{32})\b/i;

/** A command's outcome: what the list's log and `kith list track` record, and the answer if any. */
export interface CommandOutcome {
  /** The reason recorded on the command's row (`command subscribe`, `subscribe-loop`, …). */
  reason: string;
  answer?: Notice;
}

/**
 * The list's mail commands from verified senders (docs/protocol.md 17, "Commands"): help,
 * unsubscribe, subscribe with a confirmation token, and the confirmation reply. The decisions are
 * rules.ts; this module applies them to the list's store.
 */
export class ListCommands {
  constructor(
    private readonly deps: {
      store: ListStore;
      trust: Pick<TrustStore, 'entity'>;
      log: Logger;
      clock: () => number;
    },
  ) {}

  /** `help`, `subscribe`, `unsubscribe` from a verified sender. */
  command(
    command: string,
    sender: Fingerprint,
    standing: PostFacts['poster'],
    settings: ListSettings,
    raw: Buffer,
  ): CommandOutcome {
    const { store, log } = this.deps;
    if (command === 'help') return { reason: 'command help', answer: helpNotice(settings, settings.policy) };
    if (command === 'unsubscribe') {
      const removed = store.removeMember(sender);
      log.info({ sender, removed }, 'list: unsubscribe by mail');
      return {
        reason: 'command unsubscribe',
        answer: {
          subject: removed ? `You have left ${settings.name}` : `You are not a member of ${settings.name}`,
          text: removed
            ? `You will get no more posts from ${settings.name}. Send "subscribe" to ${settings.email} to join again.`
            : `Nothing changed: you were not a member of ${settings.name}.`,
        },
      };
    }
    const now = this.deps.clock();
    const decision = decideSubscribe({
      policy: settings.policy,
      standing,
      automatic: isAutomatic(raw),
      recentConfirmations: store.confirmationsSince(sender, now - CONFIRM_WINDOW_MS),
    });
    if (decision.action === 'already') {
      return {
        reason: 'command subscribe',
        answer: { subject: `You are already a member of ${settings.name}`, text: 'Nothing changed.' },
      };
    }
    if (decision.action === 'refuse') {
      log.warn({ sender, code: decision.code, reason: decision.reason }, 'list: subscribe refused');
      return {
        reason: decision.code,
        answer: decision.answer
          ? {
              subject: `Subscription to ${settings.name} refused`,
              text: `${decision.reason}; ask one of them to add you.`,
            }
          : undefined,
      };
    }
    const token = randomBytes(16).toString('hex');
    store.addConfirmation(token, sender);
    log.info({ sender }, 'list: subscribe, confirmation sent');
    return {
      reason: 'command subscribe',
      answer: {
        subject: `Confirm: ${token} subscribe to ${settings.name}`,
        text: [
          `Someone (you, we hope) asked to join ${settings.name} <${settings.email}>.`,
          '',
          'To confirm, reply to this message (keep the subject). Nothing happens otherwise;',
          'the token is valid for 48 hours.',
        ].join('\n'),
      },
    };
  }

  /** A reply naming a confirmation token: subscribes its owner, or is refused with the reason. */
  confirm(token: string, sender: Fingerprint, settings: ListSettings): CommandOutcome {
    const { store, trust, log } = this.deps;
    const decision = decideConfirm({ token: store.confirmation(token), sender, now: this.deps.clock() });
    const entity = trust.entity(sender);
    if (decision.action === 'refuse' || !entity) {
      const code = decision.action === 'refuse' ? decision.code : 'unknown-token';
      const reason = decision.action === 'refuse' ? decision.reason : 'the list holds no key for the sender';
      log.warn({ sender, code, reason }, 'list: confirmation refused');
      const answer =
        decision.action === 'refuse' && decision.answer
          ? {
              subject: `Not confirmed: ${settings.name}`,
              text: `Your confirmation was not taken: ${reason}. Send "subscribe" to ${settings.email} to start again.`,
            }
          : undefined;
      return { reason: code, answer };
    }
    if (!store.useConfirmation(token)) return { reason: 'used' };
    store.addMember({ fingerprint: sender, email: entity.email, name: entity.name, moderator: false });
    log.info({ sender }, 'list: subscription confirmed');
    return {
      reason: 'confirmed',
      answer: {
        subject: `Welcome to ${settings.name}`,
        text: `You are now a member of ${settings.name}. Send "unsubscribe" to ${settings.email} to leave.`,
      },
    };
  }
}

/**
 * Written by a machine: Auto-Submitted other than "no" (RFC 3834), an X-Loop (some list or
 * responder handled it), or a List-Id (a copy from another list).
 */
export function isAutomatic(raw: Buffer): boolean {
  const auto = headerValues(raw, 'Auto-Submitted').some((v) => v.trim().toLowerCase() !== 'no');
  return auto || headerValues(raw, 'X-Loop').length > 0 || headerValues(raw, 'List-Id').length > 0;
}
