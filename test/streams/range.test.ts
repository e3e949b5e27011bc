import { describe, expect, it } from '@jest/globals';
import { mediaTypeOf, safeMediaType } from '../../agent/streams/media-type.ts';
import { linkMail } from '../../gateway/streams/link-mail.ts';
import { answerAsStream, decideRange } from '../../gateway/streams/range.ts';
import { tokenOf } from '../../gateway/streams/server.ts';

describe('Range decisions (RFC 9110 14.1.2)', () => {
  it('serves single ranges against the full length', () => {
    expect(decideRange('bytes=0-99', 1000)).toEqual({ kind: 'partial', start: 0, end: 99 });
    expect(decideRange('bytes=900-', 1000)).toEqual({ kind: 'partial', start: 900, end: 999 });
    expect(decideRange('bytes=-100', 1000)).toEqual({ kind: 'partial', start: 900, end: 999 });
    expect(decideRange('bytes=-5000', 1000)).toEqual({ kind: 'partial', start: 0, end: 999 });
    expect(decideRange('bytes=500-5000', 1000)).toEqual({ kind: 'partial', start: 500, end: 999 });
  });
  it('refuses ranges past the end and ignores what it does not understand', () => {
    expect(decideRange('bytes=1000-', 1000)).toEqual({ kind: 'unsatisfiable' });
    expect(decideRange('bytes=-0', 1000)).toEqual({ kind: 'unsatisfiable' });
    expect(decideRange('bytes=0-1,5-9', 1000)).toEqual({ kind: 'full' });
    expect(decideRange('items=0-1', 1000)).toEqual({ kind: 'full' });
    expect(decideRange('bytes=9-3', 1000)).toEqual({ kind: 'full' });
    expect(decideRange(undefined, 1000)).toEqual({ kind: 'full' });
  });
  it('plays an open-ended live stream from the start', () => {
    expect(decideRange('bytes=100-', undefined)).toEqual({ kind: 'full' });
  });
  it("opens an MP4 still arriving as a stream, and only a player's opening request", () => {
    const opening = decideRange('bytes=0-', 1000);
    expect(answerAsStream('video/mp4', true, opening, 1000)).toBe(true);
    expect(answerAsStream('audio/mp4', true, { kind: 'full' }, 1000)).toBe(true);
    expect(answerAsStream('video/quicktime', true, opening, 1000)).toBe(true);
    // saved whole, or not MP4: an ordinary seekable file
    expect(answerAsStream('video/mp4', false, opening, 1000)).toBe(false);
    expect(answerAsStream('video/webm', true, opening, 1000)).toBe(false);
    expect(answerAsStream('video/mp4s', true, opening, 1000)).toBe(false);
    // a range the client chose is answered as asked
    expect(answerAsStream('video/mp4', true, decideRange('bytes=0-99', 1000), 1000)).toBe(false);
    expect(answerAsStream('video/mp4', true, decideRange('bytes=500-', 1000), 1000)).toBe(false);
  });
});

describe('links', () => {
  it('takes the token from /t/<token>/<name> only', () => {
    const token = 'A'.repeat(32);
    expect(tokenOf(`/t/${token}/movie.webm`)).toBe(token);
    expect(tokenOf(`/t/${token}`)).toBe(token);
    expect(tokenOf(`/t/${token}/a/b`)).toBeUndefined();
    expect(tokenOf('/t/short/x')).toBeUndefined();
    expect(tokenOf('/etc/passwd')).toBeUndefined();
  });
  it('types media by name and never lets a sender declare a page', () => {
    expect(mediaTypeOf('a.WEBM')).toBe('video/webm');
    expect(mediaTypeOf('a.mp4')).toBe('video/mp4');
    expect(mediaTypeOf('page.html')).toBe('application/octet-stream');
    expect(safeMediaType('text/html', 'live.webm')).toBe('video/webm');
    expect(safeMediaType('audio/ogg', 'live')).toBe('audio/ogg');
  });
  it('writes the FileLink form Thunderbird shows as a linked attachment', () => {
    const raw = linkMail({
      from: { email: 'alice@example.org', name: 'Alice' },
      to: 'bob@example.org',
      name: 'talk "final".webm',
      type: 'video/webm',
      size: 3 * 1024 * 1024,
      url: 'http://127.0.0.1:2081/t/TOKEN/talk.webm',
      messageId: '0123456789abcdef0123456789abcdef.link@kith',
      live: false,
    }).toString();
    expect(raw).toContain('X-Mozilla-Cloud-Part: cloudFile; url=http://127.0.0.1:2081/t/TOKEN/talk.webm');
    expect(raw).toContain('<div id="cloudAttachmentListRoot"');
    expect(raw).toContain('<ul id="cloudAttachmentList"');
    expect(raw).toContain('class="cloudfile-name" href="http://127.0.0.1:2081/t/TOKEN/talk.webm"');
    expect(raw).toContain('Content-Disposition: attachment; filename="talk \\"final\\".webm"');
    expect(raw).toContain('3.0 MB');
    expect(raw).toContain('talk &quot;final&quot;.webm');
  });
});
