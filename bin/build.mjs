// Bundles the TypeScript sources of the `kith` command into .build/ with esbuild, so `kith` runs
// plain JavaScript: a start costs about a second less CPU, and a node ~half the memory, than
// compiling every module inside the process with tsx (measured in bench/RESULTS.md 13).
// A checkout still needs no build step: bin/kith.mjs calls ensureBuild(), which rebuilds only when
// a source file changed. `node bin/build.mjs` builds ahead of time (the Docker image does).
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const SOURCE_DIRS = ['agent', 'gateway', 'config', 'common', 'store', 'cli'];
const ENTRY_POINTS = ['common/polyfill.ts', 'cli/main.ts'];
/** Builds older than this are removed; a process may still be loading chunks of a recent one. */
const KEEP_OLD_BUILDS_MS = 60 * 60 * 1000;

/** Inside the checkout, so the bundle's imports of packages find node_modules. */
const BUILD_ROOT = join(root, '.build');

/** Names, sizes and mtimes of every source file: any edit, checkout or new file changes it. */
function sourceFingerprint() {
  const hash = createHash('sha256');
  const walk = (dir) => {
    for (const entry of readdirSync(join(root, dir), { withFileTypes: true }).sort((a, b) =>
      a.name < b.name ? -1 : 1,
    )) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.ts')) {
        const stat = statSync(join(root, path));
        hash.update(`${path}\0${stat.size}\0${stat.mtimeMs}\n`);
      }
    }
  };
  for (const dir of SOURCE_DIRS) walk(dir);
  return hash.digest('hex').slice(0, 16);
}

/**
 * Returns the directory of an up-to-date bundle (with common/polyfill.mjs and cli/main.mjs),
 * building it first when the sources changed. Concurrent callers each build into their own
 * temporary directory and the first rename wins, so nobody ever loads a half-written bundle.
 */
export async function ensureBuild() {
  const base = BUILD_ROOT;
  const target = join(base, `kith-${sourceFingerprint()}`);
  if (existsSync(join(target, 'cli', 'main.mjs'))) return target;

  const esbuild = await import('esbuild');
  mkdirSync(base, { recursive: true });
  const temporary = join(base, `tmp-${process.pid}-${Date.now()}`);
  try {
    await esbuild.build({
      absWorkingDir: root,
      entryPoints: ENTRY_POINTS,
      outdir: temporary,
      outbase: root,
      bundle: true,
      splitting: true, // commands import their heavy parts lazily; each becomes a chunk
      format: 'esm',
      outExtension: { '.js': '.mjs' },
      platform: 'node',
      target: 'node20',
      packages: 'external', // node_modules stay as they are (native addons, ESM-only libp2p)
      sourcemap: 'linked', // with NODE_OPTIONS=--enable-source-maps, stack traces name the .ts files
      logLevel: 'warning',
    });
  } finally {
    // esbuild's service process would otherwise live as long as the node it built
    await esbuild.stop();
  }
  try {
    renameSync(temporary, target);
  } catch (err) {
    // another process finished the same build first: use its copy
    rmSync(temporary, { recursive: true, force: true });
    if (!existsSync(join(target, 'cli', 'main.mjs'))) throw err;
  }
  removeOldBuilds(base, target);
  return target;
}

function removeOldBuilds(base, keep) {
  const now = Date.now();
  for (const name of readdirSync(base)) {
    const path = join(base, name);
    if (path === keep) continue;
    try {
      if (now - statSync(path).mtimeMs > KEEP_OLD_BUILDS_MS) rmSync(path, { recursive: true, force: true });
    } catch {
      // removed by another process meanwhile
    }
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const dir = await ensureBuild();
  process.stdout.write(`kith: built ${dir}\n`);
}
