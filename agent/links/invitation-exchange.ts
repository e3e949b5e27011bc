import type { Connection, Stream } from '@libp2p/interface';
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr';
import type { Config } from '../../config/schema.ts';
import { KithError } from '../../common/errors.ts';
import type { AgentId } from '../../common/ids.ts';
import type { Logger } from '../../common/logger.ts';
import type { Identity } from '../identity/identity.ts';
import { decodeInvitation, encodeInvitation } from '../trust/invitation-code.ts';
import type { EntityRecord, TrustStore } from '../trust/store.ts';
import { withoutPeer, withPeer } from './addresses.ts';
import { readFrames, readJson, writeJson } from './frames.ts';
import { buildHello } from './hello.ts';
import {
  acceptInviterReply,
  INVITE_PROTOCOL,
  redeemInvitation,
  type InviteReply,
  type InviteRequest,
} from './invite.ts';
import { CONTROL_MAX_BYTES, EXCHANGE_TIMEOUT_MS } from './limits.ts';
import type { KithLibp2p } from './node.ts';
import type { ProvisionalPeers, Redemption } from './provisional-peers.ts';

/** Invitation codes carry at most this many addresses (announced ones first). */
const MAX_CODE_ADDRESSES = 6;

/** What the invitation exchange needs from the link manager. */
export interface InvitationExchangeOptions {
  identity: Identity;
  trust: TrustStore;
  log: Logger;
  /** Read when a code is made: its announced addresses go first. */
  config: Config['p2p'];
  /** The running libp2p node (throws ERR_NOT_STARTED when there is none). */
  node(): KithLibp2p;
  /** The addresses the node listens on now (none when it is not running). */
  multiaddrs(): Multiaddr[];
  provisional: ProvisionalPeers;
  /** Lets the gater admit the inviter's peer id while we dial it; call the result when done. */
  expectOutbound(peer: string): () => void;
  /** The peer proved itself: it becomes a link. */
  promote(peer: string): void;
}

/**
 * Both sides of an invitation (docs/protocol.md 4.6) over libp2p: the inviter issues a code and
 * answers `/kith/invite/1`; the invitee dials the code's agent and proves the secret. While a
 * redemption runs, it — not the provisional deadline — decides when the peer's time is up (see
 * `redemptionOf`). The checks of the messages themselves are in invite.ts.
 */
export class InvitationExchange {
  /**
   * Inviters whose invitation this agent is redeeming now, and whether their provisional deadline
   * passed meanwhile: the redemption decides when it is over, as `answering` does for the inviter.
   */
  private readonly dialling = new Map<string, Redemption>();
  /**
   * Provisional peers whose invitation request this agent is checking now, and whether their
   * deadline passed meanwhile. The deadline bounds how long a stranger may take to speak, not
   * how long we take to answer (OpenPGP checks that took over 10 s on a loaded machine cut
   * invitations off mid-answer: "the inviter refused the connection: stream reset").
   */
  private readonly answering = new Map<string, Redemption>();
  private readonly redeemedListeners: ((entity: EntityRecord) => void)[] = [];

  constructor(private readonly options: InvitationExchangeOptions) {}

  /** An invitation being redeemed with this peer now, on either side. */
  redemptionOf(peer: string): Redemption | undefined {
    return this.answering.get(peer) ?? this.dialling.get(peer);
  }

  /** Are we dialling this peer to redeem its invitation (so no hello is said on that connection)? */
  isDialling(peer: string): boolean {
    return this.dialling.has(peer);
  }

  /** Called on the inviter's side when someone redeemed one of its invitations. */
  onRedeemed(listener: (entity: EntityRecord) => void): void {
    this.redeemedListeners.push(listener);
  }

  /** Issues a one-time invitation code valid for ttlMs, naming this agent and its addresses. */
  create(options: { ttlMs: number }): string {
    const { identity, trust, config } = this.options;
    const { secret } = trust.issueInvitation(options.ttlMs);
    const announced = config.announce.map((a) => multiaddr(a));
    const addresses = [...announced, ...this.options.multiaddrs()].map(withoutPeer);
    const unique = [...new Map(addresses.map((a) => [a.toString(), a])).values()].slice(
      0,
      MAX_CODE_ADDRESSES,
    );
    return encodeInvitation({
      entity: identity.fingerprint,
      agent: identity.agentId,
      addresses: unique,
      secret,
    });
  }

  /** Redeems a code: dials the inviter, proves the secret, and both sides now trust each other. */
  async accept(text: string): Promise<EntityRecord> {
    const { identity, trust, log, provisional } = this.options;
    const code = decodeInvitation(text);
    if (code.entity === identity.fingerprint) {
      throw new KithError('ERR_OWN_INVITATION', 'this invitation was made by this very entity');
    }
    if (code.addresses.length === 0)
      throw new KithError('ERR_NO_ADDRESS', 'the invitation carries no address');
    const node = this.options.node();
    const release = this.options.expectOutbound(code.agent);
    const redeeming = { deadlinePassed: false };
    this.dialling.set(code.agent, redeeming);
    let lastError: unknown;
    try {
      for (const address of code.addresses) {
        let connection: Connection;
        try {
          connection = await node.dial(withPeer(address, code.agent), {
            signal: AbortSignal.timeout(EXCHANGE_TIMEOUT_MS),
          });
        } catch (err) {
          lastError = err;
          continue;
        }
        let reply: InviteReply;
        try {
          reply = await this.exchange(connection, code.secret);
        } catch (err) {
          if (err instanceof KithError) throw err;
          // The inviter aborted the invite stream or cut us off: no invitation of its is open.
          throw new KithError(
            'ERR_INVITATION_REFUSED',
            `the inviter refused the connection: ${(err as Error).message}`,
            'the code is used, expired or unknown; ask for a new one',
          );
        }
        const inviter = await acceptInviterReply(trust, code, reply, log);
        // The code's addresses are the way back to the inviter should this first link drop before
        // the two sides exchanged address records (the neighbour keeper redials by them).
        trust.addAddressHints(
          inviter.fingerprint,
          code.addresses.map((a) => a.toString()),
        );
        this.options.promote(code.agent);
        return inviter;
      }
    } finally {
      this.dialling.delete(code.agent);
      release();
      // Not redeemed: nothing more to do on that connection (and what the inviter opened on it waits).
      if (provisional.has(code.agent) && !trust.isTrustedAgent(code.agent))
        provisional.drop(code.agent, redeeming.deadlinePassed ? 'deadline' : 'refused');
    }
    throw new KithError(
      'ERR_DIAL_FAILED',
      `cannot reach the inviter at any address in the code: ${(lastError as Error)?.message}`,
      'check that the inviting node is running and reachable',
    );
  }

  /** The inviter's side of `/kith/invite/1`: checks the request, spends the invitation, answers. */
  async answer(stream: Stream, from: AgentId): Promise<void> {
    const { identity, trust, log } = this.options;
    const frames = readFrames(stream, CONTROL_MAX_BYTES);
    const request = await readJson<InviteRequest>(frames);
    log.debug({ from, stream: stream.id }, 'invitation request read');
    let reply: InviteReply;
    let entity: EntityRecord | undefined;
    const redeeming = { deadlinePassed: false };
    this.answering.set(from, redeeming);
    try {
      try {
        entity = await redeemInvitation(trust, from, request, log);
        reply = { v: 1, hello: buildHello(identity, trust) };
      } catch (err) {
        const code = err instanceof KithError ? err.code : 'ERR_INVITATION_REFUSED';
        log.info({ from, code }, 'refused an invitation redemption');
        reply = { v: 1, refused: code, message: (err as Error).message };
      }
      await writeJson(stream, reply);
      await stream.close().catch(() => undefined);
    } finally {
      this.answering.delete(from);
      if (entity === undefined && redeeming.deadlinePassed) this.options.provisional.drop(from, 'deadline');
    }
    if (entity !== undefined) {
      log.info({ fingerprint: entity.fingerprint, email: entity.email }, 'invitation redeemed');
      this.options.promote(from);
      for (const listener of this.redeemedListeners) listener(entity);
    }
  }

  private async exchange(connection: Connection, secret: Uint8Array): Promise<InviteReply> {
    let step = 'opening the invitation stream';
    try {
      const stream = await connection.newStream(INVITE_PROTOCOL, {
        signal: AbortSignal.timeout(EXCHANGE_TIMEOUT_MS),
      });
      const request: InviteRequest = {
        v: 1,
        secret: Buffer.from(secret).toString('base64url'),
        hello: buildHello(this.options.identity, this.options.trust),
      };
      step = 'sending the request';
      await writeJson(stream, request);
      step = 'waiting for the answer';
      const reply = await readJson<InviteReply>(readFrames(stream, CONTROL_MAX_BYTES));
      await stream.close().catch(() => undefined);
      return reply;
    } catch (err) {
      // Which step failed, and the connection's state then: the way to tell a refusal from a cut.
      this.options.log.debug(
        {
          err,
          step,
          connection: connection.id,
          status: connection.status,
          peer: connection.remotePeer.toString(),
        },
        'invitation exchange failed',
      );
      throw err;
    }
  }
}
