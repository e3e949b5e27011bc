import { open } from 'node:fs/promises';
import { readFile } from 'node:fs/promises';
import type { Logger } from '../../common/logger.ts';
import type { MessageId } from '../../common/ids.ts';
import type { MailStore } from '../mailbox/types.ts';
import type { BlobStore } from '../../store/blobs.ts';
import type { Rider } from '../../store/group-commit.ts';
import type { DeliveryEvent, GatewaySink, InboundMessage } from '../delivery.ts';
import { prepareInbound } from '../inbound.ts';
import { fieldsNamed, headerEnd, parseHeader } from '../smtp/header-section.ts';
import type { SubmissionStore } from '../submissions.ts';
import { composeReport, reportMessageId, type ComposerOptions } from './compose.ts';
import { shouldReport, statusAfter, whatToReturn } from './decide.ts';

/**
 * Where status emails and incoming messages go: the mailbox store (gateway/mailbox) or anything
 * like it. The optional lookups let the sink find a Kith message id already stored (receive() is
 * then idempotent); a drop without them stores every message it is given.
 */
export interface MailDrop extends Partial<
  Pick<MailStore, 'mailboxes' | 'headerCandidates' | 'messages' | 'readHeader' | 'holdsKithMessage'>
> {
  /** Stores a message; durable when it resolves. */
  deliver(input: {
    mailbox?: string;
    raw: Buffer;
    flags?: string[];
    internalDate?: Date;
    with?: Rider;
  }): Promise<{
    mailbox: string;
    uid: number;
  }>;
}

export interface GatewaySinkOptions {
  /** The entity's mailbox. */
  store: MailDrop;
  submissions: SubmissionStore;
  /** Where SMTP stored the originals (returned with failure reports). */
  blobs: BlobStore;
  /** Looked in when an original is not in blobs (submissions from before they had their own store). */
  fallbackBlobs?: BlobStore;
  composer: ComposerOptions & {
    /** Report deliveries also when the client did not ask (no NOTIFY). */
    alwaysReportDelivery: boolean;
  };
  /** authserv-id of the Authentication-Results header on incoming mail. */
  authservId?: string;
  log: Logger;
}

const HEADER_READ_LIMIT = 256 * 1024;

/** What the agent calls with incoming mail and delivery events. */
export function createGatewaySink(options: GatewaySinkOptions): GatewaySink {
  const { store, submissions, blobs, log } = options;
  // One event at a time per message: a repeated event must see the state the previous one left.
  // Events of different copies run side by side, so that their writes share group commits
  // (bench/RESULTS.md 10.6: one global queue gave every status email commits of its own).
  const queues = new Map<MessageId, Promise<unknown>>();

  async function loadOriginal(hash: string, wholeNeeded: boolean) {
    let path: string | undefined;
    for (const store of [blobs, options.fallbackBlobs]) {
      if (store && (await store.has(hash))) {
        path = store.pathOf(hash);
        break;
      }
    }
    if (path === undefined) return undefined;
    if (wholeNeeded) {
      const raw = await readFile(path);
      const end = headerEnd(raw);
      return { header: end === -1 ? raw : raw.subarray(0, end), full: () => raw };
    }
    const fh = await open(path, 'r');
    try {
      const buf = Buffer.alloc(HEADER_READ_LIMIT);
      const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
      const head = buf.subarray(0, bytesRead);
      const end = headerEnd(head);
      const header = end === -1 ? head : head.subarray(0, end);
      return { header, full: () => header };
    } finally {
      await fh.close();
    }
  }

  async function handle(event: DeliveryEvent, final?: Rider): Promise<void> {
    if (event.kind === 'progress') return;
    const found = submissions.findByMessage(event.id);
    if (!found) {
      log.debug({ id: event.id, kind: event.kind }, 'status for a message the gateway did not submit');
      return;
    }
    const { submission, recipient } = found;
    const kind = event.kind;
    const reported = shouldReport(kind, submission, recipient, options.composer.alwaysReportDelivery);
    // The copy's new state, with the agent's final mark: in the status email's own savepoint where
    // there is one (email, state and mark in one commit, bench/RESULTS.md 10.9), else on its own.
    const state = submissions
      .rider(() => {
        if (kind === 'delayed' && reported) submissions.markDelayReported(event.id);
        submissions.transition(event.id, statusAfter(kind));
      })
      .and(final);
    if (reported) {
      const whole =
        whatToReturn(kind, submission.ret, submission.size, options.composer.maxReturnBytes) === 'full';
      const original = await loadOriginal(submission.blob, whole);
      const raw = await composeReport(
        { submission, recipient, event: event as typeof event & { kind: typeof kind }, original },
        options.composer,
      );
      // The email with the state, or (not taken: another database) the email first: after a crash
      // in between, the event comes again (the agent re-sends final ones at start) and finds the
      // email by its Message-ID, so it is stored once rather than never or twice.
      const reportId = reportMessageId(kind, event.id, options.composer.reportingMta);
      if (await reportStored(reportId)) {
        log.info({ id: event.id, kind }, 'status email already in the mailbox: not stored again');
      } else {
        const { uid } = await store.deliver({ mailbox: 'INBOX', raw, internalDate: event.at, with: state });
        log.info({ id: event.id, kind, uid }, 'status email delivered');
      }
    }
    // Not taken by an email: in the group commit, shared with the other copies' writes.
    await state.commit();
  }

  /**
   * True if a message with this Kith id is in any mailbox (X-Kith-Message-Id, which the sink
   * itself writes). Why: the agent records an id as delivered only after receive() resolves, so
   * a crash in between makes the sender re-send; the copy must not be stored a second time.
   */
  function alreadyStored(id: MessageId): boolean {
    return store.holdsKithMessage?.(id) ?? false;
  }

  /** True if a status email with this Message-ID is in any mailbox (the user may have moved it). */
  async function reportStored(messageId: string): Promise<boolean> {
    const { mailboxes, headerCandidates, messages, readHeader } = store;
    if (!mailboxes || !headerCandidates || !messages || !readHeader) return false;
    const want = messageId.toLowerCase();
    for (const box of mailboxes.call(store)) {
      const uids = [...headerCandidates.call(store, box.id, want)];
      if (uids.length === 0) continue;
      for (const row of messages.call(store, box.id, uids, { header: true })) {
        const fields = parseHeader(await readHeader.call(store, row)).fields;
        if (fieldsNamed(fields, 'Message-ID').some((f) => f.value.trim().toLowerCase() === want)) return true;
      }
    }
    return false;
  }

  // Messages being stored now: a second receive() of the same id waits for the first.
  const storing = new Map<MessageId, Promise<void>>();

  async function store1(message: InboundMessage): Promise<void> {
    if (alreadyStored(message.id)) {
      log.info({ id: message.id }, 'incoming message already in the mailbox: not stored again');
      return;
    }
    const raw = prepareInbound(message, options.authservId);
    const { uid } = await store.deliver({
      mailbox: 'INBOX',
      raw,
      internalDate: message.receivedAt,
      with: message.delivered,
    });
    log.info({ id: message.id, verified: message.verified, uid }, 'incoming message stored');
  }

  return {
    async receive(message: InboundMessage) {
      const before = storing.get(message.id);
      const next = (before ?? Promise.resolve()).catch(() => undefined).then(() => store1(message));
      storing.set(message.id, next);
      try {
        await next;
      } finally {
        if (storing.get(message.id) === next) storing.delete(message.id);
      }
    },
    status(event: DeliveryEvent, final?: Rider) {
      const before = queues.get(event.id) ?? Promise.resolve();
      const next = before.then(() => handle(event, final));
      const settled = next.catch(() => undefined);
      queues.set(event.id, settled);
      void settled.then(() => {
        if (queues.get(event.id) === settled) queues.delete(event.id);
      });
      return next;
    },
  };
}
