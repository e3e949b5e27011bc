import type { GatewaySettings } from '../gateway/index.ts';

/** The mail account settings, as `kith start`, `kith mail-settings` and `kith demo` print them. */
export function settingsText(name: string, fingerprint: string, s: GatewaySettings): string {
  return [
    `${name} <${s.email}>`,
    `  fingerprint   ${fingerprint}`,
    `  IMAP          ${s.imap.host} port ${s.imap.port}, STARTTLS, normal password`,
    `  SMTP          ${s.smtp.host} port ${s.smtp.port}, ${s.smtp.tls === 'tls' ? 'SSL/TLS' : 'STARTTLS'}, normal password`,
    `  user          ${s.user}`,
    `  password      ${s.pass}`,
    `  autoconfig    ${s.autoconfig}`,
    '  Thunderbird:  Account Settings > Account Actions > Add Mail Account; enter the address and',
    '                password above, choose "Configure manually" if it does not find the settings,',
    '                and accept the self-signed certificate for localhost once when asked.',
  ].join('\n');
}
