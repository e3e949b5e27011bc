import { describe, expect, test } from '@jest/globals';
import { autoconfigXml, createAutoconfigServer, mailSettingsText } from '../../gateway/autoconfig.ts';

const settings = {
  email: 'alice@example.org',
  imap: { host: '127.0.0.1', port: 1143 },
  smtp: { host: '127.0.0.1', port: 1587 },
};

describe('Thunderbird autoconfig', () => {
  test('serves config-v1.1.xml on both well-known paths', async () => {
    const server = createAutoconfigServer({ ...settings, host: '127.0.0.1', port: 0 });
    const { port } = await server.start();
    try {
      for (const path of [
        '/.well-known/autoconfig/mail/config-v1.1.xml',
        '/mail/config-v1.1.xml?emailaddress=alice%40example.org',
      ]) {
        const res = await fetch(`http://127.0.0.1:${port}${path}`);
        expect(res.status).toBe(200);
        expect(res.headers.get('content-type')).toMatch(/xml/);
        const xml = await res.text();
        expect(xml).toContain('<incomingServer type="imap">');
        expect(xml).toMatch(/<hostname>127\.0\.0\.1<\/hostname>\s*<port>1143<\/port>\s*<socketType>STARTTLS/);
        expect(xml).toMatch(
          /<outgoingServer type="smtp">\s*<hostname>127\.0\.0\.1<\/hostname>\s*<port>1587<\/port>/,
        );
        expect(xml).toContain('<username>alice@example.org</username>');
      }
      expect((await fetch(`http://127.0.0.1:${port}/other`)).status).toBe(404);
    } finally {
      await server.stop();
    }
  });

  test('escapes what it embeds and prints manual settings', () => {
    expect(autoconfigXml({ ...settings, email: 'a<b>@x' })).toContain('a&lt;b&gt;@x');
    const text = mailSettingsText({
      ...settings,
      autoconfigUrl: 'http://127.0.0.1:8080/.well-known/autoconfig/mail/config-v1.1.xml',
    });
    expect(text).toContain('127.0.0.1  port 1143  STARTTLS');
    expect(text).toContain('127.0.0.1  port 1587  STARTTLS');
    expect(text).toContain('http://127.0.0.1:8080/.well-known/autoconfig/mail/config-v1.1.xml');
  });
});
