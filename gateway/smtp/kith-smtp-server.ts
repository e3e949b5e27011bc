import type net from 'node:net';
import type tls from 'node:tls';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import { SMTPConnection, type SMTPConnectionOptions } from 'smtp-server/lib/smtp-connection.js';

/** An enhanced status code (RFC 3463) at the start of a reply text, e.g. "5.7.1 ...". */
const LEADING_ENHANCED_CODE = /^[245]\.\d{1,3}\.\d{1,3} /;

/**
 * smtp-server with two changes, both confined to the connections this server creates:
 *
 * - No 100 ms pause before the greeting. smtp-server waits to catch clients that talk
 *   before the greeting (a spam-bot tell on the open Internet); a submission server on
 *   loopback, used by the user's own mail client, gains nothing from it and a client that
 *   opens one connection per message loses 100 ms each time (NOTES.md).
 * - Application errors choose their own enhanced status code. smtp-server derives it from
 *   the basic code alone (553 -> 5.1.3), but a refused sender is a policy matter (5.7.1) and
 *   an unknown recipient is not a syntax error. A reply text that starts with "X.Y.Z " is sent
 *   as is; every other reply keeps smtp-server's mapping.
 * - AUTH is advertised only where it may be used: after STARTTLS (or on implicit TLS), unless
 *   allowInsecureAuth. smtp-server lists it before TLS too and then refuses it with 538, which
 *   invites clients to send the password in the clear first. Only the EHLO reply is filtered:
 *   disabling the command instead would also lift smtp-server's "log in before MAIL" rule.
 */
export class KithSmtpServer extends SMTPServer {
  constructor(options: SMTPServerOptions) {
    super(options);
  }

  override connect(socket: net.Socket | tls.TLSSocket, socketOptions?: SMTPConnectionOptions | null): void {
    const connection = new SMTPConnection(this, socket, socketOptions);
    const send = connection.send.bind(connection);
    connection.send = (code, data, context) => {
      if (Array.isArray(data) && code === 250 && !connection.secure && !this.options.allowInsecureAuth) {
        return send(
          code,
          data.filter((line, i) => i === 0 || !/^AUTH\b/i.test(line)),
          context,
        );
      }
      if (typeof data === 'string' && LEADING_ENHANCED_CODE.test(data)) return send(code, data, false);
      return send(code, data, context);
    };
    this.connections.add(connection);
    connection.on('error', (err: Error) => this._onError(err));
    connection.on('connect', (data) => this._onClientConnect(data));
    // SMTPConnection.init() minus its greeting timer (and minus maxClients, which we do not set).
    connection._setListeners(() => connection.connectionReady());
  }
}
