import { createHash } from 'node:crypto';
import { KithError } from '../../common/errors.ts';
import type { AgentId } from '../../common/ids.ts';
import { signWith, type AgentKeys, type SignatureVerifier } from '../onion/keys.ts';
import { FrameType, WIRE_VERSION } from '../onion/wire.ts';
import type { ComplaintRow } from './store.ts';
import { COMPLAINT_FRAME_BYTES, complaintHopDigest, decodeComplaintFrame, verifyStatement } from './wire.ts';

/**
 * The revocation notice (frame type 8, docs/protocol.md 15.5): "I revoked this agent for spam,
 * here is why", with the signed complaints as evidence. Sent to the revoked agent (its owner is
 * told by a status email) and to the revoker's other neighbours, who verify every item.
 */

const DOMAIN = Buffer.from('kith-spam-revocation-v1');
/** successor key ‖ complaint frame ‖ proof digest ‖ proof signature. */
export const ITEM_BYTES = 32 + COMPLAINT_FRAME_BYTES + 32 + 64;
/** Items a notice carries at most (a notice stays far below the 1 MiB frame limit). */
export const MAX_ITEMS = 32;
const MAX_DETAIL = 512;

export const RevocationReason = { complaints: 1, cuts: 2 } as const;

/** One piece of evidence: a complaint as the revoker received it, and the revoked agent's hop proof. */
export interface EvidenceItem {
  /** Raw key of the neighbour that handed the complaint to the revoker. */
  successor: Buffer;
  /** The signed complaint frame as received (15.2). */
  frame: Buffer;
  /** The revoked agent's hop signature and the digest it covers (7.2). */
  proof: { digest: Buffer; signature: Buffer };
}

export interface RevocationNotice {
  /** Raw key of the agent revoked. */
  revoked: Buffer;
  at: number;
  reason: 'complaints' | 'cuts';
  detail: string;
  items: EvidenceItem[];
}

/** Evidence items from stored complaints (those with a frame, a proof and a successor key). */
export function evidenceOf(
  rows: ComplaintRow[],
  successorKey: (agent: AgentId) => Buffer | undefined,
): EvidenceItem[] {
  const items: EvidenceItem[] = [];
  for (const row of rows) {
    if (!row.frame || !row.proof || !row.successor) continue;
    const successor = successorKey(row.successor);
    if (!successor) continue;
    items.push({ successor, frame: row.frame, proof: row.proof });
    if (items.length === MAX_ITEMS) break;
  }
  return items;
}

function body(n: RevocationNotice): Buffer {
  const at = Buffer.alloc(8);
  at.writeBigUInt64BE(BigInt(Math.max(0, Math.floor(n.at))));
  const detail = Buffer.from(n.detail, 'utf8').subarray(0, MAX_DETAIL);
  const len = Buffer.alloc(2);
  len.writeUInt16BE(detail.length);
  const items = n.items.slice(0, MAX_ITEMS);
  return Buffer.concat([
    n.revoked,
    at,
    Buffer.from([n.reason === 'cuts' ? RevocationReason.cuts : RevocationReason.complaints]),
    len,
    detail,
    Buffer.from([items.length]),
    ...items.flatMap((i) => [i.successor, i.frame, i.proof.digest, i.proof.signature]),
  ]);
}

/** The notice, signed by this (the revoking) agent. */
export function encodeNotice(keys: AgentKeys, n: RevocationNotice): Buffer {
  const b = body(n);
  const sig = signWith(keys, createHash('sha256').update(DOMAIN).update(b).digest());
  return Buffer.concat([Buffer.from([WIRE_VERSION, FrameType.spamRevocation]), b, sig]);
}

/** Parses a notice and checks the revoker's signature (`from`); throws ERR_FRAME_MALFORMED / ERR_NOTICE_SIGNATURE. */
export function decodeNotice(verifier: SignatureVerifier, from: AgentId, frame: Buffer): RevocationNotice {
  const bad = (why: string) => new KithError('ERR_FRAME_MALFORMED', `revocation notice: ${why}`);
  if (frame.length < 2 + 32 + 8 + 1 + 2 + 1 + 64 || frame[1] !== FrameType.spamRevocation)
    throw bad('too short');
  const b = frame.subarray(2, frame.length - 64);
  const sig = frame.subarray(frame.length - 64);
  if (!verifier.verifyByAgent(from, createHash('sha256').update(DOMAIN).update(b).digest(), sig))
    throw new KithError('ERR_NOTICE_SIGNATURE', 'revocation notice not signed by the neighbour that sent it');
  const revoked = Buffer.from(b.subarray(0, 32));
  const at = Number(b.readBigUInt64BE(32));
  const reason = b[40] === RevocationReason.cuts ? 'cuts' : 'complaints';
  const len = b.readUInt16BE(41);
  if (len > MAX_DETAIL || 43 + len + 1 > b.length) throw bad('detail length');
  const detail = b.subarray(43, 43 + len).toString('utf8');
  const count = b[43 + len];
  let at2 = 44 + len;
  if (count > MAX_ITEMS || b.length !== at2 + count * ITEM_BYTES) throw bad('item count');
  const items: EvidenceItem[] = [];
  for (let i = 0; i < count; i++, at2 += ITEM_BYTES) {
    const item = b.subarray(at2, at2 + ITEM_BYTES);
    items.push({
      successor: Buffer.from(item.subarray(0, 32)),
      frame: Buffer.from(item.subarray(32, 32 + COMPLAINT_FRAME_BYTES)),
      proof: {
        digest: Buffer.from(item.subarray(32 + COMPLAINT_FRAME_BYTES, 64 + COMPLAINT_FRAME_BYTES)),
        signature: Buffer.from(item.subarray(64 + COMPLAINT_FRAME_BYTES)),
      },
    });
  }
  return { revoked, at, reason, detail, items };
}

/**
 * How many items verify, each a distinct (recipient, complaint): the recipient signed the
 * complaint, the successor signed handing it to the revoker (`revokerKey`), and the revoked agent
 * signed handing a packet to the revoker (its hop proof: the digest covers the revoker's key). What
 * it cannot show: that the proof's packet is the one complained about (the header is not kept,
 * 7.2), nor that the recipients were honest.
 */
export function verifiedItems(verifier: SignatureVerifier, revokerKey: Buffer, n: RevocationNotice): number {
  const seen = new Set<string>();
  for (const item of n.items) {
    let f;
    try {
      f = decodeComplaintFrame(item.frame);
    } catch {
      continue;
    }
    const key = `${f.statement.recipient.toString('hex')}/${f.statement.complaintId}`;
    if (seen.has(key)) continue;
    if (!verifyStatement(verifier, f.statement)) continue;
    if (!verifier.verify(item.successor, complaintHopDigest(revokerKey, f.link, f.statement), f.hopSignature))
      continue;
    if (!verifier.verify(n.revoked, item.proof.digest, item.proof.signature)) continue;
    seen.add(key);
  }
  return seen.size;
}
