import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Config } from './schema.ts';
import { DEFAULT_SPAM_POLICY } from '../agent/spam/decisions.ts';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/** Defaults: everything on loopback except the P2P port; documented in docs/operations.md. */
export function defaultConfig(): Config {
  return {
    dataDir: join(homedir(), '.kith'),
    logLevel: 'info',
    passphrase: { env: 'KITH_PASSPHRASE' },
    redis: { prefix: 'kith', binary: 'redis-server' },
    p2p: {
      listen: ['/ip4/0.0.0.0/tcp/4410'],
      announce: [],
      maxLinks: 64,
      idleLinkMs: 10 * MINUTE,
      announceIntervalMs: 10 * MINUTE,
      addressTtlMs: 30 * DAY,
      relay: { enabled: false, maxReservations: 32, maxBytesPerConnection: 0 },
      relays: [],
      stunPort: 3478,
      upnp: false,
      directory: false,
    },
    smtp: {
      host: '127.0.0.1',
      port: 2587,
      secure: false,
      allowInsecureAuth: false,
      maxMessageBytes: 2 * 1024 * 1024 * 1024,
      maxRecipients: 100,
    },
    imap: {
      host: '127.0.0.1',
      port: 2143,
      tlsPort: 0,
      allowInsecureAuth: false,
      appendLimit: 2 * 1024 * 1024 * 1024,
      maxConnections: 256,
    },
    http: { host: '127.0.0.1', port: 2080 },
    streams: { enabled: true, host: '127.0.0.1', port: 2081, linkAttachmentsAbove: 10 * 1024 * 1024 },
    tls: {},
    delivery: {
      stallTimeoutMs: 2 * MINUTE,
      maxAgeMs: 5 * DAY,
      alwaysReportDelivery: true,
      hopMemoryMs: 7 * DAY,
      maxHeldBytes: 10 * 1024 * 1024 * 1024,
      maxHoldMs: 5 * DAY,
      complaintThreshold: 5,
      inboundIdleMs: 7 * DAY,
    },
    discovery: {
      maxHops: 6,
      perNeighbourPerMinute: 60,
      cacheMs: HOUR,
      timeoutMs: 10_000,
    },
    spam: { ...DEFAULT_SPAM_POLICY },
  };
}
