export { createImapServer, type ImapServer, type ImapServerOptions } from './server.ts';
