/** Small control messages (hello, invitation) never need more. */
export const CONTROL_MAX_BYTES = 256 * 1024;
/** How long a dial, or opening a hello or invitation stream, may take. */
export const EXCHANGE_TIMEOUT_MS = 15_000;
