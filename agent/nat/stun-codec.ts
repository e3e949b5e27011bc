import { isIPv4 } from 'node:net';
import { crc32 } from 'node:zlib';

// RFC 5389: the parts a binding responder needs, nothing more.
const MAGIC_COOKIE = 0x2112a442;
const HEADER_BYTES = 20;
const BINDING_REQUEST = 0x0001;
const BINDING_SUCCESS = 0x0101;
const ATTR_XOR_MAPPED_ADDRESS = 0x0020;
const ATTR_FINGERPRINT = 0x8028;
const FINGERPRINT_XOR = 0x5354554e;

/** A well-formed binding request: all a responder needs from it. */
export interface BindingRequest {
  /** The 96-bit transaction id, echoed in the response. */
  transactionId: Buffer;
}

/**
 * Recognises a STUN binding request; anything else (other methods, indications, garbage,
 * classic RFC 3489 without the magic cookie) is undefined and gets no answer at all, so the
 * responder never amplifies or reflects traffic it does not understand.
 */
export function parseBindingRequest(packet: Buffer): BindingRequest | undefined {
  if (packet.length < HEADER_BYTES) return undefined;
  const type = packet.readUInt16BE(0);
  const length = packet.readUInt16BE(2);
  if (type !== BINDING_REQUEST) return undefined;
  if (packet.readUInt32BE(4) !== MAGIC_COOKIE) return undefined;
  if (length % 4 !== 0 || HEADER_BYTES + length !== packet.length) return undefined;
  return { transactionId: Buffer.from(packet.subarray(8, 20)) };
}

/** A binding success response telling the requester the address and port we saw it from. */
export function buildBindingResponse(transactionId: Buffer, address: string, port: number): Buffer {
  const v4 = isIPv4(address);
  const raw = v4 ? ipv4Bytes(address) : ipv6Bytes(address);
  const xorKey = Buffer.alloc(16);
  xorKey.writeUInt32BE(MAGIC_COOKIE, 0);
  transactionId.copy(xorKey, 4);
  const xored = Buffer.alloc(raw.length);
  for (let i = 0; i < raw.length; i++) xored[i] = raw[i] ^ xorKey[i];
  const mapped = Buffer.alloc(4 + raw.length);
  mapped.writeUInt8(0, 0);
  mapped.writeUInt8(v4 ? 0x01 : 0x02, 1);
  mapped.writeUInt16BE(port ^ (MAGIC_COOKIE >>> 16), 2);
  xored.copy(mapped, 4);

  const attributes = [attribute(ATTR_XOR_MAPPED_ADDRESS, mapped)];
  const fingerprintBytes = 8;
  const body = Buffer.concat(attributes);
  const header = Buffer.alloc(HEADER_BYTES);
  header.writeUInt16BE(BINDING_SUCCESS, 0);
  header.writeUInt16BE(body.length + fingerprintBytes, 2);
  header.writeUInt32BE(MAGIC_COOKIE, 4);
  transactionId.copy(header, 8);
  const unsigned = Buffer.concat([header, body]);
  const fingerprint = Buffer.alloc(4);
  fingerprint.writeUInt32BE((crc32(unsigned) ^ FINGERPRINT_XOR) >>> 0, 0);
  return Buffer.concat([unsigned, attribute(ATTR_FINGERPRINT, fingerprint)]);
}

/** Reads the XOR-MAPPED-ADDRESS of a binding response (for tests and diagnostics). */
export function parseBindingResponse(
  packet: Buffer,
): { transactionId: Buffer; address: string; port: number } | undefined {
  if (packet.length < HEADER_BYTES || packet.readUInt16BE(0) !== BINDING_SUCCESS) return undefined;
  if (packet.readUInt32BE(4) !== MAGIC_COOKIE) return undefined;
  const transactionId = Buffer.from(packet.subarray(8, 20));
  let offset = HEADER_BYTES;
  while (offset + 4 <= packet.length) {
    const type = packet.readUInt16BE(offset);
    const length = packet.readUInt16BE(offset + 2);
    const value = packet.subarray(offset + 4, offset + 4 + length);
    if (value.length < length) return undefined;
    if (type === ATTR_XOR_MAPPED_ADDRESS) {
      // Why checked: a truncated attribute (or an IPv6 one cut short) made the reads below throw
      // RangeError (found by test/fuzz); a response we cannot read is no answer.
      if (length < 4) return undefined;
      const family = value.readUInt8(1);
      if ((family !== 0x01 && family !== 0x02) || length < (family === 0x01 ? 8 : 20)) return undefined;
      const port = value.readUInt16BE(2) ^ (MAGIC_COOKIE >>> 16);
      const xorKey = Buffer.alloc(16);
      xorKey.writeUInt32BE(MAGIC_COOKIE, 0);
      transactionId.copy(xorKey, 4);
      const raw = Buffer.from(value.subarray(4, family === 0x01 ? 8 : 20));
      for (let i = 0; i < raw.length; i++) raw[i] ^= xorKey[i];
      const address = family === 0x01 ? [...raw].join('.') : formatIpv6(raw);
      return { transactionId, address, port };
    }
    offset += 4 + length + ((4 - (length % 4)) % 4);
  }
  return undefined;
}

/** A binding request with a fresh transaction id (for tests and diagnostics). */
export function buildBindingRequest(transactionId: Buffer): Buffer {
  const header = Buffer.alloc(HEADER_BYTES);
  header.writeUInt16BE(BINDING_REQUEST, 0);
  header.writeUInt16BE(0, 2);
  header.writeUInt32BE(MAGIC_COOKIE, 4);
  transactionId.copy(header, 8);
  return header;
}

function attribute(type: number, value: Buffer): Buffer {
  const padding = (4 - (value.length % 4)) % 4;
  const out = Buffer.alloc(4 + value.length + padding);
  out.writeUInt16BE(type, 0);
  out.writeUInt16BE(value.length, 2);
  value.copy(out, 4);
  return out;
}

function ipv4Bytes(address: string): Buffer {
  return Buffer.from(address.split('.').map(Number));
}

function ipv6Bytes(address: string): Buffer {
  const [head, tail = ''] = address.split('::');
  const parse = (part: string): number[] => (part === '' ? [] : part.split(':').map((h) => parseInt(h, 16)));
  const left = parse(head);
  const right = address.includes('::') ? parse(tail) : [];
  const groups = [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(g, i * 2));
  return out;
}

function formatIpv6(raw: Buffer): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(raw.readUInt16BE(i).toString(16));
  return groups.join(':');
}
