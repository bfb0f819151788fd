// One-command build of the call page: bundle src/main.ts into dist/app.js and copy the static
// files next to it. The Rust server serves dist/ at /assets/ and call.html at /call.
import { build } from 'esbuild';
import { copyFile, mkdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(fileURLToPath(import.meta.url));
const dist = join(root, 'dist');

await rm(dist, { recursive: true, force: true });
await mkdir(dist, { recursive: true });

await build({
  entryPoints: [join(root, 'src/main.ts')],
  outfile: join(dist, 'app.js'),
  bundle: true,
  format: 'esm',
  target: 'es2020',
  minify: true,
  sourcemap: 'external',
  legalComments: 'none',
  // Module scripts are always decoded as UTF-8; escaping the Russian texts would triple their size.
  charset: 'utf8',
  logLevel: 'info',
});

await Promise.all(['call.html', 'app.css'].map((f) => copyFile(join(root, f), join(dist, f))));
console.log('copied call.html, app.css to dist/');
