import { afterAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import { parseMailFileHeader, stubWithLink } from '../../gateway/streams/mail-file.ts';
import { chooseLinked, linkLargestAttachment } from '../../gateway/streams/split.ts';
import { tempDir } from '../helpers/tmp.ts';

const dir = tempDir('kith-split-');
afterAll(() => dir.remove());

/** A message as nodemailer (Thunderbird-like MIME) writes it. */
async function compose(attachments: { filename: string; content: Buffer }[]): Promise<Buffer> {
  const t = nodemailer.createTransport({ streamTransport: true, buffer: true, newline: 'windows' });
  const info = await t.sendMail({
    from: 'a@example.org',
    to: 'b@example.org',
    subject: 's',
    text: 'body',
    attachments,
  });
  return info.message as Buffer;
}

describe('linking the largest attachment of a submitted mail', () => {
  it('chooses the largest base64 attachment above the limit, or none', () => {
    const p = (encodedBytes: number, base64 = true, attachment = true) => ({
      encodedBytes,
      base64,
      attachment,
    });
    expect(chooseLinked([p(100), p(4000), p(2000)], 1000)).toBe(1);
    expect(chooseLinked([p(100), p(1000)], 1000)).toBe(-1); // 750 decoded bytes
    expect(chooseLinked([p(4000, false), p(4000, true, false)], 1000)).toBe(-1);
  });

  it('keeps the rest of the mail byte for byte, decodes the file exactly, names it as clients do', async () => {
    const big = randomBytes(300_001); // not a multiple of 3: padding at the end
    const small = randomBytes(1000);
    const raw = await compose([
      { filename: 'small.bin', content: small },
      { filename: 'vidéo clip.webm', content: big },
    ]);
    const rawPath = join(dir.path, 'm.eml');
    await writeFile(rawPath, raw);
    const linked = (await linkLargestAttachment(rawPath, raw.length, {
      above: 10_000,
      dir: dir.path,
      key: 'k',
    }))!;
    expect(linked.name).toBe('vidéo clip.webm');
    expect(linked.fileSize).toBe(big.length);
    const payload = await readFile(linked.path);
    expect(payload.length).toBe(linked.size);
    const { header, offset } = parseMailFileHeader(payload)!;
    expect(header).toEqual({ name: 'vidéo clip.webm', size: big.length, mail: header.mail });
    const stub = payload.subarray(offset, offset + header.mail);
    expect(payload.subarray(offset + header.mail).equals(big)).toBe(true);
    // The small attachment and the text are still there; the big part is empty with the marker.
    expect(stub.toString()).toContain(small.toString('base64').slice(0, 60));
    expect(stub.length).toBeLessThan(10_000);
    const filled = stubWithLink(stub, { url: 'http://127.0.0.1:1/t/x/v' }).toString();
    expect(filled).toContain('X-Mozilla-Cloud-Part: cloudFile; url=http://127.0.0.1:1/t/x/v');
    expect(filled).not.toContain('X-Kith-Linked-File');
    const parsed = await (await import('mailparser')).simpleParser(filled);
    expect(parsed.text?.trim()).toBe('body');
    expect(parsed.attachments.map((x) => [x.filename, x.size])).toEqual([
      ['small.bin', small.length],
      ['vidéo clip.webm', 0],
    ]);
  });

  it('leaves a mail without a large attachment alone', async () => {
    const raw = await compose([{ filename: 'small.bin', content: randomBytes(5000) }]);
    const rawPath = join(dir.path, 'n.eml');
    await writeFile(rawPath, raw);
    expect(
      await linkLargestAttachment(rawPath, raw.length, { above: 10_000, dir: dir.path, key: 'n' }),
    ).toBeUndefined();
  });
});
