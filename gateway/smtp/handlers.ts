import { randomBytes } from 'node:crypto';
import { simpleParser } from 'mailparser';
import type {
  SMTPServerAddress,
  SMTPServerAuthentication,
  SMTPServerAuthenticationResponse,
  SMTPServerDataStream,
  SMTPServerSession,
} from 'smtp-server';
import { KithError } from '../../common/errors.ts';
import { asFingerprint, asMessageId, type Fingerprint } from '../../common/ids.ts';
import type { Logger } from '../../common/logger.ts';
import type { BlobStore } from '../../store/blobs.ts';
import type { Authenticator, MailAccount } from '../auth.ts';
import type { DeliveryService, RecipientResolution } from '../delivery.ts';
import type { NewSubmission, SubmissionRecipient, SubmissionStore } from '../submissions.ts';
import { fieldsNamed } from './header-section.ts';
import { checkEnvelopeSender, checkHeader, type HeaderLimits } from './message-check.ts';
import { receiveData } from './receive-data.ts';
import { toSmtpReply } from './replies.ts';

export interface HandlerDeps {
  auth: Authenticator;
  delivery: DeliveryService;
  submissions: SubmissionStore;
  blobs: BlobStore;
  log: Logger;
  maxMessageBytes: number;
  headerLimits: HeaderLimits;
  /**
   * Rewrites a message with a large attachment into a file-link payload (gateway/streams/split.ts);
   * undefined: sent as it is.
   */
  linkAttachments?: (
    rawPath: string,
    size: number,
    hash: string,
  ) => Promise<{ path: string; size: number } | undefined>;
}

/** A RCPT TO address after resolution: the entity it leads to rides along on the parsed address. */
type ResolvedAddress = SMTPServerAddress & { kithFingerprint?: Fingerprint };

type Done = (err?: Error | null) => void;

/** The smtp-server hooks of the submission server (onAuth, onMailFrom, onRcptTo, onData). */
export function createHandlers(deps: HandlerDeps) {
  const { log } = deps;

  const accountOf = (session: SMTPServerSession): MailAccount => session.user as MailAccount;

  async function onAuth(
    auth: SMTPServerAuthentication,
    session: SMTPServerSession,
    done: (err: Error | null | undefined, response?: SMTPServerAuthenticationResponse) => void,
  ): Promise<void> {
    const result = await deps.auth.check(
      auth.username ?? '',
      auth.password ?? '',
      session.remoteAddress,
      'smtp',
    );
    if (!result.ok || !result.account) {
      done(null, { message: '5.7.8 authentication failed: wrong user name or password', responseCode: 535 });
      return;
    }
    log.info({ user: result.account.user, remote: session.remoteAddress }, 'smtp login');
    done(null, { user: result.account });
  }

  function onMailFrom(address: SMTPServerAddress, session: SMTPServerSession, done: Done): void {
    const account = accountOf(session);
    try {
      checkEnvelopeSender(address.address, account.addresses);
      done();
    } catch (err) {
      log.warn({ user: account.user, mailFrom: address.address }, 'smtp sender refused');
      done(toSmtpReply(err));
    }
  }

  async function onRcptTo(address: ResolvedAddress, session: SMTPServerSession, done: Done): Promise<void> {
    try {
      address.kithFingerprint = await resolve(address.address);
      done();
    } catch (err) {
      log.info(
        { user: accountOf(session).user, rcpt: address.address, code: (err as KithError).code },
        'smtp recipient refused',
      );
      done(toSmtpReply(err));
    }
  }

  // Fingerprint addresses too go to the agent: it must hold (or first discover) the key to encrypt.
  async function resolve(address: string): Promise<Fingerprint> {
    let resolution: RecipientResolution;
    try {
      resolution = await deps.delivery.resolveRecipient(address);
    } catch (err) {
      throw new KithError(
        'ERR_SMTP_RESOLVE_FAILED',
        `could not look up ${address} right now`,
        'try again in a moment',
        { cause: err },
      );
    }
    if (resolution.ok) return resolution.fingerprint;
    const code = {
      unknown: 'ERR_SMTP_RECIPIENT_UNKNOWN',
      ambiguous: 'ERR_SMTP_RECIPIENT_AMBIGUOUS',
      unreachable: 'ERR_SMTP_RECIPIENT_UNREACHABLE',
      'no-path-yet': 'ERR_SMTP_RECIPIENT_NO_PATH_YET',
    }[resolution.reason];
    throw new KithError(code, `${address}: ${resolution.message}`);
  }

  async function onData(
    stream: SMTPServerDataStream,
    session: SMTPServerSession,
    done: (err?: Error | null, message?: string) => void,
  ): Promise<void> {
    const account = accountOf(session);
    const envelope = session.envelope;
    try {
      const data = await receiveData(stream, deps.blobs, {
        ...deps.headerLimits,
        maxMessageBytes: deps.maxMessageBytes,
        checkHeader: (header, parsed) => checkHeader(header, parsed, account.addresses, deps.headerLimits),
      });
      const meta = await simpleParser(data.header, { skipHtmlToText: true, skipTextToHtml: true });
      const from = fieldsNamed(data.parsed.fields, 'From')[0];
      const fromAddress = meta.from?.value[0]?.address ?? from.value;
      const submission: NewSubmission = {
        id: randomBytes(16).toString('hex'),
        account: asFingerprint(account.fingerprint),
        mailFrom: envelope.mailFrom ? envelope.mailFrom.address : '',
        fromHeader: fromAddress,
        envid: envelope.dsn?.envid ?? undefined,
        ret: (envelope.dsn?.ret as 'FULL' | 'HDRS' | null) ?? undefined,
        blob: data.hash,
        size: data.size,
        headerMessageId: meta.messageId,
        references: fieldsNamed(data.parsed.fields, 'References')[0]?.value,
        subject: meta.subject,
        receivedAt: new Date(),
        recipients: recipientsOf(envelope.rcptTo as ResolvedAddress[]),
      };
      // A retry of a message answered 451 after the agent took some of its copies: those
      // copies are on their way already; this submission adopts them instead of sending again.
      const taken = deps.submissions.handedOverCopies(submission.account, data.hash);
      const adopted = new Set<string>();
      for (const r of submission.recipients) {
        const copy = taken.get(r.fingerprint);
        if (copy === undefined) continue;
        r.messageId = copy;
        adopted.add(copy);
      }
      const original = deps.blobs.pathOf(data.hash);
      const linked = await deps.linkAttachments?.(original, data.size, data.hash);
      const rawPath = linked?.path ?? original;
      // The sealing first (CPU, nothing durable), then one commit for the submission's record,
      // every copy the agent took and the answer's state, shared with the other submissions
      // waiting at that moment (group commit); 250 only after it. A copy that could not be
      // prepared leaves the others taken and the submission abandoned (451): a client's retry
      // adopts the copies already on their way.
      const prepared = await Promise.allSettled(
        submission.recipients
          .filter((r) => !adopted.has(r.messageId))
          .map(async (r) => ({
            messageId: r.messageId,
            copy: await deps.delivery.prepare({
              id: r.messageId,
              from: submission.account,
              to: r.fingerprint,
              rawPath,
              size: linked?.size ?? data.size,
            }),
          })),
      );
      const failed = prepared.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      const ready = prepared.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
      await deps.submissions.commit(() => {
        deps.submissions.record(submission);
        for (const t of ready) {
          t.copy.write();
          deps.submissions.markHandedOver(t.messageId);
        }
        if (failed) deps.submissions.markAbandoned(submission.id);
        else deps.submissions.markAccepted(submission.id);
      });
      for (const t of ready) t.copy.start();
      if (failed) {
        throw new KithError(
          'ERR_SMTP_SUBMIT_FAILED',
          'the Kith agent did not take the message',
          'try again later',
          { cause: failed.reason },
        );
      }
      if (adopted.size > 0) {
        log.info(
          { submission: submission.id, adopted: adopted.size },
          'smtp retry: copies already on their way',
        );
      }
      log.info(
        {
          user: account.user,
          submission: submission.id,
          size: data.size,
          recipients: submission.recipients.length,
        },
        'smtp message accepted',
      );
      done(null, `queued as ${submission.id}`);
    } catch (err) {
      const reply = toSmtpReply(err);
      const level = reply.responseCode >= 500 ? 'info' : 'error';
      log[level]({ user: account.user, err, reply: reply.message }, 'smtp message refused');
      done(reply);
    }
  }

  return { onAuth, onMailFrom, onRcptTo, onData };
}

/** One copy per entity: two addresses of the same person get the message once. */
function recipientsOf(rcptTo: readonly ResolvedAddress[]): SubmissionRecipient[] {
  const seen = new Set<string>();
  const out: SubmissionRecipient[] = [];
  for (const rcpt of rcptTo) {
    const fingerprint = rcpt.kithFingerprint!;
    if (seen.has(fingerprint)) continue;
    seen.add(fingerprint);
    out.push({
      messageId: asMessageId(randomBytes(16).toString('hex')),
      address: rcpt.address,
      fingerprint,
      notify: rcpt.dsn?.notify?.map((n) => n.toUpperCase()),
      orcpt: rcpt.dsn?.orcpt,
    });
  }
  return out;
}
