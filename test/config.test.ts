import { loadConfig } from '../config/load.ts';
import { describe, expect, it } from '@jest/globals';

describe('configuration', () => {
  it('uses defaults on loopback and the environment overrides them', () => {
    const config = loadConfig({
      env: { KITH_DATA_DIR: '/tmp/kith-x', KITH_SMTP_PORT: '2600', KITH_P2P_RELAY_ENABLED: 'true' },
    });
    expect(config.smtp.host).toBe('127.0.0.1');
    expect(config.imap.host).toBe('127.0.0.1');
    expect(config.smtp.port).toBe(2600);
    expect(config.p2p.relay.enabled).toBe(true);
    expect(config.dataDir).toBe('/tmp/kith-x');
    expect(Object.isFrozen(config.smtp)).toBe(true);
  });
});
