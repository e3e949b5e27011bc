export { createImapServer, type ImapServer, type ImapServerOptions, type ImapServerStats } from './server.ts';
