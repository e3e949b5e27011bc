export { createMailStore, type MailStoreDeps } from './store.ts';
export type * from './types.ts';
export { SPECIAL_MAILBOXES, DELIMITER, complaintAction } from './decisions.ts';
