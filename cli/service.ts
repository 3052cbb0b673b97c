// `npm run service -- <name>`: one service in its own process (the production shape).
import { isServiceName, SERVICE_NAMES } from '../services/runtime/config.ts'

const name = process.argv[2] ?? ''
if (!isServiceName(name)) {
  process.stderr.write(`usage: npm run service -- <${SERVICE_NAMES.join('|')}>\n`)
  process.exit(2)
}
await import(`../services/${name}/main.ts`)
