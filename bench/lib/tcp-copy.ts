// The raw baseline for file transfers: one process listens on loopback and writes what it
// receives to a file, another streams the file to it. Plain TCP, no encryption, no framing.
// Usage: tcp-copy.ts recv OUT   (prints the port, exits after the copy)
//        tcp-copy.ts send PORT IN
import { createReadStream, createWriteStream } from 'node:fs';
import { connect, createServer } from 'node:net';
import { pipeline } from 'node:stream/promises';

const [mode, a, b] = process.argv.slice(2);
if (mode === 'recv') {
  const server = createServer((socket) => {
    server.close();
    void pipeline(socket, createWriteStream(a!)).then(() => process.exit(0));
  });
  server.listen(0, '127.0.0.1', () => console.log((server.address() as { port: number }).port));
} else if (mode === 'send') {
  const socket = connect(Number(a), '127.0.0.1');
  await pipeline(createReadStream(b!, { highWaterMark: 256 * 1024 }), socket);
} else {
  console.error('usage: tcp-copy.ts recv OUT | send PORT IN');
  process.exit(2);
}
