// `npm run service -- <name>`: one service in its own process (the production shape).
import { isServiceName, SERVICE_NAMES } from '../services/runtime/config.ts'
import { holdYoungGenerationWhileStarting } from '../services/runtime/startup-heap.ts'

const name = process.argv[2] ?? ''
if (!isServiceName(name)) {
  process.stderr.write(`usage: npm run service -- <${SERVICE_NAMES.join('|')}>\n`)
  process.exit(2)
}
// Before the service's modules load; its main.ts resolves once the service is serving.
const release = holdYoungGenerationWhileStarting()
await import(`../services/${name}/main.ts`)
release()
