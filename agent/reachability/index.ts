import { Reachability, type ReachabilityOptions } from './service.ts';

export { Reachability, ADDRESS_PROTOCOL, type ReachabilityOptions } from './service.ts';
export { AddressCache, type CachedRecord } from './cache.ts';
export {
  signAddressRecord,
  verifyAddressRecord,
  type AddressRecordBody,
  type SignedAddressRecord,
} from './records.ts';

/** Builds the reachability service of one agent; start() after the link manager started. */
export function createReachability(options: ReachabilityOptions): Reachability {
  return new Reachability(options);
}
