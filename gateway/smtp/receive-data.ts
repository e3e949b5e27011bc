import { PassThrough, type Readable } from 'node:stream';
import { KithError } from '../../common/errors.ts';
import type { BlobStore } from '../../store/blobs.ts';
import { headerEnd, parseHeader, type ParsedHeader } from './header-section.ts';
import { headerTooLarge, type HeaderLimits } from './message-check.ts';

/** A DATA payload stored whole as a blob, with its header section parsed. */
export interface ReceivedData {
  hash: string;
  size: number;
  header: Buffer;
  parsed: ParsedHeader;
}

export interface ReceiveOptions extends HeaderLimits {
  /** Largest message in bytes (SIZE). */
  maxMessageBytes: number;
  /** Called with the header section as soon as it is complete; throw to refuse early. */
  checkHeader(header: Buffer, parsed: ParsedHeader): void;
}

/**
 * Streams the DATA payload into the blob store byte for byte (bounded memory: only the
 * header section is held), checking on the way. On the first problem the partial blob is
 * dropped, the rest of the payload is read and discarded (smtp-server answers only after
 * the end of DATA), and the promise rejects with the KithError for the reply.
 */
export async function receiveData(
  data: Readable,
  blobs: BlobStore,
  options: ReceiveOptions,
): Promise<ReceivedData> {
  const body = new PassThrough();
  let failure: unknown;
  let size = 0;
  let previous = -1;
  let headerChunks: Buffer[] | undefined = [];
  let headerBytes = 0;
  let header: Buffer | undefined;
  let parsed: ParsedHeader | undefined;

  const fail = (err: unknown) => {
    if (failure !== undefined) return;
    failure = err;
    body.destroy(err as Error);
    data.resume();
  };

  const completeHeader = (buf: Buffer) => {
    header = buf;
    headerChunks = undefined;
    parsed = parseHeader(buf);
    options.checkHeader(buf, parsed);
  };

  const inspect = (chunk: Buffer) => {
    size += chunk.length;
    if (size > options.maxMessageBytes) {
      throw new KithError(
        'ERR_SMTP_TOO_LARGE',
        `the message is larger than the limit of ${options.maxMessageBytes} bytes`,
        'send large files in several messages, or ask the administrator to raise smtp.maxMessageBytes',
      );
    }
    for (let i = chunk.indexOf(0x0a); i !== -1; i = chunk.indexOf(0x0a, i + 1)) {
      const before = i > 0 ? chunk[i - 1] : previous;
      if (before !== 0x0d) {
        throw new KithError(
          'ERR_SMTP_BARE_LF',
          'the message contains a line ending in a bare LF',
          'lines must end with CRLF (RFC 5321); the message was not accepted',
        );
      }
    }
    previous = chunk[chunk.length - 1];
    if (headerChunks) {
      headerChunks.push(chunk);
      headerBytes += chunk.length;
      const joined = Buffer.concat(headerChunks);
      const end = headerEnd(joined);
      if (end !== -1) completeHeader(joined.subarray(0, end));
      // No end yet and already past the limit: refuse now rather than hold more in memory.
      // A header section that ends within this chunk is measured exactly by checkHeader.
      else if (headerBytes > options.maxHeaderBytes) throw headerTooLarge(options.maxHeaderBytes);
      else headerChunks = [joined];
    }
  };

  data.on('data', (chunk: Buffer) => {
    if (failure !== undefined) return;
    try {
      inspect(chunk);
    } catch (err) {
      fail(err);
      return;
    }
    if (!body.write(chunk) && !body.destroyed) {
      data.pause();
      body.once('drain', () => data.resume());
    }
  });
  data.on('end', () => {
    if (failure !== undefined) return;
    try {
      // A message with no empty line is all header (RFC 5322 allows an absent body).
      if (headerChunks) completeHeader(Buffer.concat(headerChunks));
    } catch (err) {
      fail(err);
      return;
    }
    body.end();
  });
  data.on('error', (err) => fail(err));

  try {
    const { hash, size: stored } = await blobs.putStream(body);
    if (failure !== undefined) throw failure;
    return { hash, size: stored, header: header!, parsed: parsed! };
  } catch (err) {
    // The blob could not be written (a full disk: ENOSPC): the rest of the payload must still be
    // read, or a chunk that finds `body` destroyed pauses `data` for good and the client never
    // gets its 452 (smtp-server answers only after the end of DATA; a CI run beside a hog hung so).
    fail(err);
    throw failure;
  }
}
