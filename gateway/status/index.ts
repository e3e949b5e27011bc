export { createGatewaySink, type GatewaySinkOptions, type MailDrop } from './sink.ts';
export { composeReport, humanText, type ComposerOptions, type ReportInput } from './compose.ts';
export { shouldReport, statusCode, whatToReturn, type ReportKind } from './decide.ts';
