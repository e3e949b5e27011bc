// IMAP modified UTF-7 (RFC 3501 5.1.3) for mailbox names of clients that did not ENABLE UTF8=ACCEPT.

/** Decodes a modified UTF-7 mailbox name; invalid input is returned unchanged. */
export function decodeMailboxName(name: string): string {
  return name.replace(/&([^-]*)-/g, (whole, b64: string) => {
    if (b64 === '') return '&';
    try {
      const bytes = Buffer.from(b64.replace(/,/g, '/'), 'base64');
      if (bytes.length % 2) return whole;
      let out = '';
      for (let i = 0; i < bytes.length; i += 2) out += String.fromCharCode(bytes.readUInt16BE(i));
      return out;
    } catch {
      return whole;
    }
  });
}

/** Encodes a mailbox name to modified UTF-7. */
export function encodeMailboxName(name: string): string {
  let out = '';
  let run = '';
  const flush = (): void => {
    if (!run) return;
    const bytes = Buffer.alloc(run.length * 2);
    for (let i = 0; i < run.length; i++) bytes.writeUInt16BE(run.charCodeAt(i), i * 2);
    out += '&' + bytes.toString('base64').replace(/=+$/, '').replace(/\//g, ',') + '-';
    run = '';
  };
  for (const ch of name) {
    const code = ch.charCodeAt(0);
    if (code >= 0x20 && code <= 0x7e) {
      flush();
      out += ch === '&' ? '&-' : ch;
    } else run += ch;
  }
  flush();
  return out;
}
