// The IMAP server itself (test/imap/harness.ts: real store on SQLite, real TCP) driven over one
// logged-in connection with fast-check commands: well-formed commands of every kind, mutated, and
// commands built from the arguments clients send. After each input a sentinel NOOP must be
// answered (a hang otherwise); a NO [SERVERBUG] (a handler threw something unplanned, see
// gateway/imap/errors.ts) or an uncaught exception is a crash. test/imap/fuzz.test.ts drives the
// connection in process with its own generator; this one goes through the socket and the server.
import net from 'node:net';
import fc from 'fast-check';
import { PASS, USER, sampleMessage, startHarness, type Harness } from '../../imap/harness.ts';
import { HANG, textInput, type Target } from '../harness.ts';

const TEMPLATES = [
  'FETCH 1:4 (FLAGS UID ENVELOPE)',
  'UID FETCH 10:* (BODY.PEEK[HEADER.FIELDS (Subject From)] BODYSTRUCTURE MODSEQ)',
  'FETCH 2 BODY[1]',
  'FETCH 1:3 (BODY[TEXT]<0.10> RFC822.SIZE INTERNALDATE BODY)',
  'FETCH *:5 (UID FLAGS) (CHANGEDSINCE 3)',
  'STORE 1:2 +FLAGS (\\Seen $Junk)',
  'UID STORE 3 (UNCHANGEDSINCE 100) -FLAGS.SILENT (\\Seen)',
  'SEARCH OR SEEN SUBJECT message',
  'UID SEARCH RETURN (MIN MAX COUNT) ALL',
  'SEARCH CHARSET UTF-8 NOT DELETED SINCE 1-Jan-2020 LARGER 10',
  'COPY 1 Junk',
  'UID MOVE 5 Junk',
  'STATUS INBOX (MESSAGES UIDNEXT UNSEEN HIGHESTMODSEQ)',
  'LIST "" *',
  'LIST (SPECIAL-USE) "" "*" RETURN (STATUS (MESSAGES))',
  'APPEND INBOX (\\Draft) "02-Mar-2026 10:00:00 +0000" {20+}\r\nSubject: x\r\n\r\nbody\r\n',
  'CREATE fuzz/b',
  'RENAME fuzz/b fuzz/c',
  'DELETE fuzz/c',
  'EXAMINE INBOX',
  'SELECT INBOX (CONDSTORE)',
  'ENABLE CONDSTORE UTF8=ACCEPT',
  'NAMESPACE',
  'ID ("name" "fuzz")',
  'CAPABILITY',
  'CHECK',
  'IDLE',
  'AUTHENTICATE PLAIN',
  'UNSELECT',
  'CLOSE',
];

/** Literals shrunk to what the padding after the input covers; LOGOUT would end the session. */
function sane(command: string): string {
  return command
    .replace(/\{(\d+)(\+?)\}/g, (_m, n: string, plus: string) => `{${Number(n) % 48}${plus}}`)
    .replace(/LOGOUT/gi, 'NOOP')
    .replace(/EXPUNGE/gi, 'NOOP');
}

interface Connection {
  socket: net.Socket;
  buffer: string;
  closed: boolean;
  wake?: () => void;
}

export interface ImapServerTarget {
  target: Target<string[]>;
  /** FETCH responses seen: the fuzz reached the selected state, not only BAD answers. */
  fetches(): number;
  stop(): Promise<void>;
}

export async function imapServerTarget(): Promise<ImapServerTarget> {
  let harness: Harness | undefined = await startHarness({ auth: { delayPerFailureMs: 0, maxDelayMs: 0 } });
  for (let i = 0; i < 12; i++) await harness.store.deliver({ raw: sampleMessage(i) });
  const port = harness.port;
  let conn: Connection | undefined;
  let n = 0;
  let fetches = 0;

  const open = async (): Promise<Connection> => {
    const socket = net.connect(port, '127.0.0.1');
    const c: Connection = { socket, buffer: '', closed: false };
    socket.on('data', (d) => {
      c.buffer += d.toString('latin1');
      c.wake?.();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      c.closed = true;
      c.wake?.();
    });
    await until(c, (t) => t.includes('\r\n'), 5000);
    socket.write(`L1 LOGIN "${USER}" "${PASS}"\r\nL2 SELECT INBOX\r\n`);
    await until(c, (t) => /\r\nL2 (OK|NO|BAD)/.test(t), 5000);
    c.buffer = '';
    return c;
  };

  /** Waits for the buffer to satisfy pred: true, or false when the connection closed or time ran out. */
  const until = (c: Connection, pred: (t: string) => boolean, ms: number): Promise<boolean | 'closed'> =>
    new Promise((resolve) => {
      const timer = setTimeout(() => {
        c.wake = undefined;
        resolve(false);
      }, ms);
      const check = (): void => {
        if (pred(c.buffer)) {
          clearTimeout(timer);
          c.wake = undefined;
          resolve(true);
        } else if (c.closed) {
          clearTimeout(timer);
          c.wake = undefined;
          resolve('closed');
        }
      };
      c.wake = check;
      check();
    });

  const command = fc.oneof(
    { weight: 2, arbitrary: fc.constantFrom(...TEMPLATES) },
    { weight: 3, arbitrary: textInput(TEMPLATES, 200) },
  );
  return {
    target: {
      name: 'imap-server',
      input: fc.array(command, { minLength: 1, maxLength: 3 }),
      async run(commands) {
        conn ??= await open();
        const c = conn;
        const tag = `Z${++n}`;
        const lines = commands.map((cmd, i) => `F${n}x${i} ${sane(cmd)}\r\n`).join('');
        // After the input: a line end, padding for an open literal, DONE for IDLE, * for an
        // AUTHENTICATE continuation; then the sentinel.
        c.socket.write(
          Buffer.from(`${lines}\r\n${' '.repeat(48)}\r\nDONE\r\n*\r\n${tag} NOOP\r\n`, 'latin1'),
        );
        const answered = await until(
          c,
          (t) => new RegExp(`\\r\\n${tag} (OK|NO|BAD)|^${tag} (OK|NO|BAD)`).test(t),
          4000,
        );
        const text = c.buffer;
        c.buffer = '';
        fetches += (text.match(/^\* \d+ FETCH \(/gm) ?? []).length;
        if (text.includes('[SERVERBUG]')) {
          const line = text.split('\r\n').find((l) => l.includes('[SERVERBUG]'));
          throw new Error(`the server answered ${line} to ${JSON.stringify(lines).slice(0, 300)}`);
        }
        if (answered === 'closed') {
          // The server may hang up (too many bad commands, a BYE): a new session next time.
          conn = undefined;
          return text;
        }
        if (!answered) {
          c.socket.destroy();
          conn = undefined;
          return HANG;
        }
        return text;
      },
    },
    fetches: () => fetches,
    async stop() {
      conn?.socket.destroy();
      await harness?.close();
      harness = undefined;
    },
  };
}
