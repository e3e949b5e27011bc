import { KithError } from '../../common/errors.ts';
import { WIRE_VERSION } from '../onion/wire.ts';
import type { SignedChange, VersionVector } from './change.ts';

/**
 * Sync frames travel on the link transport beside the delivery engine's frames, told apart by
 * their second byte (docs/protocol.md "Sync"): [version 1][type 0x20][kind][payload].
 */
export const SYNC_FRAME_TYPE = 0x20;

export const SyncKind = { vv: 1, changes: 2, want: 3, blob: 4, sealed: 5, wantPlain: 6 } as const;

/** A decoded sync frame. */
export type SyncFrame =
  | { kind: 'vv'; vv: VersionVector }
  | { kind: 'changes'; changes: SignedChange[] }
  | { kind: 'want'; hashes: string[] }
  | { kind: 'blob'; hash: string; total: number; offset: number; bytes: Buffer }
  /** The message's end-to-end ciphertext as it was delivered (r23): the receiver opens it itself. */
  | { kind: 'sealed'; hash: string; total: number; offset: number; bytes: Buffer }
  /** The plain bytes after all: the sealed form did not rebuild the message (r23). */
  | { kind: 'want-plain'; hashes: string[] };

/** Whether a link frame is a sync frame (the demultiplexer's test). */
export function isSyncFrame(frame: Uint8Array): boolean {
  return frame.length >= 3 && frame[0] === WIRE_VERSION && frame[1] === SYNC_FRAME_TYPE;
}

export function encodeSync(frame: SyncFrame): Buffer {
  const head = (kind: number) => Buffer.from([WIRE_VERSION, SYNC_FRAME_TYPE, kind]);
  switch (frame.kind) {
    case 'vv':
      return Buffer.concat([head(SyncKind.vv), Buffer.from(JSON.stringify(frame.vv))]);
    case 'changes':
      return Buffer.concat([head(SyncKind.changes), Buffer.from(JSON.stringify(frame.changes))]);
    case 'want':
      return Buffer.concat([head(SyncKind.want), Buffer.from(JSON.stringify(frame.hashes))]);
    case 'want-plain':
      return Buffer.concat([head(SyncKind.wantPlain), Buffer.from(JSON.stringify(frame.hashes))]);
    case 'blob':
    case 'sealed': {
      const fixed = Buffer.alloc(40);
      Buffer.from(frame.hash, 'hex').copy(fixed, 0);
      fixed.writeUInt32BE(frame.total, 32);
      fixed.writeUInt32BE(frame.offset, 36);
      return Buffer.concat([
        head(frame.kind === 'blob' ? SyncKind.blob : SyncKind.sealed),
        fixed,
        frame.bytes,
      ]);
    }
  }
}

/** Decodes a sync frame; throws ERR_SYNC_MALFORMED (the frame is dropped, the link stays). */
export function decodeSync(frame: Uint8Array): SyncFrame {
  const buf = Buffer.from(frame.buffer, frame.byteOffset, frame.length);
  const bad = (why: string) => new KithError('ERR_SYNC_MALFORMED', `bad sync frame: ${why}`);
  if (!isSyncFrame(buf)) throw bad('not a sync frame');
  const json = (): unknown => {
    try {
      return JSON.parse(buf.subarray(3).toString());
    } catch {
      throw bad('not JSON');
    }
  };
  switch (buf[2]) {
    case SyncKind.vv: {
      const vv = json() as VersionVector;
      if (typeof vv !== 'object' || vv === null || Array.isArray(vv)) throw bad('version vector');
      for (const v of Object.values(vv)) if (!Number.isSafeInteger(v) || v < 0) throw bad('version vector');
      return { kind: 'vv', vv };
    }
    case SyncKind.changes: {
      const changes = json();
      if (!Array.isArray(changes)) throw bad('changes');
      return { kind: 'changes', changes: changes as SignedChange[] };
    }
    case SyncKind.want:
    case SyncKind.wantPlain: {
      const hashes = json();
      if (!Array.isArray(hashes) || !hashes.every((h) => typeof h === 'string' && /^[0-9a-f]{64}$/.test(h)))
        throw bad('want');
      return { kind: buf[2] === SyncKind.want ? 'want' : 'want-plain', hashes: hashes as string[] };
    }
    case SyncKind.blob:
    case SyncKind.sealed: {
      if (buf.length < 43) throw bad('blob too short');
      const total = buf.readUInt32BE(35);
      const offset = buf.readUInt32BE(39);
      const bytes = buf.subarray(43);
      if (offset + bytes.length > total) throw bad('blob chunk beyond its total');
      const kind = buf[2] === SyncKind.blob ? 'blob' : 'sealed';
      return { kind, hash: buf.subarray(3, 35).toString('hex'), total, offset, bytes };
    }
    default:
      throw bad(`unknown kind ${buf[2]}`);
  }
}
