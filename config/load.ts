import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { KithError } from '../common/errors.ts';
import { defaultConfig } from './defaults.ts';
import { configSchema, type Config } from './schema.ts';

/** KITH_* variables that are not configuration keys (read elsewhere in config/). */
const NON_CONFIG_VARIABLES = new Set(['KITH_PASSPHRASE', 'KITH_CONFIG']);

export interface LoadOptions {
  /** Explicit config file (YAML or JSON); otherwise <dataDir>/config.yaml when it exists. */
  file?: string;
  /** Environment to read KITH_* overrides from. */
  env?: Record<string, string | undefined>;
  /** Highest priority: values set by command-line flags. */
  overrides?: DeepPartial<Config>;
}

export type DeepPartial<T> = { [K in keyof T]?: T[K] extends object ? DeepPartial<T[K]> : T[K] };

/**
 * Defaults < config file < KITH_* environment < command-line flags; validated once and frozen.
 * Bad values name the key and the reason, e.g. "smtp.port: Too big: expected number to be <=65535".
 */
export function loadConfig(options: LoadOptions = {}): Readonly<Config> {
  const env = options.env ?? process.env;
  let merged: Record<string, unknown> = defaultConfig() as unknown as Record<string, unknown>;
  const envOverrides = overridesFromEnv(env, merged);
  const dataDir = String(options.overrides?.dataDir ?? envOverrides.dataDir ?? merged.dataDir);
  const file = options.file ?? env.KITH_CONFIG ?? join(dataDir, 'config.yaml');
  if (options.file !== undefined || env.KITH_CONFIG !== undefined || existsSync(file)) {
    merged = deepMerge(merged, readConfigFile(file));
  }
  merged = deepMerge(merged, envOverrides);
  if (options.overrides) merged = deepMerge(merged, options.overrides as Record<string, unknown>);
  const result = configSchema.safeParse(merged);
  if (!result.success) {
    const issue = result.error.issues[0];
    const where = issue.path.join('.') || '(top level)';
    throw new KithError(
      'ERR_CONFIG_INVALID',
      `invalid configuration: ${where}: ${issue.message}`,
      'fix the value in the config file, the KITH_* environment variable or the command-line flag',
    );
  }
  const config = result.data;
  config.dataDir = resolve(config.dataDir);
  return deepFreeze(config);
}

/** The passphrase for services: from the configured environment variable or file, if any. */
export function passphraseFromEnvironment(
  config: Config,
  env: Record<string, string | undefined> = process.env,
): string | undefined {
  const fromEnv = env[config.passphrase.env];
  if (fromEnv) return fromEnv;
  if (config.passphrase.file) {
    try {
      return readFileSync(config.passphrase.file, 'utf8').split(/\r?\n/)[0];
    } catch (err) {
      throw new KithError(
        'ERR_PASSPHRASE_FILE',
        `cannot read the passphrase file ${config.passphrase.file}: ${(err as Error).message}`,
        'check passphrase.file in the configuration',
      );
    }
  }
  return undefined;
}

function readConfigFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new KithError(
      'ERR_CONFIG_FILE',
      `cannot read the config file ${file}: ${(err as Error).message}`,
      'check the path given with --config or KITH_CONFIG',
    );
  }
  try {
    const parsed: unknown = parseYaml(text) ?? {};
    if (typeof parsed !== 'object' || Array.isArray(parsed))
      throw new Error('the top level must be a mapping');
    return parsed as Record<string, unknown>;
  } catch (err) {
    // The yaml library's message spans several lines (a code excerpt); one line is file:line:col.
    const at = (err as { linePos?: { line: number; col: number }[] }).linePos?.[0];
    const what = (err as Error).message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '');
    throw new KithError(
      'ERR_CONFIG_FILE',
      `the config file is not valid YAML/JSON: ${file}${at ? `:${at.line}:${at.col}` : ''}: ${what}`,
      'fix the syntax at the position shown',
    );
  }
}

/**
 * Maps KITH_SMTP_MAX_MESSAGE_BYTES to smtp.maxMessageBytes by matching the underscore-separated
 * words against the (camelCase) keys of the defaults. Values are JSON when they parse as JSON
 * (numbers, booleans, arrays), strings otherwise.
 */
export function overridesFromEnv(
  env: Record<string, string | undefined>,
  shape: Record<string, unknown>,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, raw] of Object.entries(env)) {
    if (!name.startsWith('KITH_') || raw === undefined || NON_CONFIG_VARIABLES.has(name)) continue;
    const path = pathFor(name.slice(5).split('_'), shape);
    if (!path) {
      throw new KithError(
        'ERR_CONFIG_INVALID',
        `unknown configuration variable ${name}`,
        'see docs/operations.md for the KITH_* variables, or unset it',
      );
    }
    let target = out;
    for (const key of path.slice(0, -1)) target = (target[key] ??= {}) as Record<string, unknown>;
    target[path[path.length - 1]] = parseEnvValue(raw);
  }
  return out;
}

function pathFor(words: string[], shape: Record<string, unknown>): string[] | undefined {
  for (let take = words.length; take >= 1; take--) {
    const joined = words.slice(0, take).join('');
    const key = Object.keys(shape).find((k) => k.toUpperCase() === joined);
    if (!key) continue;
    if (take === words.length) return [key];
    const child = shape[key];
    if (child && typeof child === 'object' && !Array.isArray(child)) {
      const rest = pathFor(words.slice(take), child as Record<string, unknown>);
      if (rest) return [key, ...rest];
    }
  }
  // Optional keys absent from the defaults (redis.url, tls.cert, passphrase.file).
  const optional: Record<string, string[]> = {
    REDIS_URL: ['redis', 'url'],
    TLS_CERT: ['tls', 'cert'],
    TLS_KEY: ['tls', 'key'],
    PASSPHRASE_FILE: ['passphrase', 'file'],
    PUBLIC_HOST: ['publicHost'],
  };
  return optional[words.join('_')];
}

function parseEnvValue(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
}

/**
 * One `KEY=VALUE` setting from a command line (`kith demo --set spam.forwardFloorPerHour=100000`)
 * as an override: the dotted key names the configuration path, the value is JSON when it parses
 * (numbers, true/false, arrays) and a string otherwise. loadConfig validates the result.
 */
export function settingOverride(text: string): Record<string, unknown> {
  const eq = text.indexOf('=');
  const path = eq > 0 ? text.slice(0, eq).split('.') : [];
  if (path.length === 0 || path.some((key) => key === '')) {
    throw new KithError(
      'ERR_CONFIG_INVALID',
      `not a setting: ${JSON.stringify(text)}`,
      'write it as KEY=VALUE with a dotted key, e.g. delivery.stallTimeoutMs=3000',
    );
  }
  const out: Record<string, unknown> = {};
  let target = out;
  for (const key of path.slice(0, -1)) target = target[key] = {} as Record<string, unknown>;
  target[path[path.length - 1]] = parseEnvValue(text.slice(eq + 1));
  return out;
}

/** Objects merged key by key, `over` winning; arrays and values replaced whole. */
export function deepMerge(
  base: Record<string, unknown>,
  over: Record<string, unknown>,
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(over)) {
    const current = out[key];
    out[key] =
      value && typeof value === 'object' && !Array.isArray(value) && current && typeof current === 'object'
        ? deepMerge(current as Record<string, unknown>, value as Record<string, unknown>)
        : value;
  }
  return out;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}
