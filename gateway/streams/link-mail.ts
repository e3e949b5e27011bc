/** What the link mail says about a transfer that is arriving. */
export interface LinkMailInput {
  /** The sender's address as the mailbox shows it, and its display name when known. */
  from: { email: string; name?: string };
  to: string;
  name: string;
  type: string;
  /** Bytes, when known (a live stream has none yet). */
  size?: number;
  url: string;
  /** RFC 5322 Message-ID without brackets. */
  messageId: string;
  live: boolean;
  date?: Date;
}

const html = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
/** A MIME parameter value: quoted, quotes and backslashes escaped, non-ASCII replaced. */
const param = (s: string) => `"${s.replace(/[^\x20-\x7e]/g, '_').replace(/(["\\])/g, '\\$1')}"`;
const ascii = (s: string) => s.replace(/[^\x20-\x7e]/g, '?');

function humanSize(n: number): string {
  const units = ['bytes', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} bytes` : `${v.toFixed(1)} ${units[i]}`;
}

/**
 * The mail a recipient gets as soon as a file or stream starts arriving: the form Thunderbird
 * gives FileLink ("cloud") attachments, so Thunderbird shows it as a linked attachment. An HTML
 * body with Thunderbird's #cloudAttachmentListRoot block (a plain-text alternative beside it),
 * and an empty attachment part carrying `X-Mozilla-Cloud-Part: cloudFile; url=…`. The URL is the
 * recipient's own gateway (loopback), which plays the content while it still arrives.
 */
export function linkMail(input: LinkMailInput): Buffer {
  const boundary = `kith-link-${input.messageId.slice(0, 16)}`;
  const alt = `${boundary}-alt`;
  const size = input.size === undefined ? 'live stream' : humanSize(input.size);
  const what = input.live ? 'is streaming' : 'is sending you';
  const sender = input.from.name ? `${input.from.name} <${input.from.email}>` : input.from.email;
  const text = [
    `${input.from.name ?? input.from.email} ${what} ${input.name} (${size}) with Kith.`,
    '',
    'It plays or downloads from your own computer while it still arrives:',
    `  ${input.url}`,
    '',
    input.live
      ? 'The link plays the stream live; it is also saved once it ends.'
      : 'Once it has arrived completely it is also saved among your received files.',
    '',
  ].join('\r\n');
  const body = [
    '<html><body>',
    `<p>${html(input.from.name ?? input.from.email)} ${what} a file with Kith.</p>`,
    '<div id="cloudAttachmentListRoot" style="padding: 15px; background-color: #d9edff;">',
    `<div id="cloudAttachmentListHeader">I have linked 1 file to this email:</div>`,
    '<ul id="cloudAttachmentList" style="background-color: #ffffff; padding: 15px;">',
    '<li class="cloudAttachmentItem" style="border: 1px solid #cdcdcd; border-radius: 5px; padding: 15px;">',
    `<a class="cloudfile-name" href="${html(input.url)}">${html(input.name)}</a>`,
    `<span class="cloudfile-size" style="margin-left: 5px; font-size: small; color: grey;">${html(size)}</span>`,
    '</li>',
    '</ul>',
    '<div id="cloudAttachmentListFooter" style="font-size: small; color: grey;">',
    'Served by your Kith gateway while it arrives.',
    '</div>',
    '</div>',
    '</body></html>',
  ].join('\r\n');
  const lines = [
    `From: ${ascii(sender)}`,
    `To: <${input.to}>`,
    `Subject: ${ascii(`${input.live ? 'Live stream' : 'File'}: ${input.name}`)}`,
    `Date: ${(input.date ?? new Date()).toUTCString().replace('GMT', '+0000')}`,
    `Message-ID: <${input.messageId}>`,
    'MIME-Version: 1.0',
    `Content-Type: multipart/mixed; boundary="${boundary}"`,
    '',
    `--${boundary}`,
    `Content-Type: multipart/alternative; boundary="${alt}"`,
    '',
    `--${alt}`,
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
    '',
    text,
    `--${alt}`,
    'Content-Type: text/html; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
    '',
    body,
    `--${alt}--`,
    '',
    `--${boundary}`,
    `Content-Type: ${input.type}; name=${param(input.name)}`,
    `Content-Disposition: attachment; filename=${param(input.name)}`,
    `X-Mozilla-Cloud-Part: cloudFile; url=${input.url}`,
    '',
    '',
    `--${boundary}--`,
    '',
  ];
  return Buffer.from(lines.join('\r\n'), 'utf8');
}
