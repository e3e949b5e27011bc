// Every fuzz target, for the long run (test/fuzz/run.ts). The seeded CI runs import the groups.
import type { Target } from '../harness.ts';
import { coreTargets } from './core.ts';
import { gatewayTargets } from './gateway.ts';
import { smtpServerTarget } from './servers.ts';
import { imapServerTarget } from './imap-server.ts';
import { trustFixture, trustTargets } from './trust.ts';

export interface Entry {
  target: Target;
  /** Fewer inputs than asked (a live server over one connection): how many, from the asked number. */
  runsFor?(asked: number): number;
  note?: string;
}

/**
 * The OpenPGP exchanges: every input that gets past the JSON reaches an OpenPGP signature check
 * (and the accepted ones a SQLite write), ~100-200 inputs/s on this machine, so a million would
 * take hours; these run a tenth of the asked number, and the summary says so.
 */
const OPENPGP_EXCHANGES = new Set(['hello', 'invite-request', 'invite-reply']);

export async function allTargets(): Promise<{ entries: Entry[]; stop(): Promise<void> }> {
  const trust = await trustFixture();
  const targets = [...coreTargets(), ...(await trustTargets(trust)), ...gatewayTargets()] as Target[];
  const smtp = await smtpServerTarget();
  const server: Entry = {
    target: smtp.target as Target,
    runsFor: (asked) => Math.ceil(asked / 50),
    note: 'a fiftieth: one TCP connection per session to a live smtp-server',
  };
  const imap = await imapServerTarget();
  const imapServer: Entry = {
    target: imap.target as Target,
    runsFor: (asked) => Math.ceil(asked / 20),
    note: 'a twentieth: one live IMAP connection, a sentinel NOOP answered per input',
  };
  return {
    entries: targets
      .map((target): Entry =>
        OPENPGP_EXCHANGES.has(target.name)
          ? {
              target,
              runsFor: (asked: number) => Math.ceil(asked / 10),
              note: 'a tenth: OpenPGP signature checks per input',
            }
          : { target },
      )
      .concat(server, imapServer),
    stop: async () => {
      await smtp.stop();
      await imap.stop();
      trust.stop();
    },
  };
}
