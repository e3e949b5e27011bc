import { randomBytes } from 'node:crypto';
import { rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { KithError } from '../../common/errors.ts';
import { asMessageId, type AgentId, type Fingerprint, type MessageId } from '../../common/ids.ts';
import { filePayloadInPlace, writeFilePayload } from '../files.ts';
import { buildAgentBundle, certifyNewAgent } from '../identity/bundle.ts';
import { requireEntityKey, type Identity } from '../identity/identity.ts';
import type { LinkManager } from '../links/links.ts';
import type { AgentDeliveryService } from '../outbound.ts';
import { INLINE_MAX } from '../payload/chunks.ts';
import type { InPlaceFile } from '../payload/source.ts';
import type { Outbox } from '../queue/outbox.ts';
import type { SpamRevocationView } from '../spam/control.ts';
import { revokeAgentCertificate } from '../trust/revocation.ts';
import type { ControlServer } from './server.ts';

/** What the control methods reach into; the node passes its parts. */
export interface ControlDeps {
  identity: Identity;
  links: LinkManager;
  outbox: Outbox;
  delivery: AgentDeliveryService;
  /** Directory for payload files of `kith send` (kept until delivery ends). */
  outgoingDir: string;
  /** Facts for `kith mail-settings` / `kith status`. */
  settings: () => Record<string, unknown>;
  /** Stops the whole node (the demo stops one agent this way). */
  stop: () => void;
  /** Revocations for spam concerning an entity (agent/spam), shown by `contacts` and `trust`. */
  spamRevocations?: (entity: Fingerprint) => SpamRevocationView[];
  /** Spam control's invitation quota for `kith invite` (agent/spam/limits.ts): a refusal, or none. */
  invitationQuota?: () => { code: string; reason: string } | undefined;
}

/** Registers the methods the CLI calls on a running node (docs/protocol.md, "Control channel"). */
export function registerControlMethods(server: ControlServer, deps: ControlDeps): void {
  const { links } = deps;
  server.register('status', async () => ({
    fingerprint: deps.identity.fingerprint,
    email: deps.identity.email,
    agentId: deps.identity.agentId,
    addresses: links.multiaddrs().map((a) => a.toString()),
    ...deps.settings(),
  }));
  server.register('invite', async (p) => {
    const refusal = deps.invitationQuota?.();
    if (refusal) {
      throw new KithError(
        'ERR_INVITATION_QUOTA',
        `no more invitations for now: ${refusal.reason}`,
        'an invitation that expires unused does not count; ask someone you invited to invite the next person',
      );
    }
    return { code: links.createInvitation({ ttlMs: Number(p.ttlMinutes ?? 60 * 24) * 60_000 }) };
  });
  server.register('accept', async (p) => publicEntity(await links.acceptInvitation(String(p.code ?? ''))));
  server.register('trust', async (p) => {
    const result = await links.trust(String(p.fingerprint ?? ''), {
      addresses: (p.addresses as string[]) ?? [],
    });
    // Trusting again an entity this agent revoked for spam reinstates it: say what is being undone.
    const spam = deps.spamRevocations?.(result.entity.fingerprint).filter((r) => r.byUs) ?? [];
    return {
      ...publicEntity(result.entity),
      linked: result.linked,
      unreachable: result.unreachable,
      reinstatedFromSpam: spam.at(-1),
    };
  });
  server.register('revoke', async (p) => publicEntity(links.revoke(String(p.fingerprint ?? ''))));
  server.register('contacts', async () =>
    links.contacts().map((c) => ({ ...c, spam: deps.spamRevocations?.(c.fingerprint) ?? [] })),
  );
  server.register('agent.add', async (p) =>
    addAgent(deps, {
      ...(typeof p.passphrase === 'string' ? { passphrase: p.passphrase } : {}),
      withEntityKey: p.withEntityKey === true,
    }),
  );
  server.register('agent.list', async () => listAgents(deps));
  server.register('agent.revoke', async (p) => revokeAgent(deps, String(p.agent ?? '')));
  server.register('send', async (p) => send(deps, p));
  server.register('track', async (p, update) =>
    track(deps, asMessageId(String(p.id ?? '')), update, p.follow !== false),
  );
  server.register('outbox', async (p) =>
    deps.outbox.recent(Number(p.limit ?? 20)).map((e) => ({ ...e, ...deps.outbox.progressOf(e.id) })),
  );
  server.register('stop', async () => {
    setImmediate(deps.stop);
    return { stopping: true };
  });
}

/** One agent of this node's entity as `kith agent list` shows it. */
interface AgentView {
  agentId: AgentId;
  self: boolean;
  linked: boolean;
  revoked: boolean;
  notAfter: string;
}

/** `kith agent add`: certifies a new agent of our entity and packs it for its own data directory. */
async function addAgent(
  deps: ControlDeps,
  options: { passphrase?: string; withEntityKey?: boolean },
): Promise<{ agentId: AgentId; notAfter: string; bundle: string }> {
  const { identity, links } = deps;
  const trust = links.trustStore;
  const agent = await certifyNewAgent(identity);
  const contacts = links
    .contacts()
    .filter((c) => !c.revoked && (c.trusted || c.contact))
    .flatMap((c) => {
      const publicKey = trust.entity(c.fingerprint)?.publicKey;
      if (publicKey === undefined) return [];
      return [
        {
          publicKey,
          source: c.source,
          trusted: c.trusted,
          contact: c.contact,
          certificates: trust.certifiedAgents(c.fingerprint).map((a) => a.certificate),
          addresses: [...new Set([...c.agents.flatMap((a) => a.addresses), ...c.addressHints])],
        },
      ];
    });
  const bundle = await buildAgentBundle(
    identity,
    agent,
    {
      siblings: trust.certifiedAgents(identity.fingerprint).map((a) => a.certificate),
      siblingAddresses: links.multiaddrs().map((a) => a.toString()),
      revocations: trust.heldRevocations(),
      contacts,
    },
    options,
  );
  // Stored here too: the agent-added change pushes our hello, so every neighbour learns the new
  // certificate before the new agent ever dials it.
  await trust.addAgentCertificate(agent.certificate);
  return {
    agentId: agent.certificate.body.agent,
    notAfter: agent.certificate.body.notAfter,
    bundle: JSON.stringify(bundle),
  };
}

function listAgents(deps: ControlDeps): AgentView[] {
  const { identity, links } = deps;
  return links.trustStore.agentsOf(identity.fingerprint).map((a) => ({
    agentId: a.agentId,
    self: a.agentId === identity.agentId,
    linked: links.isLinked(a.agentId),
    revoked: a.revoked,
    notAfter: new Date(a.notAfter).toISOString(),
  }));
}

/** `kith agent revoke PEER_ID`: signs the revocation with the entity key; it spreads by hello. */
async function revokeAgent(deps: ControlDeps, agentText: string): Promise<AgentView> {
  const { identity, links } = deps;
  const trust = links.trustStore;
  const agent = agentText as AgentId;
  if (agent === identity.agentId) {
    throw new KithError(
      'ERR_REVOKE_SELF',
      'this is the agent you are talking to',
      'revoke it from another agent of your entity',
    );
  }
  if (trust.entityOfAgent(agent) !== identity.fingerprint) {
    throw new KithError(
      'ERR_UNKNOWN_AGENT',
      `${agentText} is not a known agent of this entity`,
      'see `kith agent list`',
    );
  }
  await trust.addAgentRevocation(
    await revokeAgentCertificate(requireEntityKey(identity, 'revoke an agent'), agent),
  );
  return listAgents(deps).find((a) => a.agentId === agent)!;
}

function publicEntity(e: {
  fingerprint: Fingerprint;
  name: string;
  email: string;
  trusted: boolean;
  contact: boolean;
}) {
  return { fingerprint: e.fingerprint, name: e.name, email: e.email, trusted: e.trusted, contact: e.contact };
}

async function send(
  deps: ControlDeps,
  p: Record<string, unknown>,
): Promise<{ id: MessageId; to: Fingerprint }> {
  const to = String(p.to ?? '');
  const resolved = await deps.delivery.resolveRecipient(to.includes('@') ? to : `${to}@kith`);
  if (!resolved.ok) throw new KithError('ERR_RECIPIENT_REFUSED', `${to}: ${resolved.message}`);
  const id = asMessageId(randomBytes(16).toString('hex'));
  const path = join(deps.outgoingDir, id);
  let size: number;
  let inPlace: InPlaceFile | undefined;
  if (typeof p.file === 'string') {
    // A small file travels inline (read once into the manifest): a copy costs nothing. A larger
    // one is read where it lies, so its first chunks leave before its end was read.
    const { size: bytes } = await stat(p.file).catch(() => ({ size: 0 }));
    if (bytes > INLINE_MAX) ({ source: inPlace, size } = await filePayloadInPlace(p.file, path));
    else size = await writeFilePayload(p.file, path);
  } else if (typeof p.text === 'string') {
    const { writeFile } = await import('node:fs/promises');
    const raw = textMessage(
      deps.identity,
      resolved.email ?? `${resolved.fingerprint.toLowerCase()}@kith`,
      p.text,
      id,
    );
    await writeFile(path, raw, { mode: 0o600 });
    size = raw.length;
  } else {
    throw new KithError('ERR_NOTHING_TO_SEND', 'nothing to send', 'give --text or --file');
  }
  try {
    await deps.delivery.submit({
      id,
      from: deps.identity.fingerprint,
      to: resolved.fingerprint,
      rawPath: inPlace?.path ?? path,
      size,
      ...(inPlace ? { source: inPlace } : {}),
    });
  } catch (err) {
    await rm(path, { force: true });
    throw err;
  }
  return { id, to: resolved.fingerprint };
}

/** A minimal RFC 5322 message for `kith send --text` (IM-like: no subject line of its own). */
export function textMessage(identity: Identity, to: string, text: string, id: MessageId): Buffer {
  const firstLine = text.split(/\r?\n/)[0].slice(0, 60);
  const subject = /^[\x20-\x7e]*$/.test(firstLine)
    ? firstLine
    : `=?UTF-8?B?${Buffer.from(firstLine).toString('base64')}?=`;
  const lines = [
    `From: ${identity.name.replace(/[^\x20-\x7e]|["\\]/g, '')} <${identity.email}>`,
    `To: <${to}>`,
    `Subject: ${subject}`,
    `Date: ${new Date().toUTCString().replace('GMT', '+0000')}`,
    `Message-ID: <${id}@kith>`,
    `X-Kith-Message-Id: ${id}`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
    '',
    text.replace(/\r?\n/g, '\r\n'),
    '',
  ];
  return Buffer.from(lines.join('\r\n'), 'utf8');
}

/** Progress of one outbound message; with follow, updates until it is delivered or failed. */
async function track(
  deps: ControlDeps,
  id: MessageId,
  update: (value: unknown) => void,
  follow: boolean,
): Promise<unknown> {
  const entry = deps.outbox.get(id);
  if (!entry)
    throw new KithError(
      'ERR_UNKNOWN_MESSAGE',
      `no outbound message ${id}`,
      'check the id `kith send` printed',
    );
  const snapshot = () => {
    const progress = deps.outbox.progressOf(id);
    // Why it failed, for a message no status email reports (`kith send` is not an SMTP submission).
    const reason = progress.state === 'failed' ? deps.outbox.get(id)?.lastError : undefined;
    return { id, to: entry.recipient, size: entry.size, ...progress, ...(reason ? { reason } : {}) };
  };
  const finished = () => ['delivered', 'failed'].includes(deps.outbox.progressOf(id).state);
  if (!follow || finished()) return snapshot();
  update(snapshot());
  await new Promise<void>((resolve) => {
    const unsubscribe = deps.outbox.onChange((changed) => {
      if (changed !== id) return;
      update(snapshot());
      if (finished()) {
        unsubscribe();
        resolve();
      }
    });
  });
  return snapshot();
}
