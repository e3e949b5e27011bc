import { randomBytes } from 'node:crypto';
import { KithError } from '../../common/errors.ts';

/**
 * What the recipient finds once it peels its onion layer (docs/protocol.md, "Delivery unit"):
 * a sealed manifest or one sealed chunk, padded with random bytes to a body size class so relays
 * learn only the class, not the exact size.
 */
export type Unit =
  | { kind: 'manifest'; id: Buffer; sealed: Buffer }
  | { kind: 'chunk'; id: Buffer; index: number; sealed: Buffer };

/** Body sizes a packet may have. */
export const BODY_CLASSES = [1024, 4096, 16384, 65536, 262144] as const;
export const MAX_BODY = BODY_CLASSES[BODY_CLASSES.length - 1];

export function bodyClass(length: number): number {
  const cls = BODY_CLASSES.find((c) => c >= length);
  if (cls === undefined) throw new KithError('ERR_UNIT_TOO_LARGE', `a unit of ${length} bytes fits no body`);
  return cls;
}

export function encodeUnit(unit: Unit): Buffer {
  const head = Buffer.alloc(unit.kind === 'manifest' ? 21 : 25);
  head[0] = unit.kind === 'manifest' ? 1 : 2;
  unit.id.copy(head, 1);
  if (unit.kind === 'manifest') head.writeUInt32BE(unit.sealed.length, 17);
  else {
    head.writeUInt32BE(unit.index, 17);
    head.writeUInt32BE(unit.sealed.length, 21);
  }
  const used = head.length + unit.sealed.length;
  return Buffer.concat([head, unit.sealed, randomBytes(bodyClass(used) - used)]);
}

export function decodeUnit(body: Buffer): Unit {
  const bad = (why: string) => new KithError('ERR_UNIT_MALFORMED', `malformed delivery unit: ${why}`);
  if (body.length < 25) throw bad('too short');
  const id = Buffer.from(body.subarray(1, 17));
  if (body[0] === 1) {
    const len = body.readUInt32BE(17);
    if (21 + len > body.length) throw bad('truncated manifest');
    return { kind: 'manifest', id, sealed: Buffer.from(body.subarray(21, 21 + len)) };
  }
  if (body[0] === 2) {
    const len = body.readUInt32BE(21);
    if (25 + len > body.length) throw bad('truncated chunk');
    return { kind: 'chunk', id, index: body.readUInt32BE(17), sealed: body.subarray(25, 25 + len) };
  }
  throw bad('unknown kind');
}
