// One-command build of the pages: bundle src/main.ts into dist/app.js (the call page) and
// src/consultations/main.ts into dist/consultations.js (the "my consultations" page), and copy
// the static files next to them. The Rust server embeds dist/ and serves app.js, app.css and
// consultations.js at /assets/, call.html at /call and consultations.html at /consultations.
import { build } from 'esbuild';
import { copyFile, mkdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(fileURLToPath(import.meta.url));
const dist = join(root, 'dist');

await rm(dist, { recursive: true, force: true });
await mkdir(dist, { recursive: true });

/** The options both bundles share. */
const common = {
  bundle: true,
  format: 'esm',
  target: 'es2020',
  minify: true,
  sourcemap: 'external',
  legalComments: 'none',
  // Module scripts are always decoded as UTF-8; escaping the Russian texts would triple their size.
  charset: 'utf8',
  logLevel: 'info',
};

await Promise.all([
  build({ ...common, entryPoints: [join(root, 'src/main.ts')], outfile: join(dist, 'app.js') }),
  build({
    ...common,
    entryPoints: [join(root, 'src/consultations/main.ts')],
    outfile: join(dist, 'consultations.js'),
  }),
]);

const STATIC = ['call.html', 'consultations.html', 'app.css'];
await Promise.all(STATIC.map((f) => copyFile(join(root, f), join(dist, f))));
console.log(`copied ${STATIC.join(', ')} to dist/`);
