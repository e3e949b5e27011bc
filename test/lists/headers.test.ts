import { describe, expect, it } from '@jest/globals';
import { simpleParser } from 'mailparser';
import { hasOwnLoopMark, listHeaderFields, listId, rewritePost } from '../../agent/lists/headers.ts';
import { moderationVerdict } from '../../agent/lists/notices.ts';

const post = Buffer.from(
  [
    'Received: from laptop.home (192.0.2.7) by mx.example.org',
    'Return-Path: <alice@example.org>',
    'X-Originating-IP: 192.0.2.7',
    'X-Kith-Sender: forged',
    'Authentication-Results: kith; kith=pass',
    'From: Alice Example <alice@example.org>',
    'To: dev@lists.example.org',
    'Bcc: secret@example.org',
    'Subject: threading test',
    'Message-ID: <p1@example.org>',
    'In-Reply-To: <p0@example.org>',
    'References: <p0@example.org>',
    'List-Id: other list <other.example.net>',
    'X-Loop: other@example.net',
    'Content-Type: text/plain; charset=utf-8',
    '',
    'Body line one.',
    'Received: this is body text and stays',
    '',
  ].join('\r\n'),
);
const list = { name: 'dev', email: 'dev@lists.example.org' };

describe('rewritePost', () => {
  it('strips routing, Kith fields, Bcc and foreign list fields; adds RFC 2919/2369 fields; keeps threading and body bytes', async () => {
    const out = rewritePost(post, list, { name: 'Alice', email: 'alice@example.org' });
    const text = out.toString();
    const header = text.slice(0, text.indexOf('\r\n\r\n'));
    expect(header).not.toMatch(
      /Received|Return-Path|192\.0\.2\.7|X-Kith|Authentication-Results|Bcc|secret@|other\.example\.net/,
    );
    expect(header).toMatch(/^List-Id: "dev" <dev\.lists\.example\.org>$/m);
    expect(header).toMatch(/^List-Post: <mailto:dev@lists\.example\.org>$/m);
    expect(header).toMatch(/^List-Unsubscribe: <mailto:dev@lists\.example\.org\?subject=unsubscribe>$/m);
    expect(header).not.toMatch(/^List-Archive/m);
    expect(header).toMatch(/^From: "Alice Example via dev" <dev@lists\.example\.org>$/m);
    expect(header).toMatch(/^X-Original-From: Alice Example <alice@example\.org>$/m);
    expect(text.endsWith('\r\n\r\nBody line one.\r\nReceived: this is body text and stays\r\n')).toBe(true);
    const parsed = await simpleParser(out);
    expect(parsed.messageId).toBe('<p1@example.org>');
    expect(parsed.inReplyTo).toBe('<p0@example.org>');
    expect(parsed.references).toBe('<p0@example.org>');
    expect(parsed.from?.value[0].address).toBe('dev@lists.example.org');
    expect(parsed.headers.get('list')).toMatchObject({
      unsubscribe: { mail: 'dev@lists.example.org?subject=unsubscribe' },
    });
    expect(hasOwnLoopMark(out, list.email)).toBe(true);
    expect(hasOwnLoopMark(post, list.email)).toBe(false);
  });

  it('List-Archive only when the list has an archive; list-id from the address', () => {
    expect(listId('Dev@Lists.Example.org')).toBe('dev.lists.example.org');
    expect(listHeaderFields({ ...list, archive: 'https://example.org/dev' })).toContain(
      'List-Archive: <https://example.org/dev>',
    );
  });

  it('a message without a body or From still becomes a well-formed copy', async () => {
    const out = rewritePost(Buffer.from('Subject: x\r\n'), list, { email: 'bob@example.org' });
    const parsed = await simpleParser(out);
    expect(parsed.subject).toBe('x');
    expect(out.toString()).toMatch(/^From: "bob@example\.org via dev" <dev@lists\.example\.org>\r$/m);
  });
});

describe('chat rooms and moderation answers', () => {
  it('a chat room threads a post that starts no thread into the room; a reply keeps its own thread', () => {
    const room = { name: 'room', email: 'room@lists.example.org', chat: true };
    const fresh = rewritePost(
      Buffer.from('From: a@example.org\r\nSubject: hi\r\n\r\nhi\r\n'),
      room,
      {},
    ).toString();
    expect(fresh).toMatch(/^References: <room\.room\.lists\.example\.org@kith>\r$/m);
    const reply = rewritePost(post, room, {}).toString();
    expect(reply).toMatch(/^References: <p0@example\.org>\r$/m);
    expect(reply).not.toContain('room.room.lists');
  });

  it('moderationVerdict reads the first unquoted line', () => {
    expect(moderationVerdict('\n> quoted approve\nApprove\n')).toEqual({ action: 'approve' });
    expect(moderationVerdict('reject: spam, obviously')).toEqual({
      action: 'reject',
      reason: 'spam, obviously',
    });
    expect(moderationVerdict('reject')).toEqual({ action: 'reject' });
    expect(moderationVerdict('> approve\nlooks fine to me')).toEqual({ action: 'unclear' });
    expect(moderationVerdict('')).toEqual({ action: 'unclear' });
  });
});
