// The SMTP submission server itself (smtp-server with Kith's handlers, real SQLite and blob
// store from test/smtp/harness.ts) driven over TCP with random sessions: command lines, known
// and mutated, with and without a logged-in session, and random DATA. Each input is one
// connection that, after the greeting, ends with "." and QUIT, so the server's close marks the end of its answer.
// A hang is a connection the server does not close after QUIT; a crash is an uncaught
// exception or a 451 4.3.0, the reply for an error no handler mapped (gateway/smtp/replies.ts).
import net from 'node:net';
import fc from 'fast-check';
import { ALICE, aliceMessage, startHarness, type Harness } from '../../smtp/harness.ts';
import { bytesInput, HANG, textInput, type Target } from '../harness.ts';

const PLAIN = Buffer.from(`\0${ALICE.user}\0${ALICE.password}`).toString('base64');
const COMMANDS = [
  'EHLO fuzz.test',
  'HELO fuzz.test',
  'MAIL FROM:<alice@example.org>',
  'MAIL FROM:<alice@example.org> SIZE=100 BODY=8BITMIME RET=HDRS ENVID=QQ+2Bx',
  'MAIL FROM:<>',
  'MAIL FROM:<mallory@evil.example>',
  'RCPT TO:<bob@example.org>',
  'RCPT TO:<bob@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@example.org',
  'RCPT TO:<sam@example.com>',
  'RCPT TO:<nobody@nowhere.example>',
  'RCPT TO:<B0B0B0B0B0B0B0B0B0B0B0B0B0B0B0B0B0B0B0B0@kith>',
  'RSET',
  'NOOP',
  'VRFY bob',
  'HELP',
  'STARTTLS',
  `AUTH PLAIN ${PLAIN}`,
  'AUTH PLAIN',
  'AUTH LOGIN',
  'AUTH LOGIN YWxpY2U=',
  'AUTH CRAM-MD5',
  'DATA',
  'BDAT 3 LAST',
  'XCLIENT ADDR=192.0.2.1',
  'QUIT',
];
const MESSAGES = [
  aliceMessage(),
  aliceMessage({
    extraHeaders: ['Sender: alice@home.example', 'X-A: =?utf-8?b?w6k=?='],
    body: '..leading dot\r\n',
  }),
].map((m) => Buffer.from(m, 'latin1'));

interface Session {
  login: boolean;
  lines: string[];
  data?: Buffer;
}

function sessionBytes(s: Session): Buffer {
  const parts: Buffer[] = [];
  const line = (text: string): void => void parts.push(Buffer.from(`${text}\r\n`, 'latin1'));
  if (s.login) {
    line('EHLO fuzz.test');
    line(`AUTH PLAIN ${PLAIN}`);
  }
  for (const l of s.lines) line(l);
  if (s.data) {
    line('MAIL FROM:<alice@example.org>');
    line('RCPT TO:<bob@example.org>');
    line('DATA');
    parts.push(s.data, Buffer.from('\r\n.\r\n'));
  }
  // Whatever state the session is in (DATA, an AUTH continuation), this ends it.
  parts.push(Buffer.from('\r\n.\r\nQUIT\r\n'));
  return Buffer.concat(parts);
}

/** One connection: the session's bytes in, everything the server answered until it closed. */
function converse(port: number, bytes: Buffer, boundMs: number): Promise<string | typeof HANG> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const received: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(HANG);
    }, boundMs);
    // After the greeting: smtp-server answers a client that talks first with 421 and hangs up.
    socket.once('data', () => socket.write(bytes));
    socket.on('data', (chunk) => {
      received.push(chunk);
      // A second 220 is STARTTLS's go-ahead: the server now waits for a TLS handshake and (rightly)
      // ignores the plaintext pipelined after it, so a client hangs up here.
      if (/\r\n220 /.test(Buffer.concat(received).toString('latin1'))) socket.destroy();
    });
    socket.on('error', () => undefined);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(received).toString('latin1'));
    });
  });
}

export interface SmtpServerTarget {
  target: Target<Session>;
  /** Sessions whose DATA the server accepted ("250 ... queued as"): the fuzz reached delivery. */
  accepted(): number;
  stop(): Promise<void>;
}

export async function smtpServerTarget(): Promise<SmtpServerTarget> {
  let accepted = 0;
  let harness: Harness | undefined = await startHarness({ allowInsecureAuth: true, authDelayMs: 0 });
  const port = harness.port;
  const input: fc.Arbitrary<Session> = fc.record(
    {
      login: fc.boolean(),
      lines: fc.array(
        fc.oneof(
          { weight: 2, arbitrary: fc.constantFrom(...COMMANDS) },
          { weight: 1, arbitrary: textInput(COMMANDS, 120) },
        ),
        {
          maxLength: 8,
        },
      ),
      data: bytesInput(MESSAGES, 4096),
    },
    { requiredKeys: ['login', 'lines'] },
  );
  return {
    target: {
      name: 'smtp-server',
      input,
      async run(session) {
        const answer = await converse(port, sessionBytes(session), 4_000);
        if (answer === HANG) return HANG;
        const unmapped = answer.split('\r\n').find((l) => l.startsWith('451 4.3.0'));
        if (unmapped) throw new Error(`the server answered an unmapped error: ${unmapped}`);
        if (/^250 .*queued as/m.test(answer)) accepted++;
        return answer;
      },
    },
    accepted: () => accepted,
    async stop() {
      await harness?.stop();
      harness = undefined;
    },
  };
}
