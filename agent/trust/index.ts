import type { Logger } from '../../common/logger.ts';
import type { Db } from '../../store/db.ts';
import { TrustStore } from './store.ts';

export { TrustStore, hashSecret } from './store.ts';
export type { EntityRecord, AgentRecord, TrustChange, TrustSource } from './store.ts';
export {
  admit,
  provisionalMayOpen,
  DEFAULT_PROVISIONAL_LIMITS,
  type Admission,
  type AdmissionFacts,
  type AdmissionProtocol,
  type ProvisionalLimits,
} from './decisions.ts';
export { encodeInvitation, decodeInvitation, type InvitationCode } from './invitation-code.ts';
export { revokeAgentCertificate, verifyAgentRevocation, type AgentRevocation } from './revocation.ts';

/** Opens the trust store on the node's database (creating its tables on first use). */
export function createTrustStore(deps: { db: Db; log: Logger; clock?: () => number }): TrustStore {
  return new TrustStore(deps.db, deps.log, deps.clock);
}
