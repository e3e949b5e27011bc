/** Wire version of every Kith protocol-core frame (docs/protocol.md, "Frames"). */
export const WIRE_VERSION = 1;

/** Second byte of every frame. */
export const FrameType = {
  onion: 1,
  report: 2,
  complaint: 3,
  discoverRequest: 4,
  discoverResponse: 5,
} as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

/** Counts one event by name (metrics); the protocol core reports every rejection through it. */
export type Count = (name: string, by?: number) => void;
