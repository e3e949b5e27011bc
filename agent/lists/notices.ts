import type { MessageId } from '../../common/ids.ts';
import type { CopyCounts } from './policy.ts';
import { phrase } from './headers.ts';

/** A message the list itself writes: a summary, a refusal, a command's answer. */
export interface Notice {
  subject: string;
  text: string;
  /** Message-ID of the post it answers, for threading. */
  inReplyTo?: string;
}

/**
 * The RFC 5322 form of a list's own message. Auto-Submitted (RFC 3834) so that no
 * well-behaved autoresponder answers it, and the list's X-Loop so that it is never
 * distributed should it come back.
 */
export function composeNotice(
  list: { name: string; email: string },
  to: string,
  notice: Notice,
  id: MessageId,
  now = new Date(),
): Buffer {
  const subject = /^[\x20-\x7e]*$/.test(notice.subject)
    ? notice.subject
    : `=?UTF-8?B?${Buffer.from(notice.subject).toString('base64')}?=`;
  const lines = [
    `From: ${phrase(list.name)} <${list.email}>`,
    `To: <${to}>`,
    `Subject: ${subject}`,
    `Date: ${now.toUTCString().replace('GMT', '+0000')}`,
    `Message-ID: <${id}@kith>`,
    ...(notice.inReplyTo ? [`In-Reply-To: ${notice.inReplyTo}`, `References: ${notice.inReplyTo}`] : []),
    'Auto-Submitted: auto-replied',
    `X-Loop: ${list.email}`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
    '',
    notice.text.replace(/\r?\n/g, '\r\n'),
    '',
  ];
  return Buffer.from(lines.join('\r\n'), 'utf8');
}

/** The one status email a poster gets for a post: counts only, never who the subscribers are. */
export function summaryNotice(
  listName: string,
  subject: string,
  counts: CopyCounts,
  inReplyTo?: string,
): Notice {
  const delayed = counts.delayed + counts.pending;
  const total = counts.delivered + delayed + counts.failed;
  const lines = [
    `Your post "${subject}" to ${listName} went to ${total} subscriber${total === 1 ? '' : 's'}:`,
    '',
    `  delivered  ${counts.delivered}`,
    `  delayed    ${delayed}`,
    `  failed     ${counts.failed}`,
    '',
    delayed > 0
      ? 'Delayed copies are still on their way; Kith keeps trying. This is the only status email for this post.'
      : 'This is the only status email for this post.',
  ];
  return {
    subject: `Delivery of your post to ${listName}: ${counts.delivered} delivered, ${delayed} delayed, ${counts.failed} failed`,
    text: lines.join('\n'),
    inReplyTo,
  };
}

/** The answer to a refused post: what happened and why. */
export function refusalNotice(listName: string, subject: string, reason: string, inReplyTo?: string): Notice {
  return {
    subject: `Not distributed: ${subject}`.slice(0, 200),
    text: `Your post "${subject}" to ${listName} was not distributed: ${reason}.\n\nNothing was sent to the list's subscribers.`,
    inReplyTo,
  };
}

/** What `help` answers: the commands, by subject keyword to the list's address. */
export function helpNotice(list: { name: string; email: string }, policy: string): Notice {
  return {
    subject: `Help for ${list.name}`,
    text: [
      `${list.name} <${list.email}> is a Kith list (posting: ${policy}).`,
      '',
      `Write to ${list.email} to post. Commands: a message to ${list.email} whose subject is`,
      '  help         this text',
      '  subscribe    join the list (where its policy lets you)',
      '  unsubscribe  leave the list',
      '',
      'Commands are taken only from signed mail, so nobody can subscribe or unsubscribe you.',
    ].join('\n'),
  };
}

/** What each moderator gets for a held post: the post itself, and how to answer. */
export function moderationRequest(
  listName: string,
  postId: MessageId,
  subject: string,
  copy: Buffer,
): Notice {
  return {
    subject: `Moderation: ${postId} ${subject}`.slice(0, 200),
    text: [
      `A post to ${listName} waits for a moderator. Reply to this message with`,
      '  approve',
      '  reject <reason>',
      'as the first line of your answer (your signed reply is the decision).',
      '',
      '---- the held post ----',
      copy.toString('utf8'),
    ].join('\n'),
  };
}

/** A moderator's answer: the first line of its text that is neither empty nor quoted. Pure. */
export function moderationVerdict(
  text: string,
): { action: 'approve' } | { action: 'reject'; reason?: string } | { action: 'unclear' } {
  const line = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .find((l) => l !== '' && !l.startsWith('>'));
  const m = /^(approve|reject)\b[\s:,-]*(.*)$/i.exec(line ?? '');
  if (!m) return { action: 'unclear' };
  if (m[1].toLowerCase() === 'approve') return { action: 'approve' };
  return m[2] ? { action: 'reject', reason: m[2].slice(0, 200) } : { action: 'reject' };
}
