import { join } from 'node:path';
import type { Command } from 'commander';
import { callNode } from '../agent/control/client.ts';
import { configFrom } from './context.ts';

/** Calls a method of the node running on this data directory. */
export function nodeCall<T>(
  command: Command,
  method: string,
  params: Record<string, unknown> = {},
  onUpdate?: (value: unknown) => void,
): Promise<T> {
  const config = configFrom(command);
  return callNode<T>(join(config.dataDir, 'control.sock'), method, params, onUpdate);
}
