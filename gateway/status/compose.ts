import MailComposer, { type MailComposerAttachment } from 'nodemailer/lib/mail-composer';
import type { DeliveryEvent } from '../delivery.ts';
import type { RecipientRecord, Submission } from '../submissions.ts';
import { whatToReturn, type ReportKind } from './decide.ts';
import { deliveryStatusFields, rfc822Date } from './dsn-fields.ts';

export interface ComposerOptions {
  /** From: of status emails. */
  from: string;
  /** Name in Reporting-MTA and in the Message-ID of status emails. */
  reportingMta: string;
  /** How long Kith keeps trying (delivery.maxAgeMs), for "Will-Retry-Until". */
  maxAgeMs: number;
  /** Largest original returned whole with a failure report; larger ones return headers only. */
  maxReturnBytes: number;
}

export interface ReportInput {
  submission: Submission;
  recipient: RecipientRecord;
  event: DeliveryEvent & { kind: ReportKind };
  /** The original message (whole), or undefined when its blob is gone. */
  original?: { header: Buffer; full: () => Buffer };
}

const SUBJECT_PREFIX: Record<ReportKind, string> = {
  delivered: 'Delivered',
  delayed: 'Delayed',
  failed: 'Undelivered',
};

/** Groups of four, so a fingerprint can be read aloud and compared. */
function spaced(fingerprint: string): string {
  return fingerprint.replace(/(.{4})(?=.)/g, '$1 ');
}

/** Where a delayed message got to, as a sentence without its final stop. */
function whereItIs(event: DeliveryEvent & { kind: 'delayed' }): string {
  if (event.lastHop) {
    return event.hop
      ? `It last reached the Kith agent ${event.lastHop}, ${ordinal(event.hop)} on its path`
      : `It last reached the Kith agent ${event.lastHop}`;
  }
  if (event.hop) return `It last reached the ${ordinal(event.hop)} agent on its path`;
  return 'It has not left your agent yet';
}

function ordinal(n: number): string {
  const tens = n % 100;
  const suffix = tens >= 11 && tens <= 13 ? 'th' : ({ 1: 'st', 2: 'nd', 3: 'rd' }[n % 10] ?? 'th');
  return `${n}${suffix}`;
}

/** The human-readable first part: what happened, and whether the user needs to do anything. */
export function humanText(input: ReportInput, options: ComposerOptions): string {
  const { submission, recipient, event } = input;
  const what = [
    'Your message',
    '',
    `  Subject: ${submission.subject ?? '(no subject)'}`,
    `  Sent:    ${rfc822Date(submission.receivedAt)}`,
    `  To:      ${recipient.address} (Kith key ${spaced(recipient.fingerprint)})`,
    '',
  ];
  switch (event.kind) {
    case 'delivered':
      return [
        ...what,
        `was delivered on ${rfc822Date(event.at)}: it is in the recipient's mailbox now.`,
        "The recipient's own agent confirmed this; it does not mean the message has been read.",
        '',
      ].join('\r\n');
    case 'delayed': {
      const until = new Date(submission.receivedAt.getTime() + options.maxAgeMs);
      return [
        ...what,
        'has not been delivered yet.',
        '',
        `${whereItIs(event)} (${rfc822Date(event.at)}).`,
        event.action,
        '',
        `You do not need to do anything. Kith keeps trying until ${rfc822Date(until)};`,
        'you will get another message if it cannot be delivered by then.',
        '',
      ].join('\r\n');
    }
    case 'failed': {
      const advice = {
        'no-path':
          'No agent in your web of trust found a way to this person. Ask them for an invitation, or check the address, then send the message again.',
        expired:
          'Kith kept trying until the message expired. The recipient may be offline for a long time; try again later.',
        refused: "The recipient's agent refused the message.",
      }[event.cause ?? 'no-path'];
      const returned =
        whatToReturn('failed', submission.ret, submission.size, options.maxReturnBytes) === 'full'
          ? 'The original message is attached.'
          : 'The header of the original message is attached.';
      return [
        ...what,
        'could not be delivered.',
        '',
        `Reason: ${event.reason}`,
        '',
        advice,
        input.original ? returned : '',
        '',
      ].join('\r\n');
    }
  }
}

/** Message-ID of the status email of one kind for one copy: the same each time it is written. */
export function reportMessageId(kind: ReportKind, copy: string, reportingMta: string): string {
  return `<${kind}.${copy}@${reportingMta}>`;
}

/**
 * Builds the status email: multipart/report; report-type=delivery-status (RFC 3462/3464),
 * human-readable text first, message/delivery-status second, the original (or its header)
 * third, threaded with the original through In-Reply-To and References. The Message-ID is
 * derived from the copy and the kind, so a report written twice is recognisably the same one.
 */
export async function composeReport(input: ReportInput, options: ComposerOptions): Promise<Buffer> {
  const { submission, recipient, event } = input;
  const returned = whatToReturn(event.kind, submission.ret, submission.size, options.maxReturnBytes);
  const attachments: MailComposerAttachment[] = [
    {
      contentType: 'message/delivery-status',
      content: deliveryStatusFields({
        reportingMta: options.reportingMta,
        submission,
        recipient,
        event,
        willRetryUntil: new Date(submission.receivedAt.getTime() + options.maxAgeMs),
      }),
      contentDisposition: 'inline',
      filename: false,
    },
  ];
  if (input.original) {
    attachments.push(
      returned === 'full'
        ? {
            // an attachment, not inline: clients then offer it as a file to open, and parsers
            // (mailparser) keep it whole instead of merging its parts into the report
            contentType: 'message/rfc822',
            content: input.original.full(),
            contentTransferEncoding: '8bit',
            contentDisposition: 'attachment',
            filename: 'original-message.eml',
          }
        : {
            contentType: 'text/rfc822-headers',
            content: input.original.header,
            contentTransferEncoding: '8bit',
            contentDisposition: 'inline',
            filename: false,
          },
    );
  }
  const references = [submission.references, submission.headerMessageId].filter(Boolean).join(' ');
  const composer = new MailComposer({
    from: options.from,
    to: submission.mailFrom,
    subject: `${SUBJECT_PREFIX[event.kind]}: ${submission.subject ?? '(no subject)'}`,
    messageId: reportMessageId(event.kind, recipient.messageId, options.reportingMta),
    date: event.at,
    inReplyTo: submission.headerMessageId,
    references: references || undefined,
    headers: { 'Auto-Submitted': 'auto-replied' },
    text: humanText(input, options),
    attachments,
  });
  const root = composer.compile();
  root.setHeader('Content-Type', 'multipart/report; report-type=delivery-status');
  return root.build();
}
