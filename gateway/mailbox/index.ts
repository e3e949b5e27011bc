export { createMailStore, type MailStoreDeps } from './store.ts';
export type * from './types.ts';
export {
  SPECIAL_MAILBOXES,
  DELIMITER,
  complaintAction,
  mailboxKind,
  type ComplaintTrigger,
  type MailboxKind,
} from './decisions.ts';
