import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { identify, identifyPush } from '@libp2p/identify';
import type {
  ConnectionGater,
  PrivateKey,
  Stream,
  StreamHandler,
  StreamHandlerOptions,
} from '@libp2p/interface';
import { ping } from '@libp2p/ping';
import { tcp } from '@libp2p/tcp';
import { createLibp2p, type Libp2p, type Libp2pOptions } from 'libp2p';
import { KithError } from '../../common/errors.ts';

/** Largest yamux receive window per stream (the default grows to 16 MiB). */
const STREAM_WINDOW_BYTES = 1024 * 1024;

/** The libp2p services every Kith agent runs. */
export type KithServices = {
  identify: ReturnType<ReturnType<typeof identify>>;
  identifyPush: ReturnType<ReturnType<typeof identifyPush>>;
  ping: ReturnType<ReturnType<typeof ping>>;
};

export type KithLibp2p = Libp2p<KithServices>;

/** What the node factory needs; everything else is fixed by the design (TCP, Noise, yamux). */
export interface NodeOptions {
  /** The agent's certified Ed25519 key: its peer id is what certificates name. */
  privateKey: PrivateKey;
  listen: string[];
  /** Replaces the announced addresses (a public IP, a /dns4 name); empty = the listening ones. */
  announce: string[];
  gater: ConnectionGater;
  /** Upper bound on open connections (links plus provisional ones). */
  maxConnections: number;
  /** Parts the NAT layer adds (agent/nat/): relay, WebRTC, UPnP, the relayed address. */
  extras?: NodeExtras;
}

/** Optional additions to the node; each list is appended to the fixed parts. */
export interface NodeExtras {
  /** Extra transports after TCP (circuit relay, WebRTC). */
  transports?: NonNullable<Libp2pOptions['transports']>;
  /** Extra services next to identify and ping (relay server, UPnP), by name. */
  services?: Record<string, (components: never) => unknown>;
  /** Extra listen addresses (`/p2p-circuit`, `/webrtc`). */
  listen?: string[];
  /** Added to the announced addresses instead of replacing them. */
  appendAnnounce?: string[];
  /** How long one address dial may take (WebRTC over a relay needs more than the default). */
  addressDialTimeout?: number;
}

/** Builds (does not start) the libp2p node of one agent. */
export async function createNode(options: NodeOptions): Promise<KithLibp2p> {
  const node = await createLibp2p({
    start: false,
    privateKey: options.privateKey,
    addresses: {
      listen: [...options.listen, ...(options.extras?.listen ?? [])],
      announce: options.announce,
      appendAnnounce: options.extras?.appendAnnounce,
    },
    transports: [tcp(), ...(options.extras?.transports ?? [])],
    connectionEncrypters: [noise()],
    // A paused stream still receives up to one window; keep that below libp2p's 4 MiB read
    // buffer limit (which resets the stream) and memory per link small.
    streamMuxers: [yamux({ streamOptions: { maxStreamWindowSize: STREAM_WINDOW_BYTES } })],
    connectionGater: options.gater,
    connectionManager: {
      maxConnections: options.maxConnections,
      addressDialTimeout: options.extras?.addressDialTimeout,
    },
    services: {
      ...(options.extras?.services as Record<string, never>),
      identify: identify(),
      identifyPush: identifyPush(),
      ping: ping(),
    },
  });
  // libp2p reports a taken port as a multi-line message with stacks; the user needs one line.
  const start = node.start.bind(node);
  node.start = async () => {
    try {
      await start();
    } catch (err) {
      throw portInUse(err) ?? err;
    }
  };
  return node;
}

/** libp2p's "failed to be listened on" error for EADDRINUSE, as one line naming the key to change. */
export function portInUse(err: unknown): KithError | undefined {
  const message = err instanceof Error ? err.message : String(err);
  const taken = /EADDRINUSE: address already in use (\S+):(\d+)/.exec(message);
  if (!taken) return undefined;
  const [, host, port] = taken;
  return new KithError(
    'ERR_PORT_IN_USE',
    `p2p port ${port} on ${host} is already in use`,
    `stop what uses it, or set p2p.listen (KITH_P2P_LISTEN) to another port, e.g. ["/ip4/0.0.0.0/tcp/${Number(port) + 1}"]`,
    { cause: err },
  );
}

/** Protocols registered by libp2p's own services, which provisional peers must not reach. */
export function builtInProtocols(node: KithLibp2p): string[] {
  return node.getProtocols().filter((p) => !p.startsWith('/kith/'));
}

type HandlerRecord = { handler: StreamHandler; options: StreamHandlerOptions };
type RegistrarView = {
  components: {
    registrar: { getHandler(protocol: string): HandlerRecord };
  };
};

/**
 * Puts `allow` in front of every inbound stream, whatever protocol it is for and whenever its
 * handler was registered: libp2p looks each inbound stream's handler up with
 * registrar.getHandler, so wrapping that lookup is one check no handler can forget. Streams we
 * open ourselves only read the options and are not affected.
 */
export function guardInboundStreams(
  node: KithLibp2p,
  allow: (peer: string, protocol: string) => boolean | Promise<boolean>,
): void {
  const registrar = (node as unknown as RegistrarView).components.registrar;
  const lookup = registrar.getHandler.bind(registrar);
  registrar.getHandler = (protocol: string): HandlerRecord => {
    const found = lookup(protocol);
    const refuse = (stream: Stream): void => stream.abort(new Error('this peer may not open ' + protocol));
    return {
      options: found.options,
      handler: (stream, connection) => {
        const verdict = allow(connection.remotePeer.toString(), protocol);
        if (verdict === true) return found.handler(stream, connection);
        if (verdict === false) return refuse(stream);
        // Undecided for now (agent/links/provisional-peers.ts, mayOpen): what the peer sends meanwhile is
        // buffered by the stream until the handler reads it.
        return verdict.then(
          (ok) => (ok ? found.handler(stream, connection) : refuse(stream)),
          () => refuse(stream),
        );
      },
    };
  };
}

/**
 * Re-registers libp2p's built-in handlers (identify, ping) behind `allow`. The services take no
 * per-peer policy, and libp2p's own middleware hook is unusable in 3.3 (its registrar appends the
 * handler to the shared middleware array on every stream), so we wrap the handler itself.
 */
export async function guardBuiltIns(node: KithLibp2p, allow: (peer: string) => boolean): Promise<void> {
  const registrar = (node as unknown as RegistrarView).components.registrar;
  for (const protocol of builtInProtocols(node)) {
    const { handler, options } = registrar.getHandler(protocol);
    await node.handle(
      protocol,
      (stream, connection) => {
        if (!allow(connection.remotePeer.toString())) {
          stream.abort(new Error('not a trusted peer'));
          return;
        }
        return handler(stream, connection);
      },
      { ...options, force: true },
    );
  }
}
