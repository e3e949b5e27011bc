import { migrate, type Db } from '../../store/db.ts';

// The trust module's own tables (store/db.ts: each module owns its numbered migrations).
const MIGRATIONS = [
  `CREATE TABLE trust_entity (
     fingerprint TEXT PRIMARY KEY,
     public_key TEXT,                 -- armored; NULL while trusted by fingerprint and not yet fetched
     name TEXT NOT NULL DEFAULT '',
     email TEXT NOT NULL DEFAULT '',
     trusted INTEGER NOT NULL DEFAULT 0,   -- a neighbour we link with and forward for
     contact INTEGER NOT NULL DEFAULT 0,   -- key <-> address binding verified
     source TEXT NOT NULL,                 -- invitation | fingerprint | wrote-first | self
     added_at INTEGER NOT NULL,
     revoked_at INTEGER);
   CREATE TABLE trust_agent (
     peer_id TEXT PRIMARY KEY,
     entity TEXT NOT NULL REFERENCES trust_entity(fingerprint) ON DELETE CASCADE,
     onion_key TEXT NOT NULL,
     not_before INTEGER NOT NULL,
     not_after INTEGER NOT NULL,
     cert_canonical TEXT NOT NULL,
     cert_signature TEXT NOT NULL,
     added_at INTEGER NOT NULL);
   CREATE INDEX trust_agent_entity ON trust_agent(entity);
   CREATE TABLE trust_agent_revocation (
     peer_id TEXT PRIMARY KEY,
     entity TEXT NOT NULL,
     revoked_at INTEGER NOT NULL,
     canonical TEXT,                  -- the entity-signed statement, when there is one (travels on)
     signature TEXT);
   CREATE TABLE trust_invitation (
     secret_hash TEXT PRIMARY KEY,    -- sha256 of the secret: a leaked database redeems nothing
     created_at INTEGER NOT NULL,
     expires_at INTEGER NOT NULL,
     redeemed_at INTEGER,
     redeemed_by TEXT);
   CREATE TABLE trust_address_hint (
     entity TEXT NOT NULL,
     address TEXT NOT NULL,
     added_at INTEGER NOT NULL,
     PRIMARY KEY (entity, address));`,
];

export function migrateTrust(db: Db): void {
  migrate(db, 'trust', MIGRATIONS);
}
