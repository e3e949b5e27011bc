import { readFileSync } from 'node:fs';
import { describe, expect, it } from '@jest/globals';
import { parse } from 'yaml';

const root = new URL('../../', import.meta.url);

describe('docker packaging', () => {
  it('docker-compose.yml names kith and redis, durable volumes, and binds mail ports to loopback', () => {
    const compose = parse(readFileSync(new URL('docker-compose.yml', root), 'utf8')) as {
      services: Record<
        string,
        { ports?: string[]; volumes?: string[]; command?: string[]; environment?: Record<string, string> }
      >;
      volumes: Record<string, unknown>;
    };
    expect(Object.keys(compose.services).sort()).toEqual(['kith', 'redis']);
    expect(Object.keys(compose.volumes).sort()).toEqual(['kith-data', 'redis-data']);
    const kith = compose.services.kith;
    expect(kith.volumes).toContain('kith-data:/data');
    expect(kith.environment?.KITH_REDIS_URL).toBe('redis://redis:6379/0');
    const ports = kith.ports ?? [];
    const p2p = ports.filter((p) => p.endsWith(':4410'));
    expect(p2p).toEqual(['4410:4410']);
    for (const port of ports.filter((p) => !p.endsWith(':4410'))) expect(port).toMatch(/^127\.0\.0\.1:/);
    expect(ports.map((p) => p.split(':').pop())).toEqual(['4410', '2587', '2143', '2080']);
    expect(compose.services.redis.volumes).toContain('redis-data:/data');
    expect(compose.services.redis.command).toEqual(expect.arrayContaining(['--appendonly', 'yes']));
  });

  it('the Dockerfile is multi-stage and runs as a non-root user', () => {
    const dockerfile = readFileSync(new URL('Dockerfile', root), 'utf8');
    expect(dockerfile.match(/^FROM /gm)?.length).toBeGreaterThanOrEqual(2);
    expect(dockerfile).toMatch(/^USER kith$/m);
    expect(dockerfile).toMatch(/npm ci --omit=dev/);
  });

  it('the README tells to chown the passphrase secret to the uid the image runs as', () => {
    const dockerfile = readFileSync(new URL('Dockerfile', root), 'utf8');
    const uid = /useradd [^\n]*--uid (\d+)/.exec(dockerfile)![1];
    const readme = readFileSync(new URL('README.md', root), 'utf8');
    expect(readme).toContain(`sudo chown ${uid} secrets/kith-passphrase`);
  });
});
