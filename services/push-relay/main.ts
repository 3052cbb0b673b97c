// The development push relay in its own process: `npm run service -- push-relay`.
import { runServiceProcess } from '../runtime/process.ts'
import { pushRelay } from './server.ts'

await runServiceProcess([pushRelay])
