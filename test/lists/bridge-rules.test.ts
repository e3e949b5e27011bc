import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  decideInbound,
  outboundRetryAt,
  OUTBOUND_ATTEMPTS,
  type InboundFacts,
} from '../../agent/lists/bridge/decide.ts';
import { outsideCopy } from '../../agent/lists/bridge/outgoing.ts';
import { BridgeStore, type BridgeSettings } from '../../agent/lists/bridge/store.ts';
import { SecretBox } from '../../agent/identity/secretbox.ts';
import { asMessageId } from '../../common/ids.ts';
import { openDatabase } from '../../store/db.ts';
import { tempDir } from '../helpers/tmp.ts';

const facts = (over: Partial<InboundFacts> = {}): InboundFacts => ({
  bridgeAddress: 'kith@outside.test',
  listAddress: 'dev@outside.test',
  from: ['carol@outside.test'],
  recipients: ['dev@outside.test'],
  xLoop: [],
  listFields: [],
  size: 100,
  maxBytes: 1000,
  ...over,
});

describe('what the bridge lets in from the outside list', () => {
  it('a post to the list comes in; one named only by List-Id (Mailman) too', () => {
    expect(decideInbound(facts())).toEqual({ action: 'bring-in' });
    expect(
      decideInbound(
        facts({ recipients: ['someone@else.test'], listFields: ['Dev list <dev.outside.test>'] }),
      ),
    ).toEqual({ action: 'bring-in' });
  });

  it('loops, duplicates, the list manager’s own mail and oversized posts stay out, each with its reason', () => {
    const reason = (f: Partial<InboundFacts>) => {
      const d = decideInbound(facts(f));
      return d.action === 'drop' ? d.reason : d.action;
    };
    expect(reason({ xLoop: ['KITH@outside.test'] })).toBe('loop-x-loop');
    expect(reason({ seen: 'out' })).toBe('loop-own-post');
    expect(reason({ seen: 'in' })).toBe('duplicate');
    expect(reason({ from: ['kith@outside.test'] })).toBe('loop-own-address');
    expect(reason({ recipients: ['kith@outside.test'] })).toBe('not-a-list-post');
    expect(reason({ size: 1001 })).toBe('too-large');
    // A loop is a loop even when it is also too large or not addressed to the list.
    expect(reason({ seen: 'out', size: 5000, recipients: [] })).toBe('loop-own-post');
  });

  it('a post the relay refuses for good is given up at once; otherwise it is tried again with a growing wait', () => {
    expect(outboundRetryAt(0, 550, 0)).toBeUndefined();
    expect(outboundRetryAt(0, 451, 0)).toBe(30_000);
    expect(outboundRetryAt(1, undefined, 0)).toBe(60_000);
    expect(outboundRetryAt(9, undefined, 0)).toBe(3_600_000);
    expect(outboundRetryAt(OUTBOUND_ATTEMPTS - 1, undefined, 0)).toBeUndefined();
  });
});

describe('the copy that goes out to the outside list', () => {
  const networkCopy = Buffer.from(
    [
      '"Alice via dev" <dev@lists.kith>',
      'X-Original-From: alice@home.kith',
      'List-Id: "dev" <dev.lists.kith>',
      'X-Loop: dev@lists.kith',
      'Precedence: list',
      'To: "the dev list" <dev@lists.kith>, bob@example.org',
      'Subject: hello',
      'Message-ID: <a1@client.test>',
      '',
      'body line',
      '',
    ]
      .map((l, i) => (i === 0 ? `From: ${l}` : l))
      .join('\r\n'),
  );
  const bridge = {
    name: 'dev',
    email: 'dev@lists.kith',
    listAddress: 'dev@outside.test',
    address: 'kith@outside.test',
  };

  it('comes from the subscribed address with the poster’s name only, names the outside list, keeps Message-ID and body', () => {
    const { raw, messageId } = outsideCopy(networkCopy, bridge, 'Alice', 'ff'.repeat(16));
    const text = raw.toString();
    expect(messageId).toBe('<a1@client.test>');
    expect(text).toMatch(/^From: "Alice via dev" <kith@outside\.test>\r$/m);
    expect(text).toMatch(/^To: "the dev list" <dev@outside\.test>, bob@example\.org\r$/m);
    expect(text).toMatch(/^X-Loop: kith@outside\.test\r$/m);
    expect(text).toMatch(/^List-Post: <mailto:dev@outside\.test>\r$/m);
    expect(text).not.toContain('alice@home.kith');
    expect(text).not.toMatch(/^X-Loop: dev@lists\.kith/m);
    expect(text.match(/^Message-ID:/gim)).toHaveLength(1);
    expect(text.endsWith('\r\n\r\nbody line\r\n')).toBe(true);
  });

  it('a post without Message-ID gets one made from its Kith id', () => {
    const bare = Buffer.from('From: x <dev@lists.kith>\r\nSubject: s\r\n\r\nb\r\n');
    const { raw, messageId } = outsideCopy(bare, bridge, 'X', 'ab'.repeat(16));
    expect(messageId).toBe(`<${'ab'.repeat(16)}@kith>`);
    expect(raw.toString()).toContain(`Message-ID: ${messageId}\r\n`);
  });
});

describe('the bridge’s memory (SQLite)', () => {
  it('Message-IDs, the IMAP cursor and queued posts survive closing and opening the database', () => {
    const dir = tempDir();
    try {
      const file = join(dir.path, 'kith.db');
      let db = openDatabase(file);
      let store = new BridgeStore(db, () => 1000);
      store.remember('<in@x>', 'in');
      store.enqueue(asMessageId('aa'.repeat(16)), '<out@x>', '/p.eml', 'Alice');
      store.setCursor('7', 42);
      db.close();
      db = openDatabase(file);
      store = new BridgeStore(db, () => 2000);
      expect(store.seen('<in@x>')).toBe('in');
      expect(store.seen('<out@x>')).toBe('out');
      expect(store.seen('<other@x>')).toBeUndefined();
      expect(store.cursor('7')).toBe(42);
      expect(store.cursor('8')).toBe(0); // a new UIDVALIDITY reads from the start
      expect(store.due().map((o) => o.posterName)).toEqual(['Alice']);
      store.markAttempt(asMessageId('aa'.repeat(16)), 'relay down', 5000);
      expect(store.due()).toHaveLength(0);
      expect(store.due(5000)).toHaveLength(1);
      db.close();
    } finally {
      dir.remove();
    }
  });
  it('passwords are sealed under the passphrase: none on disk, a plain one from before sealed at open, a wrong passphrase refused', () => {
    const dir = tempDir();
    try {
      const file = join(dir.path, 'kith.db');
      const settings: BridgeSettings = {
        listAddress: 'dev@outside.test',
        address: 'kith@outside.test',
        imap: { host: 'h', port: 143, tls: 'none', user: 'kith', pass: 'imap-pw-9Qx', mailbox: 'INBOX' },
        smtp: { host: 'h', port: 25, tls: 'none', user: 'kith', pass: 'smtp-pw-4Rz' },
      };
      const salt = SecretBox.newSalt();
      let db = openDatabase(file);
      new BridgeStore(db).saveSettings(settings); // as written before sealing: plain
      const raw = () => JSON.stringify(db.prepare('SELECT imap_pass, smtp_pass FROM bridge_settings').get());
      expect(raw()).toContain('imap-pw-9Qx');
      const box = SecretBox.derive('a long enough passphrase', salt);
      expect(new BridgeStore(db, Date.now, box).settings()).toEqual(settings);
      expect(raw()).not.toMatch(/imap-pw-9Qx|smtp-pw-4Rz/);
      db.close();
      expect(readFileSync(file).includes(Buffer.from('pw-'))).toBe(false);
      db = openDatabase(file);
      expect(new BridgeStore(db, Date.now, box).settings()).toEqual(settings);
      expect(() => new BridgeStore(db).settings()).toThrow(
        expect.objectContaining({ code: 'ERR_BRIDGE_SEALED' }),
      );
      const wrong = SecretBox.derive('another passphrase!', salt);
      expect(() => new BridgeStore(db, Date.now, wrong).settings()).toThrow(
        expect.objectContaining({ code: 'ERR_WRONG_PASSPHRASE' }),
      );
      db.close();
    } finally {
      dir.remove();
    }
  });
});
