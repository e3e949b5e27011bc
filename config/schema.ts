import { z } from 'zod';

const port = z.number().int().min(0).max(65535);
const host = z.string().min(1);
const duration = z.number().int().positive();

/** The whole node configuration. Defaults live in config/defaults.ts; docs/operations.md explains each. */
export const configSchema = z
  .object({
    /** Directory holding everything this node owns: database, keys, blobs, redis, TLS. */
    dataDir: z.string().min(1),
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
    /**
     * The host name mail clients are told (printed settings, `kith mail-settings`, autoconfig);
     * absent: the listening host, or 127.0.0.1 when that is a wildcard (0.0.0.0).
     */
    publicHost: host.optional(),
    /** Where the passphrase for the private keys comes from when no one can type it (services). */
    passphrase: z
      .object({
        /** Name of an environment variable holding the passphrase. */
        env: z.string().min(1),
        /** A file whose first line is the passphrase (docker secrets). */
        file: z.string().min(1).optional(),
      })
      .strict(),
    redis: z
      .object({
        /** redis://host:port/db of an existing Redis; empty = start a private redis-server. */
        url: z.string().url().optional(),
        /** Key prefix, so several nodes can share one Redis. */
        prefix: z.string().min(1),
        /** redis-server binary for the private server. */
        binary: z.string().min(1),
      })
      .strict(),
    p2p: z
      .object({
        listen: z.array(z.string().startsWith('/')),
        /** Addresses to announce instead of the listening ones (a public IP, a DynDNS name). */
        announce: z.array(z.string().startsWith('/')),
        maxLinks: z.number().int().positive(),
        idleLinkMs: duration,
        /** Announce our addresses to neighbours this often, and whenever they change. */
        announceIntervalMs: duration,
        /** Forget a neighbour's addresses after this much silence. */
        addressTtlMs: duration,
        /** Relay for trusted NATed neighbours (circuit relay v2, trusted reservations only). */
        relay: z
          .object({
            enabled: z.boolean(),
            maxReservations: z.number().int().positive(),
            /** Bytes one relayed connection may carry; 0 = no limit. */
            maxBytesPerConnection: z.number().int().min(0),
          })
          .strict(),
        /** Multiaddrs of trusted public neighbours to keep a relay reservation with. */
        relays: z.array(z.string().startsWith('/')),
        /** UDP port of the STUN responder for trusted peers, run by relay-enabled nodes (0 = off). */
        stunPort: port,
        upnp: z.boolean(),
        /** Answer "where is X?" with signed address records (never relays). */
        directory: z.boolean(),
      })
      .strict()
      // A directory only answers "where is X?": it must not also carry traffic for the agents
      // it lists (docs/protocol.md 5.2), so the two roles are refused together.
      .refine((p2p) => !(p2p.directory && p2p.relay.enabled), {
        message: 'a directory never relays: set p2p.directory or p2p.relay.enabled, not both',
        path: ['directory'],
      }),
    smtp: z
      .object({
        host,
        port,
        /** Implicit TLS on connect instead of STARTTLS (port 465 style). */
        secure: z.boolean(),
        /** Allow AUTH without TLS (only sensible on loopback test setups). */
        allowInsecureAuth: z.boolean(),
        maxMessageBytes: z.number().int().positive(),
        maxRecipients: z.number().int().positive(),
      })
      .strict(),
    imap: z
      .object({
        host,
        port,
        /** Port for implicit TLS (993 style); 0 = off. */
        tlsPort: port,
        allowInsecureAuth: z.boolean(),
        /** Largest APPEND accepted, advertised as APPENDLIMIT. */
        appendLimit: z.number().int().positive(),
        /** Open IMAP sessions at most; more get BYE (a runaway client cannot exhaust the node). */
        maxConnections: z.number().int().positive(),
      })
      .strict(),
    http: z
      .object({
        /** Serves Thunderbird autoconfig on loopback. */
        host,
        port,
      })
      .strict(),
    /** Play-while-it-arrives links (issue 15): the local HTTP server serving arriving transfers. */
    streams: z
      .object({
        enabled: z.boolean(),
        /** Loopback by default: whoever holds a link (an unguessable token) can read the transfer. */
        host,
        port,
        /**
         * An attachment submitted over SMTP larger than this (decoded bytes) travels as a file
         * link (docs/protocol.md 8.3): the recipient gets the mail at once, the file streams
         * behind it. 0 never links.
         */
        linkAttachmentsAbove: z.number().int().nonnegative(),
      })
      .strict(),
    tls: z
      .object({
        /** PEM files of your own certificate; when absent a self-signed one made at init is used. */
        cert: z.string().optional(),
        key: z.string().optional(),
      })
      .strict(),
    delivery: z
      .object({
        /** No progress report for this long: re-send along another path. */
        stallTimeoutMs: duration,
        /** Give up (and send a "failed" status email) after this long. */
        maxAgeMs: duration,
        /** Send a "delivered" status email even when the client did not ask with NOTIFY=SUCCESS. */
        alwaysReportDelivery: z.boolean(),
        /** How long a hop remembers who handed it a message (for reports and complaints). */
        hopMemoryMs: duration,
        /** Bytes this node holds at most for others (store and forward). */
        maxHeldBytes: z.number().int().positive(),
        /** Longest this node holds or remembers a packet for others; packets valid for longer are refused. */
        maxHoldMs: duration,
        /** Complaints against one neighbour before its trust is revoked. */
        complaintThreshold: z.number().int().positive(),
        /**
         * An arriving chunked transfer that stores no chunk for this long is ended as expired:
         * spool deleted, its link answers 410 Gone (docs/protocol.md 8.1).
         */
        inboundIdleMs: duration,
      })
      .strict(),
    discovery: z
      .object({
        maxHops: z.number().int().min(1).max(16),
        /** Discovery questions accepted per neighbour per minute. */
        perNeighbourPerMinute: z.number().int().positive(),
        cacheMs: duration,
        timeoutMs: duration,
      })
      .strict(),
    /** Spam control (agent/spam/decisions.ts gives each default its reason; docs/protocol.md 15). */
    spam: z
      .object({
        /** Half-life of the decaying counts (traffic, complaints, cut-offs). */
        halfLifeMs: duration,
        /** Open complaints that suspend a neighbour handing on little traffic. */
        minComplaints: z.number().int().positive(),
        /** Share of a neighbour's traffic that may be complained about before it is suspended. */
        complaintRatio: z.number().min(0).max(1),
        /** The threshold never rises above this. */
        maxComplaints: z.number().int().positive(),
        /** How long a suspended neighbour has to show it cut the source off before it is revoked. */
        settleMs: duration,
        /** Cut-offs a neighbour may report per half-life before it is revoked itself. */
        maxCuts: z.number().int().positive(),
        /** Open complaints ever (not decayed) that revoke a neighbour (a slow drip). */
        lifetimeComplaints: z.number().int().positive(),
        /** Share of all packets ever handed on that may have been complained about. */
        lifetimeRatio: z.number().min(0).max(1),
        /** First-contact messages per day from one entity that is nobody's contact here. */
        firstContactsPerDay: z.number().int().positive(),
        /** Invitations one entity may issue per 30 days once its quota has ramped up. */
        invitationsPer30Days: z.number().int().positive(),
        /** Days until a new entity's invitation quota is full. */
        invitationRampDays: z.number().int().positive(),
        /** Invitations a new entity may have out in its first 30 days (the ramp's start). */
        invitationsAtStart: z.number().int().positive(),
        /** Packets per hour any neighbour may hand on, however little it sent before. */
        forwardFloorPerHour: z.number().int().positive(),
        /** How far above its usual hourly rate a neighbour may go. */
        forwardBurst: z.number().positive(),
        /** Packets of at least this many bytes (full chunks) are not counted against the allowance. */
        forwardUncountedBytes: z.number().int().positive(),
        /** First-contact credit (docs/protocol.md 15.7; enforced when firstContactCredit is on). */
        creditStart: z.number().int().positive(),
        creditPerGood: z.number().positive(),
        creditMax: z.number().int().positive(),
        creditVerdictMs: duration,
        /** Open complaints that revoke a neighbour whose first contacts have no good record yet. */
        probationComplaints: z.number().int().positive(),
        /** Enforce the first-contact credit (flag, hold, verdicts: docs/protocol.md 15.7). */
        firstContactCredit: z.boolean(),
      })
      .strict(),
  })
  .strict();

export type Config = z.infer<typeof configSchema>;
