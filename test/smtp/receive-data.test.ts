// receiveData when the blob store fails under it (a full disk, here a real ENOTDIR): the promise
// rejects, and the rest of the DATA payload is still read to its end, since smtp-server sends the
// reply (452) only after the end of DATA. Without that the client waited for good.
import { afterAll, describe, expect, it } from '@jest/globals';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { finished } from 'node:stream/promises';
import { DEFAULT_HEADER_LIMITS } from '../../gateway/smtp/message-check.ts';
import { receiveData } from '../../gateway/smtp/receive-data.ts';
import { BlobStore } from '../../store/blobs.ts';
import { tempDir } from '../helpers/tmp.ts';

const dir = tempDir('kith-receive-');
afterAll(() => dir.remove());

const limits = { ...DEFAULT_HEADER_LIMITS, maxMessageBytes: 10 * 1024 * 1024, checkHeader: () => undefined };

describe('receiveData when the blob cannot be written', () => {
  it('rejects, and still reads the payload to its end so the reply can be sent', async () => {
    // The blob store's tmp/ is a file: opening a blob there fails, as a full disk's write does.
    writeFileSync(join(dir.path, 'tmp'), '');
    const blobs = new BlobStore(dir.path);
    const data = new PassThrough({ highWaterMark: 1024 });
    const received = receiveData(data, blobs, limits);
    const failed = received.then(
      () => undefined,
      (err: Error) => err,
    );
    data.write(Buffer.from('Subject: big\r\n\r\n'));
    // The failure comes while the payload is still arriving, chunk after chunk (64 KiB each,
    // more than the body's buffer holds).
    const err = await failed;
    expect((err as NodeJS.ErrnoException | undefined)?.code).toBe('ENOTDIR');
    const line = Buffer.alloc(64 * 1024, 'x');
    for (let i = 0; i < 32; i++) data.write(Buffer.concat([line, Buffer.from('\r\n')]));
    data.end();
    await finished(data);
    expect(data.readableEnded).toBe(true);
  });
});
