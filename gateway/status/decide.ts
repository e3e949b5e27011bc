import type { DeliveryEvent } from '../delivery.ts';
import type { RecipientRecord, RecipientStatus, Submission } from '../submissions.ts';

export type ReportKind = 'delivered' | 'delayed' | 'failed';

/**
 * Whether a delivery event deserves a status email. Pure, so the policy reads in one place:
 * - a copy that already reached a final state says nothing new (late or repeated events);
 * - the null sender (MAIL FROM:<>, e.g. read receipts) never gets one, so reports cannot loop;
 * - NOTIFY (RFC 3461) decides when the client gave it; without it failures and delays are
 *   reported (the RFC's default) and deliveries when configured (alwaysReportDelivery);
 * - one "delayed" email per copy: a stall that keeps stalling is one worry, not many.
 */
export function shouldReport(
  kind: DeliveryEvent['kind'],
  submission: Pick<Submission, 'mailFrom'>,
  recipient: Pick<RecipientRecord, 'status' | 'notify' | 'delayReported'>,
  alwaysReportDelivery: boolean,
): kind is ReportKind {
  if (kind === 'progress') return false;
  if (recipient.status === 'delivered' || recipient.status === 'failed') return false;
  if (submission.mailFrom === '') return false;
  const notify = recipient.notify;
  if (notify?.includes('NEVER')) return false;
  switch (kind) {
    case 'delivered':
      return notify ? notify.includes('SUCCESS') : alwaysReportDelivery;
    case 'delayed':
      return !recipient.delayReported && (notify ? notify.includes('DELAY') : true);
    case 'failed':
      return notify ? notify.includes('FAILURE') : true;
  }
}

/** The recipient status an event moves a copy to (progress leaves it pending). */
export function statusAfter(kind: DeliveryEvent['kind']): RecipientStatus {
  return kind === 'progress' ? 'pending' : kind;
}

/**
 * RFC 3463 status code of a report. Delays are transient network trouble (4.4.0); a failure
 * is "unable to route" when no path was found, "delivery time expired" when it aged out, and
 * "delivery not authorised" when the recipient's agent refused it.
 */
export function statusCode(event: DeliveryEvent): string {
  switch (event.kind) {
    case 'delivered':
      return '2.0.0';
    case 'delayed':
    case 'progress':
      return '4.4.0';
    case 'failed':
      return { 'no-path': '5.4.4', expired: '5.4.7', refused: '5.7.1' }[event.cause ?? 'no-path'] ?? '5.4.0';
  }
}

/**
 * What to return with a report (RFC 3461 RET). A failure returns the full message unless the
 * client asked for headers only or the message is larger than maxReturnBytes (returning a
 * multi-gigabyte attachment into the sender's own INBOX helps nobody). Successes and delays
 * return headers only, as RFC 3461 recommends: enough for the client to show what it was.
 */
export function whatToReturn(
  kind: ReportKind,
  ret: 'FULL' | 'HDRS' | undefined,
  size: number,
  maxReturnBytes: number,
): 'full' | 'headers' {
  if (kind !== 'failed' || ret === 'HDRS' || size > maxReturnBytes) return 'headers';
  return 'full';
}
