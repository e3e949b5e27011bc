import { createHash } from 'node:crypto';
import { compareStamps, type Stamp } from './hlc.ts';

/**
 * The replicated state of one entity's mailbox, trust and contacts (docs/protocol.md, "Sync").
 * Everything is a last-writer-wins register keyed by a string and stamped with the hybrid clock
 * of the change that wrote it. Merging two registers keeps the one with the higher stamp, which
 * is commutative, associative and idempotent: replicas that applied the same changes, in any
 * order and any number of times, hold the same registers. The view functions below turn the
 * registers into folders and messages; they are pure, so convergence is testable without I/O.
 */

/** The fixed folder ids of the standard mailboxes: the same on every agent, never deleted. */
export const STANDARD_FOLDERS: readonly string[] = ['INBOX', 'Sent', 'Drafts', 'Trash', 'Junk', 'Archive'];

/** One change's effect on the state. */
export type Op =
  /** A message placed in a folder: `e` the entry id, `h` the SHA-256 of its bytes (hex). */
  | { t: 'add'; e: string; h: string; f: string; d: number; s: number; fl: string[] }
  /** One flag of one entry set or cleared. */
  | { t: 'flag'; e: string; fl: string; on: boolean }
  /** An entry moved to another folder (it keeps its id, flags and history). */
  | { t: 'move'; e: string; f: string }
  /** An entry expunged: a tombstone that no later change brings back. */
  | { t: 'expunge'; e: string }
  /** A folder created (name and live), renamed (name) or deleted (live false). */
  | { t: 'folder'; f: string; n?: string; live?: boolean }
  /** A contact's or trusted entity's record (its public key and what the user decided). */
  | { t: 'contact'; p: string; v: ContactValue }
  /**
   * An agent revoked: `r` its revocation signed by the entity key (docs/protocol.md section 3, the
   * JSON `{canonical, signature}`), `k` how many of the agent's changes the recording agent held
   * then. Changes of `g` numbered up to the highest `k` recorded are kept, later ones refused.
   */
  | { t: 'revocation'; g: string; r: string; k: number };

/** What the user decided about another entity, replicated as one register per fingerprint. */
export interface ContactValue {
  /** The entity's armored public key. */
  key: string;
  trusted: boolean;
  contact: boolean;
  revoked: boolean;
}

/** A register: its value and the stamp of the change that wrote it. */
export interface Register {
  v: unknown;
  t: Stamp;
}

/** Where registers are kept (memory in tests, SQLite in a node). */
export interface Registers {
  get(key: string): Register | undefined;
  put(key: string, register: Register): void;
  /** Every register whose key starts with `prefix`. */
  scan(prefix: string): Iterable<[string, Register]>;
}

/** The register a write must beat: the higher stamp wins, so the merge is order-independent. */
export function mergeRegister(current: Register | undefined, incoming: Register): Register {
  if (current === undefined) return incoming;
  return compareStamps(incoming.t, current.t) > 0 ? incoming : current;
}

/** What an applied change touched, so the mailbox projection redoes only that. */
export interface Touched {
  entries: Set<string>;
  folders: boolean;
  contacts: Set<string>;
  revocations: string[];
}

export function emptyTouched(): Touched {
  return { entries: new Set(), folders: false, contacts: new Set(), revocations: [] };
}

/** Flags compare case-insensitively (RFC 3501 2.3.2): one register per lower-cased flag. */
export function flagKey(eid: string, flag: string): string {
  return `F/${eid}/${flag.toLowerCase()}`;
}

/** The register writes of one op. Per-flag registers are why \Seen set on one device and
 * \Answered on another both survive: they never compete for the same register. */
export function writesOf(op: Op): [string, unknown][] {
  switch (op.t) {
    case 'add':
      return [
        [`m/${op.e}`, { h: op.h, d: op.d, s: op.s }],
        [`f/${op.e}`, op.f],
        ...op.fl.map((fl): [string, unknown] => [flagKey(op.e, fl), { on: true, n: fl }]),
      ];
    case 'flag':
      return [[flagKey(op.e, op.fl), { on: op.on, n: op.fl }]];
    case 'move':
      return [[`f/${op.e}`, op.f]];
    case 'expunge':
      return [[`x/${op.e}`, true]];
    case 'folder': {
      const out: [string, unknown][] = [];
      if (op.n !== undefined) out.push([`n/${op.f}`, op.n]);
      if (op.live !== undefined) out.push([`l/${op.f}`, op.live]);
      return out;
    }
    case 'contact':
      return [[`c/${op.p}`, op.v]];
    case 'revocation':
      // One register per bound: the bound in force is the highest, whoever wrote it and when.
      return [[`r/${op.g}/${op.k}`, op.r]];
  }
}

/**
 * The revocation of `agent` the registers hold: the highest bound any revocation op recorded and
 * its signed statement; undefined when no device has recorded one.
 */
export function revocationOf(
  registers: Registers,
  agent: string,
): { upTo: number; statement: string } | undefined {
  let found: { upTo: number; statement: string } | undefined;
  for (const [key, reg] of registers.scan(`r/${agent}/`)) {
    const upTo = Number(key.slice(agent.length + 3));
    if (Number.isSafeInteger(upTo) && (found === undefined || upTo > found.upTo))
      found = { upTo, statement: reg.v as string };
  }
  return found;
}

/** Applies a change's ops, all stamped with the change's stamp; returns what they touched. */
export function applyOps(
  registers: Registers,
  ops: readonly Op[],
  stamp: Stamp,
  touched = emptyTouched(),
): Touched {
  for (const op of ops) {
    for (const [key, v] of writesOf(op)) {
      const current = registers.get(key);
      const merged = mergeRegister(current, { v, t: stamp });
      if (merged !== current) registers.put(key, merged);
    }
    if ('e' in op) touched.entries.add(op.e);
    if (op.t === 'folder') touched.folders = true;
    if (op.t === 'contact') touched.contacts.add(op.p);
    if (op.t === 'revocation') touched.revocations.push(op.g);
  }
  return touched;
}

// ---- the view ------------------------------------------------------------------------------

/** The live folders, id → name. Standard folders are always live under their own name. */
export function liveFolders(registers: Registers): Map<string, string> {
  const out = new Map<string, string>(STANDARD_FOLDERS.map((f) => [f, f]));
  for (const [key, reg] of registers.scan('n/')) {
    const fid = key.slice(2);
    if (STANDARD_FOLDERS.includes(fid)) continue;
    if (registers.get(`l/${fid}`)?.v === true) out.set(fid, reg.v as string);
  }
  return out;
}

/**
 * The folder id a name stands for. Two devices may create folders of the same name while apart:
 * both stay live and show as one mailbox (their messages together); moving into that mailbox
 * picks the smallest id, so every device picks the same one.
 */
export function folderNamed(folders: ReadonlyMap<string, string>, name: string): string | undefined {
  let found: string | undefined;
  for (const [fid, n] of folders) if (n === name && (found === undefined || fid < found)) found = fid;
  return found;
}

/** One message as every replica must show it. */
export interface EntryView {
  eid: string;
  hash: string;
  internalDate: number;
  size: number;
  /** The name of the mailbox it shows in. */
  mailbox: string;
  /** Flags set, in their first-seen spelling, sorted. */
  flags: string[];
}

/**
 * An entry as it shows, or undefined when it is expunged or not known yet. An entry whose folder
 * was deleted while another device moved it there shows in INBOX: deleting a folder expunges what
 * the deleting device saw in it, and a message it never saw is not lost.
 */
export function entryView(
  registers: Registers,
  eid: string,
  folders: ReadonlyMap<string, string>,
): EntryView | undefined {
  const meta = registers.get(`m/${eid}`);
  if (meta === undefined || registers.get(`x/${eid}`) !== undefined) return undefined;
  const fid = registers.get(`f/${eid}`)?.v as string | undefined;
  const mailbox = (fid !== undefined ? folders.get(fid) : undefined) ?? 'INBOX';
  const flags: string[] = [];
  for (const [, reg] of registers.scan(`F/${eid}/`)) {
    const value = reg.v as { on: boolean; n: string };
    if (value.on) flags.push(value.n);
  }
  const m = meta.v as { h: string; d: number; s: number };
  return { eid, hash: m.h, internalDate: m.d, size: m.s, mailbox, flags: flags.sort() };
}

/** Every entry id the registers know (expunged ones included). */
export function entryIds(registers: Registers): string[] {
  return [...registers.scan('m/')].map(([key]) => key.slice(2));
}

/** The whole visible state, ordered: what two converged replicas must agree on. */
export function snapshot(registers: Registers): { folders: string[]; entries: EntryView[] } {
  const folders = liveFolders(registers);
  const entries = entryIds(registers)
    .map((eid) => entryView(registers, eid, folders))
    .filter((e): e is EntryView => e !== undefined)
    .sort((x, y) => (x.eid < y.eid ? -1 : x.eid > y.eid ? 1 : 0));
  return { folders: [...new Set(folders.values())].sort(), entries };
}

// ---- ids -----------------------------------------------------------------------------------

function shortHash(text: string): string {
  return createHash('sha256').update(text).digest().subarray(0, 16).toString('base64url');
}

/** A new entry's id: unique per author and stamp (APPEND, COPY). */
export function newEntryId(stamp: Stamp, index: number): string {
  return shortHash(`entry:${stamp.a}:${stamp.w}:${stamp.c}:${index}`);
}

/**
 * The entry id of a message delivered over Kith: derived from its Kith message id, so the same
 * message reaching two agents of the entity (a sender's retry along another path) is one entry.
 */
export function deliveredEntryId(kithId: string): string {
  return shortHash(`delivered:${kithId.trim()}`);
}

/** A new folder's id. */
export function newFolderId(stamp: Stamp, name: string): string {
  return shortHash(`folder:${stamp.a}:${stamp.w}:${stamp.c}:${name}`);
}

/** A Map-backed register store: the replicas of the property tests, and a scratch state. */
export class MemoryRegisters implements Registers {
  readonly map = new Map<string, Register>();
  get(key: string): Register | undefined {
    return this.map.get(key);
  }
  put(key: string, register: Register): void {
    this.map.set(key, register);
  }
  *scan(prefix: string): Iterable<[string, Register]> {
    for (const entry of this.map) if (entry[0].startsWith(prefix)) yield entry;
  }
}
