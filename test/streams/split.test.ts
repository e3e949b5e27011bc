import { afterAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import {
  encodeMailFileHeader,
  mailFileRanges,
  parseMailFileHeader,
  stubWithLink,
  stubWithLinks,
} from '../../gateway/streams/mail-file.ts';
import { chooseLinked, linkAttachments } from '../../gateway/streams/split.ts';
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

describe('linking the large attachments of a submitted mail', () => {
  it('chooses every base64 attachment above the limit, in mail order, or none', () => {
    const p = (encodedBytes: number, base64 = true, attachment = true) => ({
      encodedBytes,
      base64,
      attachment,
    });
    expect(chooseLinked([p(100), p(4000), p(2000)], 1000)).toEqual([1, 2]);
    expect(chooseLinked([p(100), p(1000)], 1000)).toEqual([]); // 750 decoded bytes
    expect(chooseLinked([p(4000, false), p(4000, true, false)], 1000)).toEqual([]);
    // At most `max`: the largest ones, still in mail order.
    expect(chooseLinked([p(3000), p(9000), p(2000), p(5000)], 1000, 2)).toEqual([1, 3]);
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
    const linked = (await linkAttachments(rawPath, raw.length, {
      above: 10_000,
      dir: dir.path,
      key: 'k',
    }))!;
    expect(linked.name).toBe('vidéo clip.webm');
    expect(linked.fileSize).toBe(big.length);
    const payload = await readFile(linked.path);
    expect(payload.length).toBe(linked.size);
    const { header, offset } = parseMailFileHeader(payload)!;
    expect(header).toEqual({
      name: 'vidéo clip.webm',
      size: big.length,
      mail: header.mail,
      files: [{ name: 'vidéo clip.webm', size: big.length }],
    });
    // One file: the version-1 header line (no "files"), as recipients before r29 read it.
    expect(payload.subarray(0, offset).toString()).toMatch(/^KITH-MAIL-FILE\/1 \{[^}]*\} *\n$/);
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
      await linkAttachments(rawPath, raw.length, { above: 10_000, dir: dir.path, key: 'n' }),
    ).toBeUndefined();
  });

  it('links every large attachment, nested multiparts too, and leaves the small ones in the mail', async () => {
    const a = randomBytes(40_000);
    const b = randomBytes(25_001);
    const small = randomBytes(3000);
    // multipart/mixed [ alternative [text, related [html, inline image b]], small, a ]
    const t = nodemailer.createTransport({ streamTransport: true, buffer: true, newline: 'windows' });
    const raw = (
      await t.sendMail({
        from: 'a@example.org',
        to: 'b@example.org',
        subject: 's',
        text: 'body',
        html: '<p>body <img src="cid:pic@x"></p>',
        attachments: [
          { filename: 'pic.png', content: b, cid: 'pic@x' },
          { filename: 'small.bin', content: small },
          { filename: 'a.bin', content: a },
        ],
      })
    ).message as Buffer;
    expect(raw.toString()).toMatch(/multipart\/related/);
    const rawPath = join(dir.path, 'nested.eml');
    await writeFile(rawPath, raw);
    const linked = (await linkAttachments(rawPath, raw.length, { above: 10_000, dir: dir.path, key: 'q' }))!;
    expect(linked.files).toEqual([
      { name: 'pic.png', size: b.length },
      { name: 'a.bin', size: a.length },
    ]);
    const payload = await readFile(linked.path);
    const parsed = parseMailFileHeader(payload)!;
    expect(parsed.header.files).toEqual(linked.files);
    const [pa, pb] = mailFileRanges(parsed, payload.length);
    expect(payload.subarray(pa.offset, pa.offset + pa.size).equals(b)).toBe(true);
    expect(payload.subarray(pb.offset, pb.offset + pb.size).equals(a)).toBe(true);
    expect(pb.offset + pb.size).toBe(payload.length);
    const stub = payload.subarray(parsed.offset, parsed.offset + parsed.header.mail);
    expect(stub.toString()).toContain('X-Kith-Linked-File: 1\r\n');
    expect(stub.toString()).toContain('X-Kith-Linked-File: 2\r\n');
    const filled = stubWithLinks(stub, [{ url: 'http://127.0.0.1:1/t/one/pic.png' }, { saved: '/r/a.bin' }]);
    expect(filled.toString()).not.toContain('X-Kith-Linked-File');
    const mail = await (await import('mailparser')).simpleParser(filled);
    expect(mail.text?.trim()).toBe('body');
    expect(mail.attachments.map((x) => [x.filename, x.size])).toEqual([
      ['pic.png', 0],
      ['small.bin', small.length],
      ['a.bin', 0],
    ]);
    const head = (name: string) => mail.attachments.find((x) => x.filename === name)!.headers;
    expect(String(head('pic.png').get('x-mozilla-cloud-part'))).toContain(
      'url=http://127.0.0.1:1/t/one/pic.png',
    );
    expect(String(head('a.bin').get('x-kith-saved-file'))).toBe('/r/a.bin');
  });

  it('reads a header that names several files and refuses one that contradicts itself', () => {
    const line = encodeMailFileHeader({
      name: 'x',
      size: 3,
      mail: 10,
      files: [
        { name: 'x', size: 3 },
        { name: 'dir/../y', size: 5 },
      ],
    });
    const parsed = parseMailFileHeader(Buffer.concat([line, Buffer.alloc(18)]))!;
    expect(parsed.header.files).toEqual([
      { name: 'x', size: 3 },
      { name: 'y', size: 5 },
    ]);
    // A payload shorter than the header says: the last file is cut at its end, never read past it.
    expect(mailFileRanges(parsed, parsed.offset + 10 + 3 + 2).map((f) => f.size)).toEqual([3, 2]);
    expect(line.toString()).toMatch(/^KITH-MAIL-FILE\/2 /);
    const refused = (text: string) => parseMailFileHeader(Buffer.from(`${text}\n`));
    const twoFiles = '"files":[{"name":"x","size":3}]';
    expect(refused(`KITH-MAIL-FILE/2 {"name":"x","size":4,"mail":1,${twoFiles}}`)).toBeUndefined();
    expect(refused('KITH-MAIL-FILE/2 {"name":"x","size":4,"mail":1,"files":{}}')).toBeUndefined();
    // Several files only in version 2, and version 2 always names them.
    expect(refused(`KITH-MAIL-FILE/1 {"name":"x","size":3,"mail":1,${twoFiles}}`)).toBeUndefined();
    expect(refused('KITH-MAIL-FILE/2 {"name":"x","size":3,"mail":1}')).toBeUndefined();
    expect(refused(`KITH-MAIL-FILE/2 {"name":"x","size":3,"mail":1,${twoFiles}}`)).toBeDefined();
  });
});
