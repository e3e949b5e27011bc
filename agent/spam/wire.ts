import { createHash } from 'node:crypto';
import { KithError } from '../../common/errors.ts';
import type { AgentId } from '../../common/ids.ts';
import { agentIdFromPublic, signWith, type AgentKeys, type SignatureVerifier } from '../onion/keys.ts';
import { FrameType, WIRE_VERSION } from '../onion/wire.ts';

/**
 * The spam-control frames (docs/protocol.md 15): a recipient's signed complaint or withdrawal,
 * carried hop by hop back along the reverse path and re-signed by every hop (type 6), and the
 * notice that a hop cut off the source of a complaint, carried forward along the same path
 * (type 7). Pure encoding, signing and verification: no state.
 */

/** What a recipient says about a message. */
export const StatementKind = { complaint: 1, withdrawal: 2, seen: 3 } as const;
export type StatementKind = (typeof StatementKind)[keyof typeof StatementKind];

const STATEMENT_DOMAIN = Buffer.from('kith-complaint-v1');
const HOP_DOMAIN = Buffer.from('kith-complaint-hop-v1');
const CUT_DOMAIN = Buffer.from('kith-cut-v1');
const ID_DOMAIN = Buffer.from('kith-complaint-id-v1');

/** Bytes of the recipient's statement: kind, complaint id, at, recipient key, recipient signature. */
export const STATEMENT_BYTES = 1 + 16 + 8 + 32 + 64;
/** Bytes of a complaint frame (type 6). */
export const COMPLAINT_FRAME_BYTES = 2 + 16 + STATEMENT_BYTES + 64;
/** Bytes of a cut notice (type 7). */
export const CUT_FRAME_BYTES = 2 + 32 + 16 + 16 + 8 + 64;

/** The recipient's signed word about one message; identical at every hop. */
export interface Statement {
  kind: StatementKind;
  /** 16 bytes hex: names (recipient, message) without revealing the message id. */
  complaintId: string;
  /** Unix ms at the recipient; a hop accepts only a newer statement for the same complaint id. */
  at: number;
  /** The recipient agent's raw Ed25519 key (32 bytes). */
  recipient: Buffer;
  /** Its Ed25519 signature over statementDigest(). */
  signature: Buffer;
}

/** A complaint frame as it travels one link. */
export interface ComplaintFrame {
  /** Link id of the packet on this link (7.1), hex. */
  link: string;
  statement: Statement;
  /** The sending hop's Ed25519 signature over complaintHopDigest(receiver, link, statement). */
  hopSignature: Buffer;
}

/** A cut notice: "I cut off the source of this complaint". */
export interface CutFrame {
  /** The recipient key and complaint id of the complaint concerned. */
  recipient: Buffer;
  complaintId: string;
  /** 16 bytes hex, one per cut-off act of the hop that cut (all its notices of that act share it). */
  cutId: string;
  at: number;
  /** The sending hop's Ed25519 signature over cutDigest(receiver, ...). */
  hopSignature: Buffer;
}

/**
 * The complaint id of a message at a recipient. Why deterministic (a signature, which Ed25519
 * makes deterministic): a recipient that lost its own records after a crash still names the same
 * message the same way, so it cannot be counted twice; why hashed: hops must not learn the
 * message id (it names the message end to end).
 */
export function complaintIdFor(keys: AgentKeys, messageId: string): string {
  const sig = signWith(keys, Buffer.concat([ID_DOMAIN, Buffer.from(messageId, 'hex')]));
  return createHash('sha256').update(ID_DOMAIN).update(sig).digest().subarray(0, 16).toString('hex');
}

function u64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(Math.max(0, Math.floor(n))));
  return b;
}

function statementBody(kind: number, complaintId: string, at: number, recipient: Buffer): Buffer {
  return Buffer.concat([Buffer.from([kind]), Buffer.from(complaintId, 'hex'), u64(at), recipient]);
}

/** What the recipient signs. */
export function statementDigest(kind: number, complaintId: string, at: number, recipient: Buffer): Buffer {
  return createHash('sha256')
    .update(STATEMENT_DOMAIN)
    .update(statementBody(kind, complaintId, at, recipient))
    .digest();
}

/** Makes and signs the recipient's statement. */
export function makeStatement(
  keys: AgentKeys,
  kind: StatementKind,
  complaintId: string,
  at: number,
): Statement {
  const signature = signWith(keys, statementDigest(kind, complaintId, at, keys.signPublic));
  return { kind, complaintId, at, recipient: Buffer.from(keys.signPublic), signature };
}

function encodeStatement(s: Statement): Buffer {
  return Buffer.concat([statementBody(s.kind, s.complaintId, s.at, s.recipient), s.signature]);
}

/** What a hop signs when it hands a complaint on: bound to the receiving neighbour and the link. */
export function complaintHopDigest(receiver: Uint8Array, link: string, statement: Statement): Buffer {
  return createHash('sha256')
    .update(HOP_DOMAIN)
    .update(receiver)
    .update(Buffer.from(link, 'hex'))
    .update(encodeStatement(statement))
    .digest();
}

/** A complaint frame for `receiver` (its raw key), signed by this hop. */
export function encodeComplaintFrame(
  keys: AgentKeys,
  receiver: Uint8Array,
  link: string,
  statement: Statement,
): Buffer {
  const hopSignature = signWith(keys, complaintHopDigest(receiver, link, statement));
  return Buffer.concat([
    Buffer.from([WIRE_VERSION, FrameType.signedComplaint]),
    Buffer.from(link, 'hex'),
    encodeStatement(statement),
    hopSignature,
  ]);
}

/** Parses a complaint frame; throws ERR_FRAME_MALFORMED. Copies (a frame may be kept as evidence). */
export function decodeComplaintFrame(frame: Uint8Array): ComplaintFrame {
  const buf = Buffer.from(frame);
  if (buf.length !== COMPLAINT_FRAME_BYTES || buf[1] !== FrameType.signedComplaint)
    throw new KithError('ERR_FRAME_MALFORMED', 'complaint frame length');
  const kind = buf[18];
  if (kind !== StatementKind.complaint && kind !== StatementKind.withdrawal && kind !== StatementKind.seen)
    throw new KithError('ERR_FRAME_MALFORMED', 'complaint kind');
  const at = Number(buf.readBigUInt64BE(35));
  return {
    link: buf.subarray(2, 18).toString('hex'),
    statement: {
      kind,
      complaintId: buf.subarray(19, 35).toString('hex'),
      at,
      recipient: buf.subarray(43, 75),
      signature: buf.subarray(75, 139),
    },
    hopSignature: buf.subarray(139, 203),
  };
}

/** True if the recipient's signature over the statement verifies. */
export function verifyStatement(verifier: SignatureVerifier, s: Statement): boolean {
  return verifier.verify(s.recipient, statementDigest(s.kind, s.complaintId, s.at, s.recipient), s.signature);
}

/** True if `from` signed this frame for `receiver` (this agent's raw key). */
export function verifyComplaintHop(
  verifier: SignatureVerifier,
  from: AgentId,
  receiver: Uint8Array,
  f: ComplaintFrame,
): boolean {
  return verifier.verifyByAgent(from, complaintHopDigest(receiver, f.link, f.statement), f.hopSignature);
}

/** The agent id of a statement's recipient. */
export function recipientAgent(s: Statement): AgentId {
  return agentIdFromPublic(s.recipient);
}

function cutBody(recipient: Buffer, complaintId: string, cutId: string, at: number): Buffer {
  return Buffer.concat([recipient, Buffer.from(complaintId, 'hex'), Buffer.from(cutId, 'hex'), u64(at)]);
}

/** What a hop signs when it hands a cut notice on. */
export function cutDigest(
  receiver: Uint8Array,
  recipient: Buffer,
  complaintId: string,
  cutId: string,
  at: number,
): Buffer {
  return createHash('sha256')
    .update(CUT_DOMAIN)
    .update(receiver)
    .update(cutBody(recipient, complaintId, cutId, at))
    .digest();
}

export function encodeCutFrame(
  keys: AgentKeys,
  receiver: Uint8Array,
  cut: Omit<CutFrame, 'hopSignature'>,
): Buffer {
  const sig = signWith(keys, cutDigest(receiver, cut.recipient, cut.complaintId, cut.cutId, cut.at));
  return Buffer.concat([
    Buffer.from([WIRE_VERSION, FrameType.cut]),
    cutBody(cut.recipient, cut.complaintId, cut.cutId, cut.at),
    sig,
  ]);
}

export function decodeCutFrame(frame: Uint8Array): CutFrame {
  const buf = Buffer.from(frame);
  if (buf.length !== CUT_FRAME_BYTES || buf[1] !== FrameType.cut)
    throw new KithError('ERR_FRAME_MALFORMED', 'cut frame length');
  return {
    recipient: buf.subarray(2, 34),
    complaintId: buf.subarray(34, 50).toString('hex'),
    cutId: buf.subarray(50, 66).toString('hex'),
    at: Number(buf.readBigUInt64BE(66)),
    hopSignature: buf.subarray(74, 138),
  };
}

export function verifyCut(
  verifier: SignatureVerifier,
  from: AgentId,
  receiver: Uint8Array,
  c: CutFrame,
): boolean {
  return verifier.verifyByAgent(
    from,
    cutDigest(receiver, c.recipient, c.complaintId, c.cutId, c.at),
    c.hopSignature,
  );
}
