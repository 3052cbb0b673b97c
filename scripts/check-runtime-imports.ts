// The image runs dist/ with the production dependencies only (npm prune --omit=dev): every
// package dist/ imports must be a dependency in package.json, not a devDependency (a tsx or
// typescript import would only fail once the image runs). Run after npm run build, in CI and in
// the Dockerfile's build stage.
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { builtinModules } from 'node:module'
import { join, resolve } from 'node:path'

const root = resolve(import.meta.dirname, '..')
const { dependencies = {} } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> }
const files = (dir: string): string[] => readdirSync(dir).flatMap((e) => (statSync(join(dir, e)).isDirectory() ? files(join(dir, e)) : e.endsWith('.js') ? [join(dir, e)] : []))
const builtins = new Set(builtinModules)
const missing = new Map<string, string>()
let count = 0
for (const file of files(join(root, 'dist'))) {
  count++
  const text = readFileSync(file, 'utf8')
  for (const [, specifier] of text.matchAll(/(?:from\s*|import\s*\(\s*|import\s+)['"]([^'"./][^'"]*)['"]/g)) {
    if (specifier!.startsWith('node:') || builtins.has(specifier!)) continue
    const name = specifier!.startsWith('@') ? specifier!.split('/').slice(0, 2).join('/') : specifier!.split('/')[0]!
    if (!(name in dependencies)) missing.set(name, file.slice(root.length + 1))
  }
}
if (count === 0) {
  console.error('dist/ is empty: run npm run build first')
  process.exit(1)
}
for (const [name, file] of missing) console.error(`${file} imports ${name}, which is not a production dependency`)
if (missing.size > 0) process.exit(1)
console.log(`dist/: ${count} files import only production dependencies`)
