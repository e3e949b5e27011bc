/** Wire version of every Kith protocol-core frame (docs/protocol.md, "Frames"). */
export const WIRE_VERSION = 1;

/** Second byte of every frame. */
export const FrameType = {
  onion: 1,
  report: 2,
  complaint: 3,
  discoverRequest: 4,
  discoverResponse: 5,
  /** Signed complaint or withdrawal (agent/spam, docs/protocol.md 15). */
  signedComplaint: 6,
  /** A hop cut off the source of a complaint (agent/spam). */
  cut: 7,
  /** A revocation for spam with its evidence (agent/spam). */
  spamRevocation: 8,
} as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

/** Counts one event by name (metrics); the protocol core reports every rejection through it. */
export type Count = (name: string, by?: number) => void;
