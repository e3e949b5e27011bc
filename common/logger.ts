import { pino, type Logger } from 'pino';

export type { Logger };

// Secrets never reach logs: any of these keys, at any depth pino's redact understands, is censored.
const REDACT = [
  'passphrase',
  'password',
  'pass',
  'secret',
  'privateKey',
  '*.passphrase',
  '*.password',
  '*.pass',
  '*.secret',
  '*.privateKey',
  // The bridge's outside passwords (control method parameters, agent/lists/control.ts).
  'imapPass',
  'smtpPass',
  '*.imapPass',
  '*.smtpPass',
];

/** Creates the node's root logger; components take child loggers from it. */
export function createLogger(options: {
  level: string;
  name?: string;
  destination?: number | string;
}): Logger {
  return pino(
    { level: options.level, name: options.name ?? 'kith', redact: { paths: REDACT, censor: '[redacted]' } },
    pino.destination(options.destination ?? 2),
  );
}

/** A logger that drops everything, for tests and library use. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
