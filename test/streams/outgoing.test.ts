import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { link, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { KithNode } from '../../agent/node.ts';
import { CHUNK_BYTES } from '../../agent/payload/chunks.ts';
import type { MessageId } from '../../common/ids.ts';
import { line, progress, startAgents, until, type TestNetwork } from '../agents/network.ts';
import { kithSendFile, sha256Of } from './helpers.ts';

/**
 * outgoing/ keeps what a message is read from only while it is sent (agent/outgoing.ts): the hard
 * link of `kith send --file` and the copy of a small file go once the message is delivered, and
 * at start whatever belongs to a finished message goes too; the user's file stays as it was.
 */
describe('outgoing/ after delivery', () => {
  let net: TestNetwork;
  let a: KithNode, b: KithNode;
  beforeAll(async () => {
    net = await startAgents(line(['a', 'b']));
    [a, b] = ['a', 'b'].map((n) => net.agent(n).node);
  });
  afterAll(async () => net?.close());

  const outgoing = () => readdir(join(a.paths.root, 'outgoing'));

  const sendFile = (file: string): Promise<MessageId> => kithSendFile(a, b, file);

  const delivered = (id: MessageId) =>
    until(() => (progress(a, id).state === 'delivered' ? true : undefined), `${id} delivered`);

  it('a file sent in place: its hard link goes once delivered, the file itself is untouched', async () => {
    const file = join(net.dir, 'big.bin');
    await writeFile(file, randomBytes(6 * CHUNK_BYTES));
    const before = await stat(file);
    const hash = await sha256Of(file);
    const id = await sendFile(file);
    await delivered(id);
    await until(async () => ((await outgoing()).includes(id) ? undefined : true), 'outgoing/ emptied');
    const after = await stat(file);
    expect(after.ino).toBe(before.ino);
    expect(after.nlink).toBe(1); // the hard link is gone, not the file
    expect(after.mtimeMs).toBe(before.mtimeMs);
    expect(await sha256Of(file)).toBe(hash);
  });

  it('a small file (a copy) goes once delivered; at start, leftovers of finished messages go too', async () => {
    const file = join(net.dir, 'small.txt');
    await writeFile(file, 'a few bytes\n');
    const id = await sendFile(file);
    await delivered(id);
    await until(async () => ((await outgoing()).includes(id) ? undefined : true), 'outgoing/ emptied');

    // What a node before this cleanup left behind: a finished message's file, and a file no
    // message was ever stored for (a crash before the outbox row). A restart removes both.
    await link(file, join(a.paths.root, 'outgoing', id));
    const orphan = randomBytes(16).toString('hex');
    await writeFile(join(a.paths.root, 'outgoing', orphan), 'orphan');
    a = (await net.restart('a')).node;
    expect(await outgoing()).toEqual([]);
    expect((await stat(file)).nlink).toBe(1);
  });
});
