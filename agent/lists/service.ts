import { randomBytes } from 'node:crypto';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { simpleParser } from 'mailparser';
import { join } from 'node:path';
import { asMessageId, type Fingerprint, type MessageId } from '../../common/ids.ts';
import type { Logger } from '../../common/logger.ts';
import type { DeliveryEvent, GatewaySink, InboundMessage, OutboundMessage } from '../../gateway/delivery.ts';
import type { SharedBody } from '../delivery/engine.ts';
import type { SpamControl } from '../spam/control.ts';
import type { TrustStore } from '../trust/store.ts';
import { hasOwnLoopMark, headerValues, posterName, rewritePost } from './headers.ts';
import {
  composeNotice,
  moderationRequest,
  moderationVerdict,
  refusalNotice,
  summaryNotice,
  type Notice,
} from './notices.ts';
import { COMMANDS, CONFIRM, ListCommands } from './commands.ts';
import { isBouncing } from './rules.ts';
import { countCopies, decidePost, summaryDue, type CopyState, type PostFacts } from './policy.ts';
import type { ListPost, ListSettings, ListStore } from './store.ts';

/** What a list needs of the node that carries it. */
export interface ListNodeView {
  identity: { fingerprint: Fingerprint; email: string; name: string };
  trust: Pick<TrustStore, 'entity'>;
  /**
   * The list's delivery (AgentDeliveryService). With shareBody, a post is signed and encrypted
   * once and each copy carries only its subscriber's key wrap (wrap-once, docs/protocol.md 17);
   * without it, or when it does not apply (a post over 60,000 bytes), each copy is sealed whole.
   */
  delivery: {
    submit(message: OutboundMessage & { shared?: SharedBody }): Promise<void>;
    shareBody?(rawPath: string, bodyPath: string): Promise<SharedBody>;
  };
  /** Spam control of the list's agent: complaints about copies are carried on (complained()). */
  spam?: Pick<SpamControl, 'carry'>;
}

/** Where a member's distributed post goes besides the members: a bridge's outside list (bridge/). */
export type PostOutlet = (post: MessageId, copy: Buffer, rawPath: string, posterName: string) => void;

/** A moderator's answer names the held post in its subject ("Re: Moderation: <id> …"). */
const MODERATION = /\bmoderation:\s*([0-9a-f]{32})\b/i;

/**
 * One list entity at work: takes the posts its node receives (signature already checked by the
 * engine), decides on them (policy.ts), re-submits one copy per subscriber through the node's
 * normal delivery (so each copy is signed by the list, encrypted to that subscriber and tracked
 * hop by hop in the list's outbox), follows the copies' delivery events and sends the poster one
 * summary. It replaces the node's gateway sink: posts do not pile up in the list's INBOX (only
 * distributed copies do, when the list has an archive).
 */
export class ListService {
  private timer?: NodeJS.Timeout;
  private readonly fanOuts = new Set<Promise<void>>();
  private outlet?: PostOutlet;
  private readonly commands: ListCommands;

  constructor(
    private readonly deps: {
      node: ListNodeView;
      store: ListStore;
      /** The node's own gateway sink: the list's mailbox, where an archive keeps copies. */
      archive: GatewaySink;
      /** Where each distributed copy's bytes stay until its delivery ends. */
      postsDir: string;
      log: Logger;
      clock?: () => number;
    },
  ) {
    this.commands = new ListCommands({
      store: deps.store,
      trust: deps.node.trust,
      log: deps.log,
      clock: () => this.now,
    });
  }

  private get now(): number {
    return (this.deps.clock ?? Date.now)();
  }

  settings(): ListSettings {
    const s = this.deps.store.settings();
    if (!s) throw new Error('list settings missing');
    return s;
  }

  /** The sink the list's node hands incoming messages and delivery events to. */
  sink(): GatewaySink {
    return { receive: (m) => this.receive(m), status: (e) => this.status(e) };
  }

  /** Re-submits copies a crash left behind, then checks summaries now and then. */
  async start(): Promise<void> {
    await mkdir(this.deps.postsDir, { recursive: true, mode: 0o700 });
    const left = this.deps.store.unsubmitted();
    if (left.length > 0) {
      this.deps.log.info({ copies: left.length }, 'list: re-submitting copies left by a stop');
      for (const post of new Set(left.map((c) => c.post)))
        this.track(this.fanOut(this.deps.store.post(post)!));
    }
    const every = Math.max(200, Math.min(10_000, Math.floor(this.settings().summaryAfterMs / 4)));
    this.timer = setInterval(() => this.sweepSummaries(), every);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await Promise.allSettled([...this.fanOuts]);
  }

  /** Members' posts also go to the outlet (a bridge), once each is recorded as distributed. */
  setOutlet(outlet: PostOutlet | undefined): void {
    this.outlet = outlet;
  }

  /**
   * A post from outside the network (a bridged list): distributed to every member like a post of
   * the list's own, the original From: kept in X-Original-From. Nobody in the network gets a
   * summary for it, and it never goes back out. Idempotent per id.
   */
  async bringIn(id: MessageId, raw: Buffer): Promise<void> {
    const { store, node, log } = this.deps;
    if (store.post(id)) return;
    const settings = this.settings();
    const copy = rewritePost(raw, settings, {});
    const rawPath = join(this.deps.postsDir, `${id}.eml`);
    await writeFile(rawPath, copy, { mode: 0o600 });
    const copies = store.members().map((m) => ({ id: newId(), subscriber: m.fingerprint }));
    store.recordPost(
      {
        id,
        poster: node.identity.fingerprint,
        subject: headerValues(raw, 'Subject')[0] ?? '',
        receivedAt: this.now,
        decision: 'distribute',
        reason: 'bridged',
        rawPath,
      },
      copies,
    );
    store.markSummarised(id, id); // no poster in the network to tell
    log.info({ post: id, copies: copies.length }, 'list: distributing a post from the outside list');
    await this.distributed(id, copy);
  }

  /** Waits for fan-outs under way (tests and stop()). */
  async idle(): Promise<void> {
    while (this.fanOuts.size > 0) await Promise.allSettled([...this.fanOuts]);
  }

  /** A message for the list: a command, a post to distribute, hold or refuse. Idempotent per id. */
  async receive(message: InboundMessage): Promise<void> {
    const { store, node, log } = this.deps;
    if (store.post(message.id)) return; // the engine re-delivered: the first time counted
    const settings = this.settings();
    const poster = message.sender.fingerprint;
    const subject = headerValues(message.raw, 'Subject')[0] ?? '';
    const messageId = headerValues(message.raw, 'Message-ID')[0];
    const member = store.member(poster);
    const standing: PostFacts['poster'] = member
      ? member.moderator
        ? 'moderator'
        : 'member'
      : node.trust.entity(poster)?.contact
        ? 'contact'
        : 'stranger';
    const looped = poster === node.identity.fingerprint || hasOwnLoopMark(message.raw, settings.email);
    const command = subject.trim().toLowerCase();
    const moderation = MODERATION.exec(subject)?.[1] as MessageId | undefined;
    if (moderation && message.verified && !looped) {
      store.recordPost(
        {
          id: message.id,
          poster,
          subject,
          receivedAt: this.now,
          decision: 'refuse',
          reason: 'moderation reply',
        },
        [],
      );
      await this.moderationReply(moderation, poster, standing, message.raw);
      return;
    }
    const confirmToken = CONFIRM.exec(subject)?.[1];
    if ((COMMANDS.has(command) || moderation || confirmToken) && !looped) {
      const base = { id: message.id, poster, subject, receivedAt: this.now, decision: 'refuse' as const };
      if (!message.verified) {
        // Anyone can write "unsubscribe" under someone else's name; only the signature says who.
        store.recordPost({ ...base, reason: 'forged-command' }, []);
        log.warn(
          { post: message.id, claimed: poster, subject },
          'list: a forged command dropped (its signature did not verify against a key the list holds)',
        );
        return;
      }
      const outcome = confirmToken
        ? this.commands.confirm(confirmToken, poster, settings)
        : this.commands.command(command, poster, standing, settings, message.raw);
      store.recordPost({ ...base, reason: outcome.reason }, []);
      log.info(
        { command: confirmToken ? 'confirm' : command, sender: poster, outcome: outcome.reason },
        'list: command',
      );
      if (outcome.answer) await this.notify(poster, { ...outcome.answer, inReplyTo: messageId });
      return;
    }
    const decision = decidePost({
      policy: settings.policy,
      chat: settings.chat,
      maxBytes: settings.maxBytes,
      size: message.raw.length,
      verified: message.verified,
      poster: standing,
      looped,
    });
    const base = { id: message.id, poster, subject, receivedAt: this.now };
    if (decision.action === 'refuse') {
      store.recordPost({ ...base, decision: 'refuse', reason: decision.code }, []);
      log.info(
        { post: message.id, poster, code: decision.code, reason: decision.reason },
        'list: post refused',
      );
      if (decision.answer)
        await this.notify(poster, refusalNotice(settings.name, subject, decision.reason, messageId));
      return;
    }
    const copy = rewritePost(message.raw, settings, {
      name: message.sender.name,
      email: message.sender.email,
    });
    const rawPath = join(this.deps.postsDir, `${message.id}.eml`);
    await writeFile(rawPath, copy, { mode: 0o600 });
    if (decision.action === 'hold') {
      store.recordPost({ ...base, decision: 'hold', reason: decision.reason, rawPath }, []);
      log.info({ post: message.id, poster }, 'list: post held for a moderator');
      await this.notify(poster, {
        subject: `Held for a moderator: ${subject}`,
        text: `Your post "${subject}" to ${settings.name} waits for a moderator's approval.`,
        inReplyTo: messageId,
      });
      for (const m of store.members().filter((x) => x.moderator)) {
        await this.notify(m.fingerprint, moderationRequest(settings.name, message.id, subject, copy));
      }
      return;
    }
    const copies = store.members().map((m) => ({ id: newId(), subscriber: m.fingerprint }));
    // Durable before receive() resolves: from here a crash re-submits the copies at start.
    store.recordPost({ ...base, decision: 'distribute', rawPath }, copies);
    this.outlet?.(
      message.id,
      copy,
      rawPath,
      posterName(headerValues(message.raw, 'From')[0], message.sender),
    );
    log.info({ post: message.id, poster, copies: copies.length }, 'list: distributing');
    await this.distributed(message.id, copy);
  }

  /** Archives a copy that is going out and starts its fan-out. */
  private async distributed(postId: MessageId, copy: Buffer): Promise<void> {
    const { node, store } = this.deps;
    const settings = this.settings();
    if (settings.archive) {
      await this.deps.archive.receive({
        id: postId,
        raw: copy,
        sender: { fingerprint: node.identity.fingerprint, email: settings.email, name: settings.name },
        verified: true,
        receivedAt: new Date(this.now),
      });
    }
    this.track(this.fanOut(store.post(postId)!));
  }

  /**
   * A moderator's answer to a held post: "approve" or "reject [reason]" as the first line of its
   * text that is not quoted. Only a verified moderator decides (the message's signature is the
   * signed command); anyone else's answer is dropped with the reason in the log.
   */
  private async moderationReply(
    postId: MessageId,
    sender: Fingerprint,
    standing: PostFacts['poster'],
    raw: Buffer,
  ): Promise<void> {
    const { store, log } = this.deps;
    const settings = this.settings();
    const post = store.post(postId);
    if (standing !== 'moderator') {
      log.warn(
        { post: postId, sender },
        'list: a moderation answer from someone who is not a moderator, dropped',
      );
      return;
    }
    if (!post || post.decision !== 'hold') {
      log.info({ post: postId, sender }, 'list: a moderation answer for a post not held (any more), ignored');
      return;
    }
    const verdict = moderationVerdict((await simpleParser(raw)).text ?? '');
    if (verdict.action === 'approve') {
      const copies = store.members().map((m) => ({ id: newId(), subscriber: m.fingerprint }));
      if (!store.approve(postId, copies)) return;
      log.info({ post: postId, moderator: sender, copies: copies.length }, 'list: held post approved');
      const copy = await readFile(post.rawPath!);
      this.outlet?.(postId, copy, post.rawPath!, posterName(headerValues(copy, 'X-Original-From')[0], {}));
      await this.distributed(postId, copy);
    } else if (verdict.action === 'reject') {
      if (!store.reject(postId, 'rejected by a moderator')) return;
      log.info({ post: postId, moderator: sender }, 'list: held post rejected');
      await this.notify(
        post.poster,
        refusalNotice(
          settings.name,
          post.subject,
          `a moderator rejected it${verdict.reason ? ` (${verdict.reason})` : ''}`,
        ),
      );
    } else {
      log.info({ post: postId, moderator: sender }, 'list: a moderation answer without approve or reject');
      await this.notify(sender, {
        subject: `Not understood: Moderation: ${postId}`,
        text: 'Answer with "approve" or "reject <reason>" as the first line.',
      });
    }
  }

  private track(p: Promise<void>): void {
    this.fanOuts.add(p);
    void p.finally(() => this.fanOuts.delete(p));
  }

  /** Hands every not yet submitted copy of a post to the delivery engine, one per subscriber. */
  private async fanOut(post: ListPost): Promise<void> {
    const { store, node, log } = this.deps;
    const { size } = await stat(post.rawPath!);
    const left = store.copies(post.id).filter((c) => !c.submitted);
    const shared = left.length > 0 ? await this.shareBody(post) : undefined;
    for (const copy of left) {
      try {
        await node.delivery.submit({
          id: copy.id,
          from: node.identity.fingerprint,
          to: copy.subscriber,
          rawPath: post.rawPath!,
          size,
          ...(shared ? { shared } : {}),
        });
        store.markSubmitted(copy.id);
      } catch (err) {
        // No key for the subscriber any more, or a full disk: this copy fails, the others go on.
        log.warn(
          { post: post.id, copy: copy.id, err: (err as Error).message },
          'list: a copy could not be submitted',
        );
        store.markSubmitted(copy.id);
        if (store.setCopyState(copy.id, 'failed', (err as Error).message)) this.bounced(copy.subscriber);
      }
    }
    this.checkSummary(post.id);
  }

  /**
   * The post's body signed and encrypted once for the copies still to hand over (wrap-once), in
   * `posts/<post id>.<random>.body` (a restart makes a new one: the session key is kept in memory
   * only); undefined when the delivery cannot or the post is too large, so each copy is sealed whole.
   */
  private async shareBody(post: ListPost): Promise<SharedBody | undefined> {
    const { node, log } = this.deps;
    if (!node.delivery.shareBody) return undefined;
    const bodyPath = join(this.deps.postsDir, `${post.id}.${randomBytes(4).toString('hex')}.body`);
    try {
      return await node.delivery.shareBody(post.rawPath!, bodyPath);
    } catch (err) {
      log.info(
        { post: post.id, err: (err as Error).message },
        'list: each copy sealed whole (the post is not encrypted once)',
      );
      return undefined;
    }
  }

  /**
   * A subscriber complained about a copy (moved it to Junk): the complaint's reverse path ends at
   * the list, the copy's sender. The list did not write the post, so it carries the complaint on
   * along the post's own inbound path (the list's hop memory of it), where it counts against the
   * poster's path, not against the list (docs/protocol.md 15.8). Later, after spam control has
   * stored the complaint's row (the engine tells of it before).
   */
  complained(copyId: MessageId, link: string): void {
    const { store, node, log } = this.deps;
    const copy = store.copy(copyId);
    if (!copy) return; // a summary or notice of the list's own: the list is its sender, it ends here
    setImmediate(() => {
      try {
        const result = node.spam?.carry(copy.post, link) ?? 'unknown';
        const post = store.post(copy.post);
        if (result === 'unknown') {
          log.info(
            {
              post: copy.post,
              copy: copyId,
              reason: post?.reason === 'bridged' ? 'bridged' : 'path-forgotten',
            },
            'list: a complaint about a copy could not be carried on (no inbound path of the post here)',
          );
        } else {
          log.info(
            { post: copy.post, copy: copyId, poster: post?.poster, result },
            'list: a complaint about a copy carried on along the poster’s path',
          );
        }
      } catch (err) {
        log.warn({ post: copy.post, err: (err as Error).message }, 'list: carrying a complaint failed');
      }
    });
  }

  /** Delivery events of the list's outbox: copies change state; other messages of the list are ignored. */
  async status(event: DeliveryEvent): Promise<void> {
    const { store } = this.deps;
    const copy = store.copy(event.id);
    if (!copy) return; // a summary or notice the list sent: no status email about those
    const state: CopyState | undefined =
      event.kind === 'delivered'
        ? 'delivered'
        : event.kind === 'failed'
          ? 'failed'
          : event.kind === 'delayed'
            ? 'delayed'
            : undefined;
    if (!state) return;
    const changed = store.setCopyState(copy.id, state, event.kind === 'failed' ? event.reason : undefined);
    if (changed && state === 'delivered') store.resetFailures(copy.subscriber);
    if (changed && state === 'failed') this.bounced(copy.subscriber);
    this.checkSummary(copy.post);
  }

  /** A member's copy failed for good: one more in their run; a bouncing member is removed (rules.ts). */
  private bounced(subscriber: Fingerprint): void {
    const { store, log } = this.deps;
    const run = store.recordFailure(subscriber);
    if (!run || !isBouncing(run.failures, run.firstFailureAt, this.now)) return;
    store.removeMember(subscriber);
    const settings = this.settings();
    const days = Math.round((this.now - run.firstFailureAt) / 86_400_000);
    log.warn(
      { member: subscriber, failures: run.failures, since: run.firstFailureAt },
      'list: a bouncing member removed',
    );
    for (const m of store.members().filter((x) => x.moderator)) {
      this.track(
        this.notify(m.fingerprint, {
          subject: `Removed from ${settings.name}: ${subscriber} (bouncing)`,
          text: `Copies to ${subscriber} of ${run.failures} posts in a row failed over ${days} days; the member was removed. Add them again with \`kith list add\` once they are reachable.`,
        }).catch((err: Error) => log.warn({ err: err.message }, 'list: the bounce notice could not be sent')),
      );
    }
  }

  private sweepSummaries(): void {
    for (const post of this.deps.store.postsAwaitingSummary()) this.checkSummary(post.id);
  }

  /** Sends the poster's one summary once it is due (summaryDue); marked before sending, so never twice. */
  private checkSummary(postId: MessageId): void {
    const { store, log } = this.deps;
    const post = store.post(postId);
    if (!post || post.decision !== 'distribute' || post.summaryId) return;
    const copies = store.copies(postId);
    if (copies.some((c) => !c.submitted)) return;
    const counts = countCopies(copies.map((c) => c.state));
    const settings = this.settings();
    if (!summaryDue(counts, post.receivedAt, this.now, settings.summaryAfterMs)) return;
    const id = newId();
    if (!store.markSummarised(postId, id)) return;
    log.info({ post: postId, ...counts }, 'list: summary to the poster');
    void this.notify(post.poster, summaryNotice(settings.name, post.subject, counts), id).catch(
      (err: Error) => log.warn({ post: postId, err: err.message }, 'list: the summary could not be sent'),
    );
  }

  /** A message from the list to one entity, through the list's normal delivery. */
  private async notify(to: Fingerprint, notice: Notice, id: MessageId = newId()): Promise<void> {
    const { node, log } = this.deps;
    const entity = node.trust.entity(to);
    if (!entity?.publicKey) {
      log.info({ to }, 'list: no key to answer with; the answer is dropped');
      return;
    }
    const settings = this.settings();
    const raw = composeNotice(settings, entity.email || `${to.toLowerCase()}@kith`, notice, id);
    const path = join(this.deps.postsDir, `${id}.notice.eml`);
    await writeFile(path, raw, { mode: 0o600 });
    await node.delivery.submit({ id, from: node.identity.fingerprint, to, rawPath: path, size: raw.length });
  }
}

function newId(): MessageId {
  return asMessageId(randomBytes(16).toString('hex'));
}
