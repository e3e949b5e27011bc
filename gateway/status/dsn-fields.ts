import type { DeliveryEvent } from '../delivery.ts';
import type { RecipientRecord, Submission } from '../submissions.ts';
import type { ReportKind } from './decide.ts';
import { statusCode } from './decide.ts';

/** RFC 5322 date, as the DSN date fields want it. */
export function rfc822Date(date: Date): string {
  return date.toUTCString().replace(/GMT$/, '+0000');
}

/** Strips what must never reach a header-like field line. */
function clean(value: string): string {
  return value.replace(/\p{Cc}+/gu, ' ').trim();
}

/**
 * The machine-readable part (message/delivery-status, RFC 3464): per-message fields, an empty
 * line, then the fields of the one recipient this event is about. Extension fields carry what
 * only Kith knows (the recipient entity, the copy's Kith message id).
 */
export function deliveryStatusFields(options: {
  reportingMta: string;
  submission: Submission;
  recipient: RecipientRecord;
  event: DeliveryEvent & { kind: ReportKind };
  willRetryUntil?: Date;
}): string {
  const { submission, recipient, event } = options;
  const perMessage = [`Reporting-MTA: dns; ${clean(options.reportingMta)}`];
  if (submission.envid) perMessage.push(`Original-Envelope-Id: ${clean(submission.envid)}`);
  perMessage.push(`Arrival-Date: ${rfc822Date(submission.receivedAt)}`);

  const perRecipient: string[] = [];
  if (recipient.orcpt) {
    const semi = recipient.orcpt.indexOf(';');
    perRecipient.push(
      `Original-Recipient: ${clean(recipient.orcpt.slice(0, semi))}; ${clean(recipient.orcpt.slice(semi + 1))}`,
    );
  }
  perRecipient.push(`Final-Recipient: rfc822; ${clean(recipient.address)}`);
  perRecipient.push(`Action: ${event.kind}`);
  perRecipient.push(`Status: ${statusCode(event)}`);
  if (event.kind === 'delayed' && event.lastHop)
    perRecipient.push(`Remote-MTA: x-kith; ${clean(event.lastHop)}`);
  if (event.kind === 'failed') perRecipient.push(`Diagnostic-Code: x-kith; ${clean(event.reason)}`);
  perRecipient.push(`Last-Attempt-Date: ${rfc822Date(event.at)}`);
  if (event.kind === 'delayed' && options.willRetryUntil) {
    perRecipient.push(`Will-Retry-Until: ${rfc822Date(options.willRetryUntil)}`);
  }
  perRecipient.push(`X-Kith-Recipient-Entity: ${recipient.fingerprint}`);
  perRecipient.push(`X-Kith-Message-Copy: ${recipient.messageId}`);
  return `${perMessage.join('\r\n')}\r\n\r\n${perRecipient.join('\r\n')}\r\n`;
}
