#!/usr/bin/env node
// Runs Kith from a bundle of its TypeScript sources (bin/build.mjs), rebuilt when a source changed,
// so a checkout needs no build step. Where the bundle cannot be written (a read-only install that
// was not built ahead of time), the sources run through tsx instead.
import { ensureBuild } from './build.mjs';

let dir;
try {
  dir = await ensureBuild();
} catch (err) {
  if (!['EACCES', 'EROFS', 'EPERM'].includes(err?.code)) throw err;
}
if (dir) {
  await import(`${dir}/common/polyfill.mjs`);
  const { main } = await import(`${dir}/cli/main.mjs`);
  process.exitCode = await main(process.argv);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../common/polyfill.ts');
  const { main } = await import('../cli/main.ts');
  process.exitCode = await main(process.argv);
}
