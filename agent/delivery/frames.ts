import { createHash } from 'node:crypto';
import { KithError } from '../../common/errors.ts';
import { MAX_FRAME_BYTES } from '../transport.ts';
import { HEADER_BYTES } from '../onion/layers.ts';
import { FrameType, WIRE_VERSION } from '../onion/wire.ts';
import { SEALED_REPORT_BYTES } from '../reports/report.ts';
import { BODY_CLASSES } from '../payload/unit.ts';

/** Frames of the delivery engine (docs/protocol.md, "Frames"). */

const HOP_DOMAIN = Buffer.from('kith-hop-v1');
const ONION_FIXED = 2 + HEADER_BYTES + 4 + 64;

/** The link id of a packet on one link: what a hop and its neighbour both know it by. */
export function linkId(header: Uint8Array): string {
  return createHash('sha256').update(header).digest().subarray(0, 16).toString('hex');
}

/** What a hop signs when it hands a packet on: bound to the receiving neighbour and the exact bytes. */
export function hopDigest(toPublic: Buffer, header: Uint8Array, body: Uint8Array): Buffer {
  return createHash('sha256').update(HOP_DOMAIN).update(toPublic).update(header).update(body).digest();
}

export function encodeOnion(header: Buffer, body: Buffer, signature: Buffer): Buffer {
  const head = Buffer.from([WIRE_VERSION, FrameType.onion]);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length);
  return Buffer.concat([head, header, len, body, signature]);
}

/** Parses an onion frame; throws ERR_FRAME_OVERSIZE / ERR_FRAME_MALFORMED. Views, no copies. */
export function decodeOnion(frame: Buffer): { header: Buffer; body: Buffer; signature: Buffer } {
  if (frame.length > MAX_FRAME_BYTES) throw new KithError('ERR_FRAME_OVERSIZE', 'onion frame too large');
  if (frame.length < ONION_FIXED) throw new KithError('ERR_FRAME_MALFORMED', 'onion frame too short');
  const bodyLen = frame.readUInt32BE(2 + HEADER_BYTES);
  if (!(BODY_CLASSES as readonly number[]).includes(bodyLen)) {
    throw new KithError('ERR_FRAME_MALFORMED', 'onion body is not of a size class');
  }
  if (frame.length !== ONION_FIXED + bodyLen)
    throw new KithError('ERR_FRAME_MALFORMED', 'onion frame length');
  const bodyAt = 2 + HEADER_BYTES + 4;
  return {
    header: frame.subarray(2, 2 + HEADER_BYTES),
    body: frame.subarray(bodyAt, bodyAt + bodyLen),
    signature: frame.subarray(bodyAt + bodyLen),
  };
}

export function encodeReport(link: string, sealed: Buffer): Buffer {
  return Buffer.concat([Buffer.from([WIRE_VERSION, FrameType.report]), Buffer.from(link, 'hex'), sealed]);
}

export function decodeReport(frame: Buffer): { link: string; sealed: Buffer } {
  if (frame.length !== 18 + SEALED_REPORT_BYTES)
    throw new KithError('ERR_FRAME_MALFORMED', 'report frame length');
  return { link: frame.subarray(2, 18).toString('hex'), sealed: frame.subarray(18) };
}

export function encodeComplaint(link: string): Buffer {
  return Buffer.concat([Buffer.from([WIRE_VERSION, FrameType.complaint]), Buffer.from(link, 'hex')]);
}

export function decodeComplaint(frame: Buffer): { link: string } {
  if (frame.length !== 18) throw new KithError('ERR_FRAME_MALFORMED', 'complaint frame length');
  return { link: frame.subarray(2, 18).toString('hex') };
}
