// `npm install`'s postinstall: makes the embedded database's template once
// (services/runtime/pglite-template.ts), so the first `npm start` and every test's database copy it
// instead of running initdb. It never fails the install: without a template, a start makes one.
// CLOUDPAY_PGLITE_TEMPLATES=off (the image's build) skips it.
import { existsSync } from 'node:fs'
import { relative } from 'node:path'

try {
  if (process.env.CLOUDPAY_PGLITE_TEMPLATES !== 'off') {
    const { register } = await import('tsx/esm/api')
    register()
    const { loadConfig } = await import('../services/runtime/config.ts')
    const { ensureTemplate, templateDir } = await import('../services/runtime/pglite-template.ts')
    const began = performance.now()
    const wanted = templateDir(loadConfig().pgliteTemplates)
    const existed = existsSync(wanted)
    const dir = await ensureTemplate(wanted)
    const made = existed ? 'kept' : `made in ${((performance.now() - began) / 1000).toFixed(1)} s`
    console.log(`cloudpay: embedded database template in ${relative(process.cwd(), dir)} (${made}); new databases copy it instead of running initdb`)
  }
} catch (error) {
  console.warn(`cloudpay: no embedded database template made (${error instanceof Error ? error.message : error}); the first start makes it`)
}
