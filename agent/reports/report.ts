import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { KithError } from '../../common/errors.ts';
import { signWith, type AgentKeys, type SignatureVerifier } from '../onion/keys.ts';
import type { HopSecret } from '../onion/layers.ts';

/**
 * Progress reports (docs/protocol.md, "Progress report"). A hop seals its report with the report
 * key it shares only with the sender (derived from its onion layer), and signs it with its agent
 * key inside the seal, so relays on the way back can neither read nor forge it.
 */

export const ReportKind = {
  /** The hop verified the packet and handed it to its next hop. */
  forwarded: 1,
  /** The next hop is unreachable; the hop holds the packet and will retry. */
  held: 2,
  /** The recipient has the whole message durably in its mailbox. */
  delivered: 3,
  /** The recipient stored chunks 0..value-1 (cumulative acknowledgement). */
  chunkAck: 4,
  /** The recipient refused the message; value is a RejectReason. */
  rejected: 5,
  /** A relay refused the packet under a spam limit (docs/protocol.md 15.6); value is a RefuseReason. */
  refused: 6,
} as const;
export type ReportKind = (typeof ReportKind)[keyof typeof ReportKind];

/** Why a recipient refused a message (value of a rejected report). */
export const RejectReason = {
  undecryptable: 1,
  notForMe: 2,
  tooLarge: 3,
  corrupt: 4,
  sinkFailed: 5,
  /** Spam control: a sender who is no contact of the recipient's wrote too often today (15.6). */
  firstContactLimit: 6,
  /** Spam control: a first contact that was not flagged as one for the hops' credit (15.7). */
  firstContactUnflagged: 7,
} as const;

/** Why a relay refused a packet (value of a refused report); the codes of docs/errors.md. */
export const RefuseReason = {
  /** ERR_OVER_ALLOWANCE: the neighbour before it handed on its packets' allowance this hour. */
  overAllowance: 1,
  /** ERR_FIRST_CONTACT_HELD: the neighbour before it has its first-contact credit in use (15.7). */
  firstContactHeld: 2,
} as const;

export interface Report {
  kind: ReportKind;
  /** Unix ms at the hop when it made the report. */
  at: number;
  /** Kind-specific number (chunk count, reject reason). */
  value: number;
}

const PLAIN_BYTES = 1 + 8 + 4 + 64;
/** Sealed report: nonce(12) | ciphertext(77) | tag(16). */
export const SEALED_REPORT_BYTES = 12 + PLAIN_BYTES + 16;
const SIG_DOMAIN = Buffer.from('kith-report-v1');

function signedPart(report: Report, tag: Buffer): Buffer {
  const b = Buffer.alloc(13);
  b[0] = report.kind;
  b.writeBigUInt64BE(BigInt(report.at), 1);
  b.writeUInt32BE(report.value >>> 0, 9);
  return Buffer.concat([SIG_DOMAIN, tag, b]);
}

export function sealReport(keys: AgentKeys, secret: HopSecret, report: Report): Buffer {
  const signed = signedPart(report, secret.reportTag);
  const plain = Buffer.concat([signed.subarray(SIG_DOMAIN.length + 32), signWith(keys, signed)]);
  const nonce = randomBytes(12);
  const cipher = createCipheriv('chacha20-poly1305', secret.reportKey, nonce, { authTagLength: 16 });
  const ct = Buffer.concat([cipher.update(plain), cipher.final()]);
  return Buffer.concat([nonce, ct, cipher.getAuthTag()]);
}

/**
 * Opens a report with one hop's secret; returns undefined if it was not sealed with this key.
 * Throws ERR_REPORT_FORGED if it opens but the hop's signature does not verify.
 */
export function openReport(
  verifier: SignatureVerifier,
  hopPublic: Buffer,
  secret: HopSecret,
  sealed: Uint8Array,
): Report | undefined {
  if (sealed.length !== SEALED_REPORT_BYTES) return undefined;
  const buf = Buffer.from(sealed);
  let plain: Buffer;
  try {
    const decipher = createDecipheriv('chacha20-poly1305', secret.reportKey, buf.subarray(0, 12), {
      authTagLength: 16,
    });
    decipher.setAuthTag(buf.subarray(12 + PLAIN_BYTES));
    plain = Buffer.concat([decipher.update(buf.subarray(12, 12 + PLAIN_BYTES)), decipher.final()]);
  } catch {
    return undefined;
  }
  const report: Report = {
    kind: plain[0] as ReportKind,
    at: Number(plain.readBigUInt64BE(1)),
    value: plain.readUInt32BE(9),
  };
  if (!verifier.verify(hopPublic, signedPart(report, secret.reportTag), plain.subarray(13))) {
    throw new KithError('ERR_REPORT_FORGED', 'a progress report carries a bad hop signature');
  }
  return report;
}
