import type { AgentId, Fingerprint, MessageId } from '../../common/ids.ts';
import { recipientCounts } from './decisions.ts';
import type { ComplaintRow } from './store.ts';
import { complaintIdFor, makeStatement, StatementKind } from './wire.ts';
import type { SpamContext, StatementResult } from './context.ts';
import type { Cuts } from './cuts.ts';
import { sendStatement } from './complaints.ts';

/**
 * The recipient's statements (docs/protocol.md 15.2, 15.7, 15.8): where each message came from,
 * and the user's complaint, withdrawal or *seen* verdict about it, signed and sent back along its
 * path; and, at a list, the complaints about its copies carried on along the post's own path.
 */
export class RecipientStatements {
  constructor(
    private readonly ctx: SpamContext,
    private readonly cuts: Cuts,
    /** Judges a neighbour again (agent/spam/judge.ts). */
    private readonly evaluate: (agent: AgentId) => void,
  ) {}

  onReceived(id: MessageId, from: AgentId, inId: string, sender: Fingerprint): void {
    const now = this.ctx.now();
    this.ctx.deps.store.putReceived({
      messageId: id,
      neighbour: from,
      link: inId,
      sender,
      receivedAt: now,
      expiresAt: now + this.ctx.deps.hopMemoryMs,
    });
  }

  /**
   * The user moved a message to Junk: sign a complaint and send it to the neighbour that handed
   * the message over. 'unknown' when the message did not come over Kith or its path is forgotten,
   * 'already' when it stands already.
   */
  complain(id: MessageId): StatementResult {
    return this.state(id, StatementKind.complaint);
  }

  /** The user moved it out of Junk (not to Trash): withdraw the complaint along the same path. */
  withdraw(id: MessageId): StatementResult {
    return this.state(id, StatementKind.withdrawal);
  }

  /**
   * The user read a first contact and kept it (\Seen in a normal mailbox, no complaint): the
   * *seen* verdict (15.7) releases its credit here and at every hop back along its path, and
   * earns the neighbours good verdicts. 'unknown' when it was no flagged first contact (or its path
   * is forgotten), 'already' when judged before.
   */
  seen(id: MessageId): 'sent' | 'already' | 'unknown' {
    const { ctx } = this;
    const { store, keys, credit } = ctx.deps;
    const got = store.received(id);
    if (!got || !credit?.isFirstContact(got.link)) return 'unknown';
    if (!credit.verdict(got.link, true)) return 'already';
    const statement = makeStatement(keys, StatementKind.seen, complaintIdFor(keys, id), ctx.now());
    ctx.count('verdicts_sent');
    sendStatement(ctx, { predecessor: got.neighbour, linkIn: got.link }, statement);
    return 'sent';
  }

  /**
   * A list re-sent message `id` (a post it received) to its subscribers, and a subscriber's
   * complaint about one copy ended here (`originLink`: the copy's packet, its row kept by
   * onComplaint). The list complains about the post along the post's own inbound path, so it counts
   * against the poster's path (docs/protocol.md 15.8). Why not end it here, as for any sender: the
   * list did not write the post, it relayed it; like any honest relay it then gets its chance to
   * clear the copy's complaint downstream: when the poster's path cuts the poster off, the cut comes
   * back here and goes on to every copy's complaint it carries (Cuts.send). Withdrawals follow too.
   */
  carry(id: MessageId, originLink: string): StatementResult {
    const { ctx } = this;
    const { store, keys } = ctx.deps;
    const origin = store.complaintOnLink(originLink);
    const got = store.received(id);
    if (!origin || origin.predecessor !== null || !got) return 'unknown';
    const own = store.complaintAbout(id)?.complaintId ?? complaintIdFor(keys, id);
    store.putCarried(own, origin.recipient, origin.complaintId);
    ctx.count('complaints_carried');
    const result = origin.state === 'active' ? this.complain(id) : 'already';
    const mine = store.complaint(ctx.self, own);
    // The poster is cut off already: this copy's complaint clears downstream at once.
    if (mine?.clearedAt !== null && mine?.clearedAt !== undefined)
      this.cuts.send(origin, mine.cutId ?? this.cuts.actId(got.neighbour, ctx.now()), mine.clearedAt);
    else if (ctx.isCutOff(got.neighbour)) this.cuts.sendStanding(origin, got.neighbour);
    return result;
  }

  /** A recipient withdrew (or renewed) a complaint a list carries: its own follows the recipients'. */
  carriedChanged(origin: ComplaintRow): void {
    const { store } = this.ctx.deps;
    const own = store.carrierOf(origin.recipient, origin.complaintId);
    if (!own) return;
    const mine = store.complaint(this.ctx.self, own);
    if (!mine?.messageId) return;
    // One subscriber's complaint still standing keeps the list's.
    if (store.carriedFor(own).some((r) => r.state === 'active')) this.complain(mine.messageId);
    else this.withdraw(mine.messageId);
  }

  private state(id: MessageId, kind: StatementKind): StatementResult {
    const { ctx } = this;
    const { store, keys } = ctx.deps;
    const got = store.received(id);
    if (!got) return 'unknown';
    const existing = store.complaintAbout(id);
    const want = kind === StatementKind.complaint ? 'active' : 'withdrawn';
    if (!existing && kind === StatementKind.withdrawal) return 'unknown';
    if (existing?.state === want) return 'already';
    const complaintId = existing?.complaintId ?? complaintIdFor(keys, id);
    // Strictly newer than what the hops saw last: they refuse anything else as a replay.
    const at = Math.max(ctx.now(), (existing?.lastAt ?? 0) + 1);
    const statement = makeStatement(keys, kind, complaintId, at);
    const first = ctx.deps.credit?.isFirstContact(got.link) === true;
    // A complaint is the bad verdict on a first contact: its credit is released along the path.
    if (first && kind === StatementKind.complaint) ctx.deps.credit!.verdict(got.link, false);
    const counted = recipientCounts(ctx.deps.entityOf(got.neighbour), got.sender, first);
    const row: ComplaintRow = {
      recipient: ctx.self,
      complaintId,
      messageId: id,
      linkOut: null,
      successor: null,
      linkIn: got.link,
      predecessor: got.neighbour,
      state: want,
      lastAt: at,
      counted: existing ? existing.counted : counted,
      countedAt: existing?.countedAt ?? at,
      clearedAt: existing?.clearedAt ?? null,
      cutId: existing?.cutId ?? null,
      frame: null,
      proof: null,
    };
    store.putComplaint(row);
    ctx.count(kind === StatementKind.complaint ? 'complaints_sent' : 'withdrawals_sent');
    sendStatement(ctx, row, statement);
    if (row.counted) this.evaluate(got.neighbour);
    return 'sent';
  }
}
