import type { AgentId, MessageId } from '../../common/ids.ts';
import { signWith } from '../onion/keys.ts';
import { buildOnion, type HopInstruction, type HopSecret } from '../onion/layers.ts';
import { encodeUnit, type Unit } from '../payload/unit.ts';
import { openReport, type Report } from '../reports/report.ts';
import type { CachedPath } from '../routing/path-cache.ts';
import type { EngineContext } from './context.ts';
import { encodeOnion, hopDigest, linkId } from './frames.ts';

// Packets whose reports may still come back. 10,000 like the receiver's way back (receiver.ts):
// at 100,000 it held ~31 MiB per sending agent in the soak (bench/RESULTS.md 9). A context
// dropped here is what a restart drops too: the outbox re-sends after its stall timeout, and the
// recipient's exactly-once store drops the second copy.
const MAX_PACKETS = 10_000;

/** What the sender remembers of one packet it sent, to read the reports that come back. */
export interface PacketContext {
  id: MessageId;
  agents: AgentId[];
  pubs: Buffer[];
  secrets: HopSecret[];
  chunk?: number;
}

/**
 * The packets this agent sent as an origin, by link id: wraps units in onions along a path and
 * opens the reports the hops send back (each hop's report is sealed with its own layer secret).
 */
export class SentPackets {
  private readonly packets = new Map<string, PacketContext>();

  constructor(private readonly ctx: EngineContext) {}

  get(link: string): PacketContext | undefined {
    return this.packets.get(link);
  }

  has(link: string): boolean {
    return this.packets.has(link);
  }

  delete(link: string): void {
    this.packets.delete(link);
  }

  clear(): void {
    this.packets.clear();
  }

  /**
   * Wraps `unit` for `path` and remembers the packet (the oldest is forgotten past MAX_PACKETS).
   * Returns its link id and the frame for the path's first hop.
   */
  wrap(
    id: MessageId,
    path: CachedPath,
    deadline: number,
    unit: Unit,
    reportAll: boolean,
    chunk?: number,
    firstContact = false,
  ): { link: string; frame: Buffer } {
    const entries = path.entries;
    // Relays refuse packets valid for longer than their maxHoldMs; a re-send makes a fresh packet.
    const expiresAt = Math.min(deadline, this.ctx.now() + this.ctx.options.maxHoldMs);
    // Flagged in every hop's instruction (docs/protocol.md 15.7), so each applies its credit.
    const first = firstContact ? { firstContact: true } : {};
    const hops = entries.map((e, i) => {
      const instruction: HopInstruction =
        i < entries.length - 1
          ? { kind: 'forward', next: entries[i + 1].signPublic, report: reportAll, expiresAt, ...first }
          : { kind: 'deliver', report: true, expiresAt, ...first };
      return { onionPublic: e.onionKey, instruction };
    });
    const { header, body, secrets } = buildOnion(hops, encodeUnit(unit));
    const sig = signWith(this.ctx.keys, hopDigest(entries[0].signPublic, header, body));
    const link = linkId(header);
    this.packets.set(link, {
      id,
      agents: path.agents,
      pubs: entries.map((e) => e.signPublic),
      secrets,
      chunk,
    });
    if (this.packets.size > MAX_PACKETS) this.packets.delete(this.packets.keys().next().value as string);
    return { link, frame: encodeOnion(header, body, sig) };
  }

  /**
   * Opens a report on one of our packets: the hop whose secret opens it (tried from the last hop
   * back), or undefined for a packet we do not know, a forged report or one no hop's secret opens
   * (each counted).
   */
  openReport(
    link: string,
    sealed: Buffer,
  ): { packet: PacketContext; hop: number; report: Report } | undefined {
    const { ctx } = this;
    const p = this.packets.get(link);
    if (!p) return undefined;
    for (let i = p.secrets.length - 1; i >= 0; i--) {
      let report;
      try {
        report = openReport(ctx.verifier, p.pubs[i], p.secrets[i], sealed);
      } catch {
        ctx.count('rejected_report_forged');
        return undefined;
      }
      if (!report) continue;
      ctx.count('reports_received');
      return { packet: p, hop: i, report };
    }
    ctx.count('rejected_report_undecryptable');
    return undefined;
  }
}
