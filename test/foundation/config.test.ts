import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { loadConfig, settingOverride } from '../../config/load.ts';
import { KithError } from '../../common/errors.ts';
import { tempDir } from '../helpers/tmp.ts';

function configError(fn: () => unknown): KithError {
  try {
    fn();
  } catch (err) {
    if (err instanceof KithError) return err;
    throw err;
  }
  throw new Error('expected a KithError');
}

describe('configuration', () => {
  it('listens on loopback by default and the environment overrides it', () => {
    const config = loadConfig({
      env: { KITH_DATA_DIR: '/tmp/kith-x', KITH_SMTP_PORT: '2600', KITH_P2P_RELAY_ENABLED: 'true' },
    });
    expect(config.smtp.host).toBe('127.0.0.1');
    expect(config.imap.host).toBe('127.0.0.1');
    expect(config.http.host).toBe('127.0.0.1');
    expect(config.smtp.port).toBe(2600);
    expect(config.p2p.relay.enabled).toBe(true);
    expect(config.dataDir).toBe('/tmp/kith-x');
    expect(Object.isFrozen(config.smtp)).toBe(true);
  });

  it('reads the config file in the data directory; env beats file, flags beat env', () => {
    const dir = tempDir();
    try {
      writeFileSync(
        join(dir.path, 'config.yaml'),
        'imap:\n  port: 3143\nsmtp:\n  port: 3587\nlogLevel: debug\n',
      );
      const config = loadConfig({
        env: { KITH_DATA_DIR: dir.path, KITH_SMTP_PORT: '4587' },
        overrides: { logLevel: 'warn' },
      });
      expect(config.imap.port).toBe(3143);
      expect(config.smtp.port).toBe(4587);
      expect(config.logLevel).toBe('warn');
    } finally {
      dir.remove();
    }
  });

  it('maps optional keys such as KITH_REDIS_URL', () => {
    const config = loadConfig({ env: { KITH_REDIS_URL: 'redis://127.0.0.1:6390/2' } });
    expect(config.redis.url).toBe('redis://127.0.0.1:6390/2');
  });

  it('KITH_IMAP_MAX_CONNECTIONS bounds the IMAP sessions (256 by default)', () => {
    expect(loadConfig({ env: {} }).imap.maxConnections).toBe(256);
    expect(loadConfig({ env: { KITH_IMAP_MAX_CONNECTIONS: '8' } }).imap.maxConnections).toBe(8);
  });

  it('KITH_PUBLIC_HOST sets the host mail clients are told (absent by default)', () => {
    expect(loadConfig({ env: {} }).publicHost).toBeUndefined();
    expect(loadConfig({ env: { KITH_PUBLIC_HOST: 'mail.example.org' } }).publicHost).toBe('mail.example.org');
  });

  it('names the key and the problem for a bad value', () => {
    const err = configError(() => loadConfig({ env: { KITH_SMTP_PORT: '70000' } }));
    expect(err.code).toBe('ERR_CONFIG_INVALID');
    expect(err.message).toContain('smtp.port');
  });

  it('refuses an unknown KITH_ variable rather than ignoring a typo', () => {
    const err = configError(() => loadConfig({ env: { KITH_SMPT_PORT: '25' } }));
    expect(err.code).toBe('ERR_CONFIG_INVALID');
    expect(err.message).toContain('KITH_SMPT_PORT');
  });

  it('refuses unknown keys and broken syntax in the file', () => {
    const dir = tempDir();
    try {
      const file = join(dir.path, 'bad.yaml');
      writeFileSync(file, 'smtp:\n  prot: 25\n');
      expect(configError(() => loadConfig({ file, env: {} })).code).toBe('ERR_CONFIG_INVALID');
      writeFileSync(file, 'smtp: [unclosed\n');
      expect(configError(() => loadConfig({ file, env: {} })).code).toBe('ERR_CONFIG_FILE');
      // One line: file:line:col and the parser's message, no code excerpt.
      writeFileSync(file, 'smtp:\n  port: 25\nimap: [\n');
      const syntax = configError(() => loadConfig({ file, env: {} }));
      expect(syntax.message).not.toContain('\n');
      expect(syntax.message).toMatch(new RegExp(`${file.replace(/[.]/g, '\\.')}:4:1: Flow sequence`));
      expect(configError(() => loadConfig({ file: join(dir.path, 'missing.yaml'), env: {} })).code).toBe(
        'ERR_CONFIG_FILE',
      );
    } finally {
      dir.remove();
    }
  });

  it('a KEY=VALUE setting (kith demo --set) becomes an override: JSON values typed, others strings, bad keys named', () => {
    expect(settingOverride('spam.forwardFloorPerHour=100000')).toEqual({
      spam: { forwardFloorPerHour: 100000 },
    });
    expect(settingOverride('logLevel=debug')).toEqual({ logLevel: 'debug' });
    expect(settingOverride('p2p.listen=["/ip4/127.0.0.1/tcp/0"]')).toEqual({
      p2p: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    });
    for (const bad of ['spam', '=3', 'spam..x=1'])
      expect(() => settingOverride(bad)).toThrow(/not a setting/);
    const config = loadConfig({ env: {}, overrides: settingOverride('spam.forwardFloorPerHour=5') as never });
    expect(config.spam.forwardFloorPerHour).toBe(5);
    expect(() =>
      loadConfig({ env: {}, overrides: settingOverride('spam.forwardFloorPerHour=lots') as never }),
    ).toThrow(/spam\.forwardFloorPerHour/);
  });
});
